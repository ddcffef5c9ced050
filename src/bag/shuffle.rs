//! `groupby` through a shuffle between workers, in the task graph (Dask's
//! `shuffle="tasks"`): each input partition is split into `k` buckets by a
//! hash of each element's key (`rdask::bag::split`), output partition `j`
//! gathers bucket `j` of every split (`rdask::bag::pick`, one small task
//! per split and bucket, so each output fetches only its bucket) and groups
//! it (`rdask::bag::groupby`). Every group lands whole in one output
//! partition, and no task holds more than its own partitions' elements, so
//! the groups together may be larger than any one worker.

use std::borrow::Cow;

use indexmap::IndexMap;

use super::msgpack::{array, array_owned};
use super::runners::{arg, bad, decode, items, key_of, pairs_out, KeySpec};
use super::{value, Bag};
use crate::delayed::graph::DArg;
use crate::delayed::{raw_call, Delayed};
use crate::task::Task;
use crate::wire::messages::TaskFailure;

/// Most output partitions a shuffle may have: the split task allocates a
/// bucket per output, and the graph holds a task per input and output.
pub const MAX_SHUFFLE_PARTITIONS: usize = 1 << 16;

/// `(key, k, partition)`: `k` partitions, element `e` in bucket
/// `fnv1a64(key bytes) mod k` (equal keys encode to equal bytes).
pub(crate) fn split(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let spec: KeySpec = decode(arg(args, 0, "split")?, "split's key")?;
    let k: u64 = decode(arg(args, 1, "split")?, "split's bucket count")?;
    if k == 0 || k > MAX_SHUFFLE_PARTITIONS as u64 {
        return Err(bad(format!("split into {k} buckets (1 to {MAX_SHUFFLE_PARTITIONS})")));
    }
    let mut buckets: Vec<Vec<&[u8]>> = vec![Vec::new(); k as usize];
    for e in items(arg(args, 2, "split")?, "split")? {
        let h = crate::util::fnv1a64(&[&key_of(&spec, e)?]);
        buckets[(h % k) as usize].push(e);
    }
    let parts: Vec<Vec<u8>> = buckets.into_iter().map(|b| array(b.into_iter())).collect();
    Ok(array_owned(&parts))
}

/// `(j, array)`: its element `j`.
pub(crate) fn pick(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let j: u64 = decode(arg(args, 0, "pick")?, "pick's index")?;
    let all = items(arg(args, 1, "pick")?, "pick")?;
    all.get(j as usize)
        .map(|e| e.to_vec())
        .ok_or_else(|| bad(format!("pick {j} of an array of {}", all.len())))
}

/// `(key, partition)`: `[key, [elements…]]` per key, in order of first
/// occurrence, elements in their order.
pub(crate) fn groupby(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let spec: KeySpec = decode(arg(args, 0, "groupby")?, "groupby's key")?;
    let mut groups: IndexMap<Cow<'_, [u8]>, Vec<&[u8]>> = IndexMap::new();
    for e in items(arg(args, 1, "groupby")?, "groupby")? {
        groups.entry(key_of(&spec, e)?).or_default().push(e);
    }
    Ok(pairs_out(groups.into_iter().map(|(k, es)| (k, array(es.into_iter())))))
}

impl<T> Bag<T> {
    /// The elements grouped by `key(element)` (Dask's `groupby`), as many
    /// output partitions as it has partitions: see
    /// [`groupby_into`](Self::groupby_into).
    pub fn groupby<K, F: Task<Args = (T,), Output = K>>(&self, key: F) -> Bag<(K, Vec<T>)> {
        self.groupby_into(key, self.npartitions())
    }

    /// The elements grouped by `key(element)` through a shuffle into
    /// `npartitions` partitions (Dask's `groupby(key, npartitions=…)`):
    /// each group is whole in one partition, its elements in input order.
    /// Which partition holds a group is a hash of its key. `npartitions` is
    /// clamped to 1..=[`MAX_SHUFFLE_PARTITIONS`]. `foldby` moves
    /// far less data where it applies, as Dask's docs also advise.
    pub fn groupby_into<K, F: Task<Args = (T,), Output = K>>(&self, _key: F, npartitions: usize) -> Bag<(K, Vec<T>)> {
        let k = npartitions.clamp(1, MAX_SHUFFLE_PARTITIONS);
        let spec = KeySpec::Function(F::NAME.to_string());
        let splits: Vec<Delayed<Vec<Vec<T>>>> = self
            .parts
            .iter()
            .map(|p| {
                let args = (|| Ok(vec![value(&spec)?, value(&(k as u64))?, DArg::Node(p.node.clone())]))();
                raw_call("rdask::bag::split", args)
            })
            .collect();
        let parts = (0..k)
            .map(|j| {
                let picks = splits
                    .iter()
                    .map(|s| {
                        let d: Delayed<Vec<T>> = raw_call(
                            "rdask::bag::pick",
                            value(&(j as u64)).map(|a| vec![a, DArg::Node(s.node.clone())]),
                        );
                        d.node
                    })
                    .collect();
                let bucket: Delayed<Vec<T>> = raw_call("rdask::bag::concat", Ok(vec![DArg::Nodes(picks)]));
                raw_call(
                    "rdask::bag::groupby",
                    value(&spec).map(|a| vec![a, DArg::Node(bucket.node)]),
                )
            })
            .collect();
        Bag::from_delayed(parts).split_every(self.split_every)
    }
}
