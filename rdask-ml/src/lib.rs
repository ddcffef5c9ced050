//! rdask-ml: machine learning on an rdask cluster, in the model of Dask-ML,
//! with [linfa](https://github.com/rust-ml/linfa) estimators.
//!
//! - Hyperparameter search ([`model_selection`]): `GridSearchCV` and
//!   `RandomizedSearchCV` with k-fold cross-validation, each (candidate,
//!   fold) one task; the data scattered once and passed by key, the
//!   preprocessing of each fold fitted once and shared by all candidates;
//!   `SuccessiveHalvingSearchCV` and `HyperbandSearchCV` for models that
//!   train incrementally, stopping poor candidates early.
//! - Post-fit ([`postfit`]): `ParallelPostFit`, a fitted model predicting
//!   per block of an rdask Array.
//! - Distributed k-means ([`cluster::KMeans`]) and data-parallel linear and
//!   logistic regression ([`linear`]) over rdask arrays.
//!
//! Workers must link this crate to run its tasks: the `rdask-ml` binary is
//! the `rdask` command line with them (`rdask-ml worker tcp://HOST:8786`).
//! What Dask-ML and scikit-learn calls map to here, and what is missing:
//! `docs/ml.md`.
//!
//! linfa 0.8 is built on ndarray 0.16 and rdask-array on 0.17: this crate
//! speaks 0.17 (re-exported as `rdask_array::ndarray`) and hands linfa
//! copies made through a flat `Vec<f64>` ([`Dataset::to_linfa`]).
//!
//! # Layout
//! - `data`: [`Dataset`], the training table and its wire form.
//! - `data_view`: [`DatasetView`], a table's rows encoded and read in
//!   place, without a copy.
//! - [`model_selection`]: the searches (its own `# Layout` lists its files).
//! - [`postfit`]: `ParallelPostFit` and its per-block task.
//! - [`cluster`]: distributed k-means (k-means|| initialisation, Lloyd
//!   iterations as per-block partial sums reduced as a tree).
//! - [`linear`]: data-parallel linear and logistic regression (per-block
//!   gradients summed as a tree, L-BFGS on the driver).

#![warn(missing_docs)]

pub mod cluster;
mod data;
mod data_view;
pub mod linear;
pub mod model_selection;
pub mod postfit;

pub use data::Dataset;
pub use data_view::DatasetView;

/// What can go wrong in this crate.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Bad input: shapes, folds, grids, parameter values.
    #[error("{0}")]
    Input(String),
    /// A hyperparameter the estimator does not take.
    #[error("unknown parameter {name:?} for {estimator} (it takes: {accepted})")]
    UnknownParam {
        /// The name given.
        name: String,
        /// The estimator.
        estimator: String,
        /// The names it takes.
        accepted: String,
    },
    /// The estimator failed to fit.
    #[error("fit failed: {0}")]
    Fit(String),
    /// The cluster (a task failed, a timeout, a lost connection).
    #[error(transparent)]
    Client(#[from] rdask::Error),
    /// Building an array.
    #[error(transparent)]
    Array(#[from] rdask_array::Error),
}
