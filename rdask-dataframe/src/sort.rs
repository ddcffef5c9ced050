//! `sort_values` and `set_index` (Dask's), the client side: a quantile
//! sample of the sort key per partition, computed at once (as Dask
//! computes divisions when `set_index` is called), divisions chosen from
//! the samples, then a peer-to-peer shuffle by range
//! (`sort_keys::split_range`) whose unpack step sorts each output
//! partition. Partition `j` then holds the rows whose key sorts between
//! divisions `j - 1` and `j`. The key may be several columns, each
//! ascending or descending, nulls first or last ([`SortBy`]); keys are
//! compared as Polars' row encoding, so the order is Polars' own.

use polars::prelude::{DataFrame as PlFrame, Series};
use rdask::delayed::{compute_all, compute_all_local, delayed, ComputeOptions, Delayed};
use rdask::Client;

use crate::sort_keys::{divisions_from, sample_keys, shown, split_range, unpack_sorted, RangeSpec, SortBy};
use crate::{DataFrame, Error, Partition};

/// Rows sampled per partition to choose divisions from (Dask samples a
/// similar fixed number per partition).
pub const SAMPLES_PER_PARTITION: u32 = 128;

/// Where the samples are computed.
enum On<'a> {
    Cluster(&'a Client),
    Local,
}

impl DataFrame {
    /// Sorted by `column` across partitions (Dask's `sort_values(column)`):
    /// the same number of partitions, each sorted, partition `j`'s values
    /// all before partition `j + 1`'s; nulls first, NaN last, rows with
    /// equal values in their input order (Polars' stable sort). Samples
    /// the column on the cluster now (one submission), the rest is lazy.
    pub fn sort_values(&self, client: &Client, column: &str) -> Result<DataFrame, Error> {
        self.sort_values_by(client, &SortBy::new(&[column]))
    }

    /// [`sort_values`](Self::sort_values) with the samples computed on a
    /// local thread pool (for `compute_local`).
    pub fn sort_values_local(&self, column: &str) -> Result<DataFrame, Error> {
        self.sort_values_by_local(&SortBy::new(&[column]))
    }

    /// Sorted by several columns, each ascending or descending, nulls
    /// first or last (Dask's `sort_values(by=[…], ascending=[…],
    /// na_position=…)`): the same rows in the same order as Polars'
    /// stable `sort(by, options)` of the whole frame, in as many
    /// partitions as before. A bad order (no column, a direction count
    /// that is not the column count, a column twice) is refused here.
    pub fn sort_values_by(&self, client: &Client, by: &SortBy) -> Result<DataFrame, Error> {
        Ok(self.sorted(On::Cluster(client), by)?.0)
    }

    /// [`sort_values_by`](Self::sort_values_by) with the samples computed
    /// on a local thread pool.
    pub fn sort_values_by_local(&self, by: &SortBy) -> Result<DataFrame, Error> {
        Ok(self.sorted(On::Local, by)?.0)
    }

    /// Dask's `set_index(column)`: the frame sorted by `column` (as
    /// [`sort_values`](Self::sort_values)), and its divisions: the
    /// `npartitions - 1` values between partitions, at most (Polars frames
    /// have no index, so the column stays a column).
    pub fn set_index(&self, client: &Client, column: &str) -> Result<(DataFrame, Series), Error> {
        let (df, divisions) = self.set_index_by(client, &SortBy::new(&[column]))?;
        let s = divisions
            .columns()
            .first()
            .map(|c| c.as_materialized_series().clone())
            .unwrap_or_else(|| Series::new_empty(column.into(), &polars::prelude::DataType::Float64));
        Ok((df, s))
    }

    /// [`set_index`](Self::set_index) on a composite key: the frame sorted
    /// by `by` (as [`sort_values_by`](Self::sort_values_by)) and its
    /// divisions as a frame of the key columns, one row per cut (at most
    /// `npartitions - 1`; none when every key is null). Partition `j`
    /// holds the rows whose key sorts after division `j - 1` and up to
    /// division `j`.
    pub fn set_index_by(&self, client: &Client, by: &SortBy) -> Result<(DataFrame, PlFrame), Error> {
        let (df, divisions) = self.sorted(On::Cluster(client), by)?;
        Ok((df, shown(&divisions)))
    }

    fn sorted(&self, on: On<'_>, by: &SortBy) -> Result<(DataFrame, PlFrame), Error> {
        by.check().map_err(Error::Invalid)?;
        let parts = self.to_delayed();
        // The sample reads only the key columns (parsed alone from a CSV
        // source, as Dask's divisions read only the index column).
        let samples: Vec<Delayed<Partition>> = self
            .to_delayed_columns(by.columns())
            .iter()
            .map(|p| delayed(sample_keys, (p, by.clone(), SAMPLES_PER_PARTITION)))
            .collect();
        let refs: Vec<&Delayed<Partition>> = samples.iter().collect();
        let samples = match on {
            On::Cluster(client) => compute_all(client, &refs, &ComputeOptions::default())?,
            On::Local => compute_all_local(&refs, &ComputeOptions::default())?,
        };
        let n = parts.len();
        let divisions = divisions_from(samples, n).map_err(Error::Polars)?;
        let spec = RangeSpec {
            by: by.clone(),
            divisions: Partition(divisions.clone()),
        };
        let out = rdask::shuffle::p2p(&parts, split_range, &spec, unpack_sorted, by, n as u32)
            .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok((self.with_parts(out), divisions))
    }
}
