//! `describe` (Dask's `df.describe()`): per numeric column the count of
//! non-null values, mean, standard deviation (`ddof` 1, as pandas), min,
//! 25%, 50% and 75% percentiles and max. Counts, means, deviations and
//! extremes are exact (merged as the group-by's `var`); the percentiles come
//! from a weighted sample of sorted values per column, merged as a tree and
//! read with pandas' linear interpolation. While a column has at most
//! [`SKETCH_POINTS`] non-null values in all, the sample is every value and
//! the percentiles are exact; beyond, each merge keeps `SKETCH_POINTS`
//! evenly spaced (by weight) values, so a percentile is off by at most about
//! `1 / SKETCH_POINTS` of the rows per merge level (Dask's percentiles are
//! approximate too).

use polars::prelude::{Column, DataType, IntoColumn, NamedFrom, Series};
use rdask::delayed::{delayed, Delayed};
use serde::{Deserialize, Serialize};

use crate::{DataFrame, Partition};

/// Most sampled values a column's sketch keeps.
pub const SKETCH_POINTS: usize = 1024;

/// The rows of `describe`'s result, in order (pandas' names).
pub const STATISTICS: [&str; 8] = ["count", "mean", "std", "min", "25%", "50%", "75%", "max"];

/// Mergeable statistics of one numeric column.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ColumnSketch {
    /// Column name.
    pub name: String,
    /// Non-null values.
    pub n: f64,
    /// Their sum.
    pub sum: f64,
    /// Sum of squared deviations from their mean.
    pub m2: f64,
    /// Smallest (none for no values).
    pub min: Option<f64>,
    /// Largest.
    pub max: Option<f64>,
    /// Sampled values, sorted, each with how many values it stands for.
    pub points: Vec<(f64, f64)>,
}

impl ColumnSketch {
    fn of(name: &str, values: Vec<f64>) -> ColumnSketch {
        let mut values = values;
        values.sort_by(f64::total_cmp);
        let n = values.len() as f64;
        let sum: f64 = values.iter().sum();
        let mean = if values.is_empty() { 0.0 } else { sum / n };
        let m2 = values.iter().map(|v| (v - mean) * (v - mean)).sum();
        ColumnSketch {
            name: name.to_string(),
            n,
            sum,
            m2,
            min: values.first().copied(),
            max: values.last().copied(),
            points: compress(values.into_iter().map(|v| (v, 1.0)).collect()),
        }
    }

    /// Both columns' values together (Chan et al.'s update for `m2`).
    fn merge(mut self, o: &ColumnSketch) -> ColumnSketch {
        if o.n > 0.0 {
            if self.n > 0.0 {
                let d = o.sum / o.n - self.sum / self.n;
                self.m2 += o.m2 + d * d * self.n * o.n / (self.n + o.n);
            } else {
                self.m2 = o.m2;
            }
            self.n += o.n;
            self.sum += o.sum;
            self.min = match (self.min, o.min) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.max = match (self.max, o.max) {
                (Some(a), Some(b)) => Some(a.max(b)),
                (a, b) => a.or(b),
            };
            let mut points = std::mem::take(&mut self.points);
            points.extend_from_slice(&o.points);
            points.sort_by(|a, b| a.0.total_cmp(&b.0));
            self.points = compress(points);
        }
        self
    }

    /// The `q` percentile by linear interpolation between ranks, each point
    /// covering `weight` consecutive ranks.
    fn quantile(&self, q: f64) -> Option<f64> {
        if self.points.is_empty() {
            return None;
        }
        let target = q * (self.n - 1.0);
        let mut start = 0.0;
        for (i, &(v, w)) in self.points.iter().enumerate() {
            let last = start + w - 1.0;
            if target <= last {
                return Some(v);
            }
            if let Some(&(next, _)) = self.points.get(i + 1) {
                if target < last + 1.0 {
                    return Some(v + (next - v) * (target - last));
                }
            }
            start += w;
        }
        self.points.last().map(|p| p.0)
    }
}

/// At most [`SKETCH_POINTS`] of the sorted weighted `points`, evenly spaced
/// by weight, the total weight kept.
fn compress(points: Vec<(f64, f64)>) -> Vec<(f64, f64)> {
    if points.len() <= SKETCH_POINTS {
        return points;
    }
    let total: f64 = points.iter().map(|p| p.1).sum();
    let step = total / SKETCH_POINTS as f64;
    let mut out = Vec::with_capacity(SKETCH_POINTS);
    let (mut seen, mut next) = (0.0, step / 2.0);
    for (v, w) in points {
        seen += w;
        while seen >= next && out.len() < SKETCH_POINTS {
            out.push((v, step));
            next += step;
        }
    }
    out
}

/// The numeric columns of a partition, sketched.
#[rdask::task]
pub fn describe_partial(p: Partition) -> Result<Vec<ColumnSketch>, String> {
    let mut out = Vec::new();
    for c in p.columns() {
        if !c.dtype().is_primitive_numeric() {
            continue;
        }
        let f = c.cast(&DataType::Float64).map_err(|e| e.to_string())?;
        let values: Vec<f64> = f.f64().map_err(|e| e.to_string())?.iter().flatten().collect();
        out.push(ColumnSketch::of(c.name(), values));
    }
    Ok(out)
}

fn merge_all(parts: Vec<Vec<ColumnSketch>>) -> Result<Vec<ColumnSketch>, String> {
    let mut it = parts.into_iter();
    let mut acc = it.next().ok_or("no sketches to merge")?;
    for p in it {
        if p.len() != acc.len() || p.iter().zip(&acc).any(|(a, b)| a.name != b.name) {
            return Err("partitions with different numeric columns".into());
        }
        acc = acc.into_iter().zip(&p).map(|(a, b)| a.merge(b)).collect();
    }
    Ok(acc)
}

/// Sketches of several partitions merged.
#[rdask::task]
pub fn describe_combine(parts: Vec<Vec<ColumnSketch>>) -> Result<Vec<ColumnSketch>, String> {
    merge_all(parts)
}

/// The `describe` table: a `statistic` column, then one `Float64` column
/// per numeric column (null where a statistic is undefined).
#[rdask::task]
pub fn describe_finalize(parts: Vec<Vec<ColumnSketch>>) -> Result<Partition, String> {
    let cols = merge_all(parts)?;
    let mut columns: Vec<Column> = vec![Series::new("statistic".into(), STATISTICS.to_vec()).into_column()];
    for c in &cols {
        let (mean, std) = match c.n {
            n if n > 1.0 => (Some(c.sum / n), Some((c.m2 / (n - 1.0)).sqrt())),
            n if n > 0.0 => (Some(c.sum / n), None),
            _ => (None, None),
        };
        let values = [
            Some(c.n),
            mean,
            std,
            c.min,
            c.quantile(0.25),
            c.quantile(0.5),
            c.quantile(0.75),
            c.max,
        ];
        columns.push(Series::new(c.name.as_str().into(), values.to_vec()).into_column());
    }
    polars::prelude::DataFrame::new_infer_height(columns)
        .map(Partition)
        .map_err(|e| e.to_string())
}

impl DataFrame {
    /// Summary statistics of the numeric columns (Dask's `describe()`), a
    /// one-partition frame; see the module doc for which are exact.
    pub fn describe(&self) -> DataFrame {
        let mut level: Vec<Delayed<Vec<ColumnSketch>>> = self
            .to_delayed()
            .iter()
            .map(|p| delayed(describe_partial, (p,)))
            .collect();
        while level.len() > self.split_every {
            level = level
                .chunks(self.split_every)
                .map(|g| delayed(describe_combine, (g.to_vec(),)))
                .collect();
        }
        self.with_parts(vec![delayed(describe_finalize, (level,))])
    }
}
