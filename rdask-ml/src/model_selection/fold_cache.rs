//! A worker process's decoded Gram folds, by id, so that the many
//! candidates of a fold decode it once per process rather than once per
//! task. (Folds held their test rows, 17.6 MB in the benchmark, when this
//! was written; since they hold the rows' moments instead, a few hundred
//! numbers, the cache saves little, but costs nothing either.)
//!
//! Why: a worker hands each task its arguments as msgpack bytes, and a
//! task decodes them into fresh memory. With a shared Gram matrix a
//! candidate's fit takes microseconds, and decoding the fold's test rows
//! (200,000 x 10 in the benchmark, 17.6 MB) into newly mapped pages was
//! most of its time: `memcpy` 20 % and page clearing 18 % of a whole
//! search (`perf`, 2026-12-03 19:42, docs/benchmarks.md). Dask's workers
//! keep Python objects, so its tasks read a fold with no copy at all; this
//! gives rdask-ml the same for the one value that is read hundreds of
//! times. A [`GramFold`] carries a random id, written first; [`SharedFold`]
//! reads the id and, when this process already decoded that fold, skips
//! the rest of the bytes (a msgpack `bin` is skipped, not copied) and
//! shares the decoded one. Folds are immutable once made, and a fold made
//! again (a lost worker's recomputation) gets a new id, so a hit is always
//! the same value.

use std::collections::hash_map::RandomState;
use std::collections::VecDeque;
use std::fmt;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use serde::de::value::MapAccessDeserializer;
use serde::de::{Error as _, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use super::gram::{GramFold, GramFoldRest};

/// Most decoded folds a process keeps (the oldest go first): a search's
/// folds (5 by default) with room for a second search running at once.
/// Each costs its size again on top of the worker's stored bytes.
pub const MAX_CACHED_FOLDS: usize = 12;

/// A fold's identity: 128 random bits, drawn when it is made.
pub type FoldId = [u64; 2];

static CACHE: Mutex<VecDeque<(FoldId, Arc<GramFold>)>> = Mutex::new(VecDeque::new());

/// A fresh id: two hashes keyed by the process's random `RandomState`
/// seeds, of a counter and the time.
pub(crate) fn new_id() -> FoldId {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let n = COUNTER.fetch_add(1, Ordering::Relaxed);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_nanos() as u64)
        .unwrap_or(0);
    let draw = |salt: u64| {
        let mut h = RandomState::new().build_hasher();
        h.write_u64(n);
        h.write_u64(now);
        h.write_u64(salt);
        h.write_u32(std::process::id());
        h.finish()
    };
    [draw(1), draw(2)]
}

fn cache() -> std::sync::MutexGuard<'static, VecDeque<(FoldId, Arc<GramFold>)>> {
    // A panic elsewhere while holding the lock leaves the list whole.
    CACHE.lock().unwrap_or_else(|e| e.into_inner())
}

fn lookup(id: FoldId) -> Option<Arc<GramFold>> {
    cache().iter().find(|(k, _)| *k == id).map(|(_, f)| f.clone())
}

fn insert(id: FoldId, fold: Arc<GramFold>) {
    let mut c = cache();
    if c.iter().any(|(k, _)| *k == id) {
        return;
    }
    if c.len() >= MAX_CACHED_FOLDS {
        c.pop_front();
    }
    c.push_back((id, fold));
}

/// A [`GramFold`] as a task argument: decoded at most once per process
/// while it stays among the last [`MAX_CACHED_FOLDS`].
#[derive(Clone, Debug)]
pub struct SharedFold(pub Arc<GramFold>);

impl Serialize for SharedFold {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.0.serialize(s)
    }
}

impl<'de> Deserialize<'de> for SharedFold {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<SharedFold, D::Error> {
        d.deserialize_map(FoldVisitor)
    }
}

struct FoldVisitor;

impl<'de> Visitor<'de> for FoldVisitor {
    type Value = SharedFold;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a GramFold (a map whose first field is its id)")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<SharedFold, A::Error> {
        let first: Option<String> = map.next_key()?;
        if first.as_deref() != Some("id") {
            return Err(A::Error::custom(format!(
                "a GramFold's first field must be its id, got {first:?}"
            )));
        }
        let id: FoldId = map.next_value()?;
        if let Some(hit) = lookup(id) {
            while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
            return Ok(SharedFold(hit));
        }
        let rest = GramFoldRest::deserialize(MapAccessDeserializer::new(map))?;
        let fold = Arc::new(rest.with_id(id));
        insert(id, fold.clone());
        Ok(SharedFold(fold))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model_selection::Preprocess;
    use crate::Dataset;
    use rdask_array::ndarray::array;

    #[test]
    fn a_fold_is_decoded_once_then_shared_and_the_cache_is_bounded() {
        let data = Dataset::new(
            array![[1.0, 2.0], [3.0, -1.0], [0.5, 4.0], [2.0, 2.5]],
            array![1.0, 2.0, 0.0, 3.0],
        )
        .unwrap();
        let fold = GramFold::prepare(&data, &[0, 1, 2], &[3], Preprocess::StandardScaler).unwrap();
        let again = GramFold::prepare(&data, &[0, 1, 2], &[3], Preprocess::StandardScaler).unwrap();
        assert_ne!(fold.id, again.id);
        let bytes = rdask::task::encode_value(&fold).unwrap();
        let a: SharedFold = rdask::task::decode_value(&bytes).unwrap();
        assert_eq!(*a.0, fold);
        let b: SharedFold = rdask::task::decode_value(&bytes).unwrap();
        assert!(Arc::ptr_eq(&a.0, &b.0), "the second decode shares the first");
        // A plain GramFold still round-trips, and the wrapper encodes as it.
        let plain: GramFold = rdask::task::decode_value(&bytes).unwrap();
        assert_eq!(plain, fold);
        assert_eq!(rdask::task::encode_value(&a).unwrap(), bytes);
        // Bad bytes are an error, not a panic.
        assert!(rdask::task::decode_value::<SharedFold>(&rdask::task::encode_value(&7u8).unwrap()).is_err());
        let no_id = rdask::task::encode_value(&std::collections::BTreeMap::from([("x", 1)])).unwrap();
        let err = rdask::task::decode_value::<SharedFold>(&no_id).unwrap_err().to_string();
        assert!(err.contains("first field must be its id"), "{err}");
        // The cache keeps at most its bound (in the same test: tests run
        // in threads of one process, sharing it).
        for i in 0..MAX_CACHED_FOLDS as u64 + 3 {
            let data = Dataset::new(array![[i as f64], [1.0]], array![0.0, 1.0]).unwrap();
            let f = GramFold::prepare(&data, &[0, 1], &[1], Preprocess::None).unwrap();
            insert(f.id, Arc::new(f));
        }
        assert!(cache().len() <= MAX_CACHED_FOLDS);
    }
}
