//! [`KeyIndex`]: a hash index from string keys to the ids of the records
//! holding them, which stores only the ids (4 bytes a key) and reads a
//! key through its record when it must compare one.
//!
//! Why (issue 15): a `HashMap<String, Id>` over a million keys stores every
//! key twice (in the map and in its record) and spends 32 bytes a bucket;
//! its probes land on buckets spread over ~70 MB, so each lookup or removal
//! is two or three cache misses (control bytes, bucket, the key's string).
//! Here the buckets are 4 bytes (a million keys fit in ~10 MB, which stays
//! in cache), removal by id compares ids only, and the key lives once, in
//! its record, which callers allocate in arrival order, so that walking keys
//! in that order (a release of a million futures) walks memory in order.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Hash index of keys to record ids; the records own the keys. Every
/// method that may compare or rehash keys takes `key_of`, which gives the
/// key of a record id that is in the index.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    table: HashTable<u32>,
}

/// The hash of a key in a [`KeyIndex`].
pub fn key_hash(key: &str) -> u64 {
    FxBuildHasher.hash_one(key)
}

impl KeyIndex {
    /// An empty index.
    pub fn new() -> Self {
        Self::default()
    }

    /// Number of keys indexed.
    pub fn len(&self) -> usize {
        self.table.len()
    }

    /// Whether no key is indexed.
    pub fn is_empty(&self) -> bool {
        self.table.is_empty()
    }

    /// The id of the record holding `key`.
    pub fn get<'a>(&self, key: &str, key_of: impl Fn(u32) -> &'a str) -> Option<u32> {
        self.table.find(key_hash(key), |&id| key_of(id) == key).copied()
    }

    /// Indexes record `id` under `key` (which the caller checked is not
    /// indexed yet).
    pub fn insert<'a>(&mut self, key: &str, id: u32, key_of: impl Fn(u32) -> &'a str) {
        self.table.insert_unique(key_hash(key), id, |&i| key_hash(key_of(i)));
    }

    /// Removes record `id`, indexed under `key`; compares ids, not keys.
    /// Returns whether it was indexed.
    pub fn remove(&mut self, key: &str, id: u32) -> bool {
        match self.table.find_entry(key_hash(key), |&i| i == id) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// The indexed ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().copied()
    }

    /// Forgets every key.
    pub fn clear(&mut self) {
        self.table.clear();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_inserts_and_removes_through_the_records() {
        let mut records: Vec<String> = Vec::new();
        let mut index = KeyIndex::new();
        for i in 0..10_000 {
            let key = format!("k-{i}");
            records.push(key.clone());
            index.insert(&key, i, |id| &records[id as usize]);
        }
        assert_eq!(index.len(), 10_000);
        let key_of = |id: u32| records[id as usize].as_str();
        assert_eq!(index.get("k-4321", key_of), Some(4321));
        assert_eq!(index.get("k-10000", key_of), None);
        assert!(index.remove("k-4321", 4321));
        assert!(!index.remove("k-4321", 4321), "removed twice");
        // Removal is by id: the wrong id under the right key removes nothing.
        assert!(!index.remove("k-17", 18));
        assert_eq!(index.get("k-4321", key_of), None);
        assert_eq!(index.get("k-17", key_of), Some(17));
        assert_eq!(index.len(), 9_999);
        let mut ids: Vec<u32> = index.ids().collect();
        ids.sort_unstable();
        assert_eq!(ids.len(), 9_999);
        assert_eq!(ids[4321], 4322);
    }
}
