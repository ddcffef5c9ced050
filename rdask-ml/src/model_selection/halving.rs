//! Dask-ML's incremental searches for models that train a little at a
//! time ([`PartialFit`](super::sgd::PartialFit)): `SuccessiveHalvingSearchCV`
//! (train every candidate a few passes, keep the best `1/aggressiveness`,
//! train the survivors `aggressiveness` times longer, until one is left or
//! `max_iter` passes are reached) and `HyperbandSearchCV` (several such
//! brackets trading many short runs for few long ones). Each candidate's
//! model stays on the worker that trains it: the next round's task takes it
//! by key, and only its score and small weights come back to the client.

use std::time::Duration;

use rdask::client::Future;
use rdask::Client;

use super::params::{ParamDistributions, Params};
use super::preprocess::{FoldData, Preprocess};
use super::search::DEFAULT_SEARCH_TIMEOUT;
use super::sgd::SgdClassifier;
use super::split::Holdout;
use super::submit::{key, value, Ledger, Submitter};
use super::tasks::{self, Trained};
use super::Estimator;
use crate::{Dataset, Error};

/// Dask-ML's default `aggressiveness`: keep a third each round.
pub const DEFAULT_AGGRESSIVENESS: usize = 3;
/// Dask-ML's default `test_size` of the holdout, as a fraction.
pub const DEFAULT_TEST_FRACTION: f64 = 0.15;

/// One candidate's score after some passes (Dask-ML's `history_`).
#[derive(Clone, Debug, PartialEq)]
pub struct HistoryRecord {
    /// Index of the candidate.
    pub candidate: usize,
    /// Bracket (0 for plain successive halving).
    pub bracket: usize,
    /// Passes made so far (Dask-ML's `partial_fit_calls`).
    pub partial_fit_calls: u32,
    /// Holdout score then.
    pub score: f64,
}

/// How an incremental search ended.
#[derive(Clone, Debug, PartialEq)]
pub struct IncrementalResults {
    /// Every candidate tried, in order (over all brackets).
    pub params: Vec<Params>,
    /// Per candidate, passes it was trained for before it was stopped.
    pub partial_fit_calls: Vec<u32>,
    /// Per candidate, its last holdout score.
    pub final_score: Vec<f64>,
    /// Every score reported, in order.
    pub history: Vec<HistoryRecord>,
    /// The candidate with the highest last score.
    pub best_index: usize,
    /// Its parameters.
    pub best_params: Params,
    /// Its last holdout score.
    pub best_score: f64,
    /// Its trained model.
    pub best_model: SgdClassifier,
    /// What was sent to the cluster.
    pub ledger: Ledger,
}

/// What both incremental searches share.
#[derive(Clone, Debug, PartialEq)]
pub struct IncrementalOptions {
    /// Most passes any candidate gets.
    pub max_iter: u32,
    /// Keep `1/aggressiveness` of the candidates each round (at least 2).
    pub aggressiveness: usize,
    /// The holdout the candidates are scored on.
    pub holdout: Holdout,
    /// Preprocessing fitted on the holdout's train part.
    pub preprocess: Preprocess,
    /// Longest wait for one round's tasks.
    pub timeout: Duration,
}

impl Default for IncrementalOptions {
    fn default() -> Self {
        IncrementalOptions {
            max_iter: 81,
            aggressiveness: DEFAULT_AGGRESSIVENESS,
            holdout: Holdout {
                test_fraction: DEFAULT_TEST_FRACTION,
                seed: 0,
            },
            preprocess: Preprocess::None,
            timeout: DEFAULT_SEARCH_TIMEOUT,
        }
    }
}

/// Dask-ML's `SuccessiveHalvingSearchCV` over [`SgdClassifier`]
/// candidates.
#[derive(Clone, Debug, PartialEq)]
pub struct SuccessiveHalvingSearchCV {
    /// The candidates (from a grid or drawn from distributions).
    pub candidates: Vec<Params>,
    /// Passes in the first round (Dask-ML's `n_initial_iter`).
    pub n_initial_iter: u32,
    /// Rounds, holdout, bounds.
    pub options: IncrementalOptions,
}

impl SuccessiveHalvingSearchCV {
    /// A search over `candidates` starting at `n_initial_iter` passes.
    pub fn new(candidates: Vec<Params>, n_initial_iter: u32) -> Self {
        SuccessiveHalvingSearchCV {
            candidates,
            n_initial_iter,
            options: IncrementalOptions::default(),
        }
    }

    /// With these options.
    pub fn options(mut self, options: IncrementalOptions) -> Self {
        self.options = options;
        self
    }

    /// Runs the search on `client`'s cluster.
    pub fn fit(&self, client: &Client, data: &Dataset) -> Result<IncrementalResults, Error> {
        let mut run = Run::start(client, data, &self.options)?;
        run.bracket(0, &self.candidates, self.n_initial_iter)?;
        run.finish()
    }
}

/// Dask-ML's `HyperbandSearchCV`: brackets `s = s_max..=0` (`s_max =
/// floor(log_a(max_iter))`), each a successive halving of
/// `ceil((s_max + 1) / (s + 1) * a^s)` candidates drawn afresh, starting
/// at `max_iter / a^s` passes. The brackets run one after another (Dask-ML
/// runs them at once).
#[derive(Clone, Debug, PartialEq)]
pub struct HyperbandSearchCV {
    /// Where candidates are drawn from.
    pub param_distributions: ParamDistributions,
    /// Seed of the draws (bracket `s` draws with `seed + s`).
    pub seed: u64,
    /// Rounds, holdout, bounds.
    pub options: IncrementalOptions,
}

impl HyperbandSearchCV {
    /// A search drawing from `param_distributions`.
    pub fn new(param_distributions: ParamDistributions, seed: u64) -> Self {
        HyperbandSearchCV {
            param_distributions,
            seed,
            options: IncrementalOptions::default(),
        }
    }

    /// With these options.
    pub fn options(mut self, options: IncrementalOptions) -> Self {
        self.options = options;
        self
    }

    /// The brackets as (candidates, first-round passes), largest first.
    pub fn brackets(&self) -> Vec<(usize, u32)> {
        let a = self.options.aggressiveness.max(2) as f64;
        let r = f64::from(self.options.max_iter.max(1));
        let s_max = (r.ln() / a.ln() + 1e-9).floor() as i32;
        (0..=s_max)
            .rev()
            .map(|s| {
                let n = ((f64::from(s_max + 1) / f64::from(s + 1)) * a.powi(s)).ceil() as usize;
                (n, ((r / a.powi(s)).floor() as u32).max(1))
            })
            .collect()
    }

    /// Runs the search on `client`'s cluster.
    pub fn fit(&self, client: &Client, data: &Dataset) -> Result<IncrementalResults, Error> {
        let mut run = Run::start(client, data, &self.options)?;
        for (b, (n, r0)) in self.brackets().into_iter().enumerate() {
            let candidates = self.param_distributions.sample(n, self.seed.wrapping_add(b as u64))?;
            run.bracket(b, &candidates, r0)?;
        }
        run.finish()
    }
}

/// One search in progress: the holdout on the cluster and what is known.
struct Run<'a> {
    sub: Submitter<'a>,
    fold: Future<FoldData>,
    opts: IncrementalOptions,
    params: Vec<Params>,
    calls: Vec<u32>,
    last: Vec<Option<Trained>>,
    history: Vec<HistoryRecord>,
}

impl<'a> Run<'a> {
    fn start(client: &'a Client, data: &Dataset, opts: &IncrementalOptions) -> Result<Run<'a>, Error> {
        if opts.aggressiveness < 2 {
            return Err(Error::Input(format!(
                "aggressiveness must be at least 2, got {}",
                opts.aggressiveness
            )));
        }
        if opts.max_iter == 0 {
            return Err(Error::Input("max_iter must be at least 1".into()));
        }
        opts.holdout.split(data.n_samples())?;
        let mut sub = Submitter::new(client);
        let data_f = sub.scatter(data, opts.timeout)?;
        let args = vec![key(&data_f), value(&opts.holdout)?, value(&opts.preprocess)?];
        let fold = sub.submit::<FoldData>(<tasks::prepare_holdout as rdask::Task>::NAME, args)?;
        Ok(Run {
            sub,
            fold,
            opts: opts.clone(),
            params: Vec::new(),
            calls: Vec::new(),
            last: Vec::new(),
            history: Vec::new(),
        })
    }

    /// One successive halving of `candidates` from `r0` passes.
    fn bracket(&mut self, bracket: usize, candidates: &[Params], r0: u32) -> Result<(), Error> {
        if candidates.is_empty() {
            return Err(Error::Input("no candidates to search".into()));
        }
        if r0 == 0 {
            return Err(Error::Input("n_initial_iter must be at least 1".into()));
        }
        for p in candidates {
            if p.contains_key("max_iter") {
                return Err(Error::Input(
                    "max_iter is set by the incremental search, not per candidate".into(),
                ));
            }
            Estimator::SgdClassifier.check(p)?;
        }
        let first = self.params.len();
        self.params.extend(candidates.iter().cloned());
        self.calls.extend(std::iter::repeat_n(0, candidates.len()));
        self.last.extend(std::iter::repeat_n(None, candidates.len()));
        let mut alive: Vec<(usize, Option<Future<Trained>>)> = (first..self.params.len()).map(|i| (i, None)).collect();
        let mut target = r0.min(self.opts.max_iter);
        loop {
            let mut futures = Vec::with_capacity(alive.len());
            for (i, prev) in &alive {
                let more = target - self.calls[*i];
                let f = match prev {
                    None => {
                        let args = vec![key(&self.fold), value(&self.params[*i])?, value(&more)?];
                        self.sub
                            .submit::<Trained>(<tasks::sgd_start as rdask::Task>::NAME, args)?
                    }
                    Some(p) => {
                        let args = vec![key(&self.fold), key(p), value(&more)?];
                        self.sub
                            .submit::<Trained>(<tasks::sgd_continue as rdask::Task>::NAME, args)?
                    }
                };
                futures.push(f);
            }
            let got = self.sub.gather(&futures, self.opts.timeout)?;
            for (((i, prev), f), t) in alive.iter_mut().zip(futures).zip(got) {
                self.calls[*i] = target;
                self.history.push(HistoryRecord {
                    candidate: *i,
                    bracket,
                    partial_fit_calls: target,
                    score: t.score,
                });
                self.last[*i] = Some(t);
                *prev = Some(f);
            }
            if alive.len() <= 1 || target >= self.opts.max_iter {
                return Ok(());
            }
            // Best first; NaN scores last, ties to the earlier candidate.
            alive.sort_by(|a, b| {
                let s = |i: usize| self.last[i].as_ref().map_or(f64::NEG_INFINITY, |t| t.score);
                let (sa, sb) = (s(a.0), s(b.0));
                sb.partial_cmp(&sa)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(a.0.cmp(&b.0))
            });
            alive.truncate((alive.len() / self.opts.aggressiveness).max(1));
            target = target
                .saturating_mul(self.opts.aggressiveness as u32)
                .min(self.opts.max_iter);
        }
    }

    fn finish(self) -> Result<IncrementalResults, Error> {
        let score = |i: usize| self.last[i].as_ref().map_or(f64::NEG_INFINITY, |t| t.score);
        let best_index = (0..self.params.len())
            .max_by(|&a, &b| {
                let (sa, sb) = (score(a), score(b));
                let sa = if sa.is_nan() { f64::NEG_INFINITY } else { sa };
                let sb = if sb.is_nan() { f64::NEG_INFINITY } else { sb };
                sa.partial_cmp(&sb)
                    .unwrap_or(std::cmp::Ordering::Equal)
                    .then(self.calls[a].cmp(&self.calls[b]))
                    .then(b.cmp(&a))
            })
            .ok_or_else(|| Error::Input("no candidates to search".into()))?;
        let best = self.last[best_index]
            .clone()
            .ok_or_else(|| Error::Input("the best candidate has no trained model".into()))?;
        Ok(IncrementalResults {
            best_params: self.params[best_index].clone(),
            final_score: (0..self.params.len()).map(score).collect(),
            params: self.params,
            partial_fit_calls: self.calls,
            history: self.history,
            best_index,
            best_score: best.score,
            best_model: best.model,
            ledger: self.sub.ledger,
        })
    }
}
