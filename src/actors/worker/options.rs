//! A worker's settings ([`WorkerOptions`]) and the defaults and limits
//! its actor works with.

use std::path::PathBuf;
use std::time::Duration;

use crate::wire::transport;
use crate::wire::{FrameLimits, Security};
use crate::worker::memory::{
    DEFAULT_MEMORY_MONITOR_INTERVAL_MS, DEFAULT_MEMORY_PAUSE, DEFAULT_MEMORY_SPILL, DEFAULT_MEMORY_TARGET,
};

/// Settings of one worker.
#[derive(Clone, Debug)]
pub struct WorkerOptions {
    /// Scheduler address, `tcp://host:port`.
    pub scheduler: String,
    /// Unique name; defaults to the peer address.
    pub name: Option<String>,
    /// Task threads.
    pub nthreads: u32,
    /// Memory limit in bytes, 0 for none (reported to the scheduler). The
    /// `memory_*` fractions below are of this limit.
    pub memory_limit: u64,
    /// Fraction of `memory_limit` that stored results may take in memory;
    /// past it the least recently used are spilled to disk (0: never).
    pub memory_target: f64,
    /// Fraction of `memory_limit` of process memory (RSS) past which more
    /// results are spilled (0: never).
    pub memory_spill: f64,
    /// Fraction of `memory_limit` of process memory past which no new task
    /// starts until memory falls (0: never).
    pub memory_pause: f64,
    /// How often process memory is measured (with a memory limit).
    pub memory_monitor_interval: Duration,
    /// Bytes of peer-to-peer shuffle shards kept in memory; past it they
    /// go to the spill directory (`crate::shuffle::buffer`). With a
    /// `memory_limit`, at most a quarter of it
    /// (`crate::shuffle::effective_buffer_bytes`).
    pub shuffle_buffer_bytes: u64,
    /// Abstract resources offered, e.g. `("GPU", 1.0)`.
    pub resources: Vec<(String, f64)>,
    /// Directory for files the worker writes (spilled data); a temporary
    /// directory if unset.
    pub local_directory: Option<PathBuf>,
    /// Host to bind the peer port on; it must be reachable by the other
    /// workers and the clients.
    pub listen_host: String,
    /// Port for the peer listener (0: any free port).
    pub listen_port: u16,
    /// Limits on frames read from the scheduler and peers.
    pub limits: FrameLimits,
    /// Results up to this size ride along with the task-finished message.
    pub inline_limit: u64,
    /// Most fetches from peers at once.
    pub max_concurrent_fetches: u32,
    /// TLS and token settings, for the scheduler connection, the peer port
    /// and fetches from peers (default: plain TCP).
    pub security: Security,
    /// Why this worker's predecessor was restarted, when a nanny started it
    /// again (sent to the scheduler, which logs it).
    pub restarted: Option<String>,
    /// Whether a nanny runs this worker (`rdask worker --nanny`): told so,
    /// the scheduler restarts it on `Client::restart` (the worker exits
    /// with `RESTART_EXIT_CODE` and its nanny starts it again) instead of
    /// closing it.
    pub nanny: bool,
    /// How long to keep trying to reach the scheduler at start while nothing
    /// listens there (a worker may start before its scheduler).
    pub connect_timeout: Duration,
    /// The worker takes the scheduler as lost when nothing, not even a
    /// keep-alive, arrived from it for this long (it then tries to register
    /// again for `reconnect_timeout`, and shuts down, `rdask worker`
    /// exiting non-zero, if it cannot); `None`: never.
    pub scheduler_silence_timeout: Option<Duration>,
    /// A frame on the peer port that does not advance for this long closes
    /// its connection; `None`: no limit.
    pub frame_stall_timeout: Option<Duration>,
    /// After losing the scheduler (a restart, a cut connection), how long
    /// the worker keeps its results and keeps trying to register again
    /// (announcing them) before it stops; zero: it stops at once (and
    /// `rdask worker` exits with status 1), as before version 6.
    pub reconnect_timeout: Duration,
    /// Fetch from workers on the same host through shared memory (a
    /// sealed memory file passed over a Unix socket) instead of loopback
    /// TCP, and serve such fetches (Linux only; `crate::shm`). Off: TCP
    /// only.
    pub shared_memory_transfers: bool,
}

impl Default for WorkerOptions {
    fn default() -> Self {
        WorkerOptions {
            scheduler: String::new(),
            name: None,
            nthreads: 1,
            memory_limit: 0,
            memory_target: DEFAULT_MEMORY_TARGET,
            memory_spill: DEFAULT_MEMORY_SPILL,
            memory_pause: DEFAULT_MEMORY_PAUSE,
            memory_monitor_interval: Duration::from_millis(DEFAULT_MEMORY_MONITOR_INTERVAL_MS),
            shuffle_buffer_bytes: crate::shuffle::DEFAULT_SHUFFLE_BUFFER_BYTES,
            resources: Vec::new(),
            local_directory: None,
            listen_host: "127.0.0.1".into(),
            listen_port: 0,
            limits: FrameLimits::default(),
            inline_limit: DEFAULT_INLINE_LIMIT,
            max_concurrent_fetches: DEFAULT_MAX_CONCURRENT_FETCHES,
            security: Security::default(),
            restarted: None,
            nanny: false,
            connect_timeout: transport::DEFAULT_CONNECT_TIMEOUT,
            scheduler_silence_timeout: Some(DEFAULT_SCHEDULER_SILENCE_TIMEOUT),
            frame_stall_timeout: Some(crate::actors::scheduler::DEFAULT_FRAME_STALL_TIMEOUT),
            reconnect_timeout: DEFAULT_RECONNECT_TIMEOUT,
            shared_memory_transfers: true,
        }
    }
}

/// Default time a worker (or client) waits without hearing anything from the
/// scheduler before it gives up on it. The scheduler sends a keep-alive every
/// second when idle, but its single actor thread can be busy for seconds on
/// a huge graph, and a scheduler paused briefly should not lose its workers,
/// so the default is generous (Dask's workers wait 60 s, `death-timeout`).
pub const DEFAULT_SCHEDULER_SILENCE_TIMEOUT: Duration = Duration::from_secs(60);

/// Default of [`WorkerOptions::reconnect_timeout`]: as long as the
/// scheduler silence a worker tolerates, time for a supervisor to start a
/// new scheduler.
pub const DEFAULT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(60);

/// Default size up to which a result travels inline with its completion.
pub const DEFAULT_INLINE_LIMIT: u64 = 64 * 1024;
/// Tasks handed to the pool ahead of a free thread, per thread.
pub const EXECUTE_AHEAD_PER_THREAD: u32 = 8;
/// A fetch of at least this many payload bytes is reported to the
/// scheduler (`TransferStats`) as a bandwidth sample; smaller ones measure
/// latency more than bandwidth.
pub const BANDWIDTH_SAMPLE_MIN_BYTES: u64 = 256 * 1024;
/// Default number of fetches from peers at once.
pub const DEFAULT_MAX_CONCURRENT_FETCHES: u32 = 8;
