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

use crate::Error;

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
