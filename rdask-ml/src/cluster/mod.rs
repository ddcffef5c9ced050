//! Clustering (dask-ml's `dask_ml.cluster`): distributed [`KMeans`] over
//! an `rdask-array` [`Array`](rdask_array::Array) of samples × features,
//! chunked along the samples.
//!
//! k-means|| initialisation and Lloyd iterations run as tasks per row
//! block (`kernels`), their small partials added as a tree
//! (`dist::tree_sum`), the centres sent once per step as one graph node
//! the tasks name by key (`dist::broadcast`); the driver keeps only `k × d` numbers.
//! linfa (Rust's scikit-learn) is the reference the tests compare with; it
//! has no weighted k-means for k-means||'s last step, so that small local
//! step is here (`local`). linfa 0.8 is built on ndarray 0.16 and this
//! crate on 0.17 (rdask-array's): data crosses between them through
//! `Vec<f64>` (the tests show how).
//!
//! # Layout
//! `kmeans` (the estimator), `init` (k-means||), `local` (weighted
//! k-means++ on the driver), `kernels` (the worker side), `centres` (their
//! nearest-centre search, vectorised), `dist` (what the
//! distributed estimators share: persisted rows, the step's value, tree sums),
//! `error`.

mod centres;
pub(crate) mod dist;
mod error;
mod init;
pub mod kernels;
mod kmeans;
mod local;

pub use dist::{Step, DEFAULT_SPLIT_EVERY};
pub use error::Error;
pub use kmeans::{Init, KMeans};
