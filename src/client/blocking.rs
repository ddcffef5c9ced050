//! [`Client`]: the blocking face of [`AsyncClient`]. Every method is the
//! async one, waited for with [`block_on`], which parks the calling thread
//! instead of needing (or refusing to run inside) an executor — so each
//! works from plain threads and inside `#[tokio::main]` or an actix
//! `System` alike; there, prefer [`AsyncClient`], which does not hold up
//! the runtime's thread.

use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::async_client::next_completed;
use super::{
    AsyncClient, ClientOptions, Error, Future, IntoArg, IntoArgs, ReturnWhen, ScatterOptions, SubmitOptions, WaitResult,
};
use crate::actor_api::{Actor, ActorRef, ActorType};
use crate::runtime::block_on;
use crate::task::Task;
use crate::wire::messages::{Arg, SchedulerInfo, WhoHas, WorkerStoreInfo};

/// Waits for `fut` like [`block_on`], seceded from the worker's pool when
/// called inside a task, so a task waiting on tasks it submitted never
/// holds up its worker.
pub(crate) fn block_waiting<F: std::future::Future>(fut: F) -> F::Output {
    crate::worker::pool::seceded(|| block_on(fut))
}

/// A blocking client: every call returns when its work is done.
///
/// ```
/// #[rdask::task]
/// fn double(x: i64) -> i64 {
///     x * 2
/// }
///
/// let cluster = rdask::LocalCluster::new(2)?;
/// let client = cluster.client()?;
/// client.wait_for_workers(2, std::time::Duration::from_secs(10))?;
/// let futures = client.map(double, 0..10i64)?;
/// let doubled: Vec<i64> = client.gather(&futures)?;
/// assert_eq!(doubled[3], 6);
/// # Ok::<(), rdask::Error>(())
/// ```
#[derive(Clone)]
pub struct Client {
    pub(crate) inner: AsyncClient,
}

impl Client {
    /// Connects to the scheduler at `address` (`tcp://host:port`).
    pub fn connect(address: &str) -> Result<Client, Error> {
        Self::connect_with(address, ClientOptions::default())
    }

    /// Connects to the scheduler at `address` (`tcp://` or `tls://`) with
    /// `options` (TLS identity, token, name, frame limits).
    pub fn connect_with(address: &str, options: ClientOptions) -> Result<Client, Error> {
        Ok(block_on(AsyncClient::connect_with(address, options))?.as_blocking())
    }

    /// The scheduler's address.
    pub fn scheduler_address(&self) -> &str {
        self.inner.scheduler_address()
    }

    /// The scheduler's id for this client.
    pub fn id(&self) -> u64 {
        self.inner.id()
    }

    /// The async face of this same client.
    pub fn as_async(&self) -> AsyncClient {
        self.inner.clone()
    }

    /// Submits one call of `task`. `args` is a tuple of values or futures.
    /// An argument too large for the scheduler's frame limit is refused here
    /// ([`Error::TooLarge`]); the client stays usable.
    ///
    /// ```
    /// #[rdask::task]
    /// fn greet(name: String) -> String {
    ///     format!("hello {name}")
    /// }
    ///
    /// let cluster = rdask::LocalCluster::new(1)?;
    /// let client = cluster.client()?;
    /// let f = client.submit(greet, ("ada",))?;
    /// assert_eq!(f.result()?, "hello ada");
    /// # Ok::<(), rdask::Error>(())
    /// ```
    pub fn submit<T: Task, A: IntoArgs<T::Args>>(&self, task: T, args: A) -> Result<Future<T::Output>, Error> {
        self.inner.submit(task, args)
    }

    /// [`submit`](Self::submit) with options.
    pub fn submit_with<T: Task, A: IntoArgs<T::Args>>(
        &self,
        task: T,
        args: A,
        opts: &SubmitOptions,
    ) -> Result<Future<T::Output>, Error> {
        self.inner.submit_with(task, args, opts)
    }

    /// See [`AsyncClient::submit_raw`].
    pub fn submit_raw<O>(&self, function: &str, args: Vec<Arg>, opts: &SubmitOptions) -> Result<Future<O>, Error> {
        self.inner.submit_raw(function, args, opts)
    }

    /// One call of a one-argument `task` per item.
    pub fn map<T, A, I>(&self, task: T, items: I) -> Result<Vec<Future<T::Output>>, Error>
    where
        T: Task<Args = (A,)>,
        I: IntoIterator,
        I::Item: IntoArg<A>,
    {
        self.inner.map(task, items)
    }

    /// [`map`](Self::map) with options.
    pub fn map_with<T, A, I>(&self, task: T, items: I, opts: &SubmitOptions) -> Result<Vec<Future<T::Output>>, Error>
    where
        T: Task<Args = (A,)>,
        I: IntoIterator,
        I::Item: IntoArg<A>,
    {
        self.inner.map_with(task, items, opts)
    }

    /// One call of `task` per argument tuple (Dask's `map` over several
    /// iterables, zipped).
    pub fn starmap<T, A, I>(&self, task: T, items: I, opts: &SubmitOptions) -> Result<Vec<Future<T::Output>>, Error>
    where
        T: Task,
        I: IntoIterator<Item = A>,
        A: IntoArgs<T::Args>,
    {
        self.inner.starmap(task, items, opts)
    }

    /// Creates an actor of type `T` (marked `#[rdask::actor]`) on a worker
    /// and returns its handle once it lives there; see
    /// [`AsyncClient::submit_actor`].
    ///
    /// ```no_run
    /// # pub struct Counter { n: i64 }
    /// # #[rdask::actor]
    /// # impl Counter {
    /// #     pub fn new(start: i64) -> Counter { Counter { n: start } }
    /// #     pub fn increment(&mut self, by: i64) -> i64 { self.n += by; self.n }
    /// # }
    /// # let client = rdask::Client::connect("tcp://127.0.0.1:8786")?;
    /// let counter = client.submit_actor::<Counter>((10,))?;
    /// assert_eq!(counter.increment(1).result()?, 11);
    /// # Ok::<(), rdask::Error>(())
    /// ```
    pub fn submit_actor<T: ActorType>(&self, args: impl IntoArgs<T::Args>) -> Result<Actor<T>, Error> {
        block_on(self.inner.submit_actor::<T>(args))
    }

    /// [`submit_actor`](Self::submit_actor) with options (where it may
    /// live: `workers`, `resources`).
    pub fn submit_actor_with<T: ActorType>(
        &self,
        args: impl IntoArgs<T::Args>,
        opts: &SubmitOptions,
    ) -> Result<Actor<T>, Error> {
        block_on(self.inner.submit_actor_with::<T>(args, opts))
    }

    /// Creates an actor by type name from encoded constructor arguments;
    /// see [`AsyncClient::submit_actor_raw`].
    pub fn submit_actor_raw(&self, type_name: &str, args: Vec<Arg>, opts: &SubmitOptions) -> Result<ActorRef, Error> {
        block_on(self.inner.submit_actor_raw(type_name, args, opts))
    }

    /// Waits for all futures and returns their results in order. The first
    /// failure is returned as the error.
    pub fn gather<T: DeserializeOwned>(&self, futures: &[Future<T>]) -> Result<Vec<T>, Error> {
        block_waiting(self.inner.gather(futures))
    }

    /// [`gather`](Self::gather) with a deadline; the timeout error names the
    /// first key not done, its function and its state.
    pub fn gather_timeout<T: DeserializeOwned>(
        &self,
        futures: &[Future<T>],
        timeout: Option<Duration>,
    ) -> Result<Vec<T>, Error> {
        block_waiting(self.inner.gather_timeout(futures, timeout))
    }

    /// Stores values on workers and returns futures for them.
    pub fn scatter<T: Serialize>(&self, values: Vec<T>) -> Result<Vec<Future<T>>, Error> {
        block_on(self.inner.scatter(values))
    }

    /// [`scatter`](Self::scatter) onto the given workers (names or addresses).
    pub fn scatter_to<T: Serialize>(&self, values: Vec<T>, workers: &[String]) -> Result<Vec<Future<T>>, Error> {
        block_on(self.inner.scatter_to(values, workers))
    }

    /// [`scatter`](Self::scatter) with Dask's keywords: onto some workers,
    /// a copy on each (`broadcast`), keyed at random (`hash: false`).
    pub fn scatter_with<T: Serialize>(
        &self,
        values: Vec<T>,
        options: &ScatterOptions,
    ) -> Result<Vec<Future<T>>, Error> {
        block_on(self.inner.scatter_with(values, options))
    }

    /// Cancels futures: they report `cancelled`, and the scheduler frees the
    /// keys if nobody else wants them.
    pub fn cancel<T>(&self, futures: &[Future<T>]) {
        self.inner.cancel(futures)
    }

    /// Reruns erred futures.
    pub fn retry<T>(&self, futures: &[Future<T>]) {
        self.inner.retry(futures)
    }

    /// Waits until all (or the first) of `futures` are done, or the timeout
    /// (an error naming a key not done, its function and its state).
    pub fn wait<T>(
        &self,
        futures: &[Future<T>],
        return_when: ReturnWhen,
        timeout: Option<Duration>,
    ) -> Result<WaitResult, Error> {
        block_waiting(self.inner.wait(futures, return_when, timeout))
    }

    /// Iterates over `futures` in the order they complete.
    pub fn as_completed<T>(&self, futures: Vec<Future<T>>) -> AsCompleted<T> {
        self.inner.as_completed(futures)
    }

    /// The scheduler's figures and workers.
    pub fn scheduler_info(&self) -> Result<SchedulerInfo, Error> {
        block_on(self.inner.scheduler_info())
    }

    /// Waits until at least `n` workers are connected; errs after `timeout`
    /// saying how many there are.
    pub fn wait_for_workers(&self, n: usize, timeout: Duration) -> Result<(), Error> {
        block_on(self.inner.wait_for_workers(n, timeout))
    }

    /// A worker's store and transfer counters, asked of the worker directly.
    pub fn worker_info(&self, worker_address: &str) -> Result<WorkerStoreInfo, Error> {
        block_on(self.inner.worker_info(worker_address))
    }

    /// Where keys live (Dask's `who_has`).
    pub fn who_has(&self, keys: &[&str]) -> Result<Vec<WhoHas>, Error> {
        block_on(self.inner.who_has(keys))
    }

    /// See [`AsyncClient::replicate`].
    pub fn replicate<T>(&self, futures: &[Future<T>], n: u32) -> Result<(), Error> {
        block_on(self.inner.replicate(futures, n))
    }

    /// See [`AsyncClient::rebalance`].
    pub fn rebalance<T>(&self, futures: &[Future<T>]) -> Result<(), Error> {
        block_on(self.inner.rebalance(futures))
    }

    /// See [`AsyncClient::retire_workers`].
    pub fn retire_workers(&self, workers: &[&str]) -> Result<Vec<String>, Error> {
        block_on(self.inner.retire_workers(workers))
    }
}

/// Futures in completion order; see [`Client::as_completed`]. Iterate
/// (blocking) or call [`next_async`](Self::next_async).
pub struct AsCompleted<T> {
    pending: Vec<Future<T>>,
}

impl<T> AsCompleted<T> {
    pub(crate) fn new(pending: Vec<Future<T>>) -> Self {
        AsCompleted { pending }
    }

    /// Adds a future to the set being watched.
    pub fn add(&mut self, future: Future<T>) {
        self.pending.push(future);
    }

    /// The next future to complete; `None` once all were handed out. A
    /// lost connection hands out the rest as they are (status `lost`).
    pub async fn next_async(&mut self) -> Option<Future<T>> {
        next_completed(&mut self.pending).await
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = Future<T>;
    fn next(&mut self) -> Option<Future<T>> {
        block_waiting(self.next_async())
    }
}
