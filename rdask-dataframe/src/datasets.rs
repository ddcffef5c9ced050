//! Synthetic data frames made on the workers (Dask's `dask.datasets`):
//! rows computed from a hash of their number, so a frame of any size
//! costs nothing to send, and anyone can recompute any row (what the
//! large-shuffle benchmark and test check their results against).

use polars::prelude::{DataFrame as PlFrame, NamedFrom, Series};
use rdask::delayed::delayed;

use crate::{DataFrame, Error, Partition};

/// Bytes per row of [`random_rows`] in memory (four 8-byte columns).
pub const RANDOM_ROW_BYTES: u64 = 32;

/// splitmix64 of `x` (a fixed, well-mixed hash).
pub fn mix(mut x: u64) -> u64 {
    x = x.wrapping_add(0x9E37_79B9_7F4A_7C15);
    x = (x ^ (x >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    x = (x ^ (x >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    x ^ (x >> 31)
}

/// Row `id`'s `key` under `seed`: uniform in [0, 1).
pub fn random_key(id: u64, seed: u64) -> f64 {
    (mix(id ^ mix(seed)) >> 11) as f64 / (1u64 << 53) as f64
}

/// Row `id`'s `a` under `seed`: any `i64`.
pub fn random_a(id: u64, seed: u64) -> i64 {
    mix(id.rotate_left(17) ^ mix(seed ^ 1)) as i64
}

/// Rows `start .. start + rows` of [`random_rows`].
#[rdask::task]
pub fn random_partition(start: u64, rows: u64, seed: u64) -> Result<Partition, String> {
    let ids: Vec<u64> = (start..start + rows).collect();
    let key: Vec<f64> = ids.iter().map(|&i| random_key(i, seed)).collect();
    let a: Vec<i64> = ids.iter().map(|&i| random_a(i, seed)).collect();
    let b: Vec<f64> = a.iter().map(|&a| (a % 1_000_000) as f64 / 1000.0).collect();
    PlFrame::new(
        ids.len(),
        vec![
            Series::new("id".into(), ids).into(),
            Series::new("key".into(), key).into(),
            Series::new("a".into(), a).into(),
            Series::new("b".into(), b).into(),
        ],
    )
    .map(Partition)
    .map_err(|e| e.to_string())
}

/// A frame of `rows` rows in `npartitions` nearly equal row ranges, each
/// made by the worker that runs it: `id` (`UInt64`, the row number), `key`
/// ([`random_key`], a uniform `Float64`), `a` ([`random_a`], `Int64`) and
/// `b` (`Float64`, `a % 1e6 / 1e3`); [`RANDOM_ROW_BYTES`] per row. The same
/// `seed` gives the same frame.
pub fn random_rows(rows: u64, npartitions: usize, seed: u64) -> Result<DataFrame, Error> {
    if npartitions == 0 {
        return Err(Error::Invalid("random_rows with 0 partitions".into()));
    }
    let n = npartitions as u64;
    let parts = (0..n)
        .map(|i| {
            let (start, end) = (rows * i / n, rows * (i + 1) / n);
            delayed(random_partition, (start, end - start, seed))
        })
        .collect();
    DataFrame::from_delayed(parts)
}
