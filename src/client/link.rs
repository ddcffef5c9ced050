//! The client's connection to the scheduler, and connecting it again.
//!
//! [`SchedulerLink`] is the sending side every handle of a client shares;
//! it is replaced when the client actor (`actors::client`) reconnects.
//! [`dial`] connects, reads the scheduler's `Welcome` into the client's
//! table and starts the writer; [`reconnect`] retries it with back-off
//! within a bound, then re-declares the keys the client holds futures for
//! (`ReconnectClient`).

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tracing::info;

use crate::actors::client::Shared;
use crate::wire::messages::*;
use crate::wire::transport::{self, Reader, Sender};
use crate::wire::{FrameLimits, Security, WireError};

/// First pause between two reconnection attempts that reached the
/// scheduler's port but failed (attempts while nothing listens back off by
/// themselves, up to [`transport::MAX_CONNECT_BACKOFF`]).
pub const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two reconnection attempts.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// Most keys a client gathers from dropped futures before it sends their
/// `ReleaseKeys` without waiting for its I/O thread's flush.
pub const MAX_RELEASE_BATCH: usize = crate::wire::writer::MAX_MERGED_KEYS;

/// The sending side of the scheduler connection, shared by every handle
/// of one client and replaced on reconnection.
pub(crate) struct SchedulerLink {
    sender: Mutex<Sender<FromClient>>,
    /// Keys of dropped futures not sent yet: sent as one `ReleaseKeys`
    /// before any other message (so the order of what the client sends is
    /// kept), by the flush the first of them scheduled, or when
    /// [`MAX_RELEASE_BATCH`] are waiting. One message per batch, not per
    /// future: dropping a million futures was 2.4 s of mostly per-message
    /// work (issue 15).
    releases: Mutex<Vec<Key>>,
}

impl SchedulerLink {
    pub(crate) fn new(sender: Sender<FromClient>) -> Self {
        SchedulerLink {
            sender: Mutex::new(sender),
            releases: Mutex::new(Vec::new()),
        }
    }

    /// Queues a message on the current connection, after any releases
    /// waiting.
    pub(crate) fn send(&self, msg: FromClient) -> Result<(), WireError> {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        self.send_releases(&sender)?;
        sender.send(msg)
    }

    /// Adds a dropped future's key to the releases waiting. Returns true
    /// when it is the first one waiting: the caller then schedules
    /// [`Self::flush_releases`].
    pub(crate) fn queue_release(&self, key: Key) -> Result<bool, WireError> {
        let mut waiting = self.releases.lock().unwrap_or_else(|e| e.into_inner());
        waiting.push(key);
        match waiting.len() {
            1 => Ok(true),
            n if n >= MAX_RELEASE_BATCH => {
                drop(waiting);
                self.flush_releases().map(|_| false)
            }
            _ => Ok(false),
        }
    }

    /// Sends the releases waiting, if any, as one `ReleaseKeys`.
    pub(crate) fn flush_releases(&self) -> Result<(), WireError> {
        let sender = self.sender.lock().unwrap_or_else(|e| e.into_inner());
        self.send_releases(&sender)
    }

    fn send_releases(&self, sender: &Sender<FromClient>) -> Result<(), WireError> {
        let keys = std::mem::take(&mut *self.releases.lock().unwrap_or_else(|e| e.into_inner()));
        if keys.is_empty() {
            return Ok(());
        }
        sender.send(FromClient::ReleaseKeys { keys })
    }

    fn replace(&self, sender: Sender<FromClient>) {
        *self.sender.lock().unwrap_or_else(|e| e.into_inner()) = sender;
    }
}

/// Where and how a client connects.
#[derive(Clone)]
pub(crate) struct Dial {
    pub(crate) address: String,
    pub(crate) name: String,
    pub(crate) security: Security,
    pub(crate) limits: FrameLimits,
}

/// Connects (retrying for `connect_timeout` while nothing listens), applies
/// the scheduler's first batch (`Welcome`) to `shared`, and starts the
/// writer. Runs on the client's runtime.
pub(crate) async fn dial(
    d: &Dial,
    shared: &Shared,
    connect_timeout: Duration,
) -> Result<(Reader, Sender<FromClient>), WireError> {
    let (mut reader, write) =
        transport::connect_retrying(&d.address, Role::Client, &d.name, &d.security, connect_timeout).await?;
    let first = tokio::time::timeout(
        transport::HANDSHAKE_TIMEOUT,
        transport::read_batch::<ToClient>(&mut reader, &d.limits),
    )
    .await
    .map_err(|_| WireError::Timeout("the scheduler sent no welcome".into()))??;
    match first {
        Some(msgs) => {
            let mut st = shared.lock();
            for m in msgs {
                crate::actors::client::apply(&mut st, m);
            }
        }
        None => return Err(WireError::Closed),
    }
    let writer = transport::WriterOptions {
        keepalive: Some(super::CLIENT_KEEPALIVE_INTERVAL),
        ..Default::default()
    };
    let sender = transport::spawn_writer_with::<FromClient>(write, format!("scheduler {}", d.address), writer);
    Ok((reader, sender))
}

/// Reconnection settings of a client actor.
#[derive(Clone)]
pub(crate) struct Reconnect {
    pub(crate) dial: Dial,
    pub(crate) link: Arc<SchedulerLink>,
    /// How long to keep trying; zero: never reconnect.
    pub(crate) timeout: Duration,
}

/// Connects again within `r.timeout`, then sends `ReconnectClient` with
/// every key the client holds futures for. Returns the new reader, or why
/// it gave up.
pub(crate) async fn reconnect(r: &Reconnect, shared: &Shared, lost: String) -> Result<Reader, String> {
    let deadline = Instant::now() + r.timeout;
    let mut backoff = FIRST_RECONNECT_BACKOFF;
    let mut last = lost.clone();
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(format!(
                "{lost}; could not reconnect within {:?} (last: {last})",
                r.timeout
            ));
        }
        let previous = shared.lock().client_id;
        match tokio::time::timeout(left, dial(&r.dial, shared, left)).await {
            Ok(Ok((reader, sender))) => {
                let keys: Vec<Key> = {
                    let st = shared.lock();
                    let mut keys: Vec<Key> = st.keys.iter().filter(|e| !e.released).map(|e| e.key.clone()).collect();
                    keys.sort();
                    keys
                };
                let n = keys.len();
                if let Err(e) = sender.send(FromClient::ReconnectClient {
                    previous_client_id: previous,
                    keys,
                }) {
                    last = e.to_string();
                } else {
                    r.link.replace(sender);
                    info!(
                        scheduler = %r.dial.address,
                        "reconnected to the scheduler; re-declared the {n} keys this client holds futures for"
                    );
                    return Ok(reader);
                }
            }
            Ok(Err(e)) => last = e.to_string(),
            Err(_) => last = "no welcome in time".to_string(),
        }
        let left = deadline.saturating_duration_since(Instant::now());
        tokio::time::sleep(backoff.min(left)).await;
        backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
    }
}
