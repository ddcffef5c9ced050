//! The worker side of `sort_values` / `set_index` on one or several
//! columns, each ascending or descending, nulls first or last: the sort
//! order as a value ([`SortBy`]), each row's composite key as bytes that
//! compare like Polars' sort (Polars' own row encoding), the per-partition
//! quantile sample divisions are chosen from, the split function that cuts
//! a partition by ranges of the key between divisions, and the unpack
//! function that stacks an output's shards and sorts them.

use polars::prelude::row_encode::_get_rows_encoded_ca;
use polars::prelude::ChunkCast;
use polars::prelude::{
    BinaryOffsetChunked, Column, DataFrame as PlFrame, DataType, IdxCa, IdxSize, IntoColumn, PlSmallStr,
    SortMultipleOptions,
};
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use crate::kernels::concat_frames;
use crate::shuffle::shards;
use crate::Partition;

/// Name of the encoded-key column added to samples and divisions (removed
/// before divisions are shown to the user).
const KEY: &str = "__rdask_sort_key";

/// A sort order (Dask's `sort_values(by, ascending, na_position)`): the
/// columns, whether each is descending, and where nulls go (one place for
/// all columns, as pandas' `na_position`). NaN is the largest float, as in
/// Polars: last when ascending, first when descending (nulls aside).
///
/// ```
/// use rdask_dataframe::SortBy;
/// let by = SortBy::new(&["user_id", "time"]).ascending(&[true, false]).nulls_last(true);
/// assert_eq!(by.columns(), ["user_id", "time"]);
/// ```
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SortBy {
    by: Vec<String>,
    descending: Vec<bool>,
    nulls_last: bool,
}

impl SortBy {
    /// Ascending on every column of `by`, nulls first (Polars' default;
    /// pandas' is [`nulls_last`](Self::nulls_last)).
    pub fn new<S: AsRef<str>>(by: &[S]) -> SortBy {
        SortBy {
            by: by.iter().map(|s| s.as_ref().to_string()).collect(),
            descending: vec![false; by.len()],
            nulls_last: false,
        }
    }

    /// Descending on every column (`ascending=False`).
    pub fn descending(mut self) -> SortBy {
        self.descending = vec![true; self.by.len()];
        self
    }

    /// Per column, whether it is ascending (`ascending=[True, False]`). A
    /// list of another length than the columns is refused when the sort
    /// is built.
    pub fn ascending(mut self, ascending: &[bool]) -> SortBy {
        self.descending = ascending.iter().map(|a| !a).collect();
        self
    }

    /// Nulls after every value (`na_position="last"`) or before.
    pub fn nulls_last(mut self, last: bool) -> SortBy {
        self.nulls_last = last;
        self
    }

    /// The columns sorted on, in order.
    pub fn columns(&self) -> &[String] {
        &self.by
    }

    /// Whether the order can be used: at least one column, one direction
    /// per column, no column twice.
    pub(crate) fn check(&self) -> Result<(), String> {
        if self.by.is_empty() {
            return Err("sort_values needs at least one column".into());
        }
        if self.descending.len() != self.by.len() {
            return Err(format!(
                "sort_values: {} directions given for {} columns {:?}",
                self.descending.len(),
                self.by.len(),
                self.by
            ));
        }
        for (i, c) in self.by.iter().enumerate() {
            if self.by[..i].contains(c) {
                return Err(format!("sort_values: column {c:?} given twice"));
            }
        }
        Ok(())
    }

    /// The same order as Polars' options (stable).
    pub fn polars_options(&self) -> SortMultipleOptions {
        SortMultipleOptions::default()
            .with_order_descending_multi(self.descending.clone())
            .with_nulls_last_multi(vec![self.nulls_last; self.by.len()])
            .with_maintain_order(true)
    }

    fn names(&self) -> Vec<PlSmallStr> {
        self.by.iter().map(|c| PlSmallStr::from(c.as_str())).collect()
    }
}

/// A key column brought to a type every partition agrees on, keeping its
/// order: numbers, booleans and dates/times (their physical form) as `f64`
/// (larger stays larger or equal; equal stays equal), anything else as
/// text. Partitions read from different files may type one column
/// differently (an all-null column is text), so keys are compared only in
/// this form; each output is then sorted on the real columns.
fn comparable(c: &Column) -> Result<Column, String> {
    let dt = c.dtype();
    if dt.is_primitive_numeric() || dt.is_bool() || dt.is_temporal() {
        c.to_physical_repr().cast(&DataType::Float64)
    } else {
        c.cast(&DataType::String)
    }
    .map_err(|e| e.to_string())
}

/// Each row's composite key as bytes whose order is the sort order
/// (Polars' row encoding, which its own multi-column sort uses: NaN
/// greatest, -0 equal to 0, directions and null placement applied).
fn encoded_keys(p: &PlFrame, by: &SortBy) -> Result<BinaryOffsetChunked, String> {
    let cols = by
        .by
        .iter()
        .map(|c| p.column(c).map_err(|e| e.to_string()).and_then(comparable))
        .collect::<Result<Vec<_>, _>>()?;
    let nulls_last = vec![by.nulls_last; cols.len()];
    _get_rows_encoded_ca(KEY.into(), &cols, &by.descending, &nulls_last, false).map_err(|e| e.to_string())
}

/// Rows a partition's sample is drawn from, per sample row asked for:
/// the pool is taken at evenly spaced positions of the partition, sorted,
/// and read at evenly spaced ranks. Sorting the whole partition by its
/// encoded key (a byte comparison per step) was most of `set_index`'s time
/// on large partitions; a pool of 16 rows per quantile estimates each
/// quantile within about a sixteenth of a partition's share, which only
/// moves how evenly rows spread over outputs, never which output a row's
/// order allows.
pub const SAMPLE_POOL_PER_ROW: usize = 16;

/// Up to `n` rows of the key columns at evenly spaced ranks of a pool of
/// the partition's rows (all of them when the partition holds at most
/// [`SAMPLE_POOL_PER_ROW`] `× n`; otherwise that many at evenly spaced
/// positions), sorted by `by`, with their encoded key, leaving out rows
/// with a null or NaN key (so divisions hold none, as Dask's): the
/// partition's share of the sample divisions are chosen from.
#[rdask::task]
pub fn sample_keys(p: Partition, by: SortBy, n: u32) -> Result<Partition, String> {
    by.check()?;
    let mut keys = p.select(by.names()).map_err(|e| e.to_string())?;
    for c in &by.by {
        let col = keys.column(c).map_err(|e| e.to_string())?.clone();
        let mut keep = col.is_not_null();
        if col.dtype().is_float() {
            keep = keep & !col.as_materialized_series().is_nan().map_err(|e| e.to_string())?;
        }
        keys = keys.filter(&keep).map_err(|e| e.to_string())?;
    }
    let pool = (n as usize).saturating_mul(SAMPLE_POOL_PER_ROW);
    if keys.height() > pool {
        let len = keys.height();
        let idx: Vec<IdxSize> = (0..pool).map(|i| (i * len / pool) as IdxSize).collect();
        keys = keys
            .take(&IdxCa::from_vec("idx".into(), idx))
            .map_err(|e| e.to_string())?;
    }
    // As plain `Binary`, which sorts by bytes and travels in Arrow IPC.
    let enc = encoded_keys(&keys, &by)?
        .cast(&DataType::Binary)
        .map_err(|e| e.to_string())?;
    keys.with_column(enc.into_column()).map_err(|e| e.to_string())?;
    let sorted = keys
        .sort([KEY], SortMultipleOptions::default())
        .map_err(|e| e.to_string())?;
    let len = sorted.height();
    let n = (n as usize).min(len);
    let idx: Vec<IdxSize> = (0..n).map(|i| (i * len / n.max(1)) as IdxSize).collect();
    sorted
        .take(&IdxCa::from_vec("idx".into(), idx))
        .map(Partition)
        .map_err(|e| e.to_string())
}

/// `npartitions - 1` divisions from the stacked samples: the rows at
/// evenly spaced ranks of the encoded key, key columns and encoded key.
/// No samples (every key null) give no divisions.
pub(crate) fn divisions_from(samples: Vec<Partition>, npartitions: usize) -> Result<PlFrame, String> {
    let all = concat_frames(samples.into_iter().map(Partition::into_inner).collect())?;
    if all.height() == 0 {
        return Ok(all);
    }
    let sorted = all
        .sort([KEY], SortMultipleOptions::default())
        .map_err(|e| e.to_string())?;
    let len = sorted.height();
    let idx: Vec<IdxSize> = (1..npartitions)
        .map(|k| ((k * len / npartitions).min(len - 1)) as IdxSize)
        .collect();
    sorted
        .take(&IdxCa::from_vec("idx".into(), idx))
        .map_err(|e| e.to_string())
}

/// The divisions as the user sees them: the key columns only.
pub(crate) fn shown(divisions: &PlFrame) -> PlFrame {
    divisions.drop(KEY).unwrap_or_else(|_| divisions.clone())
}

/// How `split_range` assigns rows: the order, and the divisions (key
/// columns and encoded key, ascending by encoded key; empty when no key
/// was sampled).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct RangeSpec {
    /// The sort order.
    pub by: SortBy,
    /// Cut points, `npartitions - 1` rows at most.
    pub divisions: Partition,
}

/// Output partition of each row: the number of divisions whose key sorts
/// before the row's, so every row of partition `j` sorts before (or
/// equal to) every row of partition `j + 1`, and rows of one key land in
/// one partition (which keeps the sort stable across partitions).
fn range_buckets(keys: &BinaryOffsetChunked, divisions: &PlFrame, n: usize) -> Result<Vec<usize>, String> {
    let cuts: Vec<&[u8]> = if divisions.height() == 0 {
        Vec::new()
    } else {
        let d = divisions.column(KEY).map_err(|e| e.to_string())?;
        let d = d.binary().map_err(|e| e.to_string())?;
        d.iter().collect::<Option<Vec<_>>>().ok_or("a division without a key")?
    };
    keys.iter()
        .map(|k| {
            let k = k.ok_or("a row without an encoded key")?;
            Ok(cuts.partition_point(|c| *c < k).min(n - 1))
        })
        .collect()
}

/// Cuts a partition into `npartitions` shards by ranges of its sort key
/// between the divisions (`sort_values`, `set_index`).
#[rdask::task]
pub fn split_range(p: Partition, npartitions: u32, spec: RangeSpec) -> Result<Vec<ByteBuf>, String> {
    let n = npartitions.max(1) as usize;
    spec.by.check()?;
    let keys = encoded_keys(&p, &spec.by)?;
    let buckets = range_buckets(&keys, &spec.divisions, n)?;
    shards(&p, buckets.into_iter(), n)
}

/// Stacks an output's shards (one per input, in input order) and sorts
/// them by `by`, stably.
#[rdask::task]
pub fn unpack_sorted(shards: Vec<ByteBuf>, by: SortBy) -> Result<Partition, String> {
    let frames = shards
        .iter()
        .map(|s| Partition::from_ipc(s).map(Partition::into_inner))
        .collect::<Result<Vec<_>, _>>()?;
    let df = concat_frames(frames)?;
    df.sort(by.names(), by.polars_options())
        .map(Partition)
        .map_err(|e| e.to_string())
}
