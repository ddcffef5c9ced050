//! [`KeyIndex`]: a hash index from string keys to the ids of the records
//! holding them, which stores only the ids (4 bytes a key) and reads a
//! key through its record when it must compare one.
//!
//! Why (issue 15): a `HashMap<String, Id>` over a million keys stores every
//! key twice (in the map and in its record) and spends 32 bytes a bucket;
//! its probes land on buckets spread over ~70 MB, so each lookup or removal
//! is two or three cache misses (control bytes, bucket, the key's string).
//! Here a bucket is 8 bytes, the id and 32 bits of the key's hash (a
//! million keys take ~18 MB), removal by id compares ids only, growing the
//! table rehashes from the stored bits without reading a key, and the key
//! lives once, in its record, which callers allocate in arrival order, so
//! that walking keys in that order (a release of a million futures) walks
//! memory in order.

use std::hash::BuildHasher;

use hashbrown::HashTable;
use rustc_hash::FxBuildHasher;

/// Hash index of keys to record ids; the records own the keys. A lookup
/// takes `key_of`, which gives the key of a record id in the index.
#[derive(Debug, Default, Clone)]
pub struct KeyIndex {
    /// (record id, the key's [`short_hash`]).
    table: HashTable<(u32, u32)>,
}

/// The 32 bits of a key's hash a [`KeyIndex`] stores.
pub fn short_hash(key: &str) -> u32 {
    let h = FxBuildHasher.hash_one(key);
    (h ^ (h >> 32)) as u32
}

/// The full hash the table probes with, spread from the stored 32 bits (an
/// odd multiplier: distinct bits stay distinct, and the high bits, which
/// the table's control bytes use, depend on all of them).
fn spread(short: u32) -> u64 {
    (short as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
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
        let short = short_hash(key);
        (self
            .table
            .find(spread(short), |&(id, h)| h == short && key_of(id) == key))
        .map(|&(id, _)| id)
    }

    /// The id of the record under `key`'s hash for which `is` holds (for
    /// callers whose index may hold ids of records since emptied).
    pub fn find(&self, key: &str, is: impl Fn(u32) -> bool) -> Option<u32> {
        let short = short_hash(key);
        (self.table.find(spread(short), |&(id, h)| h == short && is(id))).map(|&(id, _)| id)
    }

    /// Keeps only the ids for which `keep` holds: one pass over the table,
    /// in its order (removing many ids at once without a probe each).
    pub fn retain(&mut self, mut keep: impl FnMut(u32) -> bool) {
        self.table.retain(|&mut (id, _)| keep(id));
    }

    /// Indexes record `id` under `key` (which the caller checked is not
    /// indexed yet).
    pub fn insert(&mut self, key: &str, id: u32) {
        let short = short_hash(key);
        self.table
            .insert_unique(spread(short), (id, short), |&(_, h)| spread(h));
    }

    /// Makes room for `additional` more keys at once (one rehash, not a
    /// doubling after another).
    pub fn reserve(&mut self, additional: usize) {
        self.table.reserve(additional, |&(_, h)| spread(h));
    }

    /// Removes record `id`, indexed under `key`; compares ids, not keys.
    /// Returns whether it was indexed.
    pub fn remove(&mut self, key: &str, id: u32) -> bool {
        let short = short_hash(key);
        match self.table.find_entry(spread(short), |&(i, _)| i == id) {
            Ok(entry) => {
                entry.remove();
                true
            }
            Err(_) => false,
        }
    }

    /// The indexed ids, in no particular order.
    pub fn ids(&self) -> impl Iterator<Item = u32> + '_ {
        self.table.iter().map(|&(id, _)| id)
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
            index.insert(&key, i);
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
        index.retain(|id| id % 2 == 0);
        assert_eq!(index.len(), 5_000, "the even ids but 4321 (odd anyway)");
        assert_eq!(index.find("k-18", |id| id == 18), Some(18));
        assert_eq!(index.find("k-18", |_| false), None);
        assert_eq!(index.find("k-19", |_| true), None, "19 was not retained");
    }
}
