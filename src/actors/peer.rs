//! Peer-to-peer data, the client side: a pool of connections to workers'
//! peer ports, used by workers fetching dependencies and by clients
//! gathering results and pushing scattered values. The server side is
//! [`super::peer_service`].
//!
//! Data never passes through the scheduler: it only says who has what.
//! Actor method calls and `Client::run` go the same direct way (the
//! worker runs them off its task pool, see `crate::actor_api`).

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use tracing::{debug, info, warn};

use crate::wire::codec::{self, FrameLimits, ReadTimeouts, WireError};
use crate::wire::messages::*;
use crate::wire::security::Security;
use crate::wire::transport::{self, Reader, WriteHalf};

/// Idle connections kept per peer address.
pub const MAX_IDLE_CONNECTIONS_PER_PEER: usize = 4;
/// How long one request to a peer may take before the connection is
/// abandoned (large transfers included).
pub const PEER_REQUEST_TIMEOUT: Duration = Duration::from_secs(300);
/// Most requests one pool has in flight to one peer address (one
/// connection each); more wait their turn, within their own timeout.
/// Without it, thousands of actor calls made at once opened as many
/// connections at once, and the peer's accept queue reset some of them.
pub const MAX_CONCURRENT_REQUESTS_PER_PEER: usize = 32;
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

/// The memory files of one direct scatter, shared by its pushes to every
/// worker on this host ([`crate::shm::PushFiles`]); nothing off Linux.
#[derive(Clone, Default)]
pub struct PushFiles(#[cfg(target_os = "linux")] crate::shm::PushFiles);

impl PushFiles {
    /// `v` encoded for a direct scatter: on Linux, a large value straight
    /// into a memory file ([`crate::shm::push_files::encode_shared`]), its
    /// bytes a mapping of it; `None` to encode it the ordinary way.
    pub fn encode<T: serde::Serialize + ?Sized>(v: &T) -> Result<Option<(Bytes, Option<PushFile>)>, EncodeError> {
        #[cfg(target_os = "linux")]
        return crate::shm::push_files::encode_shared(v);
        #[cfg(not(target_os = "linux"))]
        {
            let _ = v;
            Ok(None)
        }
    }

    /// Records `file` as the memory file of `key` for the pushes.
    pub fn insert(&self, key: Key, file: PushFile) {
        #[cfg(target_os = "linux")]
        self.0.insert(key, file);
        #[cfg(not(target_os = "linux"))]
        let _ = (key, file);
    }
}

type EncodeError = rmp_serde::encode::Error;

/// One value's memory file ([`PushFiles`]); nothing off Linux.
#[cfg(target_os = "linux")]
pub type PushFile = Arc<std::os::fd::OwnedFd>;
/// One value's memory file ([`PushFiles`]); nothing off Linux.
#[cfg(not(target_os = "linux"))]
pub type PushFile = std::convert::Infallible;

/// Connections to workers' peer ports, reused across requests.
#[derive(Clone)]
pub struct PeerPool {
    name: Arc<str>,
    idle: Arc<Mutex<HashMap<String, Vec<PeerConn>>>>,
    /// Per address: permits for requests in flight.
    in_flight: Arc<Mutex<HashMap<String, Arc<tokio::sync::Semaphore>>>>,
    next_request: Arc<AtomicU64>,
    limits: FrameLimits,
    security: Security,
    /// Bounds on reading a reply ([`PEER_REPLY_START_TIMEOUT`],
    /// [`PEER_REPLY_STALL_TIMEOUT`]).
    reply_timeouts: ReadTimeouts,
    /// Fetching from peers on this host through shared memory (workers
    /// with `shared_memory_transfers` on).
    #[cfg(target_os = "linux")]
    shm: Option<crate::shm::ShmFetcher>,
    /// Whether fetches use `shm` too (a worker's pool), or only pushes (a
    /// client's: its gathers stay on TCP).
    #[cfg(target_os = "linux")]
    shm_fetches: bool,
}

impl PeerPool {
    /// An empty pool; `name` is announced in handshakes.
    pub fn new(name: &str, limits: FrameLimits) -> Self {
        PeerPool {
            name: name.into(),
            idle: Arc::default(),
            in_flight: Arc::default(),
            next_request: Arc::new(AtomicU64::new(1)),
            limits,
            security: Security::default(),
            reply_timeouts: ReadTimeouts {
                idle: Some(PEER_REPLY_START_TIMEOUT),
                stall: Some(PEER_REPLY_STALL_TIMEOUT),
            },
            #[cfg(target_os = "linux")]
            shm: None,
            #[cfg(target_os = "linux")]
            shm_fetches: false,
        }
    }

    /// The same pool fetching from peers on this host through shared
    /// memory when they offer it ([`crate::shm`]).
    #[cfg(target_os = "linux")]
    pub fn with_shm(mut self, shm: crate::shm::ShmFetcher) -> Self {
        self.shm = Some(shm);
        self.shm_fetches = true;
        self
    }

    /// The same pool pushing values ([`Self::put_data`]) to peers on this
    /// host through shared memory when they offer it; fetches stay on TCP.
    #[cfg(target_os = "linux")]
    pub fn with_shm_pushes(mut self, shm: crate::shm::ShmFetcher) -> Self {
        self.shm = Some(shm);
        self.shm_fetches = false;
        self
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
        self.request_within(address, msg, PEER_REQUEST_TIMEOUT, self.reply_timeouts)
            .await
    }

    /// How an actor call's or a run's reply is read: it starts only when
    /// the user's code returns, which may take longer than
    /// [`PEER_REPLY_START_TIMEOUT`], so only the call's own timeout bounds
    /// that wait; a reply that stalls once begun still fails.
    fn call_reply_timeouts(&self) -> ReadTimeouts {
        ReadTimeouts {
            idle: None,
            stall: self.reply_timeouts.stall,
        }
    }

    fn permits(&self, address: &str) -> Arc<tokio::sync::Semaphore> {
        let mut map = self.in_flight.lock().unwrap_or_else(|e| e.into_inner());
        map.entry(address.to_string())
            .or_insert_with(|| Arc::new(tokio::sync::Semaphore::new(MAX_CONCURRENT_REQUESTS_PER_PEER)))
            .clone()
    }

    async fn request_within(
        &self,
        address: &str,
        msg: ToPeer,
        timeout: Duration,
        reply_timeouts: ReadTimeouts,
    ) -> Result<FromPeer, WireError> {
        let permits = self.permits(address);
        let _permit = tokio::time::timeout(timeout, permits.acquire_owned())
            .await
            .map_err(|_| WireError::Timeout(format!("a turn to send a request to {address}")))?
            .map_err(|_| WireError::Closed)?;
        let mut conn = match self.take_idle(address) {
            Some(c) => c,
            None => {
                let (reader, writer) = transport::connect(address, Role::Peer, &self.name, &self.security).await?;
                PeerConn { reader, writer }
            }
        };
        let reply = tokio::time::timeout(timeout, async {
            let (header, payloads) = codec::encode(&[msg][..])?;
            codec::write_frame(&mut conn.writer, &header, &payloads).await?;
            tokio::io::AsyncWriteExt::flush(&mut conn.writer).await?;
            let reply = transport::read_batch_within::<FromPeer>(&mut conn.reader, &self.limits, &reply_timeouts)
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
    /// Through shared memory when the peer is on this host and offers it,
    /// else (or if that fails, with a log line) by TCP.
    pub async fn get_data(&self, address: &str, keys: Vec<Key>) -> Result<Vec<(Key, Option<Bytes>)>, WireError> {
        #[cfg(target_os = "linux")]
        if let Some(shm) = &self.shm {
            if let Some(data) = self.get_data_shared(shm, address, &keys).await {
                return Ok(data);
            }
        }
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        match self.request(address, ToPeer::GetData { request_id, keys }).await? {
            FromPeer::Data { request_id: r, data } if r == request_id => {
                Ok(data.into_iter().map(|(k, v)| (k, v.map(|p| p.0))).collect())
            }
            other => Err(WireError::Malformed(format!("unexpected reply {other:?}"))),
        }
    }

    /// [`Self::get_data`] through shared memory; `None` when the peer is
    /// reached by TCP (another host, shared memory off there, or a failure
    /// now, logged).
    #[cfg(target_os = "linux")]
    async fn get_data_shared(
        &self,
        shm: &crate::shm::ShmFetcher,
        address: &str,
        keys: &[Key],
    ) -> Option<Vec<(Key, Option<Bytes>)>> {
        if !self.shm_fetches {
            return None;
        }
        let socket = self.shm_socket(shm, address).await?;
        match shm.get_data(&socket, keys.to_vec()).await {
            Ok(data) => Some(data),
            Err(e) => {
                self.shm_failed(shm, address, &socket, "fetch", &e);
                None
            }
        }
    }

    /// The shared-memory socket to reach `address` by, learned once (and
    /// again after [`crate::shm::SHM_ROUTE_RETRY`]); `None` for TCP.
    #[cfg(target_os = "linux")]
    async fn shm_socket(&self, shm: &crate::shm::ShmFetcher, address: &str) -> Option<String> {
        use crate::shm::client::Route;
        let route = match shm.route(address) {
            Some(route) => route,
            None => {
                let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
                match self.request(address, ToPeer::ShmLocate { request_id }).await {
                    Ok(FromPeer::ShmLocation {
                        request_id: r,
                        host,
                        socket,
                    }) if r == request_id => {
                        let route = shm.learned(address, &host, socket);
                        match &route {
                            Route::Shared(path) => {
                                info!(peer = %address, socket = %path, "reaching this peer through shared memory")
                            }
                            Route::Tcp(_) => {
                                debug!(peer = %address, %host, "reaching this peer by TCP (another host, or shared memory off there)")
                            }
                        }
                        route
                    }
                    Ok(other) => {
                        warn!(peer = %address, "unexpected answer to ShmLocate ({other:?}); reaching it by TCP");
                        shm.use_tcp(address);
                        return None;
                    }
                    Err(e) => {
                        // The TCP request that follows reports a dead peer.
                        debug!(peer = %address, "ShmLocate failed: {e}");
                        return None;
                    }
                }
            }
        };
        match route {
            Route::Shared(socket) => Some(socket),
            Route::Tcp(_) => None,
        }
    }

    #[cfg(target_os = "linux")]
    fn shm_failed(
        &self,
        shm: &crate::shm::ShmFetcher,
        address: &str,
        socket: &str,
        what: &str,
        e: &crate::shm::ShmError,
    ) {
        warn!(
            peer = %address,
            "shared-memory {what} through {socket} failed ({e}); reaching this peer by TCP for the next {} s",
            crate::shm::SHM_ROUTE_RETRY.as_secs()
        );
        shm.use_tcp(address);
    }

    /// Stores `data` on the worker at `address` (a client's direct
    /// scatter): through shared memory when it is on this host and offers
    /// it (large values as memory files, mapped there without a copy), else
    /// (or if that fails, with a log line) by TCP. The worker confirms the
    /// keys to the scheduler itself. `files` are the scatter's memory
    /// files, shared by all its pushes.
    pub async fn put_data(&self, address: &str, data: Vec<(Key, Bytes)>, files: &PushFiles) -> Result<(), WireError> {
        #[cfg(target_os = "linux")]
        if let Some(shm) = &self.shm {
            if let Some(socket) = self.shm_socket(shm, address).await {
                match shm.put_data(&socket, &data, &files.0).await {
                    Ok(()) => return Ok(()),
                    Err(e) => self.shm_failed(shm, address, &socket, "push", &e),
                }
            }
        }
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let data = data.into_iter().map(|(k, b)| (k, Payload(b))).collect();
        match self.request(address, ToPeer::PutData { request_id, data }).await? {
            FromPeer::PutAck { request_id: r, error } if r == request_id => match error {
                None => Ok(()),
                Some(e) => Err(WireError::Malformed(format!("{address} refused the values: {e}"))),
            },
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

    /// Calls `method` of actor `actor` on the worker at `address`; the
    /// method's encoded result, or why it failed. `timeout` bounds the whole
    /// call, the method's run included.
    pub async fn actor_call(
        &self,
        address: &str,
        actor: Key,
        method: String,
        args: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Result<Bytes, TaskFailure>, WireError> {
        let args = args.into_iter().map(serde_bytes::ByteBuf::from).collect();
        self.user_code(address, timeout, |request_id| ToPeer::ActorCall {
            request_id,
            actor,
            method,
            args,
        })
        .await
    }

    /// Sends shards of a p2p shuffle to the worker at `address`
    /// (`ToPeer::ShuffleSend`); `Some(why)` if it refused them.
    pub async fn shuffle_send(
        &self,
        address: &str,
        shuffle_id: String,
        run_id: u64,
        input: u32,
        shards: Vec<(u32, Payload)>,
    ) -> Result<Option<String>, WireError> {
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let msg = ToPeer::ShuffleSend {
            request_id,
            shuffle_id,
            run_id,
            input,
            shards,
        };
        match self.request(address, msg).await? {
            FromPeer::ShuffleAck { request_id: r, error } if r == request_id => Ok(error),
            other => Err(WireError::Malformed(format!("unexpected reply {other:?}"))),
        }
    }

    /// Runs registered function `function` on the worker at `address`
    /// (`Client::run`); its encoded result, or why it failed.
    pub async fn run_function(
        &self,
        address: &str,
        function: String,
        args: Vec<Vec<u8>>,
        timeout: Duration,
    ) -> Result<Result<Bytes, TaskFailure>, WireError> {
        let args = args.into_iter().map(serde_bytes::ByteBuf::from).collect();
        self.user_code(address, timeout, |request_id| ToPeer::RunFunction {
            request_id,
            function,
            args,
        })
        .await
    }

    /// One request that runs user code on the peer (an actor call, a run),
    /// read with [`Self::call_reply_timeouts`]; its answer must be the
    /// matching `ActorReply` (to an `ActorCall`) or `RunResult` (to a
    /// `RunFunction`).
    async fn user_code(
        &self,
        address: &str,
        timeout: Duration,
        request: impl FnOnce(u64) -> ToPeer,
    ) -> Result<Result<Bytes, TaskFailure>, WireError> {
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let msg = request(request_id);
        let is_actor_call = matches!(msg, ToPeer::ActorCall { .. });
        match self
            .request_within(address, msg, timeout, self.call_reply_timeouts())
            .await?
        {
            FromPeer::ActorReply {
                request_id: r,
                value,
                failure,
            } if r == request_id && is_actor_call => Ok(one_of(value, failure)),
            FromPeer::RunResult {
                request_id: r,
                value,
                failure,
            } if r == request_id && !is_actor_call => Ok(one_of(value, failure)),
            other => Err(WireError::Malformed(format!("unexpected reply {other:?}"))),
        }
    }
}

/// A reply's `value` or `failure`; a reply with neither (a peer breaking
/// the protocol) is a failure saying so.
fn one_of(value: Option<Payload>, failure: Option<TaskFailure>) -> Result<Bytes, TaskFailure> {
    match (value, failure) {
        (_, Some(f)) => Err(f),
        (Some(v), None) => Ok(v.0),
        (None, None) => Err(TaskFailure {
            kind: ErrorKind::Failed,
            message: "the worker's reply had neither a value nor a failure".into(),
        }),
    }
}

#[cfg(test)]
#[path = "peer_tests.rs"]
mod tests;
