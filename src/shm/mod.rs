//! Shared-memory transfers between workers on one host (issue 15).
//!
//! A fetch from a peer on the same machine does not copy the bytes through
//! loopback TCP. Each worker also listens on a Unix socket (in a private
//! directory, same user only); a fetcher learns its path with
//! [`ToPeer::ShmLocate`](crate::wire::messages::ToPeer::ShmLocate) on the
//! TCP peer port, uses it only when the peer's host id ([`host_id`]) equals
//! its own, and asks for keys there. The peer passes each large value as a
//! sealed `memfd` with the reply (`SCM_RIGHTS`): the file the value already
//! is when it is one (a task result made in a file, a value pushed or
//! fetched through shared memory: [`fds::file_of`]), otherwise a copy into
//! a new one ([`fds::share`]); the fetcher maps them read-only and stores
//! the mapping itself as the value's bytes ([`fds::map`]), with no copy.
//!
//! Any failure (another mount namespace where the path does not exist, a
//! refused descriptor, a peer too old) falls back to TCP for that peer, with
//! a log line, and the shared-memory route to it is tried again after
//! [`SHM_ROUTE_RETRY`]. The design and its limits are in
//! `docs/architecture.md`, "Shared-memory transfers".

use std::time::Duration;

use crate::wire::codec::WireError;

pub mod client;
pub mod fds;
pub mod push_files;
pub mod server;
mod unix;

pub use client::ShmFetcher;
pub use push_files::PushFiles;
pub use server::{bind, serve, ShmService, ShmSocket};

/// Values at least this large travel as memory files; smaller ones ride in
/// the reply frame (a memfd costs a few system calls and a page at least).
pub const SHM_MIN_VALUE_BYTES: usize = 64 * 1024;

/// Most descriptors passed with one reply (the kernel's `SCM_MAX_FD` is
/// 253); further large values of the same request ride in the frame.
pub const MAX_FDS_PER_REPLY: usize = 240;

/// Most shared-memory connections a worker serves at once (each fetcher
/// keeps at most [`MAX_IDLE_SHM_CONNECTIONS_PER_PEER`] idle ones).
pub const MAX_SHM_CONNECTIONS: usize = 256;

/// Idle shared-memory connections kept per peer socket.
pub const MAX_IDLE_SHM_CONNECTIONS_PER_PEER: usize = 4;

/// After a shared-memory fetch from a peer failed, fetches from it go by
/// TCP for this long before the shared-memory route is tried again (a
/// restarted peer has a new socket).
pub const SHM_ROUTE_RETRY: Duration = Duration::from_secs(60);

/// Longest wait to connect to a peer's shared-memory socket.
pub const SHM_CONNECT_TIMEOUT: Duration = Duration::from_secs(5);

/// Bytes read with the descriptors before the rest of a reply frame.
pub const FIRST_READ_BYTES: usize = 64 * 1024;

/// Longest path of a Unix socket (`sun_path` holds 108 bytes with its NUL).
pub const MAX_SOCKET_PATH_BYTES: usize = 107;

/// Errors of the shared-memory path; every one makes the fetch fall back
/// to TCP.
#[derive(Debug, thiserror::Error)]
pub enum ShmError {
    /// A system call failed (socket, memfd, mmap).
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: &'static str,
        /// The OS error.
        source: std::io::Error,
    },
    /// Framing or decoding failed, or a bound was passed.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The peer broke the protocol (wrong reply, a descriptor that does not
    /// match its announced length or is not sealed).
    #[error("{0}")]
    Protocol(String),
    /// The socket cannot be set up here (path too long, no host id).
    #[error("{0}")]
    Unavailable(String),
}

/// `what` failed with `source`.
pub(crate) fn io(what: &'static str) -> impl FnOnce(std::io::Error) -> ShmError {
    move |source| ShmError::Io { what, source }
}

/// This machine's identity as far as shared memory goes:
/// `<hostname>/<boot id>`. The boot id tells two machines (or VMs) with the
/// same host name apart; containers with their own UTS namespace get their
/// own host name, and so use TCP. `None` if either cannot be read.
pub fn host_id() -> Option<String> {
    let read = |p: &str| std::fs::read_to_string(p).ok().map(|s| s.trim().to_string());
    let boot = read("/proc/sys/kernel/random/boot_id").filter(|s| !s.is_empty())?;
    let host = read("/proc/sys/kernel/hostname").filter(|s| !s.is_empty())?;
    Some(format!("{host}/{boot}"))
}

#[cfg(test)]
#[path = "tests.rs"]
mod tests;
