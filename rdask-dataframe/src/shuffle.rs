//! The worker side of data frame shuffles on rdask's peer-to-peer shuffle
//! (`rdask::shuffle`): split functions that cut a partition into one Arrow
//! IPC shard per output partition (by a hash of key columns, for joins; by
//! ranges of one column between divisions, for `sort_values` /
//! `set_index`), the unpack function that stacks an output's shards (and
//! sorts them), and the per-partition quantile sample that divisions are
//! computed from.

use polars::prelude::{
    DataFrame as PlFrame, DataType, IdxCa, IdxSize, IntoColumn, NamedFrom, Series, SortMultipleOptions,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::join::row_hashes;
use crate::kernels::concat_frames;
use crate::Partition;

/// How `split_range` assigns rows: by `column`'s value against the sorted
/// `divisions` (one column, `npartitions - 1` values).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RangeSpec {
    /// The column sorted on.
    pub column: String,
    /// Cut points, ascending, without nulls.
    pub divisions: Partition,
}

/// A partition's rows taken into `n` buckets, each bucket as Arrow IPC.
fn shards(p: &PlFrame, bucket: impl Iterator<Item = usize>, n: usize) -> Result<Vec<ByteBuf>, String> {
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

/// A column's values as something ordered the way Polars sorts it:
/// numbers (and booleans, dates… through their physical form) as `f64`,
/// which keeps their order (equal values stay equal, larger stay larger
/// or equal), anything else as text.
enum Keys {
    Num(Vec<Option<f64>>),
    Text(Vec<Option<String>>),
}

fn keys(s: &polars::prelude::Column) -> Result<Keys, String> {
    let phys = s.to_physical_repr();
    let dt = phys.dtype().clone();
    if dt.is_primitive_numeric() || dt == DataType::Boolean {
        let c = phys.cast(&DataType::Float64).map_err(|e| e.to_string())?;
        Ok(Keys::Num(c.f64().map_err(|e| e.to_string())?.iter().collect()))
    } else {
        let c = s.cast(&DataType::String).map_err(|e| e.to_string())?;
        let ca = c.str().map_err(|e| e.to_string())?;
        Ok(Keys::Text(ca.iter().map(|v| v.map(str::to_string)).collect()))
    }
}

/// Output partition of each value: nulls first (partition 0), NaN last,
/// else the number of divisions below the value. So every value of
/// partition `j` sorts before every value of partition `j + 1`, as Polars
/// sorts (nulls first, NaN greatest).
fn range_buckets(values: &Keys, divisions: &Keys, n: usize) -> Result<Vec<usize>, String> {
    Ok(match (values, divisions) {
        (Keys::Num(v), Keys::Num(d)) => {
            let d: Vec<f64> = d.iter().flatten().copied().collect();
            v.iter()
                .map(|x| match x {
                    None => 0,
                    Some(x) if x.is_nan() => n - 1,
                    Some(x) => d.partition_point(|c| c < x).min(n - 1),
                })
                .collect()
        }
        (Keys::Text(v), Keys::Text(d)) => {
            let d: Vec<&str> = d.iter().flatten().map(String::as_str).collect();
            v.iter()
                .map(|x| match x {
                    None => 0,
                    Some(x) => d.partition_point(|c| *c < x.as_str()).min(n - 1),
                })
                .collect()
        }
        _ => return Err("the divisions are not of the column's kind".into()),
    })
}

/// Cuts a partition into `npartitions` shards by ranges of one column
/// between the divisions (`sort_values`, `set_index`).
#[rdask::task]
pub fn split_range(p: Partition, npartitions: u32, spec: RangeSpec) -> Result<Vec<ByteBuf>, String> {
    let n = npartitions.max(1) as usize;
    let column = p.column(&spec.column).map_err(|e| e.to_string())?;
    let divisions = spec.divisions.columns().first().ok_or("divisions without a column")?;
    let buckets = range_buckets(&keys(column)?, &keys(divisions)?, n)?;
    shards(&p, buckets.into_iter(), n)
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

/// Up to `n` values of `column` at evenly spaced ranks of the partition's
/// sorted non-null, non-NaN values: its share of the sample divisions are
/// chosen from.
#[rdask::task]
pub fn sample_quantiles(p: Partition, column: String, n: u32) -> Result<Partition, String> {
    let c = p.column(&column).map_err(|e| e.to_string())?;
    let s = c.as_materialized_series().drop_nulls();
    let s = if s.dtype().is_float() {
        let mask = s.is_nan().map_err(|e| e.to_string())?;
        s.filter(&!mask).map_err(|e| e.to_string())?
    } else {
        s
    };
    let sorted = s.sort(Default::default()).map_err(|e| e.to_string())?;
    let len = sorted.len();
    let n = (n as usize).min(len);
    let idx: Vec<IdxSize> = (0..n).map(|i| (i * len / n.max(1)) as IdxSize).collect();
    let picked = sorted
        .take(&IdxCa::from_vec("idx".into(), idx))
        .map_err(|e| e.to_string())?;
    PlFrame::new(picked.len(), vec![picked.into_column()])
        .map(Partition)
        .map_err(|e| e.to_string())
}

/// `npartitions - 1` divisions from the stacked samples: the values at
/// evenly spaced ranks. No samples (all null) give a division-less column.
pub(crate) fn divisions_from(samples: Vec<Partition>, column: &str, npartitions: usize) -> Result<Partition, String> {
    let all = concat_frames(samples.into_iter().map(Partition::into_inner).collect())?;
    let Some(c) = all.columns().first() else {
        let empty = Series::new(column.into(), Vec::<f64>::new());
        return PlFrame::new(0, vec![empty.into_column()])
            .map(Partition)
            .map_err(|e| e.to_string());
    };
    let sorted = c
        .as_materialized_series()
        .sort(Default::default())
        .map_err(|e| e.to_string())?;
    let len = sorted.len();
    let idx: Vec<IdxSize> = if len == 0 {
        Vec::new()
    } else {
        (1..npartitions)
            .map(|k| ((k * len / npartitions).min(len - 1)) as IdxSize)
            .collect()
    };
    let picked = sorted
        .take(&IdxCa::from_vec("idx".into(), idx))
        .map_err(|e| e.to_string())?;
    PlFrame::new(picked.len(), vec![picked.into_column()])
        .map(Partition)
        .map_err(|e| e.to_string())
}
