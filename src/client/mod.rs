//! The user's API: [`AsyncClient`] (async) and [`Client`] (blocking) with
//! Dask's `submit`, `map`, `gather`, `scatter`, `cancel`, `wait` and
//! `as_completed`, and typed [`Future`]s; Dask's coordination primitives
//! ([`Lock`], [`Semaphore`], [`MultiLock`], [`Queue`], [`Variable`],
//! [`Event`], [`Pub`] / [`Sub`], published datasets, `fire_and_forget`),
//! usable from clients and from tasks through [`crate::worker_client()`].
//!
//! There is one implementation: [`AsyncClient`]'s. A background actix
//! runtime owns the connection; submissions are encoded on the caller's
//! thread and queued on the connection's writer, and results are read from
//! the table the client actor keeps. Small results arrive with their
//! completion; large ones are fetched from the workers that hold them, never
//! through the scheduler. [`Client`] wraps the async client and waits for
//! each call with [`crate::runtime::block_on`], which parks the calling
//! thread and so works from plain threads and inside any async runtime.
//! Nothing the caller awaits needs a particular executor: timers and sockets
//! live on the client's own runtime thread.

mod adaptive;
mod args;
mod async_client;
mod blocking;
mod coordination;
mod core;
mod diagnostics;
mod fetch;
mod future;
pub(crate) mod link;
mod locks;
mod options;
pub mod progress;
mod pubsub;
mod restart;
mod run;
mod scatter;
mod shared;
pub(crate) mod submit;

use crate::wire::messages::{Key, TaskFailure};
use crate::wire::WireError;

pub use adaptive::AdaptiveTarget;
pub use args::{IntoArg, IntoArgs};
pub use async_client::AsyncClient;
pub use blocking::{AsCompleted, Client};
pub use coordination::{Item, COORDINATION_REPLY_GRACE};
pub use diagnostics::PerformanceReport;
pub(crate) use future::key_status;
pub use future::Future;
#[doc(hidden)]
pub use future::HeldFuture;
pub use locks::{Lock, MultiLock, Semaphore};
pub use options::{
    ClientOptions, ReturnWhen, ScatterOptions, SubmitOptions, WaitResult, DEFAULT_CLIENT_RECONNECT_TIMEOUT,
};
pub use pubsub::{Pub, Sub};
pub use restart::{DEFAULT_RESTART_TIMEOUT, RESTART_REPLY_GRACE};
pub use run::{RunOptions, RunResults, DEFAULT_RUN_TIMEOUT};
pub use shared::{Event, Queue, Variable};

/// Tasks per `UpdateGraph` message when mapping over many inputs: large
/// enough to amortize framing, small enough that the scheduler starts on the
/// first chunk while the client encodes the next.
pub const MAP_CHUNK: usize = 4096;

/// A client that has sent the scheduler nothing for this long sends an
/// empty batch (a keep-alive), so that the scheduler can tell an idle
/// client from a vanished one (`scheduler.client_silence_timeout_s`).
pub const CLIENT_KEEPALIVE_INTERVAL: std::time::Duration = std::time::Duration::from_secs(5);

/// Most bytes asked of one worker in one request when gathering; larger
/// gathers are split so each reply stays well under the frame limit.
pub const MAX_FETCH_BYTES: u64 = 256 * 1024 * 1024;

/// How long [`Client::scatter`] waits for the scheduler's answer, which
/// comes once the receiving workers confirm they stored the data.
pub const SCATTER_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(120);

/// How long [`Client::replicate`] and [`Client::rebalance`] wait for the
/// copies they asked for before giving up with an error.
pub const DATA_MOVE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(60);

/// Errors of the client API.
#[derive(Debug, Clone, thiserror::Error)]
pub enum Error {
    /// The task failed (its error, panic, or a failed dependency).
    #[error("task {key} failed: {}", failure.message)]
    Task {
        /// The key.
        key: Key,
        /// Why.
        failure: TaskFailure,
    },
    /// The future was cancelled.
    #[error("task {0} was cancelled")]
    Cancelled(Key),
    /// A wait ran out of time; the message names what was waited for and
    /// where it stands.
    #[error("timed out waiting for {0}")]
    Timeout(String),
    /// The scheduler connection is gone.
    #[error("not connected to the scheduler: {0}")]
    Disconnected(String),
    /// Connecting or talking to the cluster failed.
    #[error("{0}")]
    Wire(String),
    /// A result could not be decoded as the expected type.
    #[error("cannot decode the result of {key}: {message}")]
    Decode {
        /// The key.
        key: Key,
        /// The decoder's message.
        message: String,
    },
    /// An argument could not be encoded.
    #[error("cannot encode an argument: {0}")]
    Encode(String),
    /// A message would exceed the scheduler's frame limits; it was not sent
    /// and the session goes on.
    #[error("{0}")]
    TooLarge(String),
    /// The cluster refused a request (e.g. scatter with no workers).
    #[error("{0}")]
    Refused(String),
    /// A collection's input cannot be read or planned (a glob that matches
    /// nothing, an unreadable file, an unsupported compression).
    #[error("{0}")]
    Input(String),
    /// An actor is gone: its worker died or left (or the connection to it
    /// broke during a call, whose outcome is then unknown). Actors are not
    /// recreated; create a new one if the work allows.
    #[error("actor {actor} on worker {worker} is lost: {reason}")]
    ActorLost {
        /// The actor's key and type.
        actor: String,
        /// Its worker's address.
        worker: String,
        /// What happened.
        reason: String,
    },
    /// An actor method call failed: the method returned an error or
    /// panicked, its arguments did not decode, or it does not exist. The
    /// actor lives on.
    #[error("call of {method} on actor {actor} failed: {}", failure.message)]
    ActorCall {
        /// The actor's key and type.
        actor: String,
        /// The method.
        method: String,
        /// Why (`UnknownFunction` for an unknown method).
        failure: TaskFailure,
    },
    /// A file the client was asked to write (a performance report) could
    /// not be written; the message names it.
    #[error("{0}")]
    Output(String),
}

impl From<WireError> for Error {
    fn from(e: WireError) -> Self {
        Error::Wire(e.to_string())
    }
}
