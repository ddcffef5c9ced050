//! The serving side of shared-memory transfers: a worker's Unix socket,
//! answering [`ToPeer::ShmGetData`] from its store with large values as
//! sealed memory files, and taking a client's [`ToPeer::ShmPutData`] (its
//! direct scatter) the other way.

use std::os::fd::OwnedFd;
use std::os::unix::fs::DirBuilderExt;
use std::path::{Path, PathBuf};
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::Addr;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{UnixListener, UnixStream};
use tracing::warn;

use super::{
    fds, io, unix, ShmError, FIRST_READ_BYTES, MAX_FDS_PER_REPLY, MAX_SHM_CONNECTIONS, MAX_SOCKET_PATH_BYTES,
    SHM_MIN_VALUE_BYTES,
};
use crate::actors::pushed::{PushSink, Pushed};
use crate::actors::store::{DataStore, Get, WorkerCounters};
use crate::wire::codec::{self, FrameLimits, ReadTimeouts, WireError};
use crate::wire::messages::{FromPeer, Key, Payload, ToPeer};

/// A worker's bound shared-memory socket; its private directory is removed
/// when this (or the serving task owning it) is dropped.
pub struct ShmSocket {
    listener: UnixListener,
    dir: SocketDir,
    path: String,
}

impl ShmSocket {
    /// The socket's path, as told to fetchers.
    pub fn path(&self) -> &str {
        &self.path
    }
}

/// What a worker's shared-memory socket serves from and hands to.
#[derive(Clone)]
pub struct ShmService {
    /// The worker's store (fetches are answered from it).
    pub store: Addr<DataStore>,
    /// Its counters.
    pub counters: Arc<WorkerCounters>,
    /// Where pushed values go (the worker actor).
    pub sink: PushSink,
}

/// Removes the socket's directory when dropped.
struct SocketDir(PathBuf);

impl Drop for SocketDir {
    fn drop(&mut self) {
        if let Err(e) = std::fs::remove_dir_all(&self.0) {
            if e.kind() != std::io::ErrorKind::NotFound {
                warn!("cannot remove shared-memory socket directory {}: {e}", self.0.display());
            }
        }
    }
}

/// Binds a shared-memory socket in a new directory under `base` that only
/// this user may enter (mode 0700: other users cannot connect).
pub fn bind(base: &Path) -> Result<ShmSocket, ShmError> {
    // 64 random bits are plenty to keep workers apart, and short: the
    // whole path must fit a Unix socket address.
    let id = uuid::Uuid::new_v4().simple().to_string();
    let dir = base.join(format!("rdask-shm-{}", &id[..16]));
    let path = dir.join("peer.sock");
    let text = path
        .to_str()
        .ok_or_else(|| ShmError::Unavailable(format!("socket path {} is not UTF-8", path.display())))?
        .to_string();
    if text.len() > MAX_SOCKET_PATH_BYTES {
        return Err(ShmError::Unavailable(format!(
            "socket path {text} is longer than {MAX_SOCKET_PATH_BYTES} bytes (set a shorter worker.local_directory)"
        )));
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(&dir)
        .map_err(io("creating the shared-memory socket directory"))?;
    let dir = SocketDir(dir);
    let listener = UnixListener::bind(&path).map_err(io("binding the shared-memory socket"))?;
    Ok(ShmSocket {
        listener,
        dir,
        path: text,
    })
}

/// Serves `socket` until the worker's runtime stops: one task per
/// connection (at most [`MAX_SHM_CONNECTIONS`]), each answering requests
/// one after another. A request frame that stalls for `stall` closes its
/// connection.
pub async fn serve(socket: ShmSocket, service: ShmService, limits: FrameLimits, stall: Option<Duration>) {
    let ShmSocket { listener, dir, path } = socket;
    let _dir = dir;
    let permits = Arc::new(tokio::sync::Semaphore::new(MAX_SHM_CONNECTIONS));
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                warn!("shared-memory socket {path}: accept failed: {e}");
                // Out of descriptors, say: give the others time to close.
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            warn!("shared-memory socket {path}: {MAX_SHM_CONNECTIONS} connections open, refusing one (it falls back to TCP)");
            continue;
        };
        if let Err(e) = same_user(&stream) {
            warn!("shared-memory socket {path}: refused a connection: {e}");
            continue;
        }
        let service = service.clone();
        let timeouts = ReadTimeouts { idle: None, stall };
        tokio::spawn(async move {
            if let Err(e) = serve_connection(stream, service, limits, timeouts).await {
                warn!("shared-memory connection closed: {e}");
            }
            drop(permit);
        });
    }
}

/// Only processes of this user may fetch (the directory's mode already
/// keeps others out; this holds even if the directory is moved).
fn same_user(stream: &UnixStream) -> Result<(), ShmError> {
    let cred = rustix::net::sockopt::socket_peercred(stream).map_err(|e| io("reading peer credentials")(e.into()))?;
    let me = rustix::process::getuid();
    if cred.uid != me {
        return Err(ShmError::Protocol(format!(
            "process {:?} of uid {} is not of this worker's user ({})",
            cred.pid,
            cred.uid.as_raw(),
            me.as_raw()
        )));
    }
    Ok(())
}

async fn serve_connection(
    mut stream: UnixStream,
    service: ShmService,
    limits: FrameLimits,
    timeouts: ReadTimeouts,
) -> Result<(), ShmError> {
    loop {
        // Each request is read with the descriptors that may come with its
        // first bytes (a push's memory files).
        let mut first = vec![0u8; FIRST_READ_BYTES];
        let (n, fds) = unix::recv_with_fds(&stream, &mut first).await?;
        if n == 0 {
            return Ok(());
        }
        first.truncate(n);
        let frame = {
            let mut reader = std::io::Cursor::new(first).chain(&mut stream);
            let frame = codec::read_frame_within(&mut reader, &limits, &timeouts)
                .await?
                .ok_or(WireError::Closed)?;
            let (rest, _) = reader.into_inner();
            if (rest.position() as usize) < rest.get_ref().len() {
                // Fetchers and pushers wait for each answer: bytes past the
                // frame can only be a broken peer.
                return Err(ShmError::Protocol(
                    "a second request sent before the first was answered".into(),
                ));
            }
            frame
        };
        let mut requests: Vec<ToPeer> = codec::decode(frame)?;
        let request = match (requests.pop(), requests.is_empty()) {
            (Some(r), true) => r,
            _ => return Err(ShmError::Protocol("expected exactly one request per frame".into())),
        };
        match request {
            ToPeer::ShmGetData { request_id, keys } if fds.is_empty() => {
                serve_get(&mut stream, &service, request_id, keys).await?
            }
            ToPeer::ShmPutData {
                request_id,
                data,
                shared,
            } => {
                let error = take_push(&service, data, shared, fds).await.err();
                if let Some(e) = &error {
                    warn!("refused values pushed through shared memory: {e}");
                }
                let reply = FromPeer::PutAck {
                    request_id,
                    error: error.map(|e| e.to_string()),
                };
                let (header, payloads) = codec::encode(&[reply][..])?;
                codec::write_frame(&mut stream, &header, &payloads)
                    .await
                    .map_err(io("sending a reply"))?;
                stream.flush().await.map_err(io("sending a reply"))?;
            }
            other => {
                return Err(ShmError::Protocol(format!(
                    "only ShmGetData (without descriptors) and ShmPutData are served on the shared-memory socket, \
                     not {other:?}"
                )))
            }
        }
    }
}

/// Answers a fetch: the store's values, large ones as memory files.
async fn serve_get(
    stream: &mut UnixStream,
    service: &ShmService,
    request_id: u64,
    keys: Vec<Key>,
) -> Result<(), ShmError> {
    let values = service
        .store
        .send(Get { keys, for_peer: true })
        .await
        .map_err(|_| WireError::Closed)?;
    let (data, shared, fds) = share_values(values).await;
    let shared_bytes: u64 = shared.iter().map(|(_, n)| n).sum();
    let reply = FromPeer::ShmData {
        request_id,
        data,
        shared,
    };
    let (header, payloads) = codec::encode(&[reply][..])?;
    let mut head = codec::frame_prefix(&header, &payloads);
    head.extend_from_slice(&header);
    unix::send_with_fds(stream, &head, &fds).await?;
    for p in &payloads {
        stream.write_all(p).await.map_err(io("sending a reply"))?;
    }
    stream.flush().await.map_err(io("sending a reply"))?;
    service
        .counters
        .bytes_served_shared_memory
        .fetch_add(shared_bytes, Ordering::Relaxed);
    Ok(())
}

/// Takes a client's pushed values: maps the memory files (checked as a
/// fetch checks them) and hands everything to the worker, which keeps
/// them as a `StoreData`.
async fn take_push(
    service: &ShmService,
    data: Vec<(Key, Payload)>,
    shared: Vec<(Key, u64)>,
    fds: Vec<OwnedFd>,
) -> Result<(), ShmError> {
    if shared.len() != fds.len() {
        return Err(ShmError::Protocol(format!(
            "{} shared values announced, {} descriptors received",
            shared.len(),
            fds.len()
        )));
    }
    let mapped = super::client::map_all(shared, fds).await?;
    let shared_bytes: u64 = mapped.iter().map(|(_, b)| b.len() as u64).sum();
    let values: Vec<(Key, bytes::Bytes)> = data.into_iter().map(|(k, p)| (k, p.0)).chain(mapped).collect();
    let pushed: u64 = values.iter().map(|(_, b)| b.len() as u64).sum();
    let counters = &service.counters;
    counters.bytes_pushed.fetch_add(pushed, Ordering::Relaxed);
    counters
        .bytes_pushed_shared_memory
        .fetch_add(shared_bytes, Ordering::Relaxed);
    service
        .sink
        .send(Pushed(values))
        .await
        .map_err(|_| ShmError::Protocol("the worker is closing".into()))
}

type Inline = Vec<(Key, Option<Payload>)>;

/// Splits the store's answer: values of at least [`SHM_MIN_VALUE_BYTES`]
/// (up to [`MAX_FDS_PER_REPLY`] of them) as memory files (the file a value
/// already is, else a copy into a new one), the rest inline. If memory
/// files cannot be made (no memory for them), every value goes inline,
/// with a log line.
async fn share_values(values: Vec<(Key, Option<bytes::Bytes>)>) -> (Inline, Vec<(Key, u64)>, Vec<OwnedFd>) {
    let mut inline = Vec::with_capacity(values.len());
    let mut large = Vec::new();
    for (key, value) in values {
        match value {
            Some(v) if v.len() >= SHM_MIN_VALUE_BYTES && large.len() < MAX_FDS_PER_REPLY => large.push((key, v)),
            v => inline.push((key, v.map(Payload))),
        }
    }
    if large.is_empty() {
        return (inline, Vec::new(), Vec::new());
    }
    // Copying a value into a memory file is a memcpy of all of it: off
    // the async threads.
    let made = tokio::task::spawn_blocking(move || {
        let fds: Result<Vec<OwnedFd>, ShmError> = large.iter().map(|(_, v)| fds::share_value(v)).collect();
        (large, fds)
    })
    .await;
    match made {
        Ok((large, Ok(fds))) => {
            let shared = large.into_iter().map(|(k, v)| (k, v.len() as u64)).collect();
            (inline, shared, fds)
        }
        Ok((large, Err(e))) => {
            warn!("cannot share values through memory files ({e}); sending them in the reply");
            inline.extend(large.into_iter().map(|(k, v)| (k, Some(Payload(v)))));
            (inline, Vec::new(), Vec::new())
        }
        Err(e) => {
            warn!("sharing values failed ({e}); they are answered as not held");
            (inline, Vec::new(), Vec::new())
        }
    }
}
