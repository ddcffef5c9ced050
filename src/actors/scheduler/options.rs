//! A scheduler process's settings ([`SchedulerOptions`]) and their
//! defaults.

use std::time::Duration;

use crate::scheduler::state::SchedulerConfig;
use crate::wire::listener;
use crate::wire::transport;
use crate::wire::{FrameLimits, Security};

/// Settings of a scheduler process.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// State machine settings.
    pub state: SchedulerConfig,
    /// Limits on frames read from peers.
    pub limits: FrameLimits,
    /// A worker silent for this long is removed as dead.
    pub worker_timeout: Duration,
    /// A worker paused (memory past its pause threshold) for this long is
    /// asked to give up the tasks it has not started, which go to running
    /// workers or, if none can run them, wait in `no-worker` with their
    /// clients told why.
    pub paused_worker_timeout: Duration,
    /// Most connections still in their handshake at once; more are closed at
    /// accept, so a flood of silent connections cannot exhaust the scheduler.
    pub max_pending_handshakes: usize,
    /// How long a new connection has to complete its handshake (and a
    /// worker its registration) before it is closed; capped by
    /// [`transport::HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// A client whose connection drops without `CloseClient` keeps its keys
    /// this long (a client on a flaky network, or one restarting), then
    /// they are released as if it had closed.
    pub client_grace: Duration,
    /// TLS and token settings of the scheduler port (default: plain TCP).
    pub security: Security,
    /// Most open connections (clients, workers, handshakes); the newest
    /// past it are refused with a handshake reply saying so. Lowered at
    /// start to fit the open-files limit, which is first raised to its hard
    /// limit.
    pub max_connections: usize,
    /// Bytes queued for one client or worker and not yet sent, past which
    /// the connection is cut as not reading.
    pub max_unsent_bytes_per_connection: u64,
    /// The scheduler sends an empty batch to a client or worker it has sent
    /// nothing else for this long, so that they can tell a quiet scheduler
    /// from a silent (stopped, cut off) one.
    pub keepalive_interval: Duration,
    /// A frame from a client or worker that does not advance by
    /// [`crate::wire::codec::FRAME_PROGRESS_BYTES`] (or end) within this
    /// long closes the connection; `None`: no limit.
    pub frame_stall_timeout: Option<Duration>,
    /// A client that sends nothing (Rust clients send a keep-alive every
    /// [`crate::client::CLIENT_KEEPALIVE_INTERVAL`] when idle) for this long
    /// is taken as lost: its connection is closed and its keys are kept for
    /// `client_grace`. `None`: no limit.
    pub client_silence_timeout: Option<Duration>,
    /// The journal file (`rdask scheduler --journal FILE`): graph
    /// submissions, results, releases and client wants are appended to it,
    /// and a scheduler started on an existing journal rebuilds its state
    /// from it (docs/resilience.md, "Scheduler restart"). `None`: no
    /// journal; a restart loses all work, as Dask's.
    pub journal: Option<std::path::PathBuf>,
    /// Appended journal entries reach the disk (`fdatasync`) at most this
    /// long after they are written; zero: after every entry.
    pub journal_fsync_interval: Duration,
    /// How often the journal is compacted (the live state written as a
    /// snapshot in place of its history) once it grew by
    /// [`JOURNAL_COMPACT_MIN_BYTES`].
    pub journal_compact_interval: Duration,
}

/// Default of [`SchedulerOptions::journal_fsync_interval`].
pub const DEFAULT_JOURNAL_FSYNC_INTERVAL: Duration = Duration::from_secs(1);
/// Default of [`SchedulerOptions::journal_compact_interval`].
pub const DEFAULT_JOURNAL_COMPACT_INTERVAL: Duration = Duration::from_secs(60);
/// A journal that grew by less than this since its last compaction is not
/// compacted (rewriting the state would cost more than it saves).
pub const JOURNAL_COMPACT_MIN_BYTES: u64 = 4 * 1024 * 1024;

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            state: SchedulerConfig::default(),
            limits: FrameLimits::default(),
            worker_timeout: DEFAULT_WORKER_TIMEOUT,
            paused_worker_timeout: DEFAULT_PAUSED_WORKER_TIMEOUT,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            handshake_timeout: transport::HANDSHAKE_TIMEOUT,
            client_grace: DEFAULT_CLIENT_GRACE,
            security: Security::default(),
            max_connections: listener::DEFAULT_MAX_CONNECTIONS,
            max_unsent_bytes_per_connection: DEFAULT_MAX_UNSENT_BYTES_PER_CONNECTION,
            keepalive_interval: DEFAULT_KEEPALIVE_INTERVAL,
            frame_stall_timeout: Some(DEFAULT_FRAME_STALL_TIMEOUT),
            client_silence_timeout: Some(DEFAULT_CLIENT_SILENCE_TIMEOUT),
            journal: None,
            journal_fsync_interval: DEFAULT_JOURNAL_FSYNC_INTERVAL,
            journal_compact_interval: DEFAULT_JOURNAL_COMPACT_INTERVAL,
        }
    }
}

/// Default of [`SchedulerOptions::client_silence_timeout`]: twelve missed
/// keep-alives, as the clients' and workers' own tolerance of a silent
/// scheduler.
pub const DEFAULT_CLIENT_SILENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default grace period of a vanished client: long enough to ride out a
/// brief network hiccup, short enough that an abandoned client's results do
/// not hold worker memory for long.
pub const DEFAULT_CLIENT_GRACE: Duration = Duration::from_secs(5);

/// Default budget of unsent bytes per client or worker connection: far
/// above what a reading peer lets queue up, small enough that a peer that
/// stops reading cannot take the scheduler's memory.
pub const DEFAULT_MAX_UNSENT_BYTES_PER_CONNECTION: u64 = 256 * 1024 * 1024;
/// Default interval of the scheduler's keep-alive to clients and workers.
pub const DEFAULT_KEEPALIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Default time a frame in progress may go without advancing.
pub const DEFAULT_FRAME_STALL_TIMEOUT: Duration = Duration::from_secs(30);

/// A worker that sent nothing (not even a heartbeat) for this long is dead.
pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default time a worker may stay paused before its waiting tasks are
/// moved elsewhere: as long as the worker timeout, so that a worker whose
/// memory falls again soon (a spill catching up) keeps its queue.
pub const DEFAULT_PAUSED_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on connections in their handshake.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 1024;
