//! How the searches talk to the cluster: every scatter and submission goes
//! through a [`Submitter`], which keeps a [`Ledger`] of what was sent, so
//! that "the training data is scattered once and passed by key" is a fact
//! a test can check rather than a promise.

use std::time::Duration;

use rdask::client::{Future, ScatterOptions};
use rdask::task::encode_value;
use rdask::wire::messages::Arg;
use rdask::Client;
use serde::de::DeserializeOwned;
use serde::Serialize;

use crate::{Dataset, DatasetView, Error};

/// What a search sent to the cluster.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Ledger {
    /// Keys of the values scattered (the training data: one key).
    pub scattered_keys: Vec<String>,
    /// Tasks submitted.
    pub tasks: usize,
    /// Bytes of argument values sent inline with those tasks (the
    /// hyperparameters, fold numbers and options; never the data).
    pub inline_arg_bytes: usize,
    /// The largest single inline argument, in bytes.
    pub largest_inline_arg: usize,
    /// Per submitted task, in order, its own key.
    pub task_keys: Vec<String>,
    /// Per submitted task, in order, the keys its arguments name.
    pub arg_keys: Vec<Vec<String>>,
    /// Wall time of the scatters, encoding included (the part of a
    /// search's time more workers do not shorten).
    pub scatter_time: Duration,
}

/// A client and the ledger of what went through it.
pub(crate) struct Submitter<'a> {
    client: &'a Client,
    pub(crate) ledger: Ledger,
}

impl<'a> Submitter<'a> {
    pub(crate) fn new(client: &'a Client) -> Submitter<'a> {
        Submitter {
            client,
            ledger: Ledger::default(),
        }
    }

    /// Scatters one value to every worker (Dask's `client.scatter(x,
    /// broadcast=True, hash=False, direct=True)`): the client pushes each
    /// worker its copy itself, at once, through shared memory on its own
    /// host (not through the scheduler, one worker after another), so every fold can be prepared and every fit run on any worker
    /// without fetching the data first; keyed at random, so the client does
    /// not pass over the bytes to hash them (a tenth of a second for the
    /// benchmark's 88 MB table). The scatter returns once every copy is
    /// stored (`ScatterDone` waits for the holders' confirmations), so no
    /// task can ask a holder for it too early; `timeout` bounds that wait.
    pub(crate) fn scatter<T: Serialize>(&mut self, value: T, timeout: Duration) -> Result<Future<T>, Error> {
        let opts = ScatterOptions::default()
            .broadcast(true)
            .hash(false)
            .direct(true)
            .timeout(timeout);
        let started = std::time::Instant::now();
        let f = self
            .client
            .scatter_with(vec![value], &opts)?
            .pop()
            .ok_or_else(|| Error::Input("scatter returned no future".into()))?;
        self.ledger.scatter_time += started.elapsed();
        self.ledger.scattered_keys.push(f.key().to_string());
        Ok(f)
    }

    /// Scatters `data` as row blocks for a reduction over it: one block per
    /// thread of each worker, each worker's blocks a run of rows that a
    /// client thread of its own encodes and pushes to it (Dask's
    /// `client.scatter(blocks, workers=[w], direct=True)` per worker, all at
    /// once), so the encoding, the scatter's cost, runs on as many threads
    /// as there are workers and every worker holds only its share. Each
    /// block with the row it starts at. A worker that left since the list
    /// was read gets none: its blocks go wherever the scheduler places
    /// them. With no worker yet, one block, placed by the scheduler when
    /// one comes (within `timeout`).
    pub(crate) fn scatter_blocks<'d>(
        &mut self,
        data: &'d Dataset,
        timeout: Duration,
    ) -> Result<Vec<(Future<DatasetView<'d>>, usize)>, Error> {
        let started = std::time::Instant::now();
        let mut workers: Vec<(String, usize)> = self
            .client
            .scheduler_info()?
            .workers
            .into_iter()
            .map(|w| (w.address, w.nthreads.max(1) as usize))
            .collect();
        workers.sort();
        let n = data.n_samples();
        let threads: usize = workers.iter().map(|(_, t)| t).sum::<usize>().clamp(1, n.max(1));
        let bounds = |b: usize| b * n / threads;
        // Worker i takes the next `threads_i` blocks (fewer when there
        // are fewer rows than threads).
        let mut plan: Vec<(Option<String>, std::ops::Range<usize>)> = Vec::new();
        let mut next = 0;
        for (address, t) in &workers {
            let take = (*t).min(threads - next);
            if take > 0 {
                plan.push((Some(address.clone()), next..next + take));
                next += take;
            }
        }
        if plan.is_empty() {
            plan.push((None, 0..1));
        }
        let client = self.client;
        let scatter_one = |address: &Option<String>, blocks: std::ops::Range<usize>| {
            let values = || {
                blocks
                    .clone()
                    .map(|b| {
                        DatasetView::rows_of(data, bounds(b)..bounds(b + 1))
                            .ok_or_else(|| Error::Input("row blocks of a table not stored row-major".into()))
                    })
                    .collect::<Result<Vec<_>, Error>>()
            };
            let opts = ScatterOptions::default().hash(false).direct(true).timeout(timeout);
            let futures = match address {
                Some(a) => match client.scatter_with(values()?, &opts.clone().workers([a.clone()])) {
                    Ok(f) => f,
                    // Gone since the list was read: anywhere will do.
                    Err(_) => client.scatter_with(values()?, &opts)?,
                },
                None => client.scatter_with(values()?, &opts)?,
            };
            Ok::<_, Error>(futures.into_iter().zip(blocks.map(bounds)).collect::<Vec<_>>())
        };
        let per_worker: Vec<Result<Vec<_>, Error>> = std::thread::scope(|s| {
            let handles: Vec<_> = plan
                .iter()
                .map(|(address, blocks)| s.spawn(|| scatter_one(address, blocks.clone())))
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err(Error::Input("a scatter thread panicked".into())))
                })
                .collect()
        });
        let mut out = Vec::new();
        for r in per_worker {
            out.extend(r?);
        }
        self.ledger.scatter_time += started.elapsed();
        self.ledger
            .scattered_keys
            .extend(out.iter().map(|(f, _)| f.key().to_string()));
        Ok(out)
    }

    /// Submits `function` (a registered task's name) with `args`.
    pub(crate) fn submit<O>(&mut self, function: &str, args: Vec<Arg>) -> Result<Future<O>, Error> {
        self.ledger.tasks += 1;
        let mut keys = Vec::new();
        for a in &args {
            match a {
                Arg::Value(b) => {
                    self.ledger.inline_arg_bytes += b.len();
                    self.ledger.largest_inline_arg = self.ledger.largest_inline_arg.max(b.len());
                }
                other => keys.extend(other.keys().cloned()),
            }
        }
        self.ledger.arg_keys.push(keys);
        let f: Future<O> = self.client.submit_raw(function, args, &Default::default())?;
        self.ledger.task_keys.push(f.key().to_string());
        Ok(f)
    }

    /// Gathers `futures`, waiting at most `timeout`.
    pub(crate) fn gather<T: DeserializeOwned>(
        &self,
        futures: &[Future<T>],
        timeout: Duration,
    ) -> Result<Vec<T>, Error> {
        Ok(self.client.gather_timeout(futures, Some(timeout))?)
    }
}

/// An inline argument.
pub(crate) fn value<T: Serialize + ?Sized>(v: &T) -> Result<Arg, Error> {
    encode_value(v)
        .map(Arg::Value)
        .map_err(|e| Error::Input(format!("cannot encode an argument: {e}")))
}

/// An argument passed by key.
pub(crate) fn key<T>(f: &Future<T>) -> Arg {
    Arg::Key(f.key().to_string())
}
