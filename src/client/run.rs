//! `Client::run` (Dask's `Client.run`): one call of a registered function
//! on every worker, or on chosen ones, each answered on its own.
//!
//! The client asks the scheduler for the workers, then sends each a
//! `RunFunction` on its peer port, all at once; the worker runs the
//! function on a blocking thread (not its task pool, so it runs even while
//! every task thread is busy) and answers `RunResult`. Nothing goes
//! through the scheduler's task state: no key, no retry, no placement.

use std::collections::BTreeMap;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::{AsyncClient, Client, Error, IntoArgs};
use crate::runtime::block_on;
use crate::task::{decode_value, Task};
use crate::wire::messages::{Arg, TaskFailure};
use crate::wire::WireError;

/// How long [`Client::run`] waits for each worker by default: a worker
/// that has not answered by then (frozen, unreachable, or a long function)
/// gets an [`Error::Timeout`] in its entry.
pub const DEFAULT_RUN_TIMEOUT: Duration = Duration::from_secs(60);

/// Where and how long [`Client::run_with`] runs.
#[derive(Clone, Debug)]
pub struct RunOptions {
    /// Names or addresses of the workers to run on; empty = every worker
    /// connected when the run starts. An unknown one fails the whole run.
    pub workers: Vec<String>,
    /// How long to wait for each worker's answer.
    pub timeout: Duration,
}

impl Default for RunOptions {
    fn default() -> Self {
        RunOptions {
            workers: Vec::new(),
            timeout: DEFAULT_RUN_TIMEOUT,
        }
    }
}

/// Each worker's result, keyed by its address (`tcp://host:port`), as
/// Dask's `run` returns; a worker whose run failed has its error there.
pub type RunResults<T> = BTreeMap<String, Result<T, Error>>;

impl AsyncClient {
    /// Runs `function(args)` once on every connected worker (Dask's
    /// `Client.run`) and returns each worker's result by address. The
    /// function must be a `#[rdask::task]` linked into the workers'
    /// binary; it runs beside the worker's tasks, not as one (no key, no
    /// `worker_client`). Arguments are values (a future is refused).
    pub async fn run<T: Task>(
        &self,
        function: T,
        args: impl IntoArgs<T::Args>,
    ) -> Result<RunResults<T::Output>, Error> {
        self.run_with(function, args, &RunOptions::default()).await
    }

    /// [`run`](Self::run) on chosen workers, with a per-worker timeout.
    pub async fn run_with<T: Task>(
        &self,
        _function: T,
        args: impl IntoArgs<T::Args>,
        opts: &RunOptions,
    ) -> Result<RunResults<T::Output>, Error> {
        self.run_raw(T::NAME, args.into_args()?, opts).await
    }

    /// [`run`](Self::run) by function name with encoded arguments (the
    /// untyped door); `O` is what each result decodes as.
    pub async fn run_raw<O: DeserializeOwned>(
        &self,
        function: &str,
        args: Vec<Arg>,
        opts: &RunOptions,
    ) -> Result<RunResults<O>, Error> {
        let args = args
            .into_iter()
            .map(|a| match a {
                Arg::Value(v) => Ok(v),
                _ => Err(Error::Refused(format!(
                    "run of {function}: arguments must be values; a future is not resolved for a run"
                ))),
            })
            .collect::<Result<Vec<_>, _>>()?;
        let workers = self.scheduler_info().await?.workers;
        let targets: Vec<String> = if opts.workers.is_empty() {
            workers.iter().map(|w| w.address.clone()).collect()
        } else {
            let unknown: Vec<&String> = opts
                .workers
                .iter()
                .filter(|x| !workers.iter().any(|w| &w.name == *x || &w.address == *x))
                .collect();
            if !unknown.is_empty() {
                let known: Vec<&str> = workers.iter().map(|w| w.name.as_str()).collect();
                return Err(Error::Refused(format!(
                    "run of {function}: no connected worker is named {unknown:?} (workers: {known:?})"
                )));
            }
            workers
                .iter()
                .filter(|w| opts.workers.iter().any(|x| x == &w.name || x == &w.address))
                .map(|w| w.address.clone())
                .collect()
        };
        let peers = self.core.peers.clone();
        let (name, timeout) = (function.to_string(), opts.timeout);
        let calls = targets.into_iter().map(|address| {
            let (peers, name, args) = (peers.clone(), name.clone(), args.clone());
            async move {
                let reply = peers.run_function(&address, name, args, timeout).await;
                (address, reply)
            }
        });
        let replies = self.core.on_runtime(futures_util::future::join_all(calls)).await?;
        Ok(replies
            .into_iter()
            .map(|(address, reply)| {
                let result = answer(function, &address, timeout, reply);
                (address, result)
            })
            .collect())
    }
}

/// One worker's reply as the caller's result.
fn answer<O: DeserializeOwned>(
    function: &str,
    address: &str,
    timeout: Duration,
    reply: Result<Result<bytes::Bytes, TaskFailure>, WireError>,
) -> Result<O, Error> {
    let key = format!("run of {function} on {address}");
    match reply {
        Ok(Ok(bytes)) => decode_value(&bytes).map_err(|e| Error::Decode {
            key,
            message: e.to_string(),
        }),
        Ok(Err(failure)) => Err(Error::Task { key, failure }),
        Err(WireError::Timeout(_)) => Err(Error::Timeout(format!("{key}: no answer within {timeout:?}"))),
        // The worker died or is unreachable: its run's outcome is unknown.
        Err(e) => Err(Error::Wire(format!(
            "{key}: the connection to the worker failed (it died, or cannot be reached); whether the function \
             ran is unknown: {e}"
        ))),
    }
}

impl Client {
    /// Runs `function(args)` once on every connected worker; see
    /// [`AsyncClient::run`].
    ///
    /// ```no_run
    /// #[rdask::task]
    /// fn pid() -> u32 {
    ///     std::process::id()
    /// }
    ///
    /// # let client = rdask::Client::connect("tcp://127.0.0.1:8786")?;
    /// for (worker, id) in client.run(pid, ())? {
    ///     println!("{worker}: {}", id?);
    /// }
    /// # Ok::<(), rdask::Error>(())
    /// ```
    pub fn run<T: Task>(&self, function: T, args: impl IntoArgs<T::Args>) -> Result<RunResults<T::Output>, Error> {
        block_on(self.inner.run(function, args))
    }

    /// [`run`](Self::run) on chosen workers, with a per-worker timeout.
    pub fn run_with<T: Task>(
        &self,
        function: T,
        args: impl IntoArgs<T::Args>,
        opts: &RunOptions,
    ) -> Result<RunResults<T::Output>, Error> {
        block_on(self.inner.run_with(function, args, opts))
    }

    /// [`run`](Self::run) by function name with encoded arguments.
    pub fn run_raw<O: DeserializeOwned>(
        &self,
        function: &str,
        args: Vec<Arg>,
        opts: &RunOptions,
    ) -> Result<RunResults<O>, Error> {
        block_on(self.inner.run_raw(function, args, opts))
    }
}
