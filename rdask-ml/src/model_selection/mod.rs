//! Model selection on the cluster (Dask-ML's `dask_ml.model_selection`):
//! [`GridSearchCV`] and [`RandomizedSearchCV`] with k-fold
//! cross-validation, and the incremental [`SuccessiveHalvingSearchCV`] and
//! [`HyperbandSearchCV`] for models that train a pass at a time.
//!
//! ```no_run
//! use rdask_ml::model_selection::{Estimator, GridSearchCV, ParamGrid, Preprocess, SearchOptions};
//! # fn run(client: &rdask::Client, data: &rdask_ml::Dataset) -> Result<(), rdask_ml::Error> {
//! let grid = ParamGrid::new().param("alpha", &[0.01, 0.1, 1.0]).param("l1_ratio", &[0.0, 0.5, 1.0]);
//! let search = GridSearchCV::new(Estimator::ElasticNet, grid).options(SearchOptions {
//!     preprocess: Preprocess::StandardScaler,
//!     ..Default::default()
//! });
//! let found = search.fit(client, data)?;
//! println!("{:?} scored {}\n{}", found.best_params, found.best_score, found.cv_results.to_table());
//! # Ok(()) }
//! ```
//!
//! # Layout
//! `params` (grids and distributions), `split` (`KFold`, holdout),
//! `preprocess` (the scaler and prepared folds), `moments` (rows reduced to means and
//! co-moments, per scattered block), `gram` (a fold's shared
//! sufficient statistics), `fold_cache` (a fold decoded once per worker
//! process), `enet_gram` (the elastic net fitted from them),
//! `estimator` (what can be tuned, fitting and scoring), `sgd` (the incremental model and
//! [`PartialFit`]), `tasks` (the worker side), `submit` (sending, with a
//! [`Ledger`]), `search` (grid and randomized searches), `results`
//! (`cv_results_`), `halving` (successive halving and Hyperband).

mod enet_gram;
mod estimator;
mod fold_cache;
mod gram;
mod halving;
mod moments;
mod params;
mod preprocess;
mod results;
mod search;
mod sgd;
mod split;
mod submit;
pub mod tasks;

pub use enet_gram::{elastic_net_gram, GramFit};
pub use estimator::{r2_score, Estimator, FittedModel, FittedPipeline, DEFAULT_SGD_PASSES};
pub use fold_cache::{FoldId, SharedFold, MAX_CACHED_FOLDS};
pub use gram::{GramAll, GramFold, GramStats};
pub use halving::{
    HistoryRecord, HyperbandSearchCV, IncrementalOptions, IncrementalResults, SuccessiveHalvingSearchCV,
    DEFAULT_AGGRESSIVENESS, DEFAULT_TEST_FRACTION,
};
pub use moments::{block_moments, fold_moments, TestMoments};
pub use params::{Distribution, ParamDistributions, ParamGrid, Params, MAX_CANDIDATES};
pub use preprocess::{FoldData, Preprocess, StandardScaler};
pub use results::CvResults;
pub use search::{GridSearchCV, RandomizedSearchCV, SearchOptions, SearchResults, DEFAULT_SEARCH_TIMEOUT};
pub use sgd::{PartialFit, SgdClassifier, DEFAULT_ALPHA, DEFAULT_ETA0};
pub use split::{Holdout, KFold, DEFAULT_N_SPLITS};
pub use submit::Ledger;
