//! Linear models (dask-ml's `dask_ml.linear_model`):
//! [`LinearRegression`] (least squares, optionally ridge) and binary
//! [`LogisticRegression`], trained data-parallel on an `rdask-array`
//! [`Array`](rdask_array::Array) of samples × features chunked along the
//! samples: per-block gradients as tasks, added as a tree, the
//! coefficients sent once per evaluation as one graph node the tasks name
//! by key, L-BFGS on the driver. Results match linfa-linear and
//! linfa-logistic on one machine (the tests).
//!
//! # Layout
//! `model` (the estimators), `lbfgs` (the optimiser), `kernels` (the
//! worker side).

pub mod kernels;
mod lbfgs;
mod model;

pub use crate::cluster::Error;
pub use lbfgs::HISTORY as LBFGS_HISTORY;
pub use model::{LinearRegression, LogisticRegression, Params};
