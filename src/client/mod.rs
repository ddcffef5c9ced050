//! The user's API: [`Client`] (blocking) and [`AsyncClient`] (async) with
//! Dask's `submit`, `map`, `gather`, `scatter`, `cancel`, `wait` and
//! `as_completed`, and typed [`Future`]s.
//!
//! Both clients share one core: a background actix runtime owns the
//! connection; submissions are encoded on the caller's thread and queued on
//! the connection's writer, and results are read from the table the client
//! actor keeps. Small results arrive with their completion; large ones are
//! fetched from the workers that hold them, never through the scheduler.

mod args;

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::sync::oneshot;

pub use args::{IntoArg, IntoArgs};

use crate::actors::client::{ClientActor, KeyEntry, KeyStatus, Shared, SharedState};
use crate::actors::peer::PeerPool;
use crate::runtime::Runtime;
use crate::task::{decode_value, encode_value, Task};
use crate::wire::messages::*;
use crate::wire::transport::{self, Sender};
use crate::wire::{FrameLimits, Security, WireError};

/// Tasks per `UpdateGraph` message when mapping over many inputs: large
/// enough to amortize framing, small enough that the scheduler starts on the
/// first chunk while the client encodes the next.
pub const MAP_CHUNK: usize = 4096;

/// Most bytes asked of one worker in one request when gathering; larger
/// gathers are split so each reply stays well under the frame limit.
pub const MAX_FETCH_BYTES: u64 = 256 * 1024 * 1024;
/// How long [`Client::replicate`] and [`Client::rebalance`] wait for the
/// copies they asked for before giving up with an error.
pub const DATA_MOVE_TIMEOUT: Duration = Duration::from_secs(60);
/// How often they look whether the copies are done.
const DATA_MOVE_POLL: Duration = Duration::from_millis(10);

/// Errors of the client API.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The task failed (its error, panic, or a failed dependency).
    #[error("task {key} failed: {}", failure.message)]
    Task {
        /// The key.
        key: Key,
        /// Why.
        failure: TaskFailure,
    },
    /// The future was cancelled.
    #[error("task {0} was cancelled")]
    Cancelled(Key),
    /// A wait ran out of time.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The scheduler connection is gone.
    #[error("not connected to the scheduler: {0}")]
    Disconnected(String),
    /// Connecting or talking to the cluster failed.
    #[error("{0}")]
    Wire(String),
    /// A result could not be decoded as the expected type.
    #[error("cannot decode the result of {key}: {message}")]
    Decode {
        /// The key.
        key: Key,
        /// The decoder's message.
        message: String,
    },
    /// An argument could not be encoded.
    #[error("cannot encode an argument: {0}")]
    Encode(String),
    /// The cluster refused a request (e.g. scatter with no workers).
    #[error("{0}")]
    Refused(String),
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::Wire(e.to_string())
    }
}

/// How a client connects ([`Client::connect_with`]): its name, its
/// security (TLS identity, token) and its patience. `ClientOptions::default()`
/// is what [`Client::connect`] uses: a generated name, plain TCP, no token,
/// 30 s to reach the scheduler, 60 s of scheduler silence tolerated.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Name announced to the scheduler and workers (default: `client-<random>`).
    pub name: Option<String>,
    /// TLS and token settings, used for the scheduler and for gathering from
    /// workers' peer ports.
    pub security: Security,
    /// How long to keep trying while nothing listens at the scheduler's
    /// address (`client.connect_timeout_s`).
    pub connect_timeout: Duration,
    /// Every waiting call fails with `scheduler at ADDR silent for N s` when
    /// nothing (not even a keep-alive) arrived from the scheduler for this
    /// long; `None`: wait forever (`client.scheduler_silence_timeout_s`).
    pub scheduler_silence_timeout: Option<Duration>,
}

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            name: None,
            security: Security::default(),
            connect_timeout: transport::DEFAULT_CONNECT_TIMEOUT,
            scheduler_silence_timeout: Some(crate::actors::worker::DEFAULT_SCHEDULER_SILENCE_TIMEOUT),
        }
    }
}

impl ClientOptions {
    /// Options with `security`.
    pub fn with_security(security: Security) -> ClientOptions {
        ClientOptions {
            security,
            ..ClientOptions::default()
        }
    }
}

/// Options of one submission (Dask's `submit` keywords).
#[derive(Clone, Debug)]
pub struct SubmitOptions {
    /// Deterministic key from function and arguments (default), so the same
    /// call is computed once; `false` gives every call a fresh key.
    pub pure: bool,
    /// An explicit key (overrides `pure`). For `map`, used as a prefix.
    pub key: Option<String>,
    /// Higher runs first.
    pub priority: i32,
    /// Run only on these workers (names or addresses).
    pub workers: Vec<String>,
    /// With `workers`: may others run it when those cannot.
    pub allow_other_workers: bool,
    /// Reruns on failure.
    pub retries: u32,
    /// Abstract resources one run holds, e.g. `[("GPU", 1.0)]`: it runs
    /// only on workers that declared them (`rdask worker --resources`),
    /// and no more such runs at once than their amounts allow.
    pub resources: Vec<(String, f64)>,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        SubmitOptions {
            pure: true,
            key: None,
            priority: 0,
            workers: Vec::new(),
            allow_other_workers: false,
            retries: 0,
            resources: Vec::new(),
        }
    }
}

impl SubmitOptions {
    /// Fresh keys for every call.
    pub fn impure() -> Self {
        SubmitOptions {
            pure: false,
            ..Default::default()
        }
    }
    /// Sets an explicit key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Restricts to workers.
    pub fn workers(mut self, workers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.workers = workers.into_iter().map(Into::into).collect();
        self
    }
    /// With `workers`: whether other workers may run it when none of those can.
    pub fn allow_other_workers(mut self, allow: bool) -> Self {
        self.allow_other_workers = allow;
        self
    }
    /// Sets the resources one run holds, e.g. `[("GPU", 1.0)]`.
    pub fn resources(mut self, resources: impl IntoIterator<Item = (impl Into<String>, f64)>) -> Self {
        self.resources = resources.into_iter().map(|(n, a)| (n.into(), a)).collect();
        self
    }
    /// Sets the number of retries.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
    /// Sets `pure`.
    pub fn pure(mut self, pure: bool) -> Self {
        self.pure = pure;
        self
    }
}

/// When [`Client::wait`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    /// When every future is done.
    AllCompleted,
    /// When any future is done.
    FirstCompleted,
}

/// Futures split by [`Client::wait`]: indices into the slice given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitResult {
    /// Done (finished, erred or cancelled).
    pub done: Vec<usize>,
    /// Still pending.
    pub not_done: Vec<usize>,
}

struct Core {
    shared: Arc<Shared>,
    sender: Sender<ToScheduler>,
    peers: PeerPool,
    next_request: AtomicU64,
    address: String,
    // Last field: dropped after everything above that may use it.
    runtime: Runtime,
}

impl Drop for Core {
    fn drop(&mut self) {
        let _ = self.sender.send(ToScheduler::CloseClient);
    }
}

/// A handle on a key's result, typed by what the task returns.
///
/// Clones share the key; when the last future for a key is dropped in this
/// client, the client tells the scheduler, which frees the result once no
/// other client or pending task needs it.
pub struct Future<T> {
    key: Key,
    core: Arc<Core>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Future({})", self.key)
    }
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        add_refs(&self.core, std::slice::from_ref(&self.key));
        Future {
            key: self.key.clone(),
            core: self.core.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> Drop for Future<T> {
    fn drop(&mut self) {
        let mut st = self.core.shared.lock();
        let release = match st.keys.get_mut(&self.key) {
            Some(e) if e.refs > 1 => {
                e.refs -= 1;
                false
            }
            Some(e) => {
                let send = !e.released;
                st.keys.remove(&self.key);
                send
            }
            None => false,
        };
        drop(st);
        if release {
            let _ = self.core.sender.send(ToScheduler::ReleaseKeys {
                keys: vec![std::mem::take(&mut self.key)],
            });
        }
    }
}

fn add_refs(core: &Core, keys: &[Key]) {
    let mut st = core.shared.lock();
    for k in keys {
        let e = st.keys.entry(k.clone()).or_insert(KeyEntry {
            refs: 0,
            status: KeyStatus::Pending,
            released: false,
        });
        e.refs += 1;
        if e.released {
            // Cancelled earlier and submitted again: wanted anew.
            e.released = false;
            e.status = KeyStatus::Pending;
        }
    }
}

impl<T> Future<T> {
    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Dask's status: `pending`, `finished`, `error`, `cancelled` (or
    /// `lost` if the connection is gone).
    pub fn status(&self) -> &'static str {
        let st = self.core.shared.lock();
        match st.keys.get(&self.key).map(|e| &e.status) {
            Some(KeyStatus::Finished { .. }) => "finished",
            Some(KeyStatus::Error(_)) => "error",
            Some(KeyStatus::Cancelled) => "cancelled",
            _ if st.disconnected.is_some() => "lost",
            _ => "pending",
        }
    }

    /// Whether the result (or error) is known.
    pub fn done(&self) -> bool {
        let st = self.core.shared.lock();
        st.keys.get(&self.key).is_some_and(|e| e.status.is_done())
    }

    /// The task's failure, if it failed.
    pub fn exception(&self) -> Option<TaskFailure> {
        let st = self.core.shared.lock();
        match st.keys.get(&self.key).map(|e| &e.status) {
            Some(KeyStatus::Error(f)) => Some(f.clone()),
            _ => None,
        }
    }

    /// Cancels this future (for every clone in this client).
    pub fn cancel(&self) {
        cancel_keys(&self.core, std::slice::from_ref(&self.key));
    }

    /// Reruns the task if it erred.
    pub fn retry(&self) {
        retry_keys(&self.core, std::slice::from_ref(&self.key));
    }
}

impl<T: DeserializeOwned> Future<T> {
    /// Blocks until the result is known and returns it.
    pub fn result(&self) -> Result<T, Error> {
        self.result_timeout(None)
    }

    /// Like [`result`](Self::result) with a deadline.
    pub fn result_timeout(&self, timeout: Option<Duration>) -> Result<T, Error> {
        wait_blocking(
            &self.core,
            std::slice::from_ref(&self.key),
            ReturnWhen::AllCompleted,
            timeout,
        )?;
        let mut out = fetch_blocking(&self.core, std::slice::from_ref(&self.key))?;
        decode_result(&self.key, &out.pop().unwrap_or_default())
    }

    /// Waits for the result without blocking the thread.
    pub async fn result_async(&self) -> Result<T, Error> {
        wait_async(
            &self.core,
            std::slice::from_ref(&self.key),
            ReturnWhen::AllCompleted,
            None,
        )
        .await?;
        let mut out = fetch_async(&self.core, vec![self.key.clone()]).await?;
        decode_result(&self.key, &out.pop().unwrap_or_default())
    }
}

fn decode_result<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    decode_value(bytes).map_err(|e| Error::Decode {
        key: key.to_string(),
        message: e.to_string(),
    })
}

fn cancel_keys(core: &Core, keys: &[Key]) {
    let mut release = Vec::new();
    let mut st = core.shared.lock();
    for k in keys {
        if let Some(e) = st.keys.get_mut(k) {
            if !e.released {
                e.released = true;
                release.push(k.clone());
            }
            e.status = KeyStatus::Cancelled;
        }
    }
    drop(st);
    core.shared.wake();
    if !release.is_empty() {
        let _ = core.sender.send(ToScheduler::ReleaseKeys { keys: release });
    }
}

fn retry_keys(core: &Core, keys: &[Key]) {
    let mut again = Vec::new();
    let mut st = core.shared.lock();
    for k in keys {
        if let Some(e) = st.keys.get_mut(k) {
            if matches!(e.status, KeyStatus::Error(_)) {
                e.status = KeyStatus::Pending;
                again.push(k.clone());
            }
        }
    }
    drop(st);
    if !again.is_empty() {
        let _ = core.sender.send(ToScheduler::Retry { keys: again });
    }
}

/// Progress of a wait over many keys. Done keys stay done, so for
/// `AllCompleted` the keys before `next` never need another look: a wait over
/// n keys costs O(n) in total, not O(n) per wake-up.
struct WaitProgress {
    next: usize,
    /// Keys registered in `SharedState::watched` by this wait.
    watching: Vec<Key>,
}

impl WaitProgress {
    fn new() -> Self {
        WaitProgress {
            next: 0,
            watching: Vec::new(),
        }
    }

    /// Whether the wait condition holds; an error if it never will. While
    /// it does not hold, the keys whose completion could change that are
    /// watched, so the client actor wakes this waiter for them.
    fn check(&mut self, st: &mut SharedState, keys: &[Key], when: ReturnWhen) -> Result<bool, Error> {
        let done = |st: &SharedState, k: &Key| st.keys.get(k).is_none_or(|e| e.status.is_done());
        let holds = match when {
            ReturnWhen::AllCompleted => {
                while self.next < keys.len() && done(st, &keys[self.next]) {
                    self.next += 1;
                }
                self.next == keys.len()
            }
            ReturnWhen::FirstCompleted => keys.is_empty() || keys.iter().any(|k| done(st, k)),
        };
        if let Some(why) = &st.disconnected {
            if !holds {
                return Err(Error::Disconnected(why.clone()));
            }
        }
        if !holds {
            let wanted: &[Key] = match when {
                ReturnWhen::AllCompleted => &keys[self.next..self.next + 1],
                ReturnWhen::FirstCompleted => keys,
            };
            if self.watching.as_slice() != wanted {
                self.unwatch(st);
                for k in wanted {
                    st.watch(k);
                }
                self.watching = wanted.to_vec();
            }
        }
        Ok(holds)
    }

    fn unwatch(&mut self, st: &mut SharedState) {
        for k in self.watching.drain(..) {
            st.unwatch(&k);
        }
    }
}

fn wait_blocking(core: &Core, keys: &[Key], when: ReturnWhen, timeout: Option<Duration>) -> Result<(), Error> {
    // A task waiting on tasks gives its worker thread to others meanwhile.
    crate::worker::pool::seceded(|| wait_blocking_seceded(core, keys, when, timeout))
}

fn wait_blocking_seceded(core: &Core, keys: &[Key], when: ReturnWhen, timeout: Option<Duration>) -> Result<(), Error> {
    let deadline = timeout.map(|t| Instant::now() + t);
    let mut progress = WaitProgress::new();
    // Checked and waited under one lock, so no wake-up falls in between.
    let mut st = core.shared.lock();
    let result = loop {
        match progress.check(&mut st, keys, when) {
            Ok(true) => break Ok(()),
            Err(e) => break Err(e),
            Ok(false) => {}
        }
        st = match deadline {
            None => core.shared.cond.wait(st).unwrap_or_else(|e| e.into_inner()),
            Some(d) => {
                let now = Instant::now();
                if now >= d {
                    break Err(Error::Timeout(format!("{} futures", keys.len())));
                }
                core.shared
                    .cond
                    .wait_timeout(st, d - now)
                    .unwrap_or_else(|e| e.into_inner())
                    .0
            }
        };
    };
    progress.unwatch(&mut st);
    result
}

async fn wait_async(core: &Core, keys: &[Key], when: ReturnWhen, timeout: Option<Duration>) -> Result<(), Error> {
    let deadline = timeout.map(|t| tokio::time::Instant::now() + t);
    let mut progress = WaitProgress::new();
    let result = loop {
        // Registered before the check, so a change after it still wakes us.
        let notified = core.shared.notify.notified();
        tokio::pin!(notified);
        notified.as_mut().enable();
        match progress.check(&mut core.shared.lock(), keys, when) {
            Ok(true) => break Ok(()),
            Err(e) => break Err(e),
            Ok(false) => {}
        }
        match deadline {
            None => notified.await,
            Some(d) => {
                if tokio::time::timeout_at(d, notified).await.is_err() {
                    break Err(Error::Timeout(format!("{} futures", keys.len())));
                }
            }
        }
    };
    progress.unwatch(&mut core.shared.lock());
    result
}

/// What a finished key's bytes are, or where to get them.
#[derive(Clone)]
enum Located {
    Here(Bytes),
    At(Vec<String>, u64),
}

fn locate(core: &Core, keys: &[Key]) -> Result<Vec<Located>, Error> {
    let st = core.shared.lock();
    keys.iter()
        .map(|k| match st.keys.get(k).map(|e| &e.status) {
            Some(KeyStatus::Finished { inline: Some(b), .. }) => Ok(Located::Here(b.clone())),
            Some(KeyStatus::Finished { who_has, nbytes, .. }) => Ok(Located::At(who_has.clone(), *nbytes)),
            Some(KeyStatus::Error(f)) => Err(Error::Task {
                key: k.clone(),
                failure: f.clone(),
            }),
            Some(KeyStatus::Cancelled) => Err(Error::Cancelled(k.clone())),
            Some(_) => Err(Error::Disconnected(
                st.disconnected.clone().unwrap_or_else(|| "result not ready".into()),
            )),
            None => Err(Error::Cancelled(k.clone())),
        })
        .collect()
}

fn fetch_blocking(core: &Arc<Core>, keys: &[Key]) -> Result<Vec<Bytes>, Error> {
    let located = locate(core, keys)?;
    if located.iter().all(|l| matches!(l, Located::Here(_))) {
        return Ok(located
            .into_iter()
            .map(|l| match l {
                Located::Here(b) => b,
                Located::At(..) => Bytes::new(),
            })
            .collect());
    }
    let c = core.clone();
    let keys = keys.to_vec();
    core.runtime
        .block_on(async move { fetch_with_refresh(&c, keys, located).await })
        .unwrap_or_else(|| Err(Error::Disconnected("client runtime stopped".into())))
}

async fn fetch_async(core: &Arc<Core>, keys: Vec<Key>) -> Result<Vec<Bytes>, Error> {
    let located = locate(core, &keys)?;
    let c = core.clone();
    core.runtime
        .run(async move { fetch_with_refresh(&c, keys, located).await })
        .await
        .unwrap_or_else(|| Err(Error::Disconnected("client runtime stopped".into())))
}

/// Fetches; if a worker no longer holds a key or cannot be reached (it
/// retired or died since the scheduler announced the key), asks the
/// scheduler where the keys are now and tries once more.
async fn fetch_with_refresh(core: &Core, keys: Vec<Key>, located: Vec<Located>) -> Result<Vec<Bytes>, Error> {
    let first = match fetch_located(core, keys.clone(), located.clone()).await {
        Err(Error::Wire(e)) => e,
        other => return other,
    };
    tracing::debug!("gather failed ({first}); asking the scheduler where the keys are now");
    let rx = core.request(|request_id| ToScheduler::WhoHas {
        request_id,
        keys: keys.clone(),
    })?;
    let Ok(ToClient::WhoHasReply { who_has, .. }) = rx.await else {
        return Err(Error::Wire(first));
    };
    let fresh = located
        .into_iter()
        .zip(who_has)
        .map(|(l, w)| match l {
            Located::Here(b) => Located::Here(b),
            Located::At(..) => Located::At(w.workers, w.nbytes),
        })
        .collect();
    fetch_located(core, keys, fresh).await
}

/// Fetches every key not already here, one request per worker, all
/// workers at once.
async fn fetch_located(core: &Core, keys: Vec<Key>, located: Vec<Located>) -> Result<Vec<Bytes>, Error> {
    let mut out: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
    // One request per worker and chunk of at most MAX_FETCH_BYTES, so no reply
    // frame outgrows the frame limit.
    let mut by_worker: HashMap<String, Vec<(Vec<usize>, u64)>> = HashMap::new();
    for (i, l) in located.into_iter().enumerate() {
        match l {
            Located::Here(b) => out.push(Some(b)),
            Located::At(who, nbytes) => {
                out.push(None);
                let Some(w) = who.first() else {
                    return Err(Error::Wire(format!("no worker holds {}", keys[i])));
                };
                let chunks = by_worker.entry(w.clone()).or_default();
                match chunks.last_mut() {
                    Some((idx, bytes)) if *bytes + nbytes <= MAX_FETCH_BYTES => {
                        idx.push(i);
                        *bytes += nbytes;
                    }
                    _ => chunks.push((vec![i], nbytes)),
                }
            }
        }
    }
    let requests = by_worker
        .into_iter()
        .flat_map(|(worker, chunks)| chunks.into_iter().map(move |(idx, _)| (worker.clone(), idx)));
    let requests = requests.map(|(worker, idx)| {
        let wanted: Vec<Key> = idx.iter().map(|&i| keys[i].clone()).collect();
        let peers = core.peers.clone();
        async move {
            let r = peers.get_data(&worker, wanted).await;
            (worker, idx, r)
        }
    });
    let results = futures_util::future::join_all(requests).await;
    for (worker, idx, r) in results {
        let data = r.map_err(|e| Error::Wire(format!("fetching from {worker}: {e}")))?;
        for (i, (k, v)) in idx.into_iter().zip(data) {
            match v {
                Some(b) => out[i] = Some(b),
                None => return Err(Error::Wire(format!("worker {worker} no longer holds {k}"))),
            }
        }
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}

fn short_name(function: &str) -> &str {
    function.rsplit("::").next().unwrap_or(function)
}

fn make_key(function: &str, args: &[Arg], opts: &SubmitOptions, index: Option<usize>) -> Key {
    match (&opts.key, index) {
        (Some(k), None) => k.clone(),
        (Some(prefix), Some(i)) => format!("{prefix}-{i}"),
        (None, _) if opts.pure => {
            let arg_parts: Vec<_> = args.iter().map(Arg::hash_part).collect();
            let mut parts: Vec<&[u8]> = vec![function.as_bytes()];
            parts.extend(arg_parts.iter().map(|p| &p[..]));
            format!("{}-{:016x}", short_name(function), crate::util::fnv1a64(&parts))
        }
        (None, _) => format!("{}-{}", short_name(function), uuid::Uuid::new_v4().simple()),
    }
}

fn spec(key: Key, function: &str, args: Vec<Arg>, opts: &SubmitOptions) -> TaskSpec {
    TaskSpec {
        key,
        function: function.to_string(),
        args,
        priority: opts.priority,
        workers: opts.workers.clone(),
        allow_other_workers: opts.allow_other_workers,
        retries: opts.retries,
        resources: opts.resources.clone(),
    }
}

impl Core {
    fn check_connected(&self) -> Result<(), Error> {
        match &self.shared.lock().disconnected {
            Some(why) => Err(Error::Disconnected(why.clone())),
            None => Ok(()),
        }
    }

    fn send(&self, msg: ToScheduler) -> Result<(), Error> {
        self.sender.send(msg).map_err(|e| Error::Disconnected(e.to_string()))
    }

    fn request(&self, make: impl FnOnce(u64) -> ToScheduler) -> Result<oneshot::Receiver<ToClient>, Error> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        {
            let mut st = self.shared.lock();
            if let Some(why) = &st.disconnected {
                return Err(Error::Disconnected(why.clone()));
            }
            st.requests.insert(id, tx);
        }
        self.send(make(id))?;
        Ok(rx)
    }
}

fn submit_impl<O>(core: &Arc<Core>, function: &str, args: Vec<Arg>, opts: &SubmitOptions) -> Result<Future<O>, Error> {
    core.check_connected()?;
    let key = make_key(function, &args, opts, None);
    add_refs(core, std::slice::from_ref(&key));
    core.send(ToScheduler::UpdateGraph {
        tasks: vec![spec(key.clone(), function, args, opts)],
        wanted: vec![key.clone()],
    })?;
    Ok(Future {
        key,
        core: core.clone(),
        _type: PhantomData,
    })
}

fn map_impl<T: Task>(
    core: &Arc<Core>,
    all_args: Vec<Vec<Arg>>,
    opts: &SubmitOptions,
) -> Result<Vec<Future<T::Output>>, Error> {
    core.check_connected()?;
    let mut futures = Vec::with_capacity(all_args.len());
    let mut tasks = Vec::with_capacity(MAP_CHUNK.min(all_args.len()));
    let mut keys = Vec::with_capacity(MAP_CHUNK.min(all_args.len()));
    let mut flush = |tasks: &mut Vec<TaskSpec>, keys: &mut Vec<Key>| -> Result<(), Error> {
        add_refs(core, keys);
        core.send(ToScheduler::UpdateGraph {
            tasks: std::mem::take(tasks),
            wanted: keys.clone(),
        })?;
        for k in keys.drain(..) {
            futures.push(Future {
                key: k,
                core: core.clone(),
                _type: PhantomData,
            });
        }
        Ok(())
    };
    for (i, args) in all_args.into_iter().enumerate() {
        let key = make_key(T::NAME, &args, opts, Some(i));
        keys.push(key.clone());
        tasks.push(spec(key, T::NAME, args, opts));
        if tasks.len() == MAP_CHUNK {
            flush(&mut tasks, &mut keys)?;
        }
    }
    if !tasks.is_empty() {
        flush(&mut tasks, &mut keys)?;
    }
    Ok(futures)
}

fn scatter_request<T: Serialize>(
    core: &Core,
    values: &[T],
    workers: &[String],
) -> Result<(Vec<Key>, oneshot::Receiver<ToClient>), Error> {
    let mut keys = Vec::with_capacity(values.len());
    let mut data = Vec::with_capacity(values.len());
    for v in values {
        let bytes = encode_value(v).map_err(|e| Error::Encode(e.to_string()))?;
        let key = format!(
            "{}-{:016x}",
            std::any::type_name::<T>().rsplit("::").next().unwrap_or("data"),
            crate::util::fnv1a64(&[&bytes])
        );
        keys.push(key.clone());
        data.push((key, Payload::new(bytes)));
    }
    add_refs(core, &keys);
    let rx = core.request(|request_id| ToScheduler::Scatter {
        request_id,
        data,
        workers: workers.to_vec(),
    })?;
    Ok((keys, rx))
}

fn scatter_done(reply: Option<ToClient>) -> Result<(), Error> {
    // On failure the caller's futures are dropped, which releases the keys.
    match reply {
        Some(ToClient::ScatterDone { error: None, .. }) => Ok(()),
        Some(ToClient::ScatterDone { error: Some(e), .. }) => Err(Error::Refused(format!("scatter failed: {e}"))),
        _ => Err(Error::Disconnected("no answer to scatter".into())),
    }
}

async fn connect_core(address: String, options: ClientOptions) -> Result<Arc<Core>, Error> {
    let name = options.name.clone().unwrap_or_else(client_name);
    let security = options.security;
    let runtime = Runtime::new("rdask-client").map_err(|e| Error::Wire(e.to_string()))?;
    let shared = Arc::new(Shared::default());
    let sh = shared.clone();
    let addr = address.clone();
    let n = name.clone();
    let sec = security.clone();
    let (connect_timeout, silence) = (options.connect_timeout, options.scheduler_silence_timeout);
    let sender = runtime
        .run(async move {
            let (mut reader, write) =
                transport::connect_retrying(&addr, Role::Client, &n, &sec, connect_timeout).await?;
            let limits = FrameLimits::default();
            let first = tokio::time::timeout(
                transport::HANDSHAKE_TIMEOUT,
                transport::read_batch::<ToClient>(&mut reader, &limits),
            )
            .await
            .map_err(|_| WireError::Timeout("the scheduler sent no welcome".into()))??;
            match first {
                Some(msgs) => {
                    let mut st = sh.lock();
                    for m in msgs {
                        crate::actors::client::apply(&mut st, m);
                    }
                }
                None => return Err(WireError::Closed),
            }
            let sender = transport::spawn_writer::<ToScheduler>(write, format!("scheduler {addr}"));
            actix::Actor::start(ClientActor::new(sh, reader, limits).watching(&addr, silence));
            Ok::<_, WireError>(sender)
        })
        .await
        .ok_or_else(|| Error::Wire("client runtime stopped".into()))??;
    Ok(Arc::new(Core {
        shared,
        sender,
        peers: PeerPool::new(&name, FrameLimits::default()).with_security(security),
        next_request: AtomicU64::new(1),
        address,
        runtime,
    }))
}

fn client_name() -> String {
    format!("client-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}

/// A blocking client: every call returns when its work is done. For use in
/// `fn main`, scripts and threads; inside async code use [`AsyncClient`].
#[derive(Clone)]
pub struct Client {
    core: Arc<Core>,
}

impl Client {
    /// Connects to the scheduler at `address` (`tcp://host:port`).
    pub fn connect(address: &str) -> Result<Client, Error> {
        Self::connect_with(address, ClientOptions::default())
    }

    /// Connects to the scheduler at `address` (`tcp://` or `tls://`) with
    /// `options` (TLS identity, token, name).
    pub fn connect_with(address: &str, options: ClientOptions) -> Result<Client, Error> {
        let address = address.to_string();
        let (tx, rx) = std::sync::mpsc::channel();
        // The connection is made on a helper thread's executor so this works
        // whether or not the caller is itself inside some async runtime.
        std::thread::spawn(move || {
            let rt = tokio::runtime::Builder::new_current_thread().enable_all().build();
            let r = match rt {
                Ok(rt) => rt.block_on(connect_core(address, options)),
                Err(e) => Err(Error::Wire(e.to_string())),
            };
            let _ = tx.send(r);
        });
        let core = rx.recv().map_err(|_| Error::Wire("connect thread failed".into()))??;
        Ok(Client { core })
    }

    /// The scheduler's address.
    pub fn scheduler_address(&self) -> &str {
        &self.core.address
    }

    /// The scheduler's id for this client.
    pub fn id(&self) -> u64 {
        self.core.shared.lock().client_id
    }

    /// The async face of this same client.
    pub fn as_async(&self) -> AsyncClient {
        AsyncClient {
            core: self.core.clone(),
        }
    }

    /// Submits one call of `task`. `args` is a tuple of values or futures.
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
        submit_impl(&self.core, T::NAME, args.into_args()?, opts)
    }

    /// Submits a call by function name with arguments already encoded: the
    /// untyped door, as a client in another language would use it. `O` is
    /// the type the result is decoded as.
    pub fn submit_raw<O>(&self, function: &str, args: Vec<Arg>, opts: &SubmitOptions) -> Result<Future<O>, Error> {
        submit_impl(&self.core, function, args, opts)
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
        map_impl::<T>(&self.core, args, opts)
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
        map_impl::<T>(&self.core, args, opts)
    }

    /// Waits for all futures and returns their results in order. The first
    /// failure is returned as the error.
    pub fn gather<T: DeserializeOwned>(&self, futures: &[Future<T>]) -> Result<Vec<T>, Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key.clone()).collect();
        wait_blocking(&self.core, &keys, ReturnWhen::AllCompleted, None)?;
        let bytes = fetch_blocking(&self.core, &keys)?;
        keys.iter().zip(bytes).map(|(k, b)| decode_result(k, &b)).collect()
    }

    /// Stores values on workers and returns futures for them.
    pub fn scatter<T: Serialize>(&self, values: Vec<T>) -> Result<Vec<Future<T>>, Error> {
        self.scatter_to(values, &[])
    }

    /// [`scatter`](Self::scatter) onto the given workers (names or addresses).
    pub fn scatter_to<T: Serialize>(&self, values: Vec<T>, workers: &[String]) -> Result<Vec<Future<T>>, Error> {
        let (keys, rx) = scatter_request(&self.core, &values, workers)?;
        let futures: Vec<Future<T>> = keys
            .iter()
            .map(|k| Future {
                key: k.clone(),
                core: self.core.clone(),
                _type: PhantomData,
            })
            .collect();
        let reply = rx.blocking_recv().ok();
        scatter_done(reply)?;
        Ok(futures)
    }

    /// Cancels futures: they report `cancelled`, and the scheduler frees the
    /// keys if nobody else wants them.
    pub fn cancel<T>(&self, futures: &[Future<T>]) {
        let keys: Vec<Key> = futures.iter().map(|f| f.key.clone()).collect();
        cancel_keys(&self.core, &keys);
    }

    /// Reruns erred futures.
    pub fn retry<T>(&self, futures: &[Future<T>]) {
        let keys: Vec<Key> = futures.iter().map(|f| f.key.clone()).collect();
        retry_keys(&self.core, &keys);
    }

    /// Waits until all (or the first) of `futures` are done, or the timeout.
    pub fn wait<T>(
        &self,
        futures: &[Future<T>],
        return_when: ReturnWhen,
        timeout: Option<Duration>,
    ) -> Result<WaitResult, Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key.clone()).collect();
        wait_blocking(&self.core, &keys, return_when, timeout)?;
        Ok(split_done(&self.core, &keys))
    }

    /// Iterates over `futures` in the order they complete.
    pub fn as_completed<T>(&self, futures: Vec<Future<T>>) -> AsCompleted<T> {
        AsCompleted { pending: futures }
    }

    /// The scheduler's figures and workers.
    pub fn scheduler_info(&self) -> Result<SchedulerInfo, Error> {
        let rx = self.core.request(|request_id| ToScheduler::Info { request_id })?;
        match rx.blocking_recv() {
            Ok(ToClient::InfoReply { info, .. }) => Ok(info),
            _ => Err(Error::Disconnected("no answer to info".into())),
        }
    }

    /// A worker's store and transfer counters, asked of the worker directly.
    pub fn worker_info(&self, worker_address: &str) -> Result<WorkerStoreInfo, Error> {
        let peers = self.core.peers.clone();
        let addr = worker_address.to_string();
        self.core
            .runtime
            .block_on(async move { peers.info(&addr).await })
            .ok_or_else(|| Error::Disconnected("client runtime stopped".into()))?
            .map_err(Error::from)
    }

    /// Where keys live (Dask's `who_has`).
    pub fn who_has(&self, keys: &[&str]) -> Result<Vec<WhoHas>, Error> {
        let keys = keys.iter().map(|k| k.to_string()).collect();
        let rx = self
            .core
            .request(|request_id| ToScheduler::WhoHas { request_id, keys })?;
        match rx.blocking_recv() {
            Ok(ToClient::WhoHasReply { who_has, .. }) => Ok(who_has),
            _ => Err(Error::Disconnected("no answer to who_has".into())),
        }
    }

    /// Copies the futures' results so that each is held by `n` workers (at
    /// most every worker), as Dask's `replicate`: the workers holding the
    /// fewest bytes fetch copies from the holders. Returns once the copies
    /// are in place (or errs after [`DATA_MOVE_TIMEOUT`], e.g. if a target
    /// worker left meanwhile). Results not computed yet are skipped.
    pub fn replicate<T>(&self, futures: &[Future<T>], n: u32) -> Result<(), Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key().to_string()).collect();
        let rx = self
            .core
            .request(|request_id| ToScheduler::Replicate { request_id, keys, n })?;
        match rx.blocking_recv() {
            Ok(ToClient::DataMoves { moves, .. }) => self.await_moves(&moves, "replicate"),
            _ => Err(Error::Disconnected("no answer to replicate".into())),
        }
    }

    /// Spreads the futures' results (every result in the cluster if
    /// `futures` is empty) so that workers hold about the same number of
    /// bytes, as Dask's `rebalance`: keys move from workers above the
    /// average to workers below it (a copy, then the source's copy is
    /// freed). Returns once the moves are done (or errs after
    /// [`DATA_MOVE_TIMEOUT`]).
    pub fn rebalance<T>(&self, futures: &[Future<T>]) -> Result<(), Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key().to_string()).collect();
        let rx = self
            .core
            .request(|request_id| ToScheduler::Rebalance { request_id, keys })?;
        match rx.blocking_recv() {
            Ok(ToClient::DataMoves { moves, .. }) => self.await_moves(&moves, "rebalance"),
            _ => Err(Error::Disconnected("no answer to rebalance".into())),
        }
    }

    /// Polls `who_has` until every move's target holds its key and its
    /// source (if any) no longer does.
    fn await_moves(&self, moves: &[DataMove], what: &str) -> Result<(), Error> {
        if moves.is_empty() {
            return Ok(());
        }
        let keys: Vec<&str> = moves.iter().map(|m| m.key.as_str()).collect();
        let deadline = Instant::now() + DATA_MOVE_TIMEOUT;
        loop {
            let who_has = self.who_has(&keys)?;
            let done = moves
                .iter()
                .zip(&who_has)
                .all(|(m, w)| w.workers.contains(&m.to) && (m.from.is_empty() || !w.workers.contains(&m.from)));
            if done {
                return Ok(());
            }
            if Instant::now() >= deadline {
                return Err(Error::Wire(format!(
                    "{what}: the copies were not all made within {DATA_MOVE_TIMEOUT:?}"
                )));
            }
            std::thread::sleep(DATA_MOVE_POLL);
        }
    }

    /// Retires workers gracefully (by name or address), as Dask's
    /// `retire_workers`: they get no new tasks, finish their running ones,
    /// their results that no other worker holds are copied to the workers
    /// that stay, then they are closed. Nothing is recomputed. Returns the
    /// names of the workers retired, once they have left; an unknown name,
    /// or a worker whose data would have nowhere to go, is an error (the
    /// others are still retired).
    pub fn retire_workers(&self, workers: &[&str]) -> Result<Vec<String>, Error> {
        let workers = workers.iter().map(|w| w.to_string()).collect();
        let rx = self
            .core
            .request(|request_id| ToScheduler::RetireWorkers { request_id, workers })?;
        match rx.blocking_recv() {
            Ok(ToClient::RetireWorkersDone {
                retired, error: None, ..
            }) => Ok(retired),
            Ok(ToClient::RetireWorkersDone {
                retired,
                error: Some(e),
                ..
            }) => Err(Error::Wire(format!("retire_workers retired {retired:?} only: {e}"))),
            _ => Err(Error::Disconnected("no answer to retire_workers".into())),
        }
    }
}

fn split_done(core: &Core, keys: &[Key]) -> WaitResult {
    let st = core.shared.lock();
    let mut r = WaitResult::default();
    for (i, k) in keys.iter().enumerate() {
        if st.keys.get(k).is_none_or(|e| e.status.is_done()) {
            r.done.push(i);
        } else {
            r.not_done.push(i);
        }
    }
    r
}

/// Futures in completion order; see [`Client::as_completed`].
pub struct AsCompleted<T> {
    pending: Vec<Future<T>>,
}

impl<T> AsCompleted<T> {
    /// Adds a future to the set being watched.
    pub fn add(&mut self, future: Future<T>) {
        self.pending.push(future);
    }
}

impl<T> Iterator for AsCompleted<T> {
    type Item = Future<T>;
    fn next(&mut self) -> Option<Future<T>> {
        let first = self.pending.first()?;
        let core = first.core.clone();
        let keys: Vec<Key> = self.pending.iter().map(|f| f.key.clone()).collect();
        // A lost connection ends the iteration with the futures still pending
        // handed out, so the caller sees their status.
        let _ = wait_blocking(&core, &keys, ReturnWhen::FirstCompleted, None);
        let done = split_done(&core, &keys).done;
        let i = done.first().copied().unwrap_or(0);
        Some(self.pending.swap_remove(i))
    }
}

/// The async client: the same operations as [`Client`], as `async fn`s, for
/// use inside async code (any executor).
#[derive(Clone)]
pub struct AsyncClient {
    core: Arc<Core>,
}

impl AsyncClient {
    /// Connects to the scheduler at `address`.
    pub async fn connect(address: &str) -> Result<AsyncClient, Error> {
        Self::connect_with(address, ClientOptions::default()).await
    }

    /// See [`Client::connect_with`].
    pub async fn connect_with(address: &str, options: ClientOptions) -> Result<AsyncClient, Error> {
        let core = connect_core(address.to_string(), options).await?;
        Ok(AsyncClient { core })
    }

    /// The blocking face of this same client.
    pub fn as_blocking(&self) -> Client {
        Client {
            core: self.core.clone(),
        }
    }

    /// See [`Client::submit`].
    pub fn submit<T: Task, A: IntoArgs<T::Args>>(&self, _task: T, args: A) -> Result<Future<T::Output>, Error> {
        submit_impl(&self.core, T::NAME, args.into_args()?, &SubmitOptions::default())
    }

    /// See [`Client::submit_with`].
    pub fn submit_with<T: Task, A: IntoArgs<T::Args>>(
        &self,
        _task: T,
        args: A,
        opts: &SubmitOptions,
    ) -> Result<Future<T::Output>, Error> {
        submit_impl(&self.core, T::NAME, args.into_args()?, opts)
    }

    /// See [`Client::map`].
    pub fn map<T, A, I>(&self, task: T, items: I) -> Result<Vec<Future<T::Output>>, Error>
    where
        T: Task<Args = (A,)>,
        I: IntoIterator,
        I::Item: IntoArg<A>,
    {
        self.as_blocking().map(task, items)
    }

    /// See [`Client::gather`].
    pub async fn gather<T: DeserializeOwned>(&self, futures: &[Future<T>]) -> Result<Vec<T>, Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key.clone()).collect();
        wait_async(&self.core, &keys, ReturnWhen::AllCompleted, None).await?;
        let bytes = fetch_async(&self.core, keys.clone()).await?;
        keys.iter().zip(bytes).map(|(k, b)| decode_result(k, &b)).collect()
    }

    /// See [`Client::scatter`].
    pub async fn scatter<T: Serialize>(&self, values: Vec<T>) -> Result<Vec<Future<T>>, Error> {
        let (keys, rx) = scatter_request(&self.core, &values, &[])?;
        let futures: Vec<Future<T>> = keys
            .iter()
            .map(|k| Future {
                key: k.clone(),
                core: self.core.clone(),
                _type: PhantomData,
            })
            .collect();
        scatter_done(rx.await.ok())?;
        Ok(futures)
    }

    /// See [`Client::cancel`].
    pub fn cancel<T>(&self, futures: &[Future<T>]) {
        self.as_blocking().cancel(futures)
    }

    /// See [`Client::wait`].
    pub async fn wait<T>(
        &self,
        futures: &[Future<T>],
        return_when: ReturnWhen,
        timeout: Option<Duration>,
    ) -> Result<WaitResult, Error> {
        let keys: Vec<Key> = futures.iter().map(|f| f.key.clone()).collect();
        wait_async(&self.core, &keys, return_when, timeout).await?;
        Ok(split_done(&self.core, &keys))
    }

    /// The next future of `pending` to complete, removed from it (the async
    /// `as_completed`); `None` when `pending` is empty.
    pub async fn next_completed<T>(&self, pending: &mut Vec<Future<T>>) -> Option<Future<T>> {
        if pending.is_empty() {
            return None;
        }
        let keys: Vec<Key> = pending.iter().map(|f| f.key.clone()).collect();
        let _ = wait_async(&self.core, &keys, ReturnWhen::FirstCompleted, None).await;
        let i = split_done(&self.core, &keys).done.first().copied().unwrap_or(0);
        Some(pending.swap_remove(i))
    }

    /// See [`Client::scheduler_info`].
    pub async fn scheduler_info(&self) -> Result<SchedulerInfo, Error> {
        let rx = self.core.request(|request_id| ToScheduler::Info { request_id })?;
        match rx.await {
            Ok(ToClient::InfoReply { info, .. }) => Ok(info),
            _ => Err(Error::Disconnected("no answer to info".into())),
        }
    }
}
