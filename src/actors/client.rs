//! The client-side actor: reads the scheduler's messages and turns them into
//! state changes of the client's futures.
//!
//! The user's threads (blocking API) and tasks (async API) never touch the
//! socket: they read the shared table this actor writes, and wait on its
//! notifier.

use crate::util::FxMap as HashMap;
use std::sync::{Mutex, MutexGuard};

use actix::prelude::*;
use bytes::Bytes;
use tokio::sync::{oneshot, Notify};
use tracing::warn;

use crate::client::link::{reconnect as reconnect_link, Reconnect};
use crate::wire::messages::*;
use crate::wire::transport::{self, Reader};
use crate::wire::{FrameLimits, ReadTimeouts, WireError};
use std::time::Duration;

/// Where a key stands, as this client knows it (Dask's future statuses).
#[derive(Clone, Debug, PartialEq)]
pub enum KeyStatus {
    /// Not computed yet.
    Pending,
    /// Waiting because no worker can run it; why, and how to get one.
    NoWorker(String),
    /// Computed; the value is on `who_has` (and here, if small).
    Finished {
        /// Peer addresses of workers holding it.
        who_has: Vec<String>,
        /// Size of the value.
        nbytes: u64,
        /// The value itself, when it came inline or was fetched already.
        inline: Option<Bytes>,
    },
    /// Failed.
    Error(TaskFailure),
    /// Cancelled by this client.
    Cancelled,
}

impl KeyStatus {
    /// Whether the status will not change by itself any more.
    pub fn is_done(&self) -> bool {
        matches!(
            self,
            KeyStatus::Finished { .. } | KeyStatus::Error(_) | KeyStatus::Cancelled
        )
    }
}

/// One key this client holds futures for.
#[derive(Debug)]
pub struct KeyEntry {
    /// The key (held here once; the table's index stores only slots).
    pub key: Key,
    /// Futures alive for it.
    pub refs: usize,
    /// Its status.
    pub status: KeyStatus,
    /// Already released at the scheduler (by `cancel`); dropping the last
    /// future then sends nothing more.
    pub released: bool,
    /// The function computing it (empty for scattered data), for messages.
    /// Shared by the keys of one submission: one allocation per `map`, not
    /// one per key (a million futures made and dropped, issue 15).
    pub function: std::sync::Arc<str>,
}

/// The table shared between the client actor and the user's handles.
#[derive(Default)]
pub struct SharedState {
    /// Keys with live futures (a slab: each future carries its slot).
    pub keys: super::key_table::KeyTable,
    /// Outstanding requests by id.
    pub requests: HashMap<u64, oneshot::Sender<ToClient>>,
    /// Set when the scheduler connection is gone, with why.
    pub disconnected: Option<String>,
    /// The scheduler's id for this client.
    pub client_id: u64,
    /// Keys someone is blocked on, with how many waiters each. Waiters are
    /// woken only when one of these completes: a thread gathering 100,000
    /// results wakes once per key it actually waits for, not once per frame.
    pub watched: HashMap<Key, u32>,
    /// Keys a coordination answer handed over after its caller stopped
    /// waiting: released with the client's next request.
    pub orphaned: Vec<Key>,
    /// Values received on each subscribed topic, oldest first (at most
    /// [`MAX_TOPIC_BUFFER`] each).
    pub topics: HashMap<String, std::collections::VecDeque<serde_bytes::ByteBuf>>,
    /// `Sub` handles alive per topic; the last one dropped unsubscribes.
    pub topic_subscribers: HashMap<String, usize>,
}

/// Most values a client keeps per subscribed topic that nobody has read;
/// past it the oldest is dropped (topics are best effort).
pub const MAX_TOPIC_BUFFER: usize = 100_000;

impl SharedState {
    /// Registers interest in a key's completion.
    pub fn watch(&mut self, key: &Key) {
        *self.watched.entry(key.clone()).or_insert(0) += 1;
    }

    /// Drops interest registered with [`watch`](Self::watch).
    pub fn unwatch(&mut self, key: &Key) {
        if let Some(n) = self.watched.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.watched.remove(key);
            }
        }
    }
}

/// Shared table plus the way to wait for it to change (the blocking API
/// waits on the same notifier, see `crate::runtime::block_on`).
#[derive(Default)]
pub struct Shared {
    state: Mutex<SharedState>,
    /// Wakes waiters.
    pub notify: Notify,
}

impl Shared {
    /// Locks the table (a panic elsewhere does not poison it for us: the
    /// table stays consistent between statements).
    pub fn lock(&self) -> MutexGuard<'_, SharedState> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Wakes every waiter.
    pub fn wake(&self) {
        self.notify.notify_waiters();
    }
}

/// The actor reading the scheduler connection.
pub struct ClientActor {
    shared: std::sync::Arc<Shared>,
    reader: Option<Reader>,
    limits: FrameLimits,
    /// The scheduler's address, for messages.
    address: String,
    timeouts: ReadTimeouts,
    /// How to connect again after losing the scheduler; `None`: never.
    reconnect: Option<Reconnect>,
}

impl ClientActor {
    /// An actor that will read `reader` into `shared`.
    pub fn new(shared: std::sync::Arc<Shared>, reader: Reader, limits: FrameLimits) -> Self {
        ClientActor {
            shared,
            reader: Some(reader),
            limits,
            address: String::new(),
            timeouts: ReadTimeouts::default(),
            reconnect: None,
        }
    }

    /// The same actor, connecting again when the connection is lost (for
    /// `reconnect.timeout`, if not zero) instead of failing every waiting
    /// call at once; see `client::link`.
    pub(crate) fn reconnecting(mut self, reconnect: Reconnect) -> Self {
        self.reconnect = Some(reconnect).filter(|r| !r.timeout.is_zero());
        self
    }

    /// The same actor, failing every waiting call with `scheduler at
    /// ADDRESS silent for N s` when nothing (not even the scheduler's
    /// keep-alive) arrived for `silence` (`None`: wait forever).
    pub fn watching(mut self, address: &str, silence: Option<Duration>) -> Self {
        self.address = address.to_string();
        self.timeouts.idle = silence;
        self
    }
}

impl Actor for ClientActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(mut reader) = self.reader.take() else {
            ctx.stop();
            return;
        };
        let me = ctx.address();
        let (limits, timeouts) = (self.limits, self.timeouts);
        let address = self.address.clone();
        let (shared, reconnect) = (self.shared.clone(), self.reconnect.clone());
        let read = async move {
            loop {
                let why = loop {
                    match transport::read_batch_within::<ToClient>(&mut reader, &limits, &timeouts).await {
                        Ok(Some(messages)) => {
                            if messages.is_empty() {
                                continue; // a keep-alive
                            }
                            if me.send(FromScheduler(messages)).await.is_err() {
                                return "client actor stopped".to_string();
                            }
                        }
                        Ok(None) => break "the scheduler closed the connection".to_string(),
                        Err(WireError::Silent(after)) => {
                            break format!("scheduler at {address} silent for {} s", after.as_secs_f64())
                        }
                        Err(e) => break format!("lost the connection to the scheduler: {e}"),
                    }
                };
                let Some(r) = &reconnect else {
                    return why;
                };
                // Answers to requests in flight went with the connection:
                // those calls fail (Disconnected); futures wait on.
                shared.lock().requests.clear();
                warn!("{why}; reconnecting (for up to {:?})", r.timeout);
                match reconnect_link(r, &shared, why).await {
                    Ok(again) => reader = again,
                    Err(why) => return why,
                }
            }
        };
        ctx.spawn(read.into_actor(self).map(|why, act, ctx| {
            act.disconnected(why);
            ctx.stop();
        }));
    }
}

impl ClientActor {
    fn disconnected(&mut self, why: String) {
        let mut st = self.shared.lock();
        if st.disconnected.is_none() {
            warn!("{why}");
            st.disconnected = Some(why);
        }
        st.requests.clear();
        drop(st);
        self.shared.wake();
    }
}

#[derive(Message)]
#[rtype(result = "()")]
struct FromScheduler(Vec<ToClient>);

impl Handler<FromScheduler> for ClientActor {
    type Result = ();
    fn handle(&mut self, msg: FromScheduler, _: &mut Self::Context) {
        let mut st = self.shared.lock();
        let mut wake = false;
        for m in msg.0 {
            wake |= apply(&mut st, m);
        }
        drop(st);
        if wake {
            self.shared.wake();
        }
    }
}

/// Counts one more future of `key` (one the scheduler handed over).
fn add_ref(st: &mut SharedState, key: &Key) {
    st.keys.add_ref(key, &std::sync::Arc::from(""));
}

/// Undoes [`add_ref`] for an answer nobody received; a key left without
/// futures is released with the next request.
fn drop_ref(st: &mut SharedState, key: Key) {
    if st.keys.drop_ref(&key).is_some() {
        st.orphaned.push(key);
    }
}

/// Applies one scheduler message to the table; true if a waiter watches
/// the key it completed (or a topic value arrived).
pub fn apply(st: &mut SharedState, msg: ToClient) -> bool {
    let completed = match &msg {
        ToClient::KeyInMemory { key, .. } | ToClient::TaskErred { key, .. } => st.watched.contains_key(key),
        _ => false,
    };
    match msg {
        ToClient::Welcome { client_id } => st.client_id = client_id,
        ToClient::KeyInMemory {
            key,
            nbytes,
            who_has,
            inline,
        } => {
            if let Some(e) = st.keys.get_mut(&key) {
                if e.status != KeyStatus::Cancelled {
                    e.status = KeyStatus::Finished {
                        who_has,
                        nbytes,
                        inline: inline.map(|p| p.0),
                    };
                }
            }
        }
        ToClient::TaskErred { key, failure } => {
            if let Some(e) = st.keys.get_mut(&key) {
                if e.status != KeyStatus::Cancelled {
                    // `Cancelled` from the scheduler (a `Client::restart`):
                    // it no longer wants the key for us, as after a
                    // `ReleaseKeys`, so submitting it again wants it anew.
                    if failure.kind == crate::wire::messages::ErrorKind::Cancelled {
                        e.released = true;
                    }
                    e.status = KeyStatus::Error(failure);
                }
            }
        }
        ToClient::NoWorker { key, function, reason } => {
            if let Some(e) = st.keys.get_mut(&key) {
                if e.status == KeyStatus::Pending {
                    warn!(%key, %function, "no worker can run this task; it waits for one: {reason}");
                    e.status = KeyStatus::NoWorker(reason);
                }
            }
        }
        ToClient::KeyLost { key } => {
            if let Some(e) = st.keys.get_mut(&key) {
                if matches!(e.status, KeyStatus::Finished { .. }) {
                    e.status = KeyStatus::Pending;
                }
            }
        }
        reply @ (ToClient::WhoHasReply { .. }
        | ToClient::ScatterDone { .. }
        | ToClient::ScatterTargets { .. }
        | ToClient::InfoReply { .. }
        | ToClient::DataMoves { .. }
        | ToClient::RetireWorkersDone { .. }
        | ToClient::StreamTasksReply { .. }
        | ToClient::RestartDone { .. }
        | ToClient::AdaptiveTargetReply { .. }) => {
            let id = match &reply {
                ToClient::WhoHasReply { request_id, .. }
                | ToClient::ScatterDone { request_id, .. }
                | ToClient::ScatterTargets { request_id, .. }
                | ToClient::InfoReply { request_id, .. }
                | ToClient::DataMoves { request_id, .. }
                | ToClient::RetireWorkersDone { request_id, .. }
                | ToClient::StreamTasksReply { request_id, .. }
                | ToClient::RestartDone { request_id, .. }
                | ToClient::AdaptiveTargetReply { request_id, .. } => *request_id,
                _ => return completed,
            };
            if let Some(tx) = st.requests.remove(&id) {
                let _ = tx.send(reply);
            }
        }
        ToClient::CoordReply { request_id, result } => {
            // The keys an answer hands over are counted as futures here,
            // before the news of those keys that follows in the batch.
            let keys = match &result {
                CoordResult::Item(CoordItem::Future(k)) => std::slice::from_ref(k),
                CoordResult::Keys(ks) => ks.as_slice(),
                _ => &[],
            }
            .to_vec();
            for k in &keys {
                add_ref(st, k);
            }
            let delivered = match st.requests.remove(&request_id) {
                Some(tx) => tx.send(ToClient::CoordReply { request_id, result }).is_ok(),
                None => false,
            };
            if !delivered {
                for k in keys {
                    drop_ref(st, k);
                }
            }
        }
        ToClient::TopicMessage { topic, value } => {
            if let Some(values) = st.topics.get_mut(&topic) {
                if values.len() >= MAX_TOPIC_BUFFER {
                    values.pop_front();
                }
                values.push_back(value);
                return true;
            }
        }
        // Other variants (a newer scheduler's) are not for this client's table.
        #[allow(unreachable_patterns)]
        _ => {}
    }
    completed
}
