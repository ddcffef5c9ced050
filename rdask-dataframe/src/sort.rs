//! `sort_values` and `set_index` (Dask's), the client side: a quantile
//! sample of the column per partition, computed at once (as Dask computes
//! divisions when `set_index` is called), divisions chosen from the
//! samples, then a peer-to-peer shuffle by range (`shuffle::split_range`)
//! whose unpack step sorts each output partition. Partition `j` then
//! holds the values between divisions `j - 1` and `j`, nulls first and NaN
//! last, as Polars sorts.

use polars::prelude::Series;
use rdask::delayed::{compute_all, compute_all_local, delayed, ComputeOptions, Delayed};
use rdask::Client;

use crate::shuffle::{divisions_from, sample_quantiles, split_range, unpack_concat, RangeSpec};
use crate::{DataFrame, Error, Partition};

/// Values sampled per partition to choose divisions from (Dask samples a
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
        Ok(self.sorted(On::Cluster(client), column)?.0)
    }

    /// [`sort_values`](Self::sort_values) with the samples computed on a
    /// local thread pool (for `compute_local`).
    pub fn sort_values_local(&self, column: &str) -> Result<DataFrame, Error> {
        Ok(self.sorted(On::Local, column)?.0)
    }

    /// Dask's `set_index(column)`: the frame sorted by `column` (as
    /// [`sort_values`](Self::sort_values)), and its divisions: the
    /// `npartitions - 1` values between partitions (Polars frames have no
    /// index, so the column stays a column).
    pub fn set_index(&self, client: &Client, column: &str) -> Result<(DataFrame, Series), Error> {
        let (df, divisions) = self.sorted(On::Cluster(client), column)?;
        let s = divisions
            .columns()
            .first()
            .map(|c| c.as_materialized_series().clone())
            .ok_or_else(|| Error::Polars("divisions without a column".into()))?;
        Ok((df, s))
    }

    fn sorted(&self, on: On<'_>, column: &str) -> Result<(DataFrame, Partition), Error> {
        let parts = self.to_delayed();
        let samples: Vec<Delayed<Partition>> = parts
            .iter()
            .map(|p| delayed(sample_quantiles, (p, column.to_string(), SAMPLES_PER_PARTITION)))
            .collect();
        let refs: Vec<&Delayed<Partition>> = samples.iter().collect();
        let samples = match on {
            On::Cluster(client) => compute_all(client, &refs, &ComputeOptions::default())?,
            On::Local => compute_all_local(&refs, &ComputeOptions::default())?,
        };
        let n = parts.len();
        let divisions = divisions_from(samples, column, n).map_err(Error::Polars)?;
        let spec = RangeSpec {
            column: column.to_string(),
            divisions: divisions.clone(),
        };
        let out = rdask::shuffle::p2p(
            &parts,
            split_range,
            &spec,
            unpack_concat,
            &Some(column.to_string()),
            n as u32,
        )
        .map_err(|e| Error::Invalid(e.to_string()))?;
        Ok((self.with_parts(out), divisions))
    }
}
