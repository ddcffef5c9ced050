//! [`AsyncClient`]: the client's one implementation, as `async fn`s that
//! any executor can await (tokio, actix, a plain `block_on`).

use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::blocking::{AsCompleted, Client};
use super::core::{self, Core};
use super::future::{cancel_keys, decode_result, retry_keys, Future};
use super::scatter;
use super::DATA_MOVE_TIMEOUT;
use super::{
    fetch, submit, ClientOptions, Error, IntoArg, IntoArgs, ReturnWhen, ScatterOptions, SubmitOptions, WaitResult,
};
use crate::actor_api::{Actor, ActorRef, ActorType};
use crate::task::Task;
use crate::wire::messages::*;

/// How often [`AsyncClient::wait_for_workers`] asks the scheduler, and how
/// often data moves (`replicate`, `rebalance`) are checked for completion.
pub const POLL_INTERVAL: Duration = Duration::from_millis(20);

/// The async client: Dask's client operations as `async fn`s. The
/// operations that only send (`submit`, `map`, `cancel`) are plain `fn`s:
/// they never wait for the cluster.
///
/// Nothing it returns needs a particular executor: sockets and timers live
/// on the client's own runtime thread.
///
/// ```
/// #[rdask::task]
/// fn square(x: i64) -> i64 {
///     x * x
/// }
///
/// #[tokio::main(flavor = "current_thread")]
/// async fn main() -> Result<(), rdask::Error> {
///     let cluster = rdask::LocalCluster::start(2).await?;
///     let client = cluster.async_client().await?;
///     let one = client.submit(square, (7,))?;
///     assert_eq!(one.await?, 49);
///     let many = client.map(square, 0..4i64)?;
///     assert_eq!(client.gather(&many).await?, vec![0, 1, 4, 9]);
///     Ok(())
/// }
/// ```
#[derive(Clone)]
pub struct AsyncClient {
    pub(crate) core: Arc<Core>,
}

fn keys_of<T>(futures: &[Future<T>]) -> Vec<Key> {
    futures.iter().map(|f| f.key.clone()).collect()
}

impl AsyncClient {
    /// Connects to the scheduler at `address` (`tcp://host:port`).
    pub async fn connect(address: &str) -> Result<AsyncClient, Error> {
        Self::connect_with(address, ClientOptions::default()).await
    }

    /// Connects to the scheduler at `address` (`tcp://` or `tls://`) with
    /// `options` (TLS identity, token, name, frame limits).
    pub async fn connect_with(address: &str, options: ClientOptions) -> Result<AsyncClient, Error> {
        let core = core::connect(address.to_string(), options).await?;
        Ok(AsyncClient { core })
    }

    /// The blocking face of this same client.
    pub fn as_blocking(&self) -> Client {
        Client { inner: self.clone() }
    }

    /// The scheduler's address.
    pub fn scheduler_address(&self) -> &str {
        &self.core.address
    }

    /// The scheduler's id for this client.
    pub fn id(&self) -> u64 {
        self.core.shared.lock().client_id
    }

    /// Submits one call of `task`. `args` is a tuple of values or futures.
    /// An argument too large for the scheduler's frame limit is refused here
    /// ([`Error::TooLarge`]); the client stays usable.
    pub fn submit<T: Task, A: IntoArgs<T::Args>>(&self, task: T, args: A) -> Result<Future<T::Output>, Error> {
        self.submit_with(task, args, &SubmitOptions::default())
    }

    /// [`submit`](Self::submit) with options.
    pub fn submit_with<T: Task, A: IntoArgs<T::Args>>(
        &self,
        _task: T,
        args: A,
        opts: &SubmitOptions,
    ) -> Result<Future<T::Output>, Error> {
        submit::submit(&self.core, T::NAME, args.into_args()?, opts)
    }

    /// Submits a call by function name with arguments already encoded: the
    /// untyped door, as a client in another language would use it. `O` is
    /// the type the result is decoded as.
    pub fn submit_raw<O>(&self, function: &str, args: Vec<Arg>, opts: &SubmitOptions) -> Result<Future<O>, Error> {
        submit::submit(&self.core, function, args, opts)
    }

    /// One call of a one-argument `task` per item.
    pub fn map<T, A, I>(&self, task: T, items: I) -> Result<Vec<Future<T::Output>>, Error>
    where
        T: Task<Args = (A,)>,
        I: IntoIterator,
        I::Item: IntoArg<A>,
    {
        self.map_with(task, items, &SubmitOptions::default())
    }

    /// [`map`](Self::map) with options.
    pub fn map_with<T, A, I>(&self, _task: T, items: I, opts: &SubmitOptions) -> Result<Vec<Future<T::Output>>, Error>
    where
        T: Task<Args = (A,)>,
        I: IntoIterator,
        I::Item: IntoArg<A>,
    {
        let args = items
            .into_iter()
            .map(|x| x.into_arg().map(|a| vec![a]))
            .collect::<Result<Vec<_>, _>>()?;
        submit::map(&self.core, T::NAME, args, opts)
    }

    /// One call of `task` per argument tuple (Dask's `map` over several
    /// iterables, zipped).
    pub fn starmap<T, A, I>(&self, _task: T, items: I, opts: &SubmitOptions) -> Result<Vec<Future<T::Output>>, Error>
    where
        T: Task,
        I: IntoIterator<Item = A>,
        A: IntoArgs<T::Args>,
    {
        let args = items
            .into_iter()
            .map(|x| x.into_args())
            .collect::<Result<Vec<_>, _>>()?;
        submit::map(&self.core, T::NAME, args, opts)
    }

    /// Creates an actor of type `T` (a type marked `#[rdask::actor]`) on a
    /// worker, from its constructor's arguments, and returns its handle
    /// once it lives there (Dask's `submit(T, ..., actor=True)`). Fails
    /// with the constructor's error, with [`Error::Refused`] when no
    /// connected worker has the type, or after
    /// [`ACTOR_CREATE_TIMEOUT`](crate::actor_api::ACTOR_CREATE_TIMEOUT).
    pub async fn submit_actor<T: ActorType>(&self, args: impl IntoArgs<T::Args>) -> Result<Actor<T>, Error> {
        self.submit_actor_with::<T>(args, &SubmitOptions::default()).await
    }

    /// [`submit_actor`](Self::submit_actor) with options (`workers` to
    /// choose where it lives, `resources`, `priority`; `pure` and `key`
    /// are ignored: every actor is new).
    pub async fn submit_actor_with<T: ActorType>(
        &self,
        args: impl IntoArgs<T::Args>,
        opts: &SubmitOptions,
    ) -> Result<Actor<T>, Error> {
        let opts = SubmitOptions {
            key: None,
            ..opts.clone()
        };
        crate::actor_api::create::<T>(self, args.into_args()?, &opts).await
    }

    /// Creates an actor of the type registered as `type_name`
    /// (`module_path::Type`) from encoded constructor arguments: the untyped
    /// door, for a client that does not link the type. Calls go through
    /// [`ActorRef::call`].
    pub async fn submit_actor_raw(
        &self,
        type_name: &str,
        args: Vec<Arg>,
        opts: &SubmitOptions,
    ) -> Result<ActorRef, Error> {
        let opts = SubmitOptions {
            key: None,
            ..opts.clone()
        };
        crate::actor_api::create_raw(self, type_name, args, &opts).await
    }

    /// Waits for all futures and returns their results in order. The first
    /// failure is returned as the error.
    pub async fn gather<T: DeserializeOwned>(&self, futures: &[Future<T>]) -> Result<Vec<T>, Error> {
        self.gather_timeout(futures, None).await
    }

    /// [`gather`](Self::gather) with a deadline; the timeout error names the
    /// first key not done, its function and its state.
    pub async fn gather_timeout<T: DeserializeOwned>(
        &self,
        futures: &[Future<T>],
        timeout: Option<Duration>,
    ) -> Result<Vec<T>, Error> {
        let keys = keys_of(futures);
        self.core.wait(&keys, ReturnWhen::AllCompleted, timeout).await?;
        let bytes = fetch::fetch(&self.core, keys.clone()).await?;
        keys.iter().zip(bytes).map(|(k, b)| decode_result(k, &b)).collect()
    }

    /// Stores values on workers and returns futures for them.
    pub async fn scatter<T: Serialize>(&self, values: Vec<T>) -> Result<Vec<Future<T>>, Error> {
        self.scatter_to(values, &[]).await
    }

    /// [`scatter`](Self::scatter) onto the given workers (names or addresses).
    pub async fn scatter_to<T: Serialize>(&self, values: Vec<T>, workers: &[String]) -> Result<Vec<Future<T>>, Error> {
        self.scatter_with(values, &ScatterOptions::default().workers(workers))
            .await
    }

    /// [`scatter`](Self::scatter) with Dask's keywords: onto some workers,
    /// a copy on each (`broadcast`), keyed at random (`hash: false`).
    pub async fn scatter_with<T: Serialize>(
        &self,
        values: Vec<T>,
        options: &ScatterOptions,
    ) -> Result<Vec<Future<T>>, Error> {
        let scatter = std::pin::pin!(scatter::scatter(&self.core, &values, options));
        let sleep = std::pin::pin!(self.core.runtime.sleep(options.timeout));
        match futures_util::future::select(scatter, sleep).await {
            futures_util::future::Either::Left((done, _)) => done,
            futures_util::future::Either::Right(_) => Err(Error::Timeout(format!(
                "scatter: the workers did not confirm storing the data within {:?}",
                options.timeout
            ))),
        }
    }

    /// Cancels futures: they report `cancelled`, and the scheduler frees the
    /// keys if nobody else wants them.
    pub fn cancel<T>(&self, futures: &[Future<T>]) {
        cancel_keys(&self.core, &keys_of(futures));
    }

    /// Reruns erred futures.
    pub fn retry<T>(&self, futures: &[Future<T>]) {
        retry_keys(&self.core, &keys_of(futures));
    }

    /// Waits until all (or the first) of `futures` are done, or the timeout
    /// (an error naming a key not done, its function and its state).
    pub async fn wait<T>(
        &self,
        futures: &[Future<T>],
        return_when: ReturnWhen,
        timeout: Option<Duration>,
    ) -> Result<WaitResult, Error> {
        let keys = keys_of(futures);
        self.core.wait(&keys, return_when, timeout).await?;
        Ok(self.core.split_done(&keys))
    }

    /// `futures` in the order they complete: call
    /// [`AsCompleted::next_async`] (or iterate, blocking).
    pub fn as_completed<T>(&self, futures: Vec<Future<T>>) -> AsCompleted<T> {
        AsCompleted::new(futures)
    }

    /// The next future of `pending` to complete, removed from it; `None`
    /// when `pending` is empty.
    pub async fn next_completed<T>(&self, pending: &mut Vec<Future<T>>) -> Option<Future<T>> {
        next_completed(pending).await
    }

    /// The scheduler's figures and workers.
    pub async fn scheduler_info(&self) -> Result<SchedulerInfo, Error> {
        match self
            .core
            .ask("info", |request_id| FromClient::Info { request_id })
            .await?
        {
            ToClient::InfoReply { info, .. } => Ok(info),
            other => Err(unexpected("info", &other)),
        }
    }

    /// Waits until at least `n` workers are connected; errs after `timeout`
    /// saying how many there are.
    pub async fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<(), Error> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let have = self.scheduler_info().await?.workers.len();
            if have >= n {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Timeout(format!(
                    "{n} workers at {}: {have} connected after {timeout:?}; start more (`rdask worker {}`)",
                    self.core.address, self.core.address
                )));
            }
            self.core.runtime.sleep(POLL_INTERVAL).await;
        }
    }

    /// A worker's store and transfer counters, asked of the worker directly.
    pub async fn worker_info(&self, worker_address: &str) -> Result<WorkerStoreInfo, Error> {
        let peers = self.core.peers.clone();
        let addr = worker_address.to_string();
        self.core
            .on_runtime(async move { peers.info(&addr).await })
            .await?
            .map_err(Error::from)
    }

    /// Where keys live (Dask's `who_has`).
    pub async fn who_has(&self, keys: &[&str]) -> Result<Vec<WhoHas>, Error> {
        let keys = keys.iter().map(|k| k.to_string()).collect();
        match self
            .core
            .ask("who_has", |request_id| FromClient::WhoHas { request_id, keys })
            .await?
        {
            ToClient::WhoHasReply { who_has, .. } => Ok(who_has),
            other => Err(unexpected("who_has", &other)),
        }
    }

    /// Copies the futures' results so that each is held by `n` workers (at
    /// most every worker), as Dask's `replicate`: the workers holding the
    /// fewest bytes fetch copies from the holders. Returns once the copies
    /// are in place (or errs after [`DATA_MOVE_TIMEOUT`], e.g. if a target
    /// worker left meanwhile). Results not computed yet are skipped.
    pub async fn replicate<T>(&self, futures: &[Future<T>], n: u32) -> Result<(), Error> {
        let keys = keys_of(futures);
        match self
            .core
            .ask("replicate", |request_id| FromClient::Replicate { request_id, keys, n })
            .await?
        {
            ToClient::DataMoves { moves, .. } => self.await_moves(&moves, "replicate").await,
            other => Err(unexpected("replicate", &other)),
        }
    }

    /// Spreads the futures' results (every result in the cluster if
    /// `futures` is empty) so that workers hold about the same number of
    /// bytes, as Dask's `rebalance`: keys move from workers above the
    /// average to workers below it (a copy, then the source's copy is
    /// freed). Returns once the moves are done (or errs after
    /// [`DATA_MOVE_TIMEOUT`]).
    pub async fn rebalance<T>(&self, futures: &[Future<T>]) -> Result<(), Error> {
        let keys = keys_of(futures);
        match self
            .core
            .ask("rebalance", |request_id| FromClient::Rebalance { request_id, keys })
            .await?
        {
            ToClient::DataMoves { moves, .. } => self.await_moves(&moves, "rebalance").await,
            other => Err(unexpected("rebalance", &other)),
        }
    }

    /// Polls `who_has` until every move's target holds its key and its
    /// source (if any) no longer does.
    async fn await_moves(&self, moves: &[DataMove], what: &str) -> Result<(), Error> {
        if moves.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = moves.iter().map(|m| m.key.as_str()).collect();
        let deadline = std::time::Instant::now() + DATA_MOVE_TIMEOUT;
        loop {
            let who_has = self.who_has(&keys).await?;
            let done = moves
                .iter()
                .zip(&who_has)
                .all(|(m, w)| w.workers.contains(&m.to) && (m.from.is_empty() || !w.workers.contains(&m.from)));
            if done {
                return Ok(());
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Wire(format!(
                    "{what}: the copies were not all made within {DATA_MOVE_TIMEOUT:?}"
                )));
            }
            self.core.runtime.sleep(POLL_INTERVAL).await;
        }
    }

    /// Retires workers gracefully (by name or address), as Dask's
    /// `retire_workers`: they get no new tasks, finish their running ones,
    /// their results that no other worker holds are copied to the workers
    /// that stay, then they are closed. Nothing is recomputed. Returns the
    /// names of the workers retired, once they have left; an unknown name,
    /// or a worker whose data would have nowhere to go, is an error (the
    /// others are still retired).
    pub async fn retire_workers(&self, workers: &[&str]) -> Result<Vec<String>, Error> {
        let workers = workers.iter().map(|w| w.to_string()).collect();
        match self
            .core
            .ask("retire_workers", |request_id| FromClient::RetireWorkers {
                request_id,
                workers,
            })
            .await?
        {
            ToClient::RetireWorkersDone {
                retired, error: None, ..
            } => Ok(retired),
            ToClient::RetireWorkersDone {
                retired,
                error: Some(e),
                ..
            } => Err(Error::Wire(format!("retire_workers retired {retired:?} only: {e}"))),
            other => Err(unexpected("retire_workers", &other)),
        }
    }
}

pub(super) fn unexpected(what: &str, reply: &ToClient) -> Error {
    Error::Wire(format!("unexpected answer to {what}: {reply:?}"))
}

/// The next future of `pending` to complete, removed from it.
pub(crate) async fn next_completed<T>(pending: &mut Vec<Future<T>>) -> Option<Future<T>> {
    let core = pending.first()?.core.clone();
    let keys = keys_of(pending);
    // A lost connection ends the wait with the futures still pending
    // handed out, so the caller sees their status.
    let _ = core.wait(&keys, ReturnWhen::FirstCompleted, None).await;
    let i = core.split_done(&keys).done.first().copied().unwrap_or(0);
    Some(pending.swap_remove(i))
}
