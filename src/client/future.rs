//! [`Future`]: a typed handle on one key's result, awaitable with `.await`
//! and readable blocking with [`Future::result`].

use std::future::IntoFuture;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;

use super::blocking::block_waiting;
use super::core::Core;
use super::{fetch, Error, ReturnWhen};
use crate::actors::client::{KeyEntry, KeyStatus};
use crate::task::decode_value;
use crate::wire::messages::{FromClient, Key, TaskFailure};

/// A handle on a key's result, typed by what the task returns.
///
/// Await it (`future.await` or `(&future).await`) in async code, or call
/// [`result`](Self::result) to block. Clones share the key; when the last
/// future for a key is dropped in this client, the client tells the
/// scheduler, which frees the result once no other client or pending task
/// needs it.
///
/// ```
/// #[rdask::task]
/// fn add(a: i64, b: i64) -> i64 {
///     a + b
/// }
///
/// let cluster = rdask::LocalCluster::new(1)?;
/// let client = cluster.client()?;
/// let sum = client.submit(add, (1, 2))?;
/// let total = client.submit(add, (&sum, 10))?; // a future as an argument
/// assert_eq!(total.result()?, 13);
/// assert_eq!(sum.status(), "finished");
/// # Ok::<(), rdask::Error>(())
/// ```
pub struct Future<T> {
    pub(crate) key: Key,
    pub(crate) core: Arc<Core>,
    _type: PhantomData<fn() -> T>,
}

impl<T> std::fmt::Debug for Future<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Future({})", self.key)
    }
}

impl<T> Clone for Future<T> {
    fn clone(&self) -> Self {
        add_refs(&self.core, std::slice::from_ref(&self.key), "");
        Future::new(self.key.clone(), self.core.clone())
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
            // Batched: the first release waiting schedules one flush on the
            // client's I/O thread; those dropped meanwhile join it.
            if let Ok(true) = self.core.sender.queue_release(std::mem::take(&mut self.key)) {
                let link = self.core.sender.clone();
                self.core.runtime.spawn(async move {
                    let _ = link.flush_releases();
                });
            }
        }
    }
}

/// Dask's status of `key` as `core`'s client knows it (see
/// [`Future::status`]).
pub(crate) fn key_status(core: &Core, key: &str) -> &'static str {
    let st = core.shared.lock();
    match st.keys.get(key).map(|e| &e.status) {
        Some(KeyStatus::Finished { .. }) => "finished",
        Some(KeyStatus::Error(_)) => "error",
        Some(KeyStatus::Cancelled) => "cancelled",
        _ if st.disconnected.is_some() => "lost",
        Some(KeyStatus::NoWorker(_)) => "no-worker",
        _ => "pending",
    }
}

/// A future of any result type, as a lazy graph holds it: it keeps the
/// key alive and can be followed by `progress`.
#[doc(hidden)]
pub trait HeldFuture: Send + Sync {
    /// What `progress` follows for it.
    fn followed(&self) -> super::progress::Followed;
}

impl<T> HeldFuture for Future<T> {
    fn followed(&self) -> super::progress::Followed {
        super::progress::Followed::new(self.key.clone(), self.core.clone())
    }
}

/// Counts one more future for each key (the caller builds them with
/// [`Future::new`]); `function` is what computes them, for messages.
pub(crate) fn add_refs(core: &Core, keys: &[Key], function: &str) {
    let function: Arc<str> = Arc::from(function);
    let mut st = core.shared.lock();
    for k in keys {
        let e = st.keys.entry(k.clone()).or_insert_with(|| KeyEntry {
            refs: 0,
            status: KeyStatus::Pending,
            released: false,
            function: function.clone(),
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
    /// A future for `key`, whose reference [`add_refs`] has counted.
    pub(crate) fn new(key: Key, core: Arc<Core>) -> Self {
        Future {
            key,
            core,
            _type: PhantomData,
        }
    }

    /// The key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Dask's status: `pending`, `finished`, `error`, `cancelled`, `lost`
    /// (the connection is gone), or `no-worker`: no connected worker can
    /// run it; [`no_worker_reason`](Self::no_worker_reason) says why.
    pub fn status(&self) -> &'static str {
        key_status(&self.core, &self.key)
    }

    /// While the status is `no-worker`: why no worker can run it and how to
    /// get one that can.
    pub fn no_worker_reason(&self) -> Option<String> {
        let st = self.core.shared.lock();
        match st.keys.get(&self.key).map(|e| &e.status) {
            Some(KeyStatus::NoWorker(why)) => Some(why.clone()),
            _ => None,
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
    /// Blocks until the result is known and returns it. Works from any
    /// thread, inside an async runtime too (where `.await` is better: it
    /// does not hold up the runtime's thread).
    pub fn result(&self) -> Result<T, Error> {
        block_waiting(self.result_timeout_async(None))
    }

    /// Like [`result`](Self::result) with a deadline; the timeout error
    /// names the key, its function and its state.
    pub fn result_timeout(&self, timeout: Option<Duration>) -> Result<T, Error> {
        block_waiting(self.result_timeout_async(timeout))
    }

    /// The result, awaited: what `.await` on the future does.
    pub async fn result_async(&self) -> Result<T, Error> {
        self.result_timeout_async(None).await
    }

    /// [`result_async`](Self::result_async) with a deadline; the timeout
    /// error names the key, its function and its state.
    pub async fn result_timeout_async(&self, timeout: Option<Duration>) -> Result<T, Error> {
        let keys = std::slice::from_ref(&self.key);
        self.core.wait(keys, ReturnWhen::AllCompleted, timeout).await?;
        let mut out = fetch::fetch(&self.core, keys.to_vec()).await?;
        decode_result(&self.key, &out.pop().unwrap_or_default())
    }
}

type BoxFuture<'a, T> = Pin<Box<dyn std::future::Future<Output = Result<T, Error>> + Send + 'a>>;

/// `future.await` gives the result, as [`Future::result`] does blocking.
impl<T: DeserializeOwned + 'static> IntoFuture for Future<T> {
    type Output = Result<T, Error>;
    type IntoFuture = BoxFuture<'static, T>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(async move { self.result_async().await })
    }
}

/// `(&future).await` gives the result and keeps the future.
impl<'a, T: DeserializeOwned + 'static> IntoFuture for &'a Future<T> {
    type Output = Result<T, Error>;
    type IntoFuture = BoxFuture<'a, T>;
    fn into_future(self) -> Self::IntoFuture {
        Box::pin(self.result_async())
    }
}

pub(crate) fn decode_result<T: DeserializeOwned>(key: &str, bytes: &[u8]) -> Result<T, Error> {
    decode_value(bytes).map_err(|e| Error::Decode {
        key: key.to_string(),
        message: e.to_string(),
    })
}

pub(crate) fn cancel_keys(core: &Core, keys: &[Key]) {
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
        let _ = core.sender.send(FromClient::ReleaseKeys { keys: release });
    }
}

pub(crate) fn retry_keys(core: &Core, keys: &[Key]) {
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
        let _ = core.sender.send(FromClient::Retry { keys: again });
    }
}
