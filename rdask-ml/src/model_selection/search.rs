//! Dask-ML's (and scikit-learn's) `GridSearchCV` and `RandomizedSearchCV`
//! over k-fold cross-validation. The graph: the data scattered once; one
//! `prepare_fold` task per fold (split plus preprocessing, shared by all
//! candidates: Dask-ML's graph merging); one `fit_score` task per
//! (candidate, fold) reading its fold by key; then `refit` of the best
//! candidate on all the data. The client only sends hyperparameters.
//!
//! For an estimator that fits from shared statistics
//! ([`Estimator::uses_gram`], with [`SearchOptions::shared_gram`]) the
//! merging goes further, and the data is scattered differently: as row
//! blocks, one per worker thread, each pushed to its worker at once (Dask-ML
//! fed a chunked Dask array); `block_moments` reduces each block where it
//! lands to its rows' moments per fold, `gram_fold` and `gram_all` merge
//! those into each fold's Gram statistics and the refit's, and
//! `fit_score_gram` and `refit_gram` fit from them (docs/ml.md, "Shared
//! Gram per fold").

use std::time::Duration;

use rdask::wire::messages::Arg;
use rdask::Client;

use super::estimator::{Estimator, FittedPipeline};
use super::gram::{GramAll, GramFold};
use super::moments::TestMoments;
use super::params::{ParamDistributions, ParamGrid, Params};
use super::preprocess::{FoldData, Preprocess};
use super::results::CvResults;
use super::split::KFold;
use super::submit::{key, value, Ledger, Submitter};
use super::tasks::{self, FoldScore};
use crate::{Dataset, Error};

/// Longest a search waits for its tasks before giving up with an error
/// naming the first one not done ([`SearchOptions::timeout`]).
pub const DEFAULT_SEARCH_TIMEOUT: Duration = Duration::from_secs(3600);

/// What every search shares: folds, preprocessing, refit and its bound.
#[derive(Clone, Debug, PartialEq)]
pub struct SearchOptions {
    /// The folds (scikit-learn's `cv`; default 5 unshuffled folds).
    pub cv: KFold,
    /// Preprocessing fitted per fold and shared by the candidates.
    pub preprocess: Preprocess,
    /// Refit the best candidate on all the data (scikit-learn's `refit`).
    pub refit: bool,
    /// Longest wait for the tasks (default [`DEFAULT_SEARCH_TIMEOUT`]).
    pub timeout: Duration,
    /// Fit from one Gram matrix per fold, shared by all candidates, when
    /// the estimator can ([`Estimator::uses_gram`]; scikit-learn's
    /// `precompute=True`). Default true; false fits every candidate on
    /// the rows with the estimator's own `fit` (linfa's).
    pub shared_gram: bool,
}

impl Default for SearchOptions {
    fn default() -> Self {
        SearchOptions {
            cv: KFold::default(),
            preprocess: Preprocess::None,
            refit: true,
            timeout: DEFAULT_SEARCH_TIMEOUT,
            shared_gram: true,
        }
    }
}

/// What a search found (scikit-learn's fitted attributes).
#[derive(Clone, Debug, PartialEq)]
pub struct SearchResults {
    /// The scores table (`cv_results_`).
    pub cv_results: CvResults,
    /// `best_index_`: the first candidate of rank 1.
    pub best_index: usize,
    /// `best_params_`.
    pub best_params: Params,
    /// `best_score_`: its mean test score.
    pub best_score: f64,
    /// `best_estimator_`: refitted on all the data (`None` without refit).
    pub best_estimator: Option<FittedPipeline>,
    /// What was sent to the cluster.
    pub ledger: Ledger,
}

/// scikit-learn's `GridSearchCV`: every combination of `param_grid`.
#[derive(Clone, Debug, PartialEq)]
pub struct GridSearchCV {
    /// The model to tune.
    pub estimator: Estimator,
    /// The values to try.
    pub param_grid: ParamGrid,
    /// Folds, preprocessing, refit.
    pub options: SearchOptions,
}

impl GridSearchCV {
    /// A search of `estimator` over `param_grid` with default options.
    pub fn new(estimator: Estimator, param_grid: ParamGrid) -> GridSearchCV {
        GridSearchCV {
            estimator,
            param_grid,
            options: SearchOptions::default(),
        }
    }

    /// With these options.
    pub fn options(mut self, options: SearchOptions) -> GridSearchCV {
        self.options = options;
        self
    }

    /// Runs the search on `client`'s cluster.
    pub fn fit(&self, client: &Client, data: &Dataset) -> Result<SearchResults, Error> {
        run_search(
            client,
            self.estimator,
            self.param_grid.candidates()?,
            data,
            &self.options,
        )
    }
}

/// scikit-learn's `RandomizedSearchCV`: `n_iter` candidates drawn from
/// `param_distributions` with `seed`.
#[derive(Clone, Debug, PartialEq)]
pub struct RandomizedSearchCV {
    /// The model to tune.
    pub estimator: Estimator,
    /// Where each hyperparameter is drawn from.
    pub param_distributions: ParamDistributions,
    /// Number of candidates.
    pub n_iter: usize,
    /// The draws' seed (scikit-learn's `random_state`).
    pub seed: u64,
    /// Folds, preprocessing, refit.
    pub options: SearchOptions,
}

impl RandomizedSearchCV {
    /// `n_iter` candidates of `estimator` drawn with `seed`.
    pub fn new(estimator: Estimator, param_distributions: ParamDistributions, n_iter: usize, seed: u64) -> Self {
        RandomizedSearchCV {
            estimator,
            param_distributions,
            n_iter,
            seed,
            options: SearchOptions::default(),
        }
    }

    /// With these options.
    pub fn options(mut self, options: SearchOptions) -> RandomizedSearchCV {
        self.options = options;
        self
    }

    /// Runs the search on `client`'s cluster.
    pub fn fit(&self, client: &Client, data: &Dataset) -> Result<SearchResults, Error> {
        let candidates = self.param_distributions.sample(self.n_iter, self.seed)?;
        run_search(client, self.estimator, candidates, data, &self.options)
    }
}

/// One `function` task per (candidate, fold), each reading its fold by
/// key; their scores gathered, per candidate.
fn fit_and_score<F>(
    sub: &mut Submitter<'_>,
    function: &str,
    folds: &[rdask::client::Future<F>],
    est: &rdask::wire::messages::Arg,
    candidates: &[Params],
    opts: &SearchOptions,
) -> Result<Vec<Vec<FoldScore>>, Error> {
    let mut scores = Vec::with_capacity(candidates.len() * folds.len());
    for p in candidates {
        for fold in folds {
            let args = vec![key(fold), est.clone(), value(p)?];
            scores.push(sub.submit::<FoldScore>(function, args)?);
        }
    }
    let got = sub.gather(&scores, opts.timeout)?;
    Ok(got.chunks(folds.len()).map(<[FoldScore]>::to_vec).collect())
}

/// Checks everything, then submits the whole graph and gathers it.
fn run_search(
    client: &Client,
    estimator: Estimator,
    candidates: Vec<Params>,
    data: &Dataset,
    opts: &SearchOptions,
) -> Result<SearchResults, Error> {
    if candidates.is_empty() {
        return Err(Error::Input("no candidates to search".into()));
    }
    opts.cv.check(data.n_samples())?;
    for p in &candidates {
        estimator.check(p)?;
    }
    let mut sub = Submitter::new(client);
    let gram = opts.shared_gram && estimator.uses_gram();
    let est = value(&estimator)?;
    // With shared statistics, the refit's reduction of all rows, which does
    // not depend on the winner, is submitted with the folds and runs
    // alongside them.
    let mut all_f = None;
    let mut data_f = None;
    let row_major;
    // The scattered blocks are held until the search returns: released
    // earlier, their freeing (unmapping ~88 MB of shared memory in the
    // benchmark, ~10 ms) would sit on the refit's path on the worker.
    let blocks;
    let per_candidate = if gram {
        // One pass over the rows in all, spread over the workers: the table
        // scattered as row blocks, one per worker thread, each reduced
        // where it lands to its rows' moments per fold; every fold's
        // statistics and the refit's are merges of those (`O(k p²)`).
        let n = data.n_samples();
        let data = match data.row_major_parts() {
            Some(_) => data,
            None => {
                row_major = data.to_row_major();
                &row_major
            }
        };
        blocks = sub.scatter_blocks(data, opts.timeout)?;
        let moments = blocks
            .iter()
            .map(|(block, offset)| {
                let args = vec![key(block), value(&opts.cv)?, value(&n)?, value(offset)?];
                sub.submit::<Vec<TestMoments>>(<tasks::block_moments as rdask::Task>::NAME, args)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        let parts = || Arg::Keys(moments.iter().map(|m| m.key().to_string()).collect());
        let folds = (0..opts.cv.n_splits)
            .map(|k| {
                let args = vec![parts(), value(&k)?, value(&opts.preprocess)?];
                sub.submit::<GramFold>(<tasks::gram_fold as rdask::Task>::NAME, args)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        if opts.refit {
            let args = vec![parts(), value(&opts.preprocess)?];
            all_f = Some(sub.submit::<GramAll>(<tasks::gram_all as rdask::Task>::NAME, args)?);
        }
        fit_and_score(
            &mut sub,
            <tasks::fit_score_gram as rdask::Task>::NAME,
            &folds,
            &est,
            &candidates,
            opts,
        )?
    } else {
        // Scattered by reference: encoded straight from the caller's
        // table, without a clone of it first.
        let data = data_f.insert(sub.scatter(data, opts.timeout)?);
        let folds = (0..opts.cv.n_splits)
            .map(|k| {
                let args = vec![
                    key(data),
                    value(&opts.cv)?,
                    value(&k)?,
                    value(&opts.preprocess)?,
                    value(&estimator.reads_columns())?,
                ];
                sub.submit::<FoldData>(<tasks::prepare_fold as rdask::Task>::NAME, args)
            })
            .collect::<Result<Vec<_>, Error>>()?;
        fit_and_score(
            &mut sub,
            <tasks::fit_score as rdask::Task>::NAME,
            &folds,
            &est,
            &candidates,
            opts,
        )?
    };
    let cv_results = CvResults::new(candidates, per_candidate);
    let best_index = cv_results.best_index();
    let best_params = cv_results.params[best_index].clone();
    let best_score = cv_results.mean_test_score[best_index];
    let best_estimator = if opts.refit {
        let f = match (&all_f, &data_f) {
            (Some(all), _) => {
                let args = vec![key(all), est, value(&best_params)?];
                sub.submit::<FittedPipeline>(<tasks::refit_gram as rdask::Task>::NAME, args)?
            }
            (None, Some(data_f)) => {
                let args = vec![key(data_f), est, value(&best_params)?, value(&opts.preprocess)?];
                sub.submit::<FittedPipeline>(<tasks::refit as rdask::Task>::NAME, args)?
            }
            (None, None) => return Err(Error::Input("a refit without its data".into())),
        };
        sub.gather(std::slice::from_ref(&f), opts.timeout)?.pop()
    } else {
        None
    };
    Ok(SearchResults {
        cv_results,
        best_index,
        best_params,
        best_score,
        best_estimator,
        ledger: sub.ledger,
    })
}
