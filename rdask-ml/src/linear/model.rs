//! [`LinearRegression`] and [`LogisticRegression`] (dask-ml's
//! `dask_ml.linear_model`), trained data-parallel: the samples' row blocks
//! (and the targets, blocked alike) are persisted on the workers; each
//! evaluation of the objective sends the coefficients once (one graph
//! node the tasks name by key), computes per block the loss and gradient
//! (`kernels::grad_partial`), and adds them as a tree; L-BFGS (`lbfgs`)
//! on the driver takes the steps. The objective is linfa's:
//! `Σ loss + α/2 ‖w‖²` (the intercept not penalised).

use rdask::delayed::{delayed, persist_all, ComputeOptions, Delayed};
use rdask::{Client, Future};
use rdask_array::ndarray::{Array1, ArrayD, IxDyn};
use rdask_array::{Array, Chunk};

use super::kernels::{grad_partial, linear_predict, score_partial, Loss, Output};
use super::lbfgs;
use crate::cluster::dist::{broadcast, shape2, sum_on, Rows, DEFAULT_SPLIT_EVERY};
use crate::cluster::Error;

/// The settings both models share (dask-ml's `penalty="l2"`, `C`,
/// `fit_intercept`, `max_iter`, `tol`).
#[derive(Clone, Debug)]
pub struct Params {
    /// L2 penalty strength α of `Σ loss + α/2 ‖w‖²` (linfa's `alpha`;
    /// scikit-learn's and dask-ml's `C` is `1/α`).
    pub alpha: f64,
    /// Fit an intercept (else it stays 0).
    pub fit_intercept: bool,
    /// At most this many L-BFGS iterations (dask-ml's default 100).
    pub max_iter: usize,
    /// Stop when the gradient's largest component is at most this.
    pub tol: f64,
    /// Partials added per task of the gradient's tree (Dask's `split_every`).
    pub split_every: usize,
}

/// The fitted coefficients.
#[derive(Clone, Debug)]
struct Fitted {
    coef: Array1<f64>,
    intercept: f64,
    n_iter: usize,
    converged: bool,
}

/// The target blocks, aligned with the samples' row blocks.
fn persist_targets(client: &Client, y: &Array, rows: &Rows) -> Result<Vec<Future<Chunk>>, Error> {
    match y.shape() {
        [n] if *n == rows.n_samples => {}
        [n] => return Err(Error::Input(format!("y has {n} samples, X has {}", rows.n_samples))),
        s => return Err(Error::Input(format!("y must be 1-d, not of shape {s:?}"))),
    }
    let y = if y.chunks()[0] == rows.lens {
        y.clone()
    } else {
        y.rechunk_to(vec![rows.lens.clone()])?
    };
    // Already persisted in these blocks: reused, not copied (as `Rows::persist`).
    if let Some(held) = y.persisted_blocks() {
        return Ok(held.to_vec());
    }
    let blocks = y.to_delayed();
    let refs: Vec<&Delayed<Chunk>> = blocks.iter().collect();
    Ok(persist_all(client, &refs, &ComputeOptions::default())?)
}

fn coef_chunk(w: &[f64]) -> Result<Chunk, Error> {
    ArrayD::from_shape_vec(IxDyn(&[w.len()]), w.to_vec())
        .map(Chunk)
        .map_err(|e| Error::Result(e.to_string()))
}

impl Params {
    fn check(&self) -> Result<(), Error> {
        if !(self.alpha >= 0.0 && self.alpha.is_finite()) {
            return Err(Error::Param(format!("alpha must be 0 or more, not {}", self.alpha)));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(Error::Param(format!("tol must be 0 or more, not {}", self.tol)));
        }
        Ok(())
    }

    fn fit(&self, client: &Client, x: &Array, y: &Array, loss: Loss) -> Result<Fitted, Error> {
        self.check()?;
        shape2(x, "X")?;
        let rows = Rows::persist(client, x, "X")?;
        let targets = persist_targets(client, y, &rows)?;
        if loss == Loss::Logistic {
            check_labels(client, &targets)?;
        }
        let d = rows.n_features;
        let objective = |w: &[f64]| -> Result<(f64, Vec<f64>), Error> {
            let step = broadcast(coef_chunk(w)?);
            let parts = rows
                .blocks
                .iter()
                .zip(&targets)
                .map(|(b, t)| delayed(grad_partial, (b, t, &step, loss)))
                .collect();
            let mut g = sum_on(client, parts, self.split_every, d + 2)?;
            let mut value = g.pop().unwrap_or(0.0);
            for (gi, wi) in g[..d].iter_mut().zip(w) {
                *gi += self.alpha * wi;
                value += 0.5 * self.alpha * wi * wi;
            }
            if !self.fit_intercept {
                g[d] = 0.0;
            }
            Ok((value, g))
        };
        let out = lbfgs::minimize(objective, vec![0.0; d + 1], self.max_iter, self.tol)?;
        Ok(Fitted {
            coef: Array1::from(out.x[..d].to_vec()),
            intercept: out.x[d],
            n_iter: out.iterations,
            converged: out.converged,
        })
    }
}

/// Logistic targets must be 0 or 1: checked on the cluster (a sum of the
/// blocks' values outside {0, 1}).
fn check_labels(client: &Client, targets: &[Future<Chunk>]) -> Result<(), Error> {
    let bad: Vec<Delayed<Chunk>> = targets
        .iter()
        .map(|t| delayed(super::kernels::not_binary, (t,)))
        .collect();
    let count = sum_on(client, bad, DEFAULT_SPLIT_EVERY, 1)?[0];
    if count > 0.0 {
        return Err(Error::Input(format!(
            "y of a logistic regression must hold only 0 and 1; {count} values are neither"
        )));
    }
    Ok(())
}

impl Fitted {
    fn predict(&self, x: &Array, output: Output) -> Result<Array, Error> {
        let (n, d) = shape2(x, "X")?;
        if d != self.coef.len() {
            return Err(Error::Input(format!(
                "X has {d} features, the model was fitted on {}",
                self.coef.len()
            )));
        }
        let x = if x.numblocks()[1] == 1 {
            x.clone()
        } else {
            x.rechunk_to(vec![x.chunks()[0].clone(), vec![d]])?
        };
        let mut w = self.coef.to_vec();
        w.push(self.intercept);
        let step = broadcast(coef_chunk(&w)?);
        let blocks = x
            .to_delayed()
            .iter()
            .map(|b| delayed(linear_predict, (b, &step, output)))
            .collect();
        Ok(Array::from_delayed(&[n], vec![x.chunks()[0].clone()], blocks)?)
    }

    /// `[rows, Σy, Σy², SSE, correct]` over the data.
    fn score_sums(&self, client: &Client, x: &Array, y: &Array) -> Result<Vec<f64>, Error> {
        let rows = Rows::persist(client, x, "X")?;
        let targets = persist_targets(client, y, &rows)?;
        if rows.n_features != self.coef.len() {
            return Err(Error::Input(format!(
                "X has {} features, the model was fitted on {}",
                rows.n_features,
                self.coef.len()
            )));
        }
        let mut w = self.coef.to_vec();
        w.push(self.intercept);
        let step = broadcast(coef_chunk(&w)?);
        let parts = rows
            .blocks
            .iter()
            .zip(&targets)
            .map(|(b, t)| delayed(score_partial, (b, t, &step)))
            .collect();
        sum_on(client, parts, DEFAULT_SPLIT_EVERY, 5)
    }
}

macro_rules! fitted_accessors {
    ($name:literal) => {
        fn fitted(&self) -> Result<&Fitted, Error> {
            self.fitted.as_ref().ok_or(Error::NotFitted($name))
        }

        /// The coefficients, one per feature.
        pub fn coef_(&self) -> Result<&Array1<f64>, Error> {
            Ok(&self.fitted()?.coef)
        }

        /// The intercept (0 without `fit_intercept`).
        pub fn intercept_(&self) -> Result<f64, Error> {
            Ok(self.fitted()?.intercept)
        }

        /// L-BFGS iterations run.
        pub fn n_iter_(&self) -> Result<usize, Error> {
            Ok(self.fitted()?.n_iter)
        }

        /// Whether the gradient fell to `tol` within `max_iter`.
        pub fn converged_(&self) -> Result<bool, Error> {
            Ok(self.fitted()?.converged)
        }
    };
}

fn defaults(alpha: f64) -> Params {
    Params {
        alpha,
        fit_intercept: true,
        max_iter: 100,
        tol: 1e-6,
        split_every: DEFAULT_SPLIT_EVERY,
    }
}

/// Least squares with an L2 penalty (ridge), trained data-parallel
/// (dask-ml's `LinearRegression`; `alpha = 0` is ordinary least squares).
#[derive(Clone, Debug)]
pub struct LinearRegression {
    /// The settings.
    pub params: Params,
    fitted: Option<Fitted>,
}

impl Default for LinearRegression {
    fn default() -> Self {
        LinearRegression {
            params: defaults(0.0),
            fitted: None,
        }
    }
}

impl LinearRegression {
    /// Ordinary least squares with the default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fits on the rows of `x` (samples × features) and the targets `y`.
    pub fn fit(&mut self, client: &Client, x: &Array, y: &Array) -> Result<&mut Self, Error> {
        self.fitted = Some(self.params.fit(client, x, y, Loss::Squared)?);
        Ok(self)
    }

    /// `x·coef + intercept` per row, lazily, a task per block.
    pub fn predict(&self, x: &Array) -> Result<Array, Error> {
        self.fitted()?.predict(x, Output::Value)
    }

    /// The coefficient of determination R² on `x`, `y` (scikit-learn's
    /// `score`).
    pub fn score(&self, client: &Client, x: &Array, y: &Array) -> Result<f64, Error> {
        let s = self.fitted()?.score_sums(client, x, y)?;
        let total = s[2] - s[1] * s[1] / s[0];
        Ok(1.0 - s[3] / total)
    }

    fitted_accessors!("LinearRegression");
}

/// Binary logistic regression with an L2 penalty, trained data-parallel
/// (dask-ml's `LogisticRegression`); labels are 0 and 1.
#[derive(Clone, Debug)]
pub struct LogisticRegression {
    /// The settings (`alpha` 1 by default, as linfa's and `C = 1`).
    pub params: Params,
    fitted: Option<Fitted>,
}

impl Default for LogisticRegression {
    fn default() -> Self {
        LogisticRegression {
            params: defaults(1.0),
            fitted: None,
        }
    }
}

impl LogisticRegression {
    /// The default settings.
    pub fn new() -> Self {
        Self::default()
    }

    /// Fits on the rows of `x` and the labels `y` (0 or 1).
    pub fn fit(&mut self, client: &Client, x: &Array, y: &Array) -> Result<&mut Self, Error> {
        self.fitted = Some(self.params.fit(client, x, y, Loss::Logistic)?);
        Ok(self)
    }

    /// The predicted label (0 or 1) per row, lazily.
    pub fn predict(&self, x: &Array) -> Result<Array, Error> {
        self.fitted()?.predict(x, Output::Class)
    }

    /// The probability of label 1 per row, lazily.
    pub fn predict_proba(&self, x: &Array) -> Result<Array, Error> {
        self.fitted()?.predict(x, Output::Probability)
    }

    /// `x·coef + intercept` per row, lazily.
    pub fn decision_function(&self, x: &Array) -> Result<Array, Error> {
        self.fitted()?.predict(x, Output::Value)
    }

    /// Accuracy on `x`, `y` (scikit-learn's `score`).
    pub fn score(&self, client: &Client, x: &Array, y: &Array) -> Result<f64, Error> {
        let s = self.fitted()?.score_sums(client, x, y)?;
        Ok(s[4] / s[0])
    }

    fitted_accessors!("LogisticRegression");
}
