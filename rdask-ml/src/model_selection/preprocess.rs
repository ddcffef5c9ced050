//! Preprocessing fitted once per fold and shared by every candidate
//! (Dask-ML's graph merging of a `Pipeline`'s unchanging first steps):
//! scikit-learn's `StandardScaler`, and [`FoldData`], a fold's train and
//! test parts already transformed.

use rdask_array::ndarray::{Array1, Array2, ArrayView2, Axis};
use serde::{Deserialize, Serialize};

use crate::Dataset;

/// What runs on each fold's data before the estimator.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum Preprocess {
    /// The raw features.
    #[default]
    None,
    /// scikit-learn's `StandardScaler`, fitted on the fold's train part.
    StandardScaler,
}

/// scikit-learn's `StandardScaler`: per feature, subtract the mean and
/// divide by the population standard deviation (a constant feature is
/// divided by 1, as scikit-learn does).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StandardScaler {
    /// Per-feature mean.
    pub mean: Vec<f64>,
    /// Per-feature divisor.
    pub scale: Vec<f64>,
}

impl StandardScaler {
    /// Fitted on `x`'s rows.
    pub fn fit(x: ArrayView2<'_, f64>) -> StandardScaler {
        let n = x.nrows().max(1) as f64;
        let mean: Array1<f64> = x.sum_axis(Axis(0)) / n;
        let scale = x
            .axis_iter(Axis(1))
            .zip(mean.iter())
            .map(|(col, m)| {
                let sd = (col.iter().map(|v| (v - m) * (v - m)).sum::<f64>() / n).sqrt();
                if sd > 0.0 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        StandardScaler {
            mean: mean.to_vec(),
            scale,
        }
    }

    /// Fitted on rows whose moments are `m` (as [`Self::fit_rows`] on
    /// them: the population deviation, 1 for a constant feature).
    pub fn from_moments(m: &super::moments::TestMoments) -> StandardScaler {
        let n = m.n_samples.max(1) as f64;
        let p = m.x_mean.len();
        let scale = (0..p)
            .map(|j| {
                let sd = (m.sxx[j * p + j] / n).sqrt();
                if sd > 0.0 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        StandardScaler {
            mean: m.x_mean.clone(),
            scale,
        }
    }

    /// Fitted on rows `rows` of `data`, read in place (a fold's train
    /// part without copying it out; the same sums as [`fit`](Self::fit)).
    pub fn fit_rows(data: &Dataset, rows: &[usize]) -> StandardScaler {
        let p = data.n_features();
        let x = data.row_major();
        let n = rows.len().max(1) as f64;
        let mut mean = vec![0.0; p];
        for &i in rows {
            for (m, v) in mean.iter_mut().zip(&x[i * p..(i + 1) * p]) {
                *m += v;
            }
        }
        mean.iter_mut().for_each(|m| *m /= n);
        let mut var = vec![0.0; p];
        for &i in rows {
            for ((s, v), m) in var.iter_mut().zip(&x[i * p..(i + 1) * p]).zip(&mean) {
                *s += (v - m) * (v - m);
            }
        }
        let scale = var
            .into_iter()
            .map(|s| {
                let sd = (s / n).sqrt();
                if sd > 0.0 {
                    sd
                } else {
                    1.0
                }
            })
            .collect();
        StandardScaler { mean, scale }
    }

    /// `x` scaled.
    pub fn transform(&self, x: ArrayView2<'_, f64>) -> Array2<f64> {
        let mut out = x.to_owned();
        for mut row in out.rows_mut() {
            for ((v, m), s) in row.iter_mut().zip(&self.mean).zip(&self.scale) {
                *v = (*v - m) / s;
            }
        }
        out
    }
}

/// One fold, ready for every candidate: its train and test rows with the
/// preprocessing fitted on the train rows applied to both.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldData {
    /// The rows a candidate is fitted on.
    pub train: Dataset,
    /// The rows it is scored on.
    pub test: Dataset,
}

impl FoldData {
    /// Splits `data` by the index lists and applies `pre` fitted on the
    /// train part.
    pub fn prepare(data: &Dataset, train: &[usize], test: &[usize], pre: Preprocess) -> FoldData {
        let (train, test) = (data.take(train), data.take(test));
        match pre {
            Preprocess::None => FoldData { train, test },
            Preprocess::StandardScaler => {
                let s = StandardScaler::fit(train.x());
                FoldData {
                    train: train.with_x(s.transform(train.x())),
                    test: test.with_x(s.transform(test.x())),
                }
            }
        }
    }
}

/// A fitted preprocessing step, kept with a refitted model.
pub(crate) fn fit_preprocess(pre: Preprocess, x: ArrayView2<'_, f64>) -> Option<StandardScaler> {
    match pre {
        Preprocess::None => None,
        Preprocess::StandardScaler => Some(StandardScaler::fit(x)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdask_array::ndarray::array;

    #[test]
    fn scaler_centres_and_scales_and_leaves_constants_alone() {
        let x = array![[1.0, 5.0], [3.0, 5.0]];
        let s = StandardScaler::fit(x.view());
        assert_eq!(s.mean, vec![2.0, 5.0]);
        assert_eq!(s.scale, vec![1.0, 1.0]);
        assert_eq!(s.transform(x.view()), array![[-1.0, 0.0], [1.0, 0.0]]);
        let data = Dataset::new(array![[9.0, 9.0], [1.0, 5.0], [3.0, 5.0]], array![0.0, 0.0, 0.0]).unwrap();
        assert_eq!(StandardScaler::fit_rows(&data, &[1, 2]), s);
    }
}
