//! An incrementally trained model for the successive-halving searches:
//! [`SgdClassifier`], a binary logistic regression fitted by plain
//! stochastic gradient descent (scikit-learn's
//! `SGDClassifier(loss="log_loss", learning_rate="constant")`), and the
//! [`PartialFit`] trait (scikit-learn's `partial_fit`) the searches drive.
//! One `partial_fit` call is one pass over the rows in their order (no
//! per-epoch shuffle, so runs are reproducible bit for bit).

use rdask_array::ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use crate::Error;

/// scikit-learn's default `alpha` (L2 penalty) of `SGDClassifier`.
pub const DEFAULT_ALPHA: f64 = 1e-4;
/// scikit-learn's default `eta0` (constant learning rate).
pub const DEFAULT_ETA0: f64 = 0.01;

/// A model trained a little at a time (scikit-learn's `partial_fit`), then
/// scored.
pub trait PartialFit {
    /// One more pass over `x`, `y`.
    fn partial_fit(&mut self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> Result<(), Error>;
    /// The estimator's own score on `x`, `y` (higher is better).
    fn score(&self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> f64;
}

/// Binary logistic regression by SGD; labels are 0 and 1.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SgdClassifier {
    /// L2 penalty.
    pub alpha: f64,
    /// Constant learning rate.
    pub eta0: f64,
    /// Weights, one per feature (empty before the first pass).
    pub coef: Vec<f64>,
    /// Bias.
    pub intercept: f64,
    /// Passes made so far.
    pub epochs: u32,
}

impl SgdClassifier {
    /// An untrained model; an error for a negative or non-finite `alpha`
    /// or a learning rate that is not positive.
    pub fn new(alpha: f64, eta0: f64) -> Result<SgdClassifier, Error> {
        if !(alpha >= 0.0 && alpha.is_finite()) {
            return Err(Error::Input(format!("alpha must be >= 0, got {alpha}")));
        }
        if !(eta0 > 0.0 && eta0.is_finite()) {
            return Err(Error::Input(format!("eta0 must be > 0, got {eta0}")));
        }
        Ok(SgdClassifier {
            alpha,
            eta0,
            coef: Vec::new(),
            intercept: 0.0,
            epochs: 0,
        })
    }

    fn margin(&self, row: ArrayView1<'_, f64>) -> f64 {
        row.iter().zip(&self.coef).map(|(a, b)| a * b).sum::<f64>() + self.intercept
    }

    /// Probability of class 1 per row.
    pub fn predict_proba(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        x.rows().into_iter().map(|r| sigmoid(self.margin(r))).collect()
    }

    /// Class (0 or 1) per row.
    pub fn predict(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        x.rows()
            .into_iter()
            .map(|r| if self.margin(r) > 0.0 { 1.0 } else { 0.0 })
            .collect()
    }
}

fn sigmoid(z: f64) -> f64 {
    1.0 / (1.0 + (-z).exp())
}

impl PartialFit for SgdClassifier {
    fn partial_fit(&mut self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> Result<(), Error> {
        if self.coef.is_empty() {
            self.coef = vec![0.0; x.ncols()];
        } else if self.coef.len() != x.ncols() {
            return Err(Error::Input(format!(
                "the model has {} features, the data {}",
                self.coef.len(),
                x.ncols()
            )));
        }
        if let Some(bad) = y.iter().find(|&&v| v != 0.0 && v != 1.0) {
            return Err(Error::Input(format!("SgdClassifier takes labels 0 and 1, got {bad}")));
        }
        let shrink = 1.0 - self.eta0 * self.alpha;
        for (row, &label) in x.rows().into_iter().zip(y.iter()) {
            let grad = sigmoid(self.margin(row)) - label;
            for (w, &v) in self.coef.iter_mut().zip(row.iter()) {
                *w = *w * shrink - self.eta0 * grad * v;
            }
            self.intercept -= self.eta0 * grad;
        }
        self.epochs += 1;
        Ok(())
    }

    /// Accuracy (a diverged model, whose margins are NaN, scores 0 on
    /// those rows).
    fn score(&self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> f64 {
        if y.is_empty() {
            return 0.0;
        }
        let right = self.predict(x).iter().zip(y.iter()).filter(|(p, t)| p == t).count();
        right as f64 / y.len() as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use rdask_array::ndarray::{array, Array2};

    #[test]
    fn learns_a_separable_problem_and_counts_passes() {
        let x: Array2<f64> = array![[-2.0, 0.1], [-1.0, -0.3], [1.0, 0.2], [2.0, -0.1]];
        let y = array![0.0, 0.0, 1.0, 1.0];
        let mut m = SgdClassifier::new(1e-4, 0.1).unwrap();
        for _ in 0..20 {
            m.partial_fit(x.view(), y.view()).unwrap();
        }
        assert_eq!(m.epochs, 20);
        assert_eq!(m.score(x.view(), y.view()), 1.0);
        assert!(m.predict_proba(x.view())[3] > 0.5);
    }

    #[test]
    fn bad_parameters_and_labels_are_errors() {
        assert!(SgdClassifier::new(-1.0, 0.1).is_err());
        assert!(SgdClassifier::new(0.0, 0.0).is_err());
        let mut m = SgdClassifier::new(0.0, 0.1).unwrap();
        let err = m.partial_fit(array![[1.0]].view(), array![2.0].view()).unwrap_err();
        assert!(err.to_string().contains("labels 0 and 1"), "{err}");
    }
}
