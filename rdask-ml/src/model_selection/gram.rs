//! Shared sufficient statistics of a fold (scikit-learn's `precompute`,
//! the way its `ElasticNetCV` shares one Gram matrix across a path):
//! [`GramStats`], a fold's train rows reduced to `XᵀX`, `Xᵀy` and `yᵀy`
//! (`p x p`, `p`, 1 numbers), computed once per fold by one task and read by
//! every candidate of that fold, whose fit then costs `O(p²)` per sweep
//! instead of `O(n p)`; and [`GramFold`], what such a candidate reads: the
//! statistics, the scaler and its test rows reduced the same way
//! ([`TestMoments`]), so that scoring a candidate is `O(p²)` too rather
//! than a pass over the test rows.
//!
//! The statistics follow what linfa's elastic net fits: the targets are
//! centred (its intercept is the mean target) and the features are not
//! (beyond the scaler's own centring), so a fit from them is the same
//! problem linfa solves on the same rows.

use std::borrow::Cow;

use serde::{Deserialize, Serialize};

use super::fold_cache::{new_id, FoldId};
use super::moments::TestMoments;
use super::preprocess::{Preprocess, StandardScaler};

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
    /// The statistics of rows whose moments are `m`, each row transformed
    /// by `scaler` (fitted on these rows: its mean is theirs), as
    /// [`GramStats::of_rows`] computes them from the rows: with a scaler,
    /// `XᵀX` of the standardised rows is `Sxx / (s sᵀ)`; without, the raw
    /// `XᵀX` is `Sxx + n x̄ x̄ᵀ`; and `Xᵀ(y - ȳ)` is `Sxy` scaled alike.
    pub fn from_moments(m: &TestMoments, scaler: Option<&StandardScaler>) -> Result<GramStats, Error> {
        if m.n_samples == 0 {
            return Err(Error::Input("a fold's train part has no rows".into()));
        }
        let p = m.x_mean.len();
        let n = m.n_samples as f64;
        let mut gram = vec![0.0; p * p];
        let mut xty = vec![0.0; p];
        for j in 0..p {
            for k in 0..p {
                gram[j * p + k] = match scaler {
                    Some(s) => m.sxx[j * p + k] / (s.scale[j] * s.scale[k]),
                    None => m.sxx[j * p + k] + n * m.x_mean[j] * m.x_mean[k],
                };
            }
            xty[j] = match scaler {
                Some(s) => m.sxy[j] / s.scale[j],
                None => m.sxy[j],
            };
        }
        Ok(GramStats {
            n_samples: m.n_samples,
            n_features: p,
            gram,
            xty,
            y_mean: m.y_mean,
            yty: m.syy,
        })
    }

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
    /// The test rows, raw, reduced to what R² needs (scoring folds the
    /// scaler into the coefficients instead).
    pub test: TestMoments,
}

impl GramFold {
    /// Splits `data` by the index lists, fits `pre` on the train rows and
    /// reduces them to [`GramStats`], and the test rows to [`TestMoments`].
    pub fn prepare(data: &Dataset, train: &[usize], test: &[usize], pre: Preprocess) -> Result<GramFold, Error> {
        let scaler = match pre {
            Preprocess::None => None,
            Preprocess::StandardScaler => Some(StandardScaler::fit_rows(data, train)),
        };
        let stats = GramStats::of_rows(data, train, scaler.as_ref())?;
        Ok(GramFold {
            id: new_id(),
            train: stats,
            scaler,
            test: TestMoments::of_rows(data, test),
        })
    }

    /// Fold `fold` from the moments of every fold's test rows (the folds
    /// partition the rows, so its train rows' moments are the others'
    /// merged): `pre` and the statistics as [`GramFold::prepare`] makes
    /// them, without another pass over the rows.
    pub fn from_moments(parts: &[TestMoments], fold: usize, pre: Preprocess) -> Result<GramFold, Error> {
        let test = parts
            .get(fold)
            .ok_or_else(|| Error::Input(format!("fold {fold} of {} folds", parts.len())))?
            .clone();
        let train = TestMoments::merge(parts.iter().enumerate().filter(|(i, _)| *i != fold).map(|(_, m)| m))
            .ok_or_else(|| Error::Input("a fold's train part has no rows".into()))?;
        let scaler = match pre {
            Preprocess::None => None,
            Preprocess::StandardScaler => Some(StandardScaler::from_moments(&train)),
        };
        Ok(GramFold {
            id: new_id(),
            train: GramStats::from_moments(&train, scaler.as_ref())?,
            scaler,
            test,
        })
    }

    /// R² on the test rows of the linear model `coef`, `intercept` fitted
    /// on the scaled rows, from the test rows' moments.
    pub fn r2(&self, coef: &[f64], intercept: f64) -> f64 {
        let (w, b) = fold_scaler(self.scaler.as_ref(), coef, intercept);
        self.test.r2(&w, b)
    }
}

/// A [`GramFold`] but its id: what follows the id on the wire
/// (`fold_cache` reads the id first).
#[derive(Deserialize)]
pub(crate) struct GramFoldRest {
    train: GramStats,
    scaler: Option<StandardScaler>,
    test: TestMoments,
}

impl GramFoldRest {
    pub(crate) fn with_id(self, id: FoldId) -> GramFold {
        GramFold {
            id,
            train: self.train,
            scaler: self.scaler,
            test: self.test,
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
    /// As [`GramAll::prepare`], from the moments of row sets that
    /// partition the rows (every fold's test rows).
    pub fn from_moments(parts: &[TestMoments], pre: Preprocess) -> Result<GramAll, Error> {
        let all = TestMoments::merge(parts).ok_or_else(|| Error::Input("no rows".into()))?;
        let scaler = match pre {
            Preprocess::None => None,
            Preprocess::StandardScaler => Some(StandardScaler::from_moments(&all)),
        };
        let stats = GramStats::from_moments(&all, scaler.as_ref())?;
        Ok(GramAll { stats, scaler })
    }

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
    use rdask_array::ndarray::{array, Array1, Array2};

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

    /// Folds and the all-rows statistics merged from the folds' test
    /// moments equal those computed from the rows, raw and scaled.
    #[test]
    fn statistics_merged_from_fold_moments_are_those_of_the_rows() {
        use super::super::split::KFold;
        let n = 1_003;
        let x = Array2::from_shape_fn((n, 3), |(i, j)| {
            ((i * 37 + j * 11) % 97) as f64 / 7.0 + 100.0 * j as f64
        });
        let y = Array1::from_shape_fn(n, |i| 2.0 * x[[i, 0]] - x[[i, 2]] + ((i * 13) % 17) as f64);
        let data = Dataset::new(x, y).unwrap();
        let cv = KFold::new(5);
        let parts: Vec<TestMoments> = (0..5)
            .map(|k| TestMoments::of_rows(&data, &cv.split(n, k).unwrap().1))
            .collect();
        let close = |a: &[f64], b: &[f64], what: &str| {
            for (u, v) in a.iter().zip(b) {
                assert!((u - v).abs() <= 1e-9 * (1.0 + v.abs()), "{what}: {a:?} vs {b:?}");
            }
        };
        for pre in [Preprocess::None, Preprocess::StandardScaler] {
            for k in 0..5 {
                let (train, test) = cv.split(n, k).unwrap();
                let (want, got) = (
                    GramFold::prepare(&data, &train, &test, pre).unwrap(),
                    GramFold::from_moments(&parts, k, pre).unwrap(),
                );
                close(&got.train.gram, &want.train.gram, "gram");
                close(&got.train.xty, &want.train.xty, "xty");
                close(
                    &[got.train.yty, got.train.y_mean],
                    &[want.train.yty, want.train.y_mean],
                    "y",
                );
                assert_eq!(got.train.n_samples, want.train.n_samples);
                assert_eq!(got.test, want.test);
                if let (Some(a), Some(b)) = (&got.scaler, &want.scaler) {
                    close(&a.mean, &b.mean, "mean");
                    close(&a.scale, &b.scale, "scale");
                }
                assert_eq!(got.scaler.is_some(), want.scaler.is_some());
            }
            let (want, got) = (
                GramAll::prepare(&data, pre).unwrap(),
                GramAll::from_moments(&parts, pre).unwrap(),
            );
            close(&got.stats.gram, &want.stats.gram, "all gram");
            close(&got.stats.xty, &want.stats.xty, "all xty");
            close(&[got.stats.yty], &[want.stats.yty], "all yty");
        }
    }
}
