//! The batching writer every connection sends through, and the handle
//! ([`Sender`]) actors queue messages on.
//!
//! Actors hand the writer messages through an unbounded channel (so an actor
//! never waits on a slow peer) guarded by a byte budget: a peer that stops
//! reading is cut off, and its queue freed, instead of growing our memory
//! without bound. The writer drains whatever is queued into one frame, which
//! is where batching comes from: messages an actor produced in one turn leave
//! in one frame and, usually, one syscall. A writer with a keep-alive
//! interval sends an empty batch when it has sent nothing else for that
//! long, so the peer can tell a quiet connection from a dead one.

use std::sync::atomic::{AtomicU64, AtomicU8, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufWriter};
use tokio::sync::{mpsc, Notify};
use tracing::{debug, warn};

use super::codec::{self, WireError, MAX_MESSAGES_PER_FRAME};
use super::messages::*;
use super::transport::WriteHalf;

/// Bytes queued for one connection and not yet written, past which the
/// connection is cut, where no tighter budget is configured (the
/// scheduler's connections use `scheduler.max_unsent_bytes_per_connection`).
pub const MAX_UNSENT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Size of the write buffer in front of each socket: frames smaller than
/// this are coalesced into one write.
pub const WRITE_BUFFER_BYTES: usize = 256 * 1024;
/// A connection whose queue held at least this many bytes gives the freed
/// memory back to the operating system when it ends
/// ([`crate::util::release_free_memory`]): glibc keeps freed small blocks
/// otherwise, and the process would stay at its high-water mark.
pub const RELEASE_MEMORY_AFTER_BYTES: u64 = 16 * 1024 * 1024;
/// The msgpack header of an empty batch: the keep-alive frame's header.
const EMPTY_BATCH: &[u8] = &[0x90];

/// A message type that travels on the wire.
pub trait WireMessage: Serialize + DeserializeOwned + Send + 'static {
    /// Rough bytes this message occupies while queued: payloads, strings and
    /// a fixed overhead for the allocations around them.
    fn approx_bytes(&self) -> u64;

    /// Merges `next`, queued right after `self`, into `self` when the two
    /// mean the same as one message (e.g. two `ReleaseKeys` in a row):
    /// `None` if merged, else `next` back. Only neighbours merge, so the
    /// order of everything on the connection is kept; the peer then handles
    /// one message (one event) instead of one per key.
    fn merge(&mut self, next: Self) -> Option<Self> {
        Some(next)
    }
}

/// Most keys one merged message carries ([`WireMessage::merge`]), so that
/// one event at the peer stays bounded.
pub const MAX_MERGED_KEYS: usize = 64 * 1024;

/// Appends `next` to `keys` unless that would pass [`MAX_MERGED_KEYS`].
fn merge_keys(keys: &mut Vec<Key>, next: &mut Vec<Key>) -> bool {
    if keys.len() + next.len() > MAX_MERGED_KEYS {
        return false;
    }
    keys.append(next);
    true
}

fn payload_len(p: &Option<Payload>) -> u64 {
    p.as_ref().map_or(0, |p| p.len() as u64)
}

fn strings_len(v: &[String]) -> u64 {
    v.iter().map(|s| s.len() as u64 + STRING_OVERHEAD).sum()
}

/// The enum itself, its channel slot and allocator headers.
const MESSAGE_OVERHEAD: u64 = 128;
/// One heap string: its allocation and header.
const STRING_OVERHEAD: u64 = 32;

/// Rough encoded size of a task argument.
fn arg_bytes(a: &Arg) -> u64 {
    let n = match a {
        Arg::Value(v) => v.len(),
        Arg::Key(k) => k.len(),
        Arg::Keys(ks) => ks.iter().map(|k| k.len() + 4).sum(),
        Arg::KeyMap(entries) => entries.iter().map(|(b, k)| b.len() + k.len() + 8).sum(),
    };
    n as u64 + 8
}

/// A queued message at least this large (by `approx_bytes`) is written in a
/// frame of its own: batching gains it nothing.
pub const ALONE_BYTES: u64 = 64 * 1024;
/// Most bytes of small messages batched into one frame.
pub const BATCH_BYTES: u64 = 4 * 1024 * 1024;

impl WireMessage for FromClient {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                FromClient::Scatter { data, .. } => data.iter().map(|(_, p)| p.len() as u64).sum(),
                FromClient::UpdateGraph { tasks, .. } => tasks
                    .iter()
                    .map(|t| 128 + t.args.iter().map(arg_bytes).sum::<u64>())
                    .sum(),
                // Counted, so that the queue's budget sees them and a release
                // of tens of thousands of keys leaves in a frame of its own
                // (one event at the scheduler, not one with all of them).
                FromClient::ReleaseKeys { keys } => strings_len(keys),
                _ => 0,
            }
    }

    fn merge(&mut self, next: Self) -> Option<Self> {
        match (self, next) {
            (FromClient::ReleaseKeys { keys }, FromClient::ReleaseKeys { keys: mut more }) => {
                if merge_keys(keys, &mut more) {
                    None
                } else {
                    Some(FromClient::ReleaseKeys { keys: more })
                }
            }
            (_, next) => Some(next),
        }
    }
}

impl WireMessage for FromWorker {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                FromWorker::TaskFinished { key, inline, .. } => key.len() as u64 + payload_len(inline),
                _ => 0,
            }
    }
}

impl WireMessage for ToClient {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                ToClient::KeyInMemory {
                    key, who_has, inline, ..
                } => key.len() as u64 + STRING_OVERHEAD + strings_len(who_has) + payload_len(inline),
                ToClient::TaskErred { key, failure } => key.len() as u64 + failure.message.len() as u64 + 64,
                ToClient::NoWorker { key, function, reason } => {
                    key.len() as u64 + function.len() as u64 + reason.len() as u64 + 64
                }
                ToClient::KeyLost { key } => key.len() as u64 + STRING_OVERHEAD,
                ToClient::WhoHasReply { who_has, .. } => who_has
                    .iter()
                    .map(|w| w.key.len() as u64 + 64 + strings_len(&w.workers))
                    .sum(),
                ToClient::InfoReply { info, .. } => 1024 + info.workers.len() as u64 * 512,
                ToClient::StreamTasksReply { records, .. } => records
                    .iter()
                    .map(|r| 64 + (r.key.len() + r.function.len() + r.worker.len()) as u64)
                    .sum(),
                _ => 0,
            }
    }
}

impl WireMessage for ToWorker {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                ToWorker::StoreData { data } => data.iter().map(|(_, p)| p.len() as u64).sum(),
                ToWorker::ComputeTask {
                    key,
                    args,
                    dependencies,
                    ..
                } => {
                    key.len() as u64
                        + args
                            .iter()
                            .map(|a| match a {
                                Arg::Value(v) => v.len() as u64 + STRING_OVERHEAD,
                                other => other.keys().map(|k| k.len() as u64 + STRING_OVERHEAD).sum(),
                            })
                            .sum::<u64>()
                        + dependencies
                            .iter()
                            .map(|d| d.key.len() as u64 + 64 + strings_len(&d.who_has))
                            .sum::<u64>()
                }
                ToWorker::FreeKeys { keys } => strings_len(keys),
                _ => 0,
            }
    }

    fn merge(&mut self, next: Self) -> Option<Self> {
        match (self, next) {
            (ToWorker::FreeKeys { keys }, ToWorker::FreeKeys { keys: mut more }) => {
                if merge_keys(keys, &mut more) {
                    None
                } else {
                    Some(ToWorker::FreeKeys { keys: more })
                }
            }
            (_, next) => Some(next),
        }
    }
}

impl WireMessage for ToPeer {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
    }
}

impl WireMessage for FromPeer {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                FromPeer::Data { data, .. } => data.iter().map(|(_, p)| payload_len(p)).sum(),
                _ => 0,
            }
    }
}

/// How a connection's writer behaves.
#[derive(Clone, Copy, Debug)]
pub struct WriterOptions {
    /// Bytes that may be queued and unsent before the connection is cut
    /// (a message is still accepted while the queue is below this, so one
    /// message larger than the budget goes through on its own).
    pub max_unsent_bytes: u64,
    /// Send an empty batch after this long without sending anything else;
    /// `None`: never.
    pub keepalive: Option<Duration>,
}

impl Default for WriterOptions {
    fn default() -> Self {
        WriterOptions {
            max_unsent_bytes: MAX_UNSENT_BYTES,
            keepalive: None,
        }
    }
}

const OPEN: u8 = 0;
/// Closing gracefully: the writer sends what is queued, then shuts down.
const CLOSING: u8 = 1;
/// Cut: the writer drops the socket at once, with what is queued.
const ABORTED: u8 = 2;

/// What a connection's senders and its writer share.
struct WriterShared {
    unsent: AtomicU64,
    /// Highest `unsent` seen, to decide whether to release memory at the end.
    peak: AtomicU64,
    state: AtomicU8,
    /// Why the connection was cut ([`ABORTED`]).
    failure: Mutex<Option<String>>,
    /// Wakes the writer (close, abort) and [`Sender::failed`] waiters.
    wake: Notify,
}

impl WriterShared {
    fn abort(&self, why: String) {
        let mut failure = self.failure.lock().unwrap_or_else(|e| e.into_inner());
        if failure.is_none() {
            *failure = Some(why);
        }
        drop(failure);
        self.state.store(ABORTED, Ordering::Release);
        self.wake.notify_waiters();
    }

    fn state(&self) -> u8 {
        self.state.load(Ordering::Acquire)
    }

    /// Resolves once the state is at least `at_least`.
    async fn reached(&self, at_least: u8) {
        loop {
            let notified = self.wake.notified();
            tokio::pin!(notified);
            notified.as_mut().enable();
            if self.state() >= at_least {
                return;
            }
            notified.await;
        }
    }
}

/// Handle for queueing messages on a connection's writer.
pub struct Sender<M> {
    /// Each message with its `approx_bytes`, computed once on send.
    tx: mpsc::UnboundedSender<(M, u64)>,
    shared: Arc<WriterShared>,
    max_unsent: u64,
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            shared: self.shared.clone(),
            max_unsent: self.max_unsent,
        }
    }
}

impl<M: WireMessage> Sender<M> {
    /// Queues a message. Fails if the connection is closed; a message that
    /// finds the queue over its budget cuts the connection
    /// ([`WireError::NotReading`]): the writer drops the socket and the
    /// queue, and [`Sender::failed`] resolves.
    pub fn send(&self, msg: M) -> Result<(), WireError> {
        if self.shared.state() != OPEN {
            return Err(WireError::Closed);
        }
        let size = msg.approx_bytes();
        let before = self.shared.unsent.fetch_add(size, Ordering::Relaxed);
        if before >= self.max_unsent {
            let why = format!(
                "the peer is not reading: {before} bytes queued for it and unsent (limit {})",
                self.max_unsent
            );
            self.shared.abort(why.clone());
            return Err(WireError::NotReading(why));
        }
        self.shared.peak.fetch_max(before + size, Ordering::Relaxed);
        self.tx.send((msg, size)).map_err(|_| WireError::Closed)
    }

    /// Whether the connection has failed or closed.
    pub fn is_closed(&self) -> bool {
        self.shared.state() != OPEN || self.tx.is_closed()
    }

    /// Stops the writer after what is queued; the socket is closed.
    pub fn close(&self) {
        let _ = self
            .shared
            .state
            .compare_exchange(OPEN, CLOSING, Ordering::AcqRel, Ordering::Acquire);
        self.shared.wake.notify_waiters();
    }

    /// Resolves when the connection was cut for not reading, with why; a
    /// reader selects on it to end the whole connection.
    pub async fn failed(&self) -> WireError {
        self.shared.reached(ABORTED).await;
        let why = self.shared.failure.lock().unwrap_or_else(|e| e.into_inner()).clone();
        WireError::NotReading(why.unwrap_or_default())
    }
}

/// Starts the writer task for a connection on the current (actix or tokio)
/// local task set, returning the handle that queues messages on it.
pub fn spawn_writer<M: WireMessage>(write: WriteHalf, label: String) -> Sender<M> {
    spawn_writer_with(write, label, WriterOptions::default())
}

/// [`spawn_writer`] with a budget and a keep-alive.
pub fn spawn_writer_with<M: WireMessage>(write: WriteHalf, label: String, options: WriterOptions) -> Sender<M> {
    let (tx, rx) = mpsc::unbounded_channel();
    let shared = Arc::new(WriterShared {
        unsent: AtomicU64::new(0),
        peak: AtomicU64::new(0),
        state: AtomicU8::new(OPEN),
        failure: Mutex::new(None),
        wake: Notify::new(),
    });
    let sender = Sender {
        tx,
        shared: shared.clone(),
        max_unsent: options.max_unsent_bytes,
    };
    tokio::task::spawn_local(async move {
        let result = tokio::select! {
            r = writer_loop(write, rx, &shared, options.keepalive) => r,
            // Cut at once: the pending write and the queue are dropped here.
            _ = shared.reached(ABORTED) => Ok(()),
        };
        if let Err(e) = result {
            debug!(peer = %label, "writer stopped: {e}");
        }
        if shared.state() != ABORTED {
            shared.state.store(CLOSING.max(shared.state()), Ordering::Release);
        }
        shared.wake.notify_waiters();
        if shared.peak.load(Ordering::Relaxed) >= RELEASE_MEMORY_AFTER_BYTES {
            // The queue is gone (the future owning it was dropped above).
            crate::util::release_free_memory();
        }
    });
    sender
}

async fn writer_loop<M: WireMessage>(
    write: WriteHalf,
    mut rx: mpsc::UnboundedReceiver<(M, u64)>,
    shared: &WriterShared,
    keepalive: Option<Duration>,
) -> Result<(), WireError> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write);
    let mut batch: Vec<M> = Vec::new();
    let mut carry: Option<(M, u64)> = None;
    loop {
        if shared.state() != OPEN && rx.is_empty() && carry.is_none() {
            break;
        }
        let first = match carry.take() {
            Some(m) => m,
            None => tokio::select! {
                biased;
                m = rx.recv() => match m {
                    Some(m) => m,
                    None => break,
                },
                _ = shared.reached(CLOSING) => continue,
                _ = sleep_or_never(keepalive) => {
                    codec::write_frame(&mut out, EMPTY_BATCH, &[]).await?;
                    out.flush().await?;
                    continue;
                }
            },
        };
        let (first, mut bytes) = first;
        batch.push(first);
        // A large message goes in a frame of its own and small ones fill a
        // frame only up to BATCH_BYTES, so no frame is much larger than its
        // largest message, which its sender sized for the peer's limits.
        while bytes < ALONE_BYTES && batch.len() < MAX_MESSAGES_PER_FRAME {
            match rx.try_recv() {
                Ok((m, b)) => {
                    if b >= ALONE_BYTES || bytes + b > BATCH_BYTES {
                        carry = Some((m, b));
                        break;
                    }
                    bytes += b;
                    let merged = match batch.last_mut() {
                        Some(last) => last.merge(m),
                        None => Some(m),
                    };
                    if let Some(m) = merged {
                        batch.push(m);
                    }
                }
                Err(_) => break,
            }
        }
        match codec::encode(&batch[..]) {
            Ok((header, payloads)) => codec::write_frame(&mut out, &header, &payloads).await?,
            Err(e) => warn!(
                "dropping a batch of {} messages that cannot be encoded: {e}",
                batch.len()
            ),
        }
        shared.unsent.fetch_sub(bytes, Ordering::Relaxed);
        batch.clear();
        if rx.is_empty() && carry.is_none() {
            out.flush().await?;
        }
    }
    out.flush().await?;
    let _ = out.into_inner().shutdown().await;
    Ok(())
}

async fn sleep_or_never(after: Option<Duration>) {
    match after {
        Some(d) => tokio::time::sleep(d).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
#[path = "writer_tests.rs"]
mod tests;
