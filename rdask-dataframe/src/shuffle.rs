//! The worker side of data frame hash shuffles on rdask's peer-to-peer
//! shuffle (`rdask::shuffle`): the split function that cuts a partition
//! into one Arrow IPC shard per output partition by a hash of key columns
//! (joins, `shuffle(on)`), and the unpack function that stacks an output's
//! shards. The range split of `sort_values` / `set_index` is in
//! `sort_keys`.

use polars::prelude::{DataFrame as PlFrame, IdxCa, IdxSize, SortMultipleOptions};
use serde_bytes::ByteBuf;

use crate::join::row_hashes;
use crate::kernels::concat_frames;
use crate::Partition;

/// A partition's rows taken into `n` buckets, each bucket as Arrow IPC.
pub(crate) fn shards(p: &PlFrame, bucket: impl Iterator<Item = usize>, n: usize) -> Result<Vec<ByteBuf>, String> {
    let mut rows: Vec<Vec<IdxSize>> = vec![Vec::new(); n];
    for (i, b) in bucket.enumerate() {
        rows[b].push(i as IdxSize);
    }
    rows.into_iter()
        .map(|idx| {
            let piece = p.take(&IdxCa::from_vec("idx".into(), idx)).map_err(|e| e.to_string())?;
            Partition(piece).to_ipc().map(ByteBuf::from)
        })
        .collect()
}

/// Cuts a partition into `npartitions` shards by a hash of its `on`
/// columns (the same on every machine: `join::row_hashes`).
#[rdask::task]
pub fn split_hash(p: Partition, npartitions: u32, on: Vec<String>) -> Result<Vec<ByteBuf>, String> {
    let n = npartitions.max(1) as u64;
    let hashes = row_hashes(&p, &on)?;
    shards(&p, hashes.into_iter().map(|h| (h % n) as usize), n as usize)
}

/// Stacks an output's shards (one per input, in input order); sorted by
/// `sort_by` (stable, nulls first) when given.
#[rdask::task]
pub fn unpack_concat(shards: Vec<ByteBuf>, sort_by: Option<String>) -> Result<Partition, String> {
    let frames = shards
        .iter()
        .map(|s| Partition::from_ipc(s).map(Partition::into_inner))
        .collect::<Result<Vec<_>, _>>()?;
    let df = concat_frames(frames)?;
    match sort_by {
        None => Ok(Partition(df)),
        Some(c) => df
            .sort([c.as_str()], SortMultipleOptions::default().with_maintain_order(true))
            .map(Partition)
            .map_err(|e| e.to_string()),
    }
}
