//! The one error enum of this crate's estimators (k-means and the linear
//! models share it: `rdask_ml::cluster::Error` is `rdask_ml::linear::Error`).

/// What can go wrong fitting or using an estimator.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Input that cannot be fitted: empty, wrongly shaped, mismatched
    /// lengths, `n_clusters` above the number of samples…
    #[error("invalid input: {0}")]
    Input(String),
    /// A parameter out of its range (`n_clusters` of 0, a negative `tol`…).
    #[error("invalid parameter: {0}")]
    Param(String),
    /// `predict`, `score` or an attribute asked of an estimator not fitted.
    #[error("this {0} is not fitted yet: call fit first")]
    NotFitted(&'static str),
    /// A cluster-side result that does not have the expected form (a
    /// partial sum of the wrong length: a bug or mixed versions).
    #[error("unexpected result: {0}")]
    Result(String),
    /// From the arrays (a failed block, a shape).
    #[error(transparent)]
    Array(#[from] rdask_array::Error),
    /// From the runtime: a failed task, a lost connection…
    #[error(transparent)]
    Rdask(#[from] rdask::Error),
}
