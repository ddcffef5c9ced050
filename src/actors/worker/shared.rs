//! Setting up a worker's shared-memory transfers ([`crate::shm`]): its
//! socket served beside the peer port, and its peer pool fetching through
//! the sockets of peers on this host.

use std::path::Path;
use std::sync::Arc;

use tracing::{info, info_span, warn, Instrument};

use super::WorkerOptions;
use crate::actors::peer::PeerPool;
use crate::actors::store::WorkerCounters;

/// What the peer port tells fetchers, and the pool fetching from peers.
pub struct SharedMemory {
    /// This host's id (empty if unknown).
    pub host: String,
    /// The socket served, if any.
    pub socket: Option<String>,
    /// The worker's peer pool (fetching through shared memory if on).
    pub peers: PeerPool,
    /// The bound socket, to [`serve`] once the worker actor (which takes
    /// pushed values) is running.
    #[cfg(target_os = "linux")]
    pub server: Option<crate::shm::ShmSocket>,
}

/// Binds a socket under `base` for shared-memory fetches and pushes and
/// makes the pool use peers' sockets, when `options.shared_memory_transfers` is on
/// and this is Linux; otherwise (or if the socket cannot be bound, logged)
/// the worker moves data by TCP only.
#[cfg(target_os = "linux")]
pub fn start(
    name: &str,
    options: &WorkerOptions,
    base: &Path,
    counters: &Arc<WorkerCounters>,
    peers: PeerPool,
) -> SharedMemory {
    let host = crate::shm::host_id().unwrap_or_default();
    let off = |peers, why: String| {
        info!(worker = %name, "shared-memory transfers off: {why}");
        SharedMemory {
            host: host.clone(),
            socket: None,
            peers,
            server: None,
        }
    };
    if !options.shared_memory_transfers {
        return off(peers, "worker.shared_memory_transfers = false".into());
    }
    if host.is_empty() {
        return off(peers, "cannot read this host's boot id and host name from /proc".into());
    }
    let socket = match crate::shm::bind(base) {
        Ok(socket) => socket,
        Err(e) => {
            warn!(worker = %name, "shared-memory transfers off: {e}");
            return off(peers, e.to_string());
        }
    };
    let path = socket.path().to_string();
    info!(worker = %name, socket = %path, %host, "serving shared-memory fetches");
    let fetcher = crate::shm::ShmFetcher::new(&host, counters.clone(), options.limits);
    SharedMemory {
        host,
        socket: Some(path),
        peers: peers.with_shm(fetcher),
        server: Some(socket),
    }
}

/// Serves the socket bound by [`start`], if any, on this arbiter.
#[cfg(target_os = "linux")]
pub fn serve(
    server: Option<crate::shm::ShmSocket>,
    name: &str,
    options: &WorkerOptions,
    service: crate::shm::ShmService,
) {
    if let Some(socket) = server {
        actix_rt::spawn(
            crate::shm::serve(socket, service, options.limits, options.frame_stall_timeout)
                .instrument(info_span!("worker", name = %name)),
        );
    }
}

/// Not Linux: no memfd; data moves by TCP only.
#[cfg(not(target_os = "linux"))]
pub fn start(
    name: &str,
    _options: &WorkerOptions,
    _base: &Path,
    _counters: &Arc<WorkerCounters>,
    peers: PeerPool,
) -> SharedMemory {
    info!(worker = %name, "shared-memory transfers off: only on Linux");
    SharedMemory {
        host: String::new(),
        socket: None,
        peers,
    }
}
