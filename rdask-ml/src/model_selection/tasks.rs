//! The worker side of the searches: the `#[rdask::task]` functions each
//! graph node calls, registered as `rdask_ml::model_selection::tasks::<name>`
//! (a worker runs them once its binary links this crate, e.g. the
//! `rdask-ml` binary). The training data and each prepared fold arrive by
//! key; only hyperparameters and fold numbers travel inline.

use std::time::Instant;

use serde::{Deserialize, Serialize};

use super::estimator::{sgd, Estimator, FittedModel, FittedPipeline};
use super::fold_cache::SharedFold;
use super::gram::{GramAll, GramFold};
use super::moments::{self, TestMoments};
use super::params::Params;
use super::preprocess::{FoldData, Preprocess};
use super::sgd::{PartialFit, SgdClassifier};
use super::split::{Holdout, KFold};
use crate::{Dataset, DatasetView, Error};

/// Fold `fold` of `data` under `cv`, with `pre` fitted on its train part:
/// computed once per fold, shared by every candidate. With `columns` (the
/// estimator reads its train data column by column) the train part is
/// stored column-major, so that no fit copies it into that layout.
#[rdask::task]
pub fn prepare_fold(data: Dataset, cv: KFold, fold: usize, pre: Preprocess, columns: bool) -> Result<FoldData, Error> {
    let (train, test) = cv.split(data.n_samples(), fold)?;
    let mut prepared = FoldData::prepare(&data, &train, &test, pre);
    if columns {
        prepared.train = prepared.train.to_column_major();
    }
    Ok(prepared)
}

/// Fold `fold` of `data` under `cv` for an estimator that fits from shared
/// statistics ([`Estimator::uses_gram`]): `pre` fitted on the train rows,
/// which are then reduced to their Gram statistics (the train rows
/// themselves are not kept), and the raw test rows. Computed once per
/// fold, read by every candidate of the fold.
#[rdask::task]
pub fn prepare_gram_fold(data: Dataset, cv: KFold, fold: usize, pre: Preprocess) -> Result<GramFold, Error> {
    let (train, test) = cv.split(data.n_samples(), fold)?;
    GramFold::prepare(&data, &train, &test, pre)
}

/// The moments of each fold's rows within `block`, rows `offset..` of a
/// table of `n_samples` rows split by `cv` ([`moments::block_moments`]):
/// one pass over the block, read where this worker holds it. Every fold's
/// statistics and the refit's follow by merging ([`gram_fold`],
/// [`gram_all`]).
#[rdask::task]
pub fn block_moments(
    block: DatasetView<'_>,
    cv: KFold,
    n_samples: usize,
    offset: usize,
) -> Result<Vec<TestMoments>, Error> {
    moments::block_moments(&block, &cv, n_samples, offset)
}

/// Fold `fold` for an estimator that fits from shared statistics, from
/// every block's moments ([`GramFold::from_moments`]): `O(blocks k p²)`.
#[rdask::task]
pub fn gram_fold(blocks: Vec<Vec<TestMoments>>, fold: usize, pre: Preprocess) -> Result<GramFold, Error> {
    GramFold::from_moments(&moments::fold_moments(&blocks)?, fold, pre)
}

/// All the rows' statistics for the refit, from every block's moments
/// ([`GramAll::from_moments`]).
#[rdask::task]
pub fn gram_all(blocks: Vec<Vec<TestMoments>>, pre: Preprocess) -> Result<GramAll, Error> {
    GramAll::from_moments(&moments::fold_moments(&blocks)?, pre)
}

/// The holdout split of `data` with `pre` fitted on its train part (the
/// incremental searches' one split).
#[rdask::task]
pub fn prepare_holdout(data: Dataset, split: Holdout, pre: Preprocess) -> Result<FoldData, Error> {
    let (train, test) = split.split(data.n_samples())?;
    Ok(FoldData::prepare(&data, &train, &test, pre))
}

/// One (candidate, fold) result: scikit-learn's `split<i>_test_score` and
/// the fit time.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FoldScore {
    /// The score on the fold's test rows.
    pub test_score: f64,
    /// Seconds spent fitting.
    pub fit_time_s: f64,
    /// Seconds spent scoring.
    pub score_time_s: f64,
}

/// Fits `estimator` with `params` on the fold's train rows and scores it
/// on its test rows.
#[rdask::task]
pub fn fit_score(fold: FoldData, estimator: Estimator, params: Params) -> Result<FoldScore, Error> {
    let t0 = Instant::now();
    let model = estimator.fit(&params, &fold.train)?;
    let t1 = Instant::now();
    let test_score = model.score(fold.test.x(), fold.test.y());
    Ok(FoldScore {
        test_score,
        fit_time_s: (t1 - t0).as_secs_f64(),
        score_time_s: t1.elapsed().as_secs_f64(),
    })
}

/// Fits `estimator` with `params` from the fold's shared statistics
/// (`O(p²)` per sweep) and scores it from the fold's test moments
/// (`O(p²)`, no pass over the rows).
/// The fold is decoded once per worker process, not per candidate
/// ([`SharedFold`]).
#[rdask::task]
pub fn fit_score_gram(fold: SharedFold, estimator: Estimator, params: Params) -> Result<FoldScore, Error> {
    let fold = &*fold.0;
    let t0 = Instant::now();
    let model = estimator.fit_gram(&params, &fold.train)?;
    let t1 = Instant::now();
    let test_score = match &model {
        FittedModel::ElasticNet { coef, intercept } => fold.r2(coef, *intercept),
        _ => {
            return Err(Error::Input(format!(
                "{estimator:?} cannot be scored from a fold's statistics"
            )))
        }
    };
    Ok(FoldScore {
        test_score,
        fit_time_s: (t1 - t0).as_secs_f64(),
        score_time_s: t1.elapsed().as_secs_f64(),
    })
}

/// All of `data` reduced once for the refit, `pre` fitted on it
/// ([`GramAll`]): it does not depend on the winner, so it runs alongside
/// the folds.
#[rdask::task]
pub fn prepare_gram_all(data: Dataset, pre: Preprocess) -> Result<GramAll, Error> {
    GramAll::prepare(&data, pre)
}

/// The best candidate refitted from the statistics of all the rows
/// ([`FittedPipeline::fit_gram`]).
#[rdask::task]
pub fn refit_gram(all: GramAll, estimator: Estimator, params: Params) -> Result<FittedPipeline, Error> {
    FittedPipeline::fit_gram(estimator, &params, &all)
}

/// The best candidate refitted, with its preprocessing, on all of `data`.
#[rdask::task]
pub fn refit(data: Dataset, estimator: Estimator, params: Params, pre: Preprocess) -> Result<FittedPipeline, Error> {
    FittedPipeline::fit(estimator, &params, pre, &data)
}

/// An incrementally trained candidate after some passes, and its score on
/// the holdout rows then.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trained {
    /// The model so far.
    pub model: SgdClassifier,
    /// Its holdout score.
    pub score: f64,
}

/// A new [`SgdClassifier`] with `params` trained for `passes` passes.
#[rdask::task]
pub fn sgd_start(fold: FoldData, params: Params, passes: u32) -> Result<Trained, Error> {
    train_more(&fold, sgd(&params)?, passes)
}

/// `prev`'s model trained for `passes` more passes (it comes by key from
/// the worker that trained it so far).
#[rdask::task]
pub fn sgd_continue(fold: FoldData, prev: Trained, passes: u32) -> Result<Trained, Error> {
    train_more(&fold, prev.model, passes)
}

fn train_more(fold: &FoldData, mut model: SgdClassifier, passes: u32) -> Result<Trained, Error> {
    for _ in 0..passes {
        model.partial_fit(fold.train.x(), fold.train.y())?;
    }
    let score = model.score(fold.test.x(), fold.test.y());
    Ok(Trained { model, score })
}
