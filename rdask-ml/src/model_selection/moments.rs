//! [`TestMoments`]: a set of rows reduced to its count, means and centred
//! co-moments, enough to score any linear model on them and, merged, to
//! make any union's Gram statistics. A search reduces each scattered block
//! of its table to one per fold ([`block_moments`], one pass over the
//! block where it is held); every fold's statistics and the refit's are
//! merges of those.

use std::ops::Range;

use serde::{Deserialize, Serialize};

use super::split::KFold;
use crate::{Dataset, DatasetView, Error};

/// Rows reduced to their means and centred co-moments: enough for the
/// residual sum of squares of any linear model on them,
/// `Σ(y - w·x - b)² = Syy - 2 w·Sxy + wᵀ Sxx w + n (ȳ - w·x̄ - b)²`
/// (the cross terms vanish about the means), in `O(p²)`. Centring first
/// keeps the sums small, so the difference stays accurate when the model
/// fits well (a residual of 10⁻⁵ of `Syy` loses about five of sixteen
/// digits, far inside any score's tolerance).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TestMoments {
    /// Rows.
    pub n_samples: usize,
    /// `x̄`, `p`.
    pub x_mean: Vec<f64>,
    /// `ȳ`.
    pub y_mean: f64,
    /// `Σ (x - x̄)(x - x̄)ᵀ`, `p x p`, row-major (symmetric).
    pub sxx: Vec<f64>,
    /// `Σ (x - x̄)(y - ȳ)`, `p`.
    pub sxy: Vec<f64>,
    /// `Σ (y - ȳ)²`: R²'s denominator.
    pub syy: f64,
}

impl TestMoments {
    /// The moments of rows `rows` of `data`.
    pub fn of_rows(data: &Dataset, rows: &[usize]) -> TestMoments {
        let p = data.n_features();
        let x = data.row_major();
        let y = data.y();
        // Gathered a run at a time, so the kernel sees contiguous rows.
        let source = |f: &mut dyn FnMut(&[f64], &[f64])| {
            let (mut xs, mut ys) = (Vec::with_capacity(RUN_ROWS * p), Vec::with_capacity(RUN_ROWS));
            for run in rows.chunks(RUN_ROWS) {
                xs.clear();
                ys.clear();
                for &i in run {
                    xs.extend_from_slice(&x[i * p..(i + 1) * p]);
                    ys.push(y[i]);
                }
                f(&xs, &ys);
            }
        };
        moments_of(p, rows.len(), source)
    }

    /// No rows, `p` features.
    pub fn empty(p: usize) -> TestMoments {
        TestMoments {
            n_samples: 0,
            x_mean: vec![0.0; p],
            y_mean: 0.0,
            sxx: vec![0.0; p * p],
            sxy: vec![0.0; p],
            syy: 0.0,
        }
    }

    /// The moments of the union of disjoint row sets, from theirs (Chan,
    /// Golub and LeVeque's pairwise update: the co-moments about each
    /// part's means, plus the spread of the means, so nothing is summed
    /// far from zero). `None` for no parts.
    pub fn merge<'a>(parts: impl IntoIterator<Item = &'a TestMoments>) -> Option<TestMoments> {
        let mut parts = parts.into_iter();
        let mut acc = parts.next()?.clone();
        parts.for_each(|b| acc.absorb(b));
        Some(acc)
    }

    /// Adds the disjoint rows `b` summarises ([`merge`](Self::merge)'s step).
    fn absorb(&mut self, b: &TestMoments) {
        if b.n_samples == 0 {
            return;
        }
        if self.n_samples == 0 {
            self.clone_from(b);
            return;
        }
        let (na, nb) = (self.n_samples as f64, b.n_samples as f64);
        let n = na + nb;
        let p = self.x_mean.len();
        let w = na * nb / n;
        let dy = b.y_mean - self.y_mean;
        for j in 0..p {
            let dxj = b.x_mean[j] - self.x_mean[j];
            for k in 0..p {
                let dxk = b.x_mean[k] - self.x_mean[k];
                self.sxx[j * p + k] += b.sxx[j * p + k] + w * dxj * dxk;
            }
            self.sxy[j] += b.sxy[j] + w * dxj * dy;
        }
        self.syy += b.syy + w * dy * dy;
        for (m, mb) in self.x_mean.iter_mut().zip(&b.x_mean) {
            *m += (mb - *m) * nb / n;
        }
        self.y_mean += dy * nb / n;
        self.n_samples += b.n_samples;
    }

    /// R² of the model `w·x + b` on these rows (scikit-learn's
    /// `r2_score`, 1 or 0 for constant targets).
    pub fn r2(&self, w: &[f64], b: f64) -> f64 {
        let p = self.x_mean.len();
        let mut quad = 0.0;
        for j in 0..p {
            let row = &self.sxx[j * p..(j + 1) * p];
            quad += w[j] * row.iter().zip(w).map(|(s, wk)| s * wk).sum::<f64>();
        }
        let cross: f64 = w.iter().zip(&self.sxy).map(|(a, c)| a * c).sum();
        let offset = self.y_mean - w.iter().zip(&self.x_mean).map(|(a, m)| a * m).sum::<f64>() - b;
        // Rounding can take a perfect fit's sum a hair below zero.
        let ss_res = (self.syy - 2.0 * cross + quad + self.n_samples as f64 * offset * offset).max(0.0);
        if self.syy == 0.0 {
            return if ss_res == 0.0 { 1.0 } else { 0.0 };
        }
        1.0 - ss_res / self.syy
    }
}

/// Rows per step: a step's rows are reduced to their own moments with two
/// passes while they sit in the first-level cache (`RUN_ROWS x p` values,
/// laid out by feature so each co-moment is a contiguous dot product),
/// then merged into the total (Chan et al.'s update): the whole is one
/// pass over memory and as stable as two.
const RUN_ROWS: usize = 128;

/// The moments of `n` rows of `p` features that `rows` hands out as runs
/// `(x rows, row-major; their targets)`.
fn moments_of(p: usize, n: usize, rows: impl FnOnce(&mut dyn FnMut(&[f64], &[f64]))) -> TestMoments {
    let mut total = TestMoments::empty(p);
    let mut step = TestMoments::empty(p);
    let mut cols = vec![0.0; p * RUN_ROWS];
    let mut dy = vec![0.0; RUN_ROWS];
    rows(&mut |xs, ys| {
        for (xs, ys) in xs.chunks(RUN_ROWS * p.max(1)).zip(ys.chunks(RUN_ROWS)) {
            let r = ys.len();
            // By feature: column j is cols[j * r..(j + 1) * r].
            for (i, x) in xs.chunks_exact(p.max(1)).enumerate() {
                for (j, v) in x.iter().enumerate() {
                    cols[j * r + i] = *v;
                }
            }
            for j in 0..p {
                let col = &mut cols[j * r..(j + 1) * r];
                let mean = sum(col) / r as f64;
                col.iter_mut().for_each(|v| *v -= mean);
                step.x_mean[j] = mean;
            }
            step.y_mean = sum(ys) / r as f64;
            for (d, y) in dy.iter_mut().zip(ys) {
                *d = y - step.y_mean;
            }
            let dy = &dy[..r];
            for j in 0..p {
                let cj = &cols[j * r..(j + 1) * r];
                for k in j..p {
                    let v = dot(cj, &cols[k * r..(k + 1) * r]);
                    step.sxx[j * p + k] = v;
                    step.sxx[k * p + j] = v;
                }
                step.sxy[j] = dot(cj, dy);
            }
            step.syy = dot(dy, dy);
            step.n_samples = r;
            total.absorb(&step);
        }
    });
    debug_assert_eq!(total.n_samples, n, "the rows handed out are the rows counted");
    total
}

/// Lanes of the sums below: independent partial sums the compiler keeps
/// in vector registers (a single running sum would serialise on it).
const LANES: usize = 8;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    let mut acc = [0.0; LANES];
    let (ca, cb) = (a.chunks_exact(LANES), b.chunks_exact(LANES));
    let tail: f64 = ca.remainder().iter().zip(cb.remainder()).map(|(x, y)| x * y).sum();
    for (x, y) in ca.zip(cb) {
        for l in 0..LANES {
            acc[l] += x[l] * y[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

fn sum(a: &[f64]) -> f64 {
    let mut acc = [0.0; LANES];
    let c = a.chunks_exact(LANES);
    let tail: f64 = c.remainder().iter().sum();
    for x in c {
        for l in 0..LANES {
            acc[l] += x[l];
        }
    }
    acc.iter().sum::<f64>() + tail
}

/// One [`TestMoments`] per fold of `cv` over `n_samples` rows: those of
/// the block's rows in that fold, the block being rows `offset..` of the
/// whole table (a fold with no rows here gets empty moments). Unshuffled
/// folds are runs of rows, read in place, two passes each; shuffled folds
/// take the block as a copy and the row order drawn again (`O(n_samples)`).
pub fn block_moments(
    block: &DatasetView<'_>,
    cv: &KFold,
    n_samples: usize,
    offset: usize,
) -> Result<Vec<TestMoments>, Error> {
    cv.check(n_samples)?;
    let (rows, p) = block.shape()?;
    let end = offset.checked_add(rows).filter(|&e| e <= n_samples).ok_or_else(|| {
        Error::Input(format!(
            "a block of {rows} rows at row {offset} of a {n_samples}-row table"
        ))
    })?;
    if cv.shuffle_seed.is_some() {
        let data = block.to_dataset()?;
        let order = cv.row_order(n_samples);
        return Ok((0..cv.n_splits)
            .map(|k| {
                let mut mine: Vec<usize> = order[cv.test_positions(n_samples, k)]
                    .iter()
                    .filter(|&&r| (offset..end).contains(&r))
                    .map(|r| r - offset)
                    .collect();
                mine.sort_unstable();
                TestMoments::of_rows(&data, &mine)
            })
            .collect());
    }
    let y = block.y()?;
    (0..cv.n_splits)
        .map(|k| {
            let fold = cv.test_positions(n_samples, k);
            let local: Range<usize> = fold.start.clamp(offset, end) - offset..fold.end.clamp(offset, end) - offset;
            let mut failed = None;
            let source = |f: &mut dyn FnMut(&[f64], &[f64])| {
                let read = block.for_each_rows_in(local.clone(), |first, run| {
                    f(run, &y[first..first + run.len() / p.max(1)]);
                });
                if let Err(e) = read {
                    failed = Some(e);
                }
            };
            let m = moments_of(p, local.len(), source);
            failed.map_or(Ok(m), Err)
        })
        .collect()
}

/// Each fold's moments over the whole table, from every block's
/// ([`block_moments`]): the blocks partition the rows.
pub fn fold_moments(blocks: &[Vec<TestMoments>]) -> Result<Vec<TestMoments>, Error> {
    let k = blocks.first().map_or(0, Vec::len);
    if k == 0 || blocks.iter().any(|b| b.len() != k) {
        return Err(Error::Input(format!(
            "block moments with differing fold counts: {:?}",
            blocks.iter().map(Vec::len).collect::<Vec<_>>()
        )));
    }
    (0..k)
        .map(|fold| {
            TestMoments::merge(blocks.iter().map(|b| &b[fold]))
                .ok_or_else(|| Error::Input(format!("fold {fold} has no moments")))
        })
        .collect()
}

#[cfg(test)]
#[path = "moments_tests.rs"]
mod tests;
