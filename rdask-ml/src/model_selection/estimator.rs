//! The estimators a search can tune, named and checked by hyperparameter
//! (an unknown name or a bad value is an error before anything is
//! submitted), fitted and scored the way scikit-learn's `score` does:
//! linfa's `ElasticNet` (R², scikit-learn's `ElasticNet` objective:
//! `alpha` is linfa's `penalty`) and this crate's [`SgdClassifier`]
//! (accuracy). [`FittedPipeline`] is a refitted model with its
//! preprocessing.

use linfa::prelude::{Fit, ParamGuard};
use linfa_elasticnet::ElasticNet;
use rdask_array::ndarray::{Array1, ArrayView1, ArrayView2};
use serde::{Deserialize, Serialize};

use super::enet_gram::elastic_net_gram;
use super::gram::{GramAll, GramStats};
use super::params::Params;
use super::preprocess::{fit_preprocess, Preprocess, StandardScaler};
use super::sgd::{PartialFit, SgdClassifier, DEFAULT_ALPHA, DEFAULT_ETA0};
use crate::{Dataset, Error};

/// Passes an [`SgdClassifier`] makes in a grid search unless `max_iter`
/// says otherwise (scikit-learn's default is 1000 with early stopping;
/// plain passes need far fewer).
pub const DEFAULT_SGD_PASSES: f64 = 5.0;

/// The kind of model to tune.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Estimator {
    /// linfa's elastic net regression: `alpha` (default 1.0), `l1_ratio`
    /// (0.5), `max_iter` (1000), `tol` (1e-4); scored by R².
    ElasticNet,
    /// Binary logistic regression by SGD: `alpha` (1e-4), `eta0` (0.01),
    /// `max_iter` (passes, 5); scored by accuracy.
    SgdClassifier,
}

impl Estimator {
    /// The hyperparameters it takes.
    pub fn param_names(self) -> &'static [&'static str] {
        match self {
            Estimator::ElasticNet => &["alpha", "l1_ratio", "max_iter", "tol"],
            Estimator::SgdClassifier => &["alpha", "eta0", "max_iter"],
        }
    }

    /// An error naming the first unknown or invalid hyperparameter.
    pub fn check(self, params: &Params) -> Result<(), Error> {
        if let Some(bad) = params.keys().find(|k| !self.param_names().contains(&k.as_str())) {
            return Err(Error::UnknownParam {
                name: bad.clone(),
                estimator: format!("{self:?}"),
                accepted: self.param_names().join(", "),
            });
        }
        match self {
            Estimator::ElasticNet => {
                elastic_net(params)?;
            }
            Estimator::SgdClassifier => {
                sgd(params)?;
                passes(params)?;
            }
        }
        Ok(())
    }

    /// Whether its fits read the train part column by column (linfa's
    /// coordinate descent): a search then stores each fold's train part
    /// column-major once, for all its fits (`Dataset::to_column_major`).
    pub fn reads_columns(self) -> bool {
        match self {
            Estimator::ElasticNet => true,
            Estimator::SgdClassifier => false,
        }
    }

    /// Whether its fits can share one fold's sufficient statistics
    /// ([`GramStats`]: `XᵀX`, `Xᵀy`, `yᵀy`) instead of reading the rows:
    /// a search then reduces each fold's train rows once and every
    /// candidate fits from that ([`fit_gram`](Self::fit_gram)), as
    /// scikit-learn's `precompute=True` and its `ElasticNetCV` do. The
    /// others read the rows in [`fit`](Self::fit).
    pub fn uses_gram(self) -> bool {
        match self {
            Estimator::ElasticNet => true,
            Estimator::SgdClassifier => false,
        }
    }

    /// Fitted from a fold's statistics (the same model as [`fit`](Self::fit)
    /// on the rows they sum, up to rounding); an error for an estimator
    /// that cannot ([`uses_gram`](Self::uses_gram)).
    pub fn fit_gram(self, params: &Params, stats: &GramStats) -> Result<FittedModel, Error> {
        self.check(params)?;
        match self {
            Estimator::ElasticNet => {
                let net = elastic_net(params)?;
                let fit = elastic_net_gram(
                    stats,
                    net.penalty(),
                    net.l1_ratio(),
                    net.max_iterations(),
                    net.tolerance(),
                );
                Ok(FittedModel::ElasticNet {
                    coef: fit.coef,
                    intercept: fit.intercept,
                })
            }
            Estimator::SgdClassifier => Err(Error::Input(
                "SgdClassifier cannot fit from shared Gram statistics (it reads the rows)".into(),
            )),
        }
    }

    /// Fitted on `train`.
    pub fn fit(self, params: &Params, train: &Dataset) -> Result<FittedModel, Error> {
        self.check(params)?;
        match self {
            Estimator::ElasticNet => {
                let net = elastic_net(params)?;
                let model = train
                    .columns(|x, y| net.fit(&linfa::DatasetBase::new(x, y)))
                    .map_err(|e| Error::Fit(e.to_string()))?;
                Ok(FittedModel::ElasticNet {
                    coef: model.hyperplane().to_vec(),
                    intercept: model.intercept(),
                })
            }
            Estimator::SgdClassifier => {
                let mut m = sgd(params)?;
                for _ in 0..passes(params)? {
                    m.partial_fit(train.x(), train.y())?;
                }
                Ok(FittedModel::Sgd(m))
            }
        }
    }
}

fn get(params: &Params, name: &str, default: f64) -> f64 {
    params.get(name).copied().unwrap_or(default)
}

fn whole(params: &Params, name: &str, default: f64) -> Result<u32, Error> {
    let v = get(params, name, default);
    if v >= 1.0 && v.fract() == 0.0 && v <= f64::from(u32::MAX) {
        Ok(v as u32)
    } else {
        Err(Error::Input(format!("{name} must be a whole number >= 1, got {v}")))
    }
}

fn passes(params: &Params) -> Result<u32, Error> {
    whole(params, "max_iter", DEFAULT_SGD_PASSES)
}

/// linfa's checked hyperparameters for `params`.
fn elastic_net(params: &Params) -> Result<linfa_elasticnet::ElasticNetValidParams<f64>, Error> {
    ElasticNet::<f64>::params()
        .penalty(get(params, "alpha", 1.0))
        .l1_ratio(get(params, "l1_ratio", 0.5))
        .max_iterations(whole(params, "max_iter", 1000.0)?)
        .tolerance(get(params, "tol", 1e-4))
        .check()
        .map_err(|e| Error::Input(format!("ElasticNet: {e}")))
}

pub(crate) fn sgd(params: &Params) -> Result<SgdClassifier, Error> {
    SgdClassifier::new(get(params, "alpha", DEFAULT_ALPHA), get(params, "eta0", DEFAULT_ETA0))
}

/// A fitted model, small enough to gather and to broadcast by key.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FittedModel {
    /// `x . coef + intercept`, as linfa's `ElasticNet::predict`.
    ElasticNet {
        /// Weights per feature (linfa's `hyperplane`).
        coef: Vec<f64>,
        /// Bias.
        intercept: f64,
    },
    /// A trained SGD classifier.
    Sgd(SgdClassifier),
}

impl FittedModel {
    /// Prediction per row.
    pub fn predict(&self, x: ArrayView2<'_, f64>) -> Array1<f64> {
        match self {
            FittedModel::ElasticNet { coef, intercept } => x
                .rows()
                .into_iter()
                .map(|r| r.iter().zip(coef).map(|(a, b)| a * b).sum::<f64>() + intercept)
                .collect(),
            FittedModel::Sgd(m) => m.predict(x),
        }
    }

    /// scikit-learn's `score`: R² for regression, accuracy for
    /// classification.
    pub fn score(&self, x: ArrayView2<'_, f64>, y: ArrayView1<'_, f64>) -> f64 {
        match self {
            FittedModel::ElasticNet { .. } => r2_score(y, self.predict(x).view()),
            FittedModel::Sgd(m) => m.score(x, y),
        }
    }

    /// Number of features it was fitted on.
    pub fn n_features(&self) -> usize {
        match self {
            FittedModel::ElasticNet { coef, .. } => coef.len(),
            FittedModel::Sgd(m) => m.coef.len(),
        }
    }
}

/// scikit-learn's `r2_score` (1 for a perfect fit of constant targets, 0
/// for an imperfect one, as scikit-learn does).
pub fn r2_score(y: ArrayView1<'_, f64>, pred: ArrayView1<'_, f64>) -> f64 {
    let n = y.len().max(1) as f64;
    let mean = y.sum() / n;
    let ss_res: f64 = y.iter().zip(pred.iter()).map(|(a, b)| (a - b) * (a - b)).sum();
    let ss_tot: f64 = y.iter().map(|a| (a - mean) * (a - mean)).sum();
    if ss_tot == 0.0 {
        return if ss_res == 0.0 { 1.0 } else { 0.0 };
    }
    1.0 - ss_res / ss_tot
}

/// A refitted model with the preprocessing fitted on the same rows
/// (scikit-learn's `best_estimator_` of a `Pipeline`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FittedPipeline {
    /// The fitted scaler, if the search used one.
    pub scaler: Option<StandardScaler>,
    /// The fitted model.
    pub model: FittedModel,
}

impl FittedPipeline {
    /// Fits `pre` then `estimator` on all of `data`.
    pub fn fit(
        estimator: Estimator,
        params: &Params,
        pre: Preprocess,
        data: &Dataset,
    ) -> Result<FittedPipeline, Error> {
        let scaler = fit_preprocess(pre, data.x());
        let model = match &scaler {
            Some(s) => estimator.fit(params, &data.with_x(s.transform(data.x())))?,
            None => estimator.fit(params, data)?,
        };
        Ok(FittedPipeline { scaler, model })
    }

    /// `estimator` fitted from the statistics of all the (scaled) rows,
    /// with the scaler they were computed with, for an estimator that
    /// [`uses_gram`](Estimator::uses_gram): the rows were read once, when
    /// `all` was made.
    pub fn fit_gram(estimator: Estimator, params: &Params, all: &GramAll) -> Result<FittedPipeline, Error> {
        let model = estimator.fit_gram(params, &all.stats)?;
        Ok(FittedPipeline {
            scaler: all.scaler.clone(),
            model,
        })
    }

    /// Prediction per row of raw (unscaled) `x`; an error if the width is
    /// not the one fitted.
    pub fn predict(&self, x: ArrayView2<'_, f64>) -> Result<Array1<f64>, Error> {
        if x.ncols() != self.model.n_features() {
            return Err(Error::Input(format!(
                "the model was fitted on {} features, the data has {}",
                self.model.n_features(),
                x.ncols()
            )));
        }
        Ok(match &self.scaler {
            Some(s) => self.model.predict(s.transform(x).view()),
            None => self.model.predict(x),
        })
    }
}
