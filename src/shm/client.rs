//! The fetching side of shared-memory transfers: which peers are on this
//! host (learned once per peer, [`Route`]), connections to their
//! shared-memory sockets, a fetch that maps the memory files it gets, and
//! a client's push of values as memory files (its direct scatter).

use std::collections::HashMap;
use std::os::fd::OwnedFd;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Instant;

use bytes::Bytes;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use super::{
    fds, io, unix, PushFiles, ShmError, FIRST_READ_BYTES, MAX_IDLE_SHM_CONNECTIONS_PER_PEER, SHM_CONNECT_TIMEOUT,
};
use crate::actors::peer::{PEER_REPLY_STALL_TIMEOUT, PEER_REPLY_START_TIMEOUT, PEER_REQUEST_TIMEOUT};
use crate::actors::store::WorkerCounters;
use crate::wire::codec::{self, FrameLimits, ReadTimeouts, WireError};
use crate::wire::messages::{FromPeer, Key, Payload, ToPeer};

/// How to fetch from one peer address.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// Through the shared-memory socket at this path.
    Shared(String),
    /// By TCP: another host, shared memory off there, or a failure at
    /// this time (tried again after [`super::SHM_ROUTE_RETRY`]).
    Tcp(Instant),
}

/// A worker's shared-memory fetching: its host id, what it learned of each
/// peer, idle connections, and the counter of bytes fetched this way.
#[derive(Clone)]
pub struct ShmFetcher {
    host: Arc<str>,
    routes: Arc<Mutex<HashMap<String, Route>>>,
    idle: Arc<Mutex<HashMap<String, Vec<UnixStream>>>>,
    next_request: Arc<AtomicU64>,
    counters: Arc<WorkerCounters>,
    limits: FrameLimits,
}

impl ShmFetcher {
    /// Fetching from peers whose host id is `host`, counting into
    /// `counters`, reading replies within `limits`.
    pub fn new(host: &str, counters: Arc<WorkerCounters>, limits: FrameLimits) -> Self {
        ShmFetcher {
            host: host.into(),
            routes: Arc::default(),
            idle: Arc::default(),
            next_request: Arc::new(AtomicU64::new(1)),
            counters,
            limits,
        }
    }

    /// This worker's host id.
    pub fn host(&self) -> &str {
        &self.host
    }

    /// What is known of `address`: `None` if it must be asked (never
    /// asked, or a failure longer than [`super::SHM_ROUTE_RETRY`] ago).
    pub fn route(&self, address: &str) -> Option<Route> {
        let routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        match routes.get(address) {
            Some(Route::Tcp(since)) if since.elapsed() >= super::SHM_ROUTE_RETRY => None,
            other => other.cloned(),
        }
    }

    /// Records how to fetch from `address`: its answer to `ShmLocate`
    /// (`host`, `socket`) against this worker's host id.
    pub fn learned(&self, address: &str, host: &str, socket: Option<String>) -> Route {
        let route = match socket {
            Some(path) if !host.is_empty() && host == &*self.host => Route::Shared(path),
            _ => Route::Tcp(Instant::now()),
        };
        self.set_route(address, route.clone());
        route
    }

    /// Fetches from `address` by TCP for a while ([`super::SHM_ROUTE_RETRY`]).
    pub fn use_tcp(&self, address: &str) {
        self.set_route(address, Route::Tcp(Instant::now()));
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.remove(address);
    }

    fn set_route(&self, address: &str, route: Route) {
        let mut routes = self.routes.lock().unwrap_or_else(|e| e.into_inner());
        routes.insert(address.to_string(), route);
    }

    fn take_idle(&self, socket: &str) -> Option<UnixStream> {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.get_mut(socket).and_then(|v| v.pop())
    }

    fn put_idle(&self, socket: &str, stream: UnixStream) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        let list = idle.entry(socket.to_string()).or_default();
        if list.len() < MAX_IDLE_SHM_CONNECTIONS_PER_PEER {
            list.push(stream);
        }
    }

    /// An idle connection to `socket`, or a new one.
    async fn connection(&self, socket: &str) -> Result<UnixStream, ShmError> {
        match self.take_idle(socket) {
            Some(s) => Ok(s),
            None => Ok(tokio::time::timeout(SHM_CONNECT_TIMEOUT, UnixStream::connect(socket))
                .await
                .map_err(|_| WireError::Timeout(format!("connecting to {socket}")))?
                .map_err(io("connecting to the peer's shared-memory socket"))?),
        }
    }

    /// Fetches `keys` through the shared-memory socket at `socket`; one
    /// entry per key, in order, `None` for keys the peer lacks. Large
    /// values are mappings of the peer's memory files (no copy here).
    pub async fn get_data(&self, socket: &str, keys: Vec<Key>) -> Result<Vec<(Key, Option<Bytes>)>, ShmError> {
        let mut stream = self.connection(socket).await?;
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let request = ToPeer::ShmGetData {
            request_id,
            keys: keys.clone(),
        };
        let (reply, fds) = tokio::time::timeout(PEER_REQUEST_TIMEOUT, self.exchange(&mut stream, request))
            .await
            .map_err(|_| WireError::Timeout(format!("shared-memory request to {socket}")))??;
        let FromPeer::ShmData {
            request_id: r,
            data,
            shared,
        } = reply
        else {
            return Err(ShmError::Protocol(format!("unexpected reply {reply:?}")));
        };
        if r != request_id {
            return Err(ShmError::Protocol(format!(
                "reply to request {r}, expected {request_id}"
            )));
        }
        if shared.len() != fds.len() {
            return Err(ShmError::Protocol(format!(
                "{} shared values announced, {} descriptors received",
                shared.len(),
                fds.len()
            )));
        }
        self.put_idle(socket, stream);
        let mapped = map_all(shared, fds).await?;
        let shared_bytes: u64 = mapped.iter().map(|(_, b)| b.len() as u64).sum();
        self.counters
            .bytes_fetched_shared_memory
            .fetch_add(shared_bytes, Ordering::Relaxed);
        let mut by_key: HashMap<Key, Bytes> = data
            .into_iter()
            .filter_map(|(k, v)| v.map(|p| (k, p.0)))
            .chain(mapped)
            .collect();
        Ok(keys
            .into_iter()
            .map(|k| {
                let v = by_key.remove(&k);
                (k, v)
            })
            .collect())
    }

    /// Pushes `data` through the shared-memory socket at `socket` (a
    /// client's direct scatter): values of at least
    /// [`super::SHM_MIN_VALUE_BYTES`] (up to [`super::MAX_FDS_PER_REPLY`])
    /// as sealed memory files from `files` (made once per value for every
    /// worker that gets it), the rest in the frame. Ok once the worker
    /// answered that it took them.
    pub async fn put_data(&self, socket: &str, data: &[(Key, Bytes)], files: &PushFiles) -> Result<(), ShmError> {
        let mut inline = Vec::new();
        let mut shared = Vec::new();
        let mut fds = Vec::new();
        for (key, value) in data {
            if value.len() >= super::SHM_MIN_VALUE_BYTES && fds.len() < super::MAX_FDS_PER_REPLY {
                fds.push(files.file(key, value).await?);
                shared.push((key.clone(), value.len() as u64));
            } else {
                inline.push((key.clone(), Payload(value.clone())));
            }
        }
        let mut stream = self.connection(socket).await?;
        let request_id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let request = ToPeer::ShmPutData {
            request_id,
            data: inline,
            shared,
        };
        let reply = tokio::time::timeout(PEER_REQUEST_TIMEOUT, async {
            let (header, payloads) = codec::encode(&[request][..])?;
            let mut head = codec::frame_prefix(&header, &payloads);
            head.extend_from_slice(&header);
            unix::send_with_fds(&mut stream, &head, &fds).await?;
            for p in &payloads {
                stream.write_all(p).await.map_err(io("sending a push"))?;
            }
            stream.flush().await.map_err(io("sending a push"))?;
            let timeouts = ReadTimeouts {
                idle: Some(PEER_REPLY_START_TIMEOUT),
                stall: Some(PEER_REPLY_STALL_TIMEOUT),
            };
            let frame = codec::read_frame_within(&mut stream, &self.limits, &timeouts)
                .await?
                .ok_or(WireError::Closed)?;
            let mut replies: Vec<FromPeer> = codec::decode(frame)?;
            match (replies.pop(), replies.is_empty()) {
                (Some(reply), true) => Ok::<_, ShmError>(reply),
                _ => Err(ShmError::Protocol("expected exactly one reply".into())),
            }
        })
        .await
        .map_err(|_| WireError::Timeout(format!("shared-memory push to {socket}")))??;
        match reply {
            FromPeer::PutAck { request_id: r, error } if r == request_id => {
                self.put_idle(socket, stream);
                match error {
                    None => Ok(()),
                    Some(e) => Err(ShmError::Protocol(format!("the worker refused the values: {e}"))),
                }
            }
            other => Err(ShmError::Protocol(format!("unexpected reply {other:?}"))),
        }
    }

    /// Sends `request` and reads its reply with the descriptors attached.
    async fn exchange(&self, stream: &mut UnixStream, request: ToPeer) -> Result<(FromPeer, Vec<OwnedFd>), ShmError> {
        let (header, payloads) = codec::encode(&[request][..])?;
        codec::write_frame(stream, &header, &payloads)
            .await
            .map_err(io("sending a request"))?;
        stream.flush().await.map_err(io("sending a request"))?;
        let mut first = vec![0u8; FIRST_READ_BYTES];
        let (n, fds) = tokio::time::timeout(PEER_REPLY_START_TIMEOUT, unix::recv_with_fds(stream, &mut first))
            .await
            .map_err(|_| WireError::Timeout(format!("no reply within {PEER_REPLY_START_TIMEOUT:?}")))??;
        if n == 0 {
            return Err(WireError::Closed.into());
        }
        first.truncate(n);
        let timeouts = ReadTimeouts {
            idle: None,
            stall: Some(PEER_REPLY_STALL_TIMEOUT),
        };
        let mut reader = std::io::Cursor::new(first).chain(&mut *stream);
        let frame = codec::read_frame_within(&mut reader, &self.limits, &timeouts)
            .await?
            .ok_or(WireError::Closed)?;
        let mut replies: Vec<FromPeer> = codec::decode(frame)?;
        match (replies.pop(), replies.is_empty()) {
            (Some(reply), true) => Ok((reply, fds)),
            _ => Err(ShmError::Protocol("expected exactly one reply".into())),
        }
    }
}

/// Maps each memory file (on a blocking thread: populating a mapping
/// touches every page table entry).
pub(super) async fn map_all(shared: Vec<(Key, u64)>, fds: Vec<OwnedFd>) -> Result<Vec<(Key, Bytes)>, ShmError> {
    if shared.is_empty() {
        return Ok(Vec::new());
    }
    tokio::task::spawn_blocking(move || {
        shared
            .into_iter()
            .zip(fds)
            .map(|((k, len), fd)| fds::map(fd, len).map(|b| (k, b)))
            .collect()
    })
    .await
    .map_err(|e| ShmError::Protocol(format!("mapping shared values failed: {e}")))?
}
