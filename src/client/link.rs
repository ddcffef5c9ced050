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

/// The sending side of the scheduler connection, shared by every handle
/// of one client and replaced on reconnection.
pub(crate) struct SchedulerLink {
    sender: Mutex<Sender<FromClient>>,
}

impl SchedulerLink {
    pub(crate) fn new(sender: Sender<FromClient>) -> Self {
        SchedulerLink {
            sender: Mutex::new(sender),
        }
    }

    /// Queues a message on the current connection.
    pub(crate) fn send(&self, msg: FromClient) -> Result<(), WireError> {
        self.sender.lock().unwrap_or_else(|e| e.into_inner()).send(msg)
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
                    let mut keys: Vec<Key> = st
                        .keys
                        .iter()
                        .filter(|(_, e)| !e.released)
                        .map(|(k, _)| k.clone())
                        .collect();
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
