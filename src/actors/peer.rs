//! Peer-to-peer data: the server side on each worker's peer port, and the
//! client side (a pool of connections) used by workers fetching
//! dependencies and by clients gathering results.
//!
//! Data never passes through the scheduler: it only says who has what.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::store::{DataStore, Get, Report, WorkerCounters};
use crate::wire::codec::{self, FrameLimits, ReadTimeouts, WireError};
use crate::wire::listener::{self, ListenerOptions};
use crate::wire::messages::*;
use crate::wire::security::Security;
use crate::wire::transport::{self, Reader, WriteHalf};

/// Idle connections kept per peer address.
pub const MAX_IDLE_CONNECTIONS_PER_PEER: usize = 4;
/// How long one request to a peer may take before the connection is
/// abandoned (large transfers included).
pub const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Longest wait for the first byte of a peer's reply. A live peer answers
/// from memory or its spill directory, a request being at most the
/// fetcher's `max_fetch_bytes`; a peer cut off by the network (no FIN, no
/// RST) would otherwise hold the fetch, and the task waiting on it, for the
/// whole [`PEER_REQUEST_TIMEOUT`].
pub const PEER_REPLY_START_TIMEOUT: Duration = Duration::from_secs(60);
/// Longest a reply in progress may go without advancing (see
/// [`crate::wire::codec::FRAME_PROGRESS_BYTES`]).
pub const PEER_REPLY_STALL_TIMEOUT: Duration = Duration::from_secs(30);

struct PeerConn {
    reader: Reader,
    writer: WriteHalf,
}

/// Connections to workers' peer ports, reused across requests.
#[derive(Clone)]
pub struct PeerPool {
    name: Arc<str>,
    idle: Arc<Mutex<HashMap<String, Vec<PeerConn>>>>,
    next_request: Arc<AtomicU64>,
    limits: FrameLimits,
    security: Security,
    /// Bounds on reading a reply ([`PEER_REPLY_START_TIMEOUT`],
    /// [`PEER_REPLY_STALL_TIMEOUT`]).
    reply_timeouts: ReadTimeouts,
}

impl PeerPool {
    /// An empty pool; `name` is announced in handshakes.
    pub fn new(name: &str, limits: FrameLimits) -> Self {
        PeerPool {
            name: name.into(),
            idle: Arc::default(),
            next_request: Arc::new(AtomicU64::new(1)),
            limits,
            security: Security::default(),
            reply_timeouts: ReadTimeouts {
                idle: Some(PEER_REPLY_START_TIMEOUT),
                stall: Some(PEER_REPLY_STALL_TIMEOUT),
            },
        }
    }

    /// The same pool with other bounds on reading a reply (tests use short
    /// ones).
    #[doc(hidden)]
    pub fn with_reply_timeouts(mut self, timeouts: ReadTimeouts) -> Self {
        self.reply_timeouts = timeouts;
        self
    }

    /// The same pool connecting with `security` (TLS, token).
    pub fn with_security(mut self, security: Security) -> Self {
        self.security = security;
        self
    }

    fn take_idle(&self, address: &str) -> Option<PeerConn> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get_mut(address).and_then(|v| v.pop())
    }

    fn put_idle(&self, address: &str, conn: PeerConn) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(address.to_string()).or_default();
        if list.len() < MAX_IDLE_CONNECTIONS_PER_PEER {
            list.push(conn);
        }
    }

    async fn request(&self, address: &str, msg: ToPeer) -> Result<FromPeer, WireError> {
        let mut conn = match self.take_idle(address) {
            Some(c) => c,
            None => {
                let (reader, writer) = transport::connect(address, Role::Peer, &self.name, &self.security).await?;
                PeerConn { reader, writer }
            }
        };
        let reply = tokio::time::timeout(PEER_REQUEST_TIMEOUT, async {
            let (header, payloads) = codec::encode(&[msg][..])?;
            codec::write_frame(&mut conn.writer, &header, &payloads).await?;
            tokio::io::AsyncWriteExt::flush(&mut conn.writer).await?;
            let reply = transport::read_batch_within::<FromPeer>(&mut conn.reader, &self.limits, &self.reply_timeouts)
                .await
                .map_err(|e| match e {
                    WireError::Silent(d) => WireError::Timeout(format!("{address} sent no reply within {d:?}")),
                    WireError::Stalled(d) => {
                        WireError::Timeout(format!("{address}'s reply made no progress for {d:?}"))
                    }
                    other => other,
                })?;
            match reply {
                Some(mut msgs) if msgs.len() == 1 => msgs.pop().ok_or(WireError::Closed),
                Some(_) => Err(WireError::Malformed("expected exactly one reply".into())),
                None => Err(WireError::Closed),
            }
        })
        .await
        .map_err(|_| WireError::Timeout(format!("request to {address}")))??;
        self.put_idle(address, conn);
        Ok(reply)
    }

    /// Fetches keys from the worker at `address`; `None` for keys it lacks.
    pub async fn get_data(&self, address: &str, keys: Vec<Key>) -> Result<Vec<(Key, Option<Bytes>)>, WireError> {
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        match self.request(address, ToPeer::GetData { request_id, keys }).await? {
            FromPeer::Data { request_id: r, data } if r == request_id => {
                Ok(data.into_iter().map(|(k, v)| (k, v.map(|p| p.0))).collect())
            }
            other => Err(WireError::Malformed(format!("unexpected reply {other:?}"))),
        }
    }

    /// Asks the worker at `address` for its store and transfer counters.
    pub async fn info(&self, address: &str) -> Result<WorkerStoreInfo, WireError> {
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        match self.request(address, ToPeer::Info { request_id }).await? {
            FromPeer::Info { request_id: r, info } if r == request_id => Ok(info),
            other => Err(WireError::Malformed(format!("unexpected reply {other:?}"))),
        }
    }
}

/// Serves the peer port of a worker: data requests from other workers and
/// clients, answered from the store. A request frame that stalls for `stall`
/// closes its connection.
pub async fn serve_peers(
    listener: TcpListener,
    name: String,
    store: Addr<DataStore>,
    counters: Arc<WorkerCounters>,
    limits: FrameLimits,
    security: Security,
    stall: Option<Duration>,
) {
    let options = ListenerOptions {
        label: "peer port",
        max_connections: listener::effective_max_connections(listener::DEFAULT_MAX_CONNECTIONS),
        plain_refusal: !security.is_tls(),
    };
    listener::serve(listener, options, move |stream, peer, permit| {
        let (store, counters, name, security) = (store.clone(), counters.clone(), name.clone(), security.clone());
        let timeouts = ReadTimeouts { idle: None, stall };
        async move {
            if let Err(e) = serve_peer(stream, name, store, counters, limits, &security, &timeouts).await {
                warn!(%peer, "peer connection closed: {e}");
            }
            drop(permit);
        }
    })
    .await
}

async fn serve_peer(
    stream: tokio::net::TcpStream,
    name: String,
    store: Addr<DataStore>,
    counters: Arc<WorkerCounters>,
    limits: FrameLimits,
    security: &Security,
    timeouts: &ReadTimeouts,
) -> Result<(), WireError> {
    let (hello, mut reader, write) = transport::accept(stream, &[Role::Peer], security).await?;
    debug!(peer = %hello.name, "peer connected");
    let sender = transport::spawn_writer::<FromPeer>(write, hello.name.clone());
    while let Some(requests) = transport::read_batch_within::<ToPeer>(&mut reader, &limits, timeouts).await? {
        for req in requests {
            let reply = match req {
                ToPeer::GetData { request_id, keys } => {
                    let data = store
                        .send(Get { keys, for_peer: true })
                        .await
                        .map_err(|_| WireError::Closed)?;
                    FromPeer::Data {
                        request_id,
                        data: data.into_iter().map(|(k, v)| (k, v.map(Payload))).collect(),
                    }
                }
                ToPeer::Info { request_id } => {
                    let report = store.send(Report).await.map_err(|_| WireError::Closed)?;
                    FromPeer::Info {
                        request_id,
                        info: WorkerStoreInfo {
                            name: name.clone(),
                            nkeys: report.figures.nkeys,
                            nbytes: report.figures.memory_bytes,
                            bytes_fetched_from_peers: counters.bytes_fetched.load(Ordering::Relaxed),
                            bytes_served_to_peers: counters.bytes_served.load(Ordering::Relaxed),
                            tasks_executed: counters.tasks_executed.load(Ordering::Relaxed),
                            spilled_keys: report.figures.spilled_keys,
                            spilled_bytes: report.figures.spilled_bytes,
                            rss_bytes: report.rss_bytes,
                            memory_limit: report.memory_limit,
                            paused: report.figures.paused,
                            spill_directory: report.spill_directory.to_string_lossy().into_owned(),
                            spill_error: report.spill_error,
                        },
                    }
                }
            };
            sender.send(reply)?;
        }
    }
    Ok(())
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
