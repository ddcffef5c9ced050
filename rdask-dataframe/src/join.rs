//! Joins (Dask's `merge`), both sides: a **broadcast** join, where the
//! right side is stacked into one partition that every left partition is
//! joined with (for inner and left joins), and a **hash-shuffle** join,
//! where both sides go through rdask's peer-to-peer shuffle
//! (`rdask::shuffle`, split by a hash of their key columns:
//! `shuffle::split_hash`) into the same number of outputs, and output `i`
//! of both meets in join task `i`. Owners of outputs are chosen the same way
//! for both shuffles, so both inputs of a join task are on one worker.
//! O(partitions) tasks, where the task-based shuffle this replaced had
//! O(partitions²).

use polars::prelude::{col, DataType, IntoLazy, JoinArgs, JoinType};
use rdask::delayed::{delayed, Delayed};
use serde::{Deserialize, Serialize};

use crate::kernels::concat_frames;
use crate::shuffle::{split_hash, unpack_concat};
use crate::{kernels, DataFrame, Error, Partition};

/// Which rows a join keeps (Polars' `JoinType`, pandas' `how`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum How {
    /// Rows whose keys match on both sides.
    Inner,
    /// Every left row, matched or not.
    Left,
    /// Every right row, matched or not.
    Right,
    /// Every row of both sides (pandas' `outer`).
    Full,
}

/// What a join task needs to know.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct JoinSpec {
    /// Left key columns.
    pub left_on: Vec<String>,
    /// Right key columns, as many.
    pub right_on: Vec<String>,
    /// Which rows to keep.
    pub how: How,
}

/// A 64-bit mix of a value (splitmix64's finalizer): the same on every
/// machine, unlike Polars' seeded row hashes.
fn mix(mut x: u64) -> u64 {
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// FNV-1a of bytes.
fn fnv(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xCBF2_9CE4_8422_2325, |h, &b| {
        (h ^ b as u64).wrapping_mul(0x0100_0000_01B3)
    })
}

/// A hash per row of the key columns, equal for equal keys whatever the
/// process: integers (and booleans) through `Int64`, floats through their
/// bits, everything else through its text form.
pub(crate) fn row_hashes(df: &polars::prelude::DataFrame, on: &[String]) -> Result<Vec<u64>, String> {
    const NULL_HASH: u64 = 0x6E75_6C6C;
    let mut h = vec![0u64; df.height()];
    for name in on {
        let c = df.column(name).map_err(|e| e.to_string())?;
        let dt = c.dtype();
        let per_row: Vec<u64> = if dt.is_integer() || dt == &DataType::Boolean {
            let c = c.cast(&DataType::Int64).map_err(|e| e.to_string())?;
            let ca = c.i64().map_err(|e| e.to_string())?;
            ca.iter().map(|v| v.map_or(NULL_HASH, |v| mix(v as u64))).collect()
        } else if dt.is_float() {
            let c = c.cast(&DataType::Float64).map_err(|e| e.to_string())?;
            let ca = c.f64().map_err(|e| e.to_string())?;
            // -0.0 == 0.0 must hash alike.
            ca.iter()
                .map(|v| v.map_or(NULL_HASH, |v| mix(if v == 0.0 { 0 } else { v.to_bits() })))
                .collect()
        } else {
            let c = c.cast(&DataType::String).map_err(|e| e.to_string())?;
            let ca = c.str().map_err(|e| e.to_string())?;
            ca.iter().map(|v| v.map_or(NULL_HASH, |v| fnv(v.as_bytes()))).collect()
        };
        for (acc, x) in h.iter_mut().zip(per_row) {
            *acc = mix(acc.rotate_left(5) ^ x);
        }
    }
    Ok(h)
}

/// The stacked `left` pieces joined with the stacked `right` pieces.
#[rdask::task]
pub fn join_parts(left: Vec<Partition>, right: Vec<Partition>, spec: JoinSpec) -> Result<Partition, String> {
    let l = concat_frames(left.into_iter().map(Partition::into_inner).collect())?;
    let r = concat_frames(right.into_iter().map(Partition::into_inner).collect())?;
    let how = match spec.how {
        How::Inner => JoinType::Inner,
        How::Left => JoinType::Left,
        How::Right => JoinType::Right,
        How::Full => JoinType::Full,
    };
    let on = |names: &[String]| names.iter().map(|n| col(n.as_str())).collect::<Vec<_>>();
    l.lazy()
        .join(r.lazy(), on(&spec.left_on), on(&spec.right_on), JoinArgs::new(how))
        .collect()
        .map(Partition)
        .map_err(|e| e.to_string())
}

/// Checked keys of a join.
fn spec(left_on: &[&str], right_on: &[&str], how: How) -> Result<JoinSpec, Error> {
    if left_on.is_empty() || left_on.len() != right_on.len() {
        return Err(Error::Invalid(format!(
            "a join needs as many left keys as right keys, at least one: {left_on:?} and {right_on:?}"
        )));
    }
    Ok(JoinSpec {
        left_on: left_on.iter().map(|s| s.to_string()).collect(),
        right_on: right_on.iter().map(|s| s.to_string()).collect(),
        how,
    })
}

impl DataFrame {
    /// This frame joined with `right` on `left_on` = `right_on` (Dask's
    /// `merge(left, right, left_on=…, right_on=…, how=…)`): a broadcast join
    /// when `right` has one partition and `how` allows it, else a
    /// hash-shuffle join into as many partitions as the larger side has.
    /// Rows come in no particular order; columns as Polars' `join` gives
    /// them (right-side name clashes get the suffix `_right`).
    pub fn merge(&self, right: &DataFrame, left_on: &[&str], right_on: &[&str], how: How) -> Result<DataFrame, Error> {
        if right.npartitions() == 1 && matches!(how, How::Inner | How::Left) {
            self.merge_broadcast(right, left_on, right_on, how)
        } else {
            let n = self.npartitions().max(right.npartitions());
            self.merge_shuffle(right, left_on, right_on, how, n)
        }
    }

    /// A broadcast join (Dask's `merge(…, broadcast=True)`): `right` is
    /// stacked into one partition (it should be small) and joined with every
    /// partition of this frame, which keeps its partitions. Inner and left
    /// joins only: other kinds would repeat unmatched right rows once per
    /// partition.
    pub fn merge_broadcast(
        &self,
        right: &DataFrame,
        left_on: &[&str],
        right_on: &[&str],
        how: How,
    ) -> Result<DataFrame, Error> {
        if !matches!(how, How::Inner | How::Left) {
            return Err(Error::Invalid(format!(
                "a broadcast join keeps the left partitioning, so only Inner and Left joins; {how:?} needs merge_shuffle"
            )));
        }
        let spec = spec(left_on, right_on, how)?;
        let small = delayed(kernels::concat, (right.to_delayed(),));
        let parts = self
            .to_delayed()
            .iter()
            .map(|p| delayed(join_parts, (vec![p], vec![&small], spec.clone())))
            .collect();
        Ok(self.with_parts(parts))
    }

    /// The rows moved into `npartitions` partitions by a hash of their `on`
    /// columns through the peer-to-peer shuffle (Dask's `df.shuffle(on)`):
    /// rows with equal keys end in one partition, in input order.
    pub fn shuffle(&self, on: &[&str], npartitions: usize) -> Result<DataFrame, Error> {
        let n = u32::try_from(npartitions)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::Invalid(format!("shuffle into {npartitions} partitions")))?;
        if on.is_empty() {
            return Err(Error::Invalid("shuffle on no column".into()));
        }
        let on: Vec<String> = on.iter().map(|c| c.to_string()).collect();
        let parts = rdask::shuffle::p2p(&self.to_delayed(), split_hash, &on, unpack_concat, &None::<String>, n)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok(self.with_parts(parts))
    }

    /// A hash-shuffle join into `npartitions` partitions: both sides
    /// shuffled peer to peer by a hash of their keys, output `i` of both
    /// joined in partition `i`. Any kind of join. Key columns must have the
    /// same type on both sides (integers of any width count as one type).
    pub fn merge_shuffle(
        &self,
        right: &DataFrame,
        left_on: &[&str],
        right_on: &[&str],
        how: How,
        npartitions: usize,
    ) -> Result<DataFrame, Error> {
        let n = u32::try_from(npartitions)
            .ok()
            .filter(|&n| n > 0)
            .ok_or_else(|| Error::Invalid(format!("merge_shuffle into {npartitions} partitions")))?;
        let spec = spec(left_on, right_on, how)?;
        let side = |df: &DataFrame, on: &Vec<String>| -> Result<Vec<Delayed<Partition>>, Error> {
            rdask::shuffle::p2p(&df.to_delayed(), split_hash, on, unpack_concat, &None::<String>, n)
                .map_err(|e| Error::Invalid(e.to_string()))
        };
        let (l, r) = (side(self, &spec.left_on)?, side(right, &spec.right_on)?);
        let parts = l
            .iter()
            .zip(&r)
            .map(|(l, r)| delayed(join_parts, (vec![l], vec![r], spec.clone())))
            .collect();
        Ok(self.with_parts(parts))
    }
}
