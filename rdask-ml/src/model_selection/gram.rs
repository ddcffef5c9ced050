//! Shared sufficient statistics of a fold (scikit-learn's `precompute`,
//! the way its `ElasticNetCV` shares one Gram matrix across a path):
//! [`GramStats`], a fold's train rows reduced to `XᵀX`, `Xᵀy` and `yᵀy`
//! (`p x p`, `p`, 1 numbers), computed once per fold by one task and read by
//! every candidate of that fold, whose fit then costs `O(p²)` per sweep
//! instead of `O(n p)`; and [`GramFold`], what such a candidate reads: the
//! statistics, the scaler and the raw test rows it is scored on in one pass.
//!
//! The statistics follow what linfa's elastic net fits: the targets are
//! centred (its intercept is the mean target) and the features are not
//! (beyond the scaler's own centring), so a fit from them is the same
//! problem linfa solves on the same rows.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use rdask_array::ndarray::Axis;

use super::fold_cache::{new_id, FoldId};
use super::preprocess::{Preprocess, StandardScaler};

/// Predictions a scoring pass holds at once (on the stack): long enough
/// for each feature's run to vectorise, short enough to stay in L1.
const SCORE_BLOCK: usize = 256;
use crate::{Dataset, Error};

/// A fold's train rows reduced to what a least-squares fit needs.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GramStats {
    /// Rows summed over.
    pub n_samples: usize,
    /// Features `p`.
    pub n_features: usize,
    /// `XᵀX`, `p x p`, row-major (symmetric).
    pub gram: Vec<f64>,
    /// `Xᵀ(y - ȳ)`.
    pub xty: Vec<f64>,
    /// `ȳ`, the mean target (linfa's intercept).
    pub y_mean: f64,
    /// `(y - ȳ)ᵀ(y - ȳ)`.
    pub yty: f64,
}

impl GramStats {
    /// The statistics of rows `rows` of `data`, each transformed by
    /// `scaler` on the fly (no scaled copy of the rows is made).
    pub fn of_rows(data: &Dataset, rows: &[usize], scaler: Option<&StandardScaler>) -> Result<GramStats, Error> {
        if rows.is_empty() {
            return Err(Error::Input("a fold's train part has no rows".into()));
        }
        let p = data.n_features();
        let x = data.row_major();
        let y = data.y();
        let y_mean = rows.iter().map(|&i| y[i]).sum::<f64>() / rows.len() as f64;
        let mut gram = vec![0.0; p * p];
        let mut xty = vec![0.0; p];
        let mut yty = 0.0;
        let mut z = vec![0.0; p];
        for &i in rows {
            let row = &x[i * p..(i + 1) * p];
            match scaler {
                Some(s) => {
                    for (((zj, v), m), sd) in z.iter_mut().zip(row).zip(&s.mean).zip(&s.scale) {
                        *zj = (v - m) / sd;
                    }
                }
                None => z.copy_from_slice(row),
            }
            let yc = y[i] - y_mean;
            yty += yc * yc;
            // The upper triangle only; mirrored below.
            for j in 0..p {
                let zj = z[j];
                xty[j] += zj * yc;
                let g = &mut gram[j * p..(j + 1) * p];
                for k in j..p {
                    g[k] += zj * z[k];
                }
            }
        }
        for j in 0..p {
            for k in 0..j {
                gram[j * p + k] = gram[k * p + j];
            }
        }
        Ok(GramStats {
            n_samples: rows.len(),
            n_features: p,
            gram,
            xty,
            y_mean,
            yty,
        })
    }
}

/// One fold for an estimator that fits from shared statistics: built once
/// per fold (`prepare_gram_fold`), read by key by all its candidates.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GramFold {
    /// Drawn at random when the fold is made; first on the wire, so a
    /// worker can recognise a fold it already decoded (`fold_cache`).
    pub id: FoldId,
    /// The train rows' statistics, scaled.
    pub train: GramStats,
    /// The scaler fitted on the train rows, if any.
    pub scaler: Option<StandardScaler>,
    /// The test rows, raw (scoring folds the scaler into the coefficients
    /// instead of keeping a scaled copy), stored column-major so that
    /// scoring reads each feature contiguously.
    pub test: Dataset,
    /// Mean of the test targets (for R²).
    pub test_y_mean: f64,
    /// `Σ (y - ȳ)²` over the test targets (R²'s denominator).
    pub test_ss_tot: f64,
}

impl GramFold {
    /// Splits `data` by the index lists, fits `pre` on the train rows and
    /// reduces them to [`GramStats`].
    pub fn prepare(data: &Dataset, train: &[usize], test: &[usize], pre: Preprocess) -> Result<GramFold, Error> {
        let scaler = match pre {
            Preprocess::None => None,
            Preprocess::StandardScaler => Some(StandardScaler::fit_rows(data, train)),
        };
        let stats = GramStats::of_rows(data, train, scaler.as_ref())?;
        let test = data.take_column_major(test);
        let n = test.n_samples().max(1) as f64;
        let test_y_mean = test.y().sum() / n;
        let test_ss_tot = test.y().iter().map(|v| (v - test_y_mean) * (v - test_y_mean)).sum();
        Ok(GramFold {
            id: new_id(),
            train: stats,
            scaler,
            test,
            test_y_mean,
            test_ss_tot,
        })
    }

    /// R² on the test rows of the linear model `coef`, `intercept` fitted
    /// on the scaled rows: one pass over the raw rows (a block of
    /// predictions at a time, feature by feature), nothing copied.
    pub fn r2(&self, coef: &[f64], intercept: f64) -> f64 {
        let (w, b) = fold_scaler(self.scaler.as_ref(), coef, intercept);
        let x = self.test.feature_major();
        let y = self.test.y();
        let n = y.len();
        let mut pred = [0.0; SCORE_BLOCK];
        let mut ss_res = 0.0;
        for (start, y_block) in (0..n)
            .step_by(SCORE_BLOCK)
            .zip(y.axis_chunks_iter(Axis(0), SCORE_BLOCK))
        {
            let pred = &mut pred[..y_block.len()];
            pred.fill(b);
            for (j, wj) in w.iter().enumerate() {
                let col = &x[j * n + start..j * n + start + pred.len()];
                for (p, v) in pred.iter_mut().zip(col) {
                    *p += wj * v;
                }
            }
            ss_res += pred
                .iter()
                .zip(y_block.iter())
                .map(|(p, t)| (t - p) * (t - p))
                .sum::<f64>();
        }
        // scikit-learn's `r2_score` for constant targets.
        if self.test_ss_tot == 0.0 {
            return if ss_res == 0.0 { 1.0 } else { 0.0 };
        }
        1.0 - ss_res / self.test_ss_tot
    }
}

/// A [`GramFold`] but its id: what follows the id on the wire
/// (`fold_cache` reads the id first).
#[derive(Deserialize)]
pub(crate) struct GramFoldRest {
    train: GramStats,
    scaler: Option<StandardScaler>,
    test: Dataset,
    test_y_mean: f64,
    test_ss_tot: f64,
}

impl GramFoldRest {
    pub(crate) fn with_id(self, id: FoldId) -> GramFold {
        GramFold {
            id,
            train: self.train,
            scaler: self.scaler,
            test: self.test,
            test_y_mean: self.test_y_mean,
            test_ss_tot: self.test_ss_tot,
        }
    }
}

/// All the rows reduced once, with the scaler fitted on them: what the
/// refit of the best candidate reads. It does not depend on which
/// candidate wins, so a search computes it alongside the folds
/// (`prepare_gram_all`) and the refit itself is a fit from statistics.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct GramAll {
    /// The (scaled) rows' statistics.
    pub stats: GramStats,
    /// The scaler fitted on all rows, if any.
    pub scaler: Option<StandardScaler>,
}

impl GramAll {
    /// `pre` fitted on all of `data`, and the statistics of its rows
    /// scaled.
    pub fn prepare(data: &Dataset, pre: Preprocess) -> Result<GramAll, Error> {
        let rows: Vec<usize> = (0..data.n_samples()).collect();
        let scaler = match pre {
            Preprocess::None => None,
            Preprocess::StandardScaler => Some(StandardScaler::fit_rows(data, &rows)),
        };
        let stats = GramStats::of_rows(data, &rows, scaler.as_ref())?;
        Ok(GramAll { stats, scaler })
    }
}

/// A model on scaled rows as one on raw rows: `w / s` and
/// `b - Σ m w / s`.
fn fold_scaler<'a>(scaler: Option<&StandardScaler>, coef: &'a [f64], intercept: f64) -> (Cow<'a, [f64]>, f64) {
    match scaler {
        None => (Cow::Borrowed(coef), intercept),
        Some(s) => {
            let w: Vec<f64> = coef.iter().zip(&s.scale).map(|(c, sd)| c / sd).collect();
            let b = intercept - w.iter().zip(&s.mean).map(|(c, m)| c * m).sum::<f64>();
            (Cow::Owned(w), b)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdask_array::ndarray::{array, Array2};

    #[test]
    fn statistics_are_those_of_the_scaled_rows_and_scoring_folds_the_scaler() {
        let x = array![[1.0, 2.0], [3.0, -1.0], [0.5, 4.0], [2.0, 2.5], [7.0, 1.0]];
        let y = array![1.0, 2.0, 0.0, 3.0, 5.0];
        let data = Dataset::new(x.clone(), y.clone()).unwrap();
        let (train, test) = (vec![0, 2, 3, 4], vec![1]);
        let fold = GramFold::prepare(&data, &train, &test, Preprocess::StandardScaler).unwrap();
        let tr = data.take(&train);
        let s = StandardScaler::fit(tr.x());
        assert_eq!(fold.scaler.as_ref(), Some(&s));
        let z: Array2<f64> = s.transform(tr.x());
        let ym = tr.y().sum() / 4.0;
        let yc = tr.y().mapv(|v| v - ym);
        let g = z.t().dot(&z);
        let st = &fold.train;
        for j in 0..2 {
            assert!((st.xty[j] - z.column(j).dot(&yc)).abs() < 1e-12);
            for k in 0..2 {
                assert!((st.gram[j * 2 + k] - g[[j, k]]).abs() < 1e-12);
            }
        }
        assert!((st.yty - yc.dot(&yc)).abs() < 1e-12 && st.y_mean == ym && st.n_samples == 4);
        // Scoring the raw test rows with the scaler folded in equals
        // scoring the scaled rows (one row: R² of a constant is 0 or 1).
        let fold2 = GramFold::prepare(&data, &[0, 2, 3], &[1, 4], Preprocess::StandardScaler).unwrap();
        let sc = fold2.scaler.clone().unwrap();
        let te = data.take(&[1, 4]);
        let model = super::super::estimator::FittedModel::ElasticNet {
            coef: vec![0.3, -0.7],
            intercept: 1.5,
        };
        let want = model.score(sc.transform(te.x()).view(), te.y());
        assert!((fold2.r2(&[0.3, -0.7], 1.5) - want).abs() < 1e-12);
        assert!(GramStats::of_rows(&data, &[], None).is_err());
    }
}
