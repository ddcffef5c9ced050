//! The typed configuration of rdask processes: scheduler, worker, client,
//! wire limits and cluster launch, with the precedence operators expect —
//! command-line flag > environment (`RDASK_<SECTION>__<KEY>`) > config file >
//! built-in default — and a record of where every value came from, for
//! `rdask config show`.
//!
//! Defaults are taken from the constants and `Default` impls the code already
//! uses (`SchedulerOptions`, `WorkerOptions`, `FrameLimits`, ...), so the
//! config cannot drift from them; `config/rdask.toml` is generated from the
//! same tables ([`default_file_text`]) and a test keeps it equal.
//!
//! This file holds the sections and their conversion into each role's
//! options; the loading with its precedence and the printed texts are in
//! `load.rs`, byte sizes and the memory limit in `size.rs`.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use crate::actors::scheduler::SchedulerOptions;
use crate::actors::worker::WorkerOptions;
use crate::client::ClientOptions;
use crate::wire::{FrameLimits, Security, SecurityError, TlsFiles};

/// The scheduler port when none is configured (Dask's too).
pub const DEFAULT_SCHEDULER_PORT: u16 = 8786;
/// Name of the config file looked for in the working directory and in the
/// user's config directory (`$XDG_CONFIG_HOME/rdask/` or `~/.config/rdask/`).
pub const CONFIG_FILE_NAME: &str = "rdask.toml";
/// Prefix of environment variables that set config keys.
pub const ENV_PREFIX: &str = "RDASK_";
/// Separator between section and key in an environment variable name.
pub const ENV_SEPARATOR: &str = "__";
/// Default location of the state file `rdask cluster up` writes.
pub const DEFAULT_STATE_FILE: &str = ".rdask-cluster.json";

/// Errors of the config layer; each names the file, variable or flag at fault.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The config file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The config file is not valid TOML, or has an unknown key or a value of
    /// the wrong type (toml's message names the line, column and key).
    #[error("config file {path}: {message}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// toml's message.
        message: String,
    },
    /// An `RDASK_...` environment variable names no key or has a bad value.
    #[error("environment variable {var}: {message}")]
    Env {
        /// The variable.
        var: String,
        /// Why.
        message: String,
    },
    /// A command-line flag has a bad value.
    #[error("flag {flag}: {message}")]
    Flag {
        /// The flag.
        flag: String,
        /// Why.
        message: String,
    },
    /// The `[security]` settings name unreadable or unusable TLS files.
    #[error("[security]: {0}")]
    Security(#[from] SecurityError),
}

/// Defines a config section: the struct with its doc comments, its `Default`
/// from the given expressions, and a `KEYS` table of (key, doc) that the
/// generated `config/rdask.toml` uses, so docs, keys and defaults have one
/// source.
macro_rules! config_section {
    (
        $(#[doc = $sdoc:literal])*
        $name:ident {
            $( $(#[doc = $doc:literal])+ $field:ident : $ty:ty = $default:expr, )*
        }
    ) => {
        $(#[doc = $sdoc])*
        #[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
        #[serde(deny_unknown_fields, default)]
        pub struct $name {
            $( $(#[doc = $doc])+ pub $field: $ty, )*
        }

        impl Default for $name {
            fn default() -> Self {
                $name { $( $field: $default, )* }
            }
        }

        impl $name {
            /// The section's keys with their doc text, in declaration order.
            pub const KEYS: &'static [(&'static str, &'static str)] =
                &[ $( (stringify!($field), concat!($($doc, "\n"),+)), )* ];
        }
    };
}

mod load;
mod size;
pub use load::{default_file_text, from_file, load, FlagValue, Inputs, Loaded, Source};
pub use size::*;

fn scheduler_defaults() -> SchedulerOptions {
    SchedulerOptions::default()
}

fn worker_defaults() -> WorkerOptions {
    WorkerOptions::default()
}

config_section! {
    /// `[scheduler]`: the scheduler process.
    SchedulerSection {
        /// Interface the scheduler listens on.
        host: String = "127.0.0.1".into(),
        /// Port the scheduler listens on (0: any free port; the chosen address is printed).
        port: u16 = DEFAULT_SCHEDULER_PORT,
        /// Port of the HTTP endpoint (/health, /metrics, /api/v1/info) on the same interface;
        /// unset: no endpoint; 0: any free port (printed).
        http_port: Option<u16> = None,
        /// Seconds without any message (not even a heartbeat) after which a worker is removed as dead.
        worker_timeout_s: f64 = scheduler_defaults().worker_timeout.as_secs_f64(),
        /// Seconds a worker may stay paused (memory past its pause threshold) before the tasks it has not
        /// started are moved to other workers (or wait in no-worker, their clients told why).
        paused_worker_timeout_s: f64 = scheduler_defaults().paused_worker_timeout.as_secs_f64(),
        /// Most connections still in their handshake at once; more are closed at accept.
        max_pending_handshakes: usize = scheduler_defaults().max_pending_handshakes,
        /// Most open connections (clients, workers, handshakes); the newest past it are refused with a
        /// handshake reply saying so. Lowered to fit the open-files limit (raised to its hard limit at start).
        max_connections: usize = scheduler_defaults().max_connections,
        /// Bytes queued for one client or worker and not yet sent, past which the connection is cut as not
        /// reading (an integer or a string such as "256MiB").
        max_unsent_bytes_per_connection: ByteSize = ByteSize(scheduler_defaults().max_unsent_bytes_per_connection),
        /// Seconds without sending anything to a client or worker after which the scheduler sends it a
        /// keep-alive (an empty batch); 0 = never.
        keepalive_interval_s: f64 = scheduler_defaults().keepalive_interval.as_secs_f64(),
        /// Seconds a new connection has to complete its handshake (at most 10).
        handshake_timeout_s: f64 = scheduler_defaults().handshake_timeout.as_secs_f64(),
        /// Seconds a client that vanished without closing keeps its keys before they are released.
        client_grace_s: f64 = scheduler_defaults().client_grace.as_secs_f64(),
        /// Seconds without anything from a client (Rust clients send a keep-alive every 5 s when idle)
        /// after which its connection is closed as lost and the grace period starts; 0 = no limit.
        client_silence_timeout_s: f64 = scheduler_defaults().client_silence_timeout.map_or(0.0, |d| d.as_secs_f64()),
        /// A task that was processing on this many workers that died, plus one, errs with KilledWorker.
        allowed_failures: u32 = scheduler_defaults().state.allowed_failures,
        /// Heartbeat interval told to workers, milliseconds.
        heartbeat_ms: u64 = scheduler_defaults().state.heartbeat_ms,
        /// Assumed duration of a task whose function has no measured duration yet, seconds.
        default_task_duration_s: f64 = scheduler_defaults().state.default_task_duration_s,
        /// Assumed worker-to-worker bandwidth before any is measured, bytes per second.
        default_bandwidth: f64 = scheduler_defaults().state.default_bandwidth,
        /// Root tasks go to a worker only while its queued work is below this many seconds per thread.
        queue_target_s: f64 = scheduler_defaults().state.queue_target_s,
        /// At least this many tasks per thread may be assigned regardless of queue_target_s.
        min_tasks_per_thread: u32 = scheduler_defaults().state.min_tasks_per_thread,
        /// Never more than this many tasks per thread are assigned to a worker.
        max_tasks_per_thread: u32 = scheduler_defaults().state.max_tasks_per_thread,
        /// Dask's worker-saturation: root tasks with large results or long or unmeasured durations go
        /// to a worker only while it processes fewer than ceil(nthreads x this); inf = no cap.
        worker_saturation: f64 = scheduler_defaults().state.worker_saturation,
        /// Consecutive root tasks of one light function that go to the same worker together (Dask's
        /// co-assignment), so siblings a reduction combines need not move; 1 = one at a time.
        root_run_length: u32 = scheduler_defaults().state.root_run_length,
        /// Seconds a fetch of a task's inputs from peers is counted to cost besides bytes / bandwidth
        /// (a request's round trip), when choosing where the task runs.
        fetch_latency_s: f64 = scheduler_defaults().state.fetch_latency_s,
        /// Milliseconds between work-stealing rounds (idle workers take queued tasks from busy ones);
        /// 0 = no stealing.
        work_stealing_interval_ms: u64 = scheduler_defaults().state.work_stealing_interval_ms,
        /// Dask's scheduler.no-workers-timeout: seconds a ready task that none of the connected
        /// workers can run (none has its function or satisfies its restrictions) waits before it
        /// errs with NoWorker; 0 = for ever.
        no_worker_timeout_s: f64 = scheduler_defaults().state.no_worker_timeout_s,
        /// The same while no worker at all is connected (workers may be starting); 0 = for ever.
        empty_cluster_timeout_s: f64 = scheduler_defaults().state.empty_cluster_timeout_s,
        /// The same while the only workers that could run it are paused (memory past their pause
        /// threshold, e.g. unable to spill); 0 = for ever.
        paused_cluster_timeout_s: f64 = scheduler_defaults().state.paused_cluster_timeout_s,
        /// Dask's locks.lease-timeout: seconds a lock or semaphore lease survives its holder's connection
        /// sending nothing (not even a keep-alive, sent every 5 s); 0 = only a closed connection frees it.
        lease_timeout_s: f64 = scheduler_defaults().state.lease_timeout_s,
        /// Journal file: graph submissions, results, releases and client wants are appended to it, and a
        /// scheduler started on an existing journal rebuilds its state from it (docs/resilience.md);
        /// unset: no journal (a restart loses all work).
        journal: Option<PathBuf> = None,
        /// Seconds within which appended journal entries reach the disk (fdatasync); 0 = after every entry.
        journal_fsync_interval_s: f64 = scheduler_defaults().journal_fsync_interval.as_secs_f64(),
        /// Seconds between journal compactions (the live state written in place of the history, once the
        /// journal grew by 4 MiB); 0 = never.
        journal_compact_interval_s: f64 = scheduler_defaults().journal_compact_interval.as_secs_f64(),
        /// Restarting from a journal: seconds to wait for the workers that held results to register again
        /// before loading it anyway (their results are then recomputed if needed).
        journal_worker_wait_s: f64 = scheduler_defaults().state.journal_worker_wait_s,
        /// Restarting from a journal: seconds a journaled client session keeps its keys waiting for its
        /// client to reconnect.
        journal_client_wait_s: f64 = scheduler_defaults().state.journal_client_wait_s,
    }
}

config_section! {
    /// `[worker]`: each worker process.
    WorkerSection {
        /// Task threads.
        nthreads: u32 = worker_defaults().nthreads,
        /// Memory limit: bytes, a string such as "4GB", or "auto" (the machine's memory times this
        /// worker's share of the CPUs); 0 for none. Past fractions of it results spill to disk and
        /// tasks pause (see docs/scheduling.md).
        memory_limit: MemoryLimit = MemoryLimit::Bytes(worker_defaults().memory_limit),
        /// Fraction of memory_limit that results held in memory may take; past it the least
        /// recently used are spilled to local_directory (0: never).
        memory_target: f64 = worker_defaults().memory_target,
        /// Fraction of memory_limit of process memory (RSS) past which more results are spilled
        /// (0: never).
        memory_spill: f64 = worker_defaults().memory_spill,
        /// Fraction of memory_limit of process memory past which the worker starts no new task until
        /// memory falls (0: never).
        memory_pause: f64 = worker_defaults().memory_pause,
        /// How often the worker measures its process memory, milliseconds.
        memory_monitor_interval_ms: u64 = worker_defaults().memory_monitor_interval.as_millis() as u64,
        /// Bytes of peer-to-peer shuffle shards the worker keeps in memory (with a memory_limit, at
        /// most a quarter of it); past it they go to local_directory.
        shuffle_buffer_bytes: u64 = worker_defaults().shuffle_buffer_bytes,
        /// Abstract resources offered, e.g. { GPU = 2, MEM = 10e9 }.
        resources: BTreeMap<String, f64> = worker_defaults().resources.into_iter().collect(),
        /// Directory for the worker's files; unset: a temporary directory.
        local_directory: Option<PathBuf> = worker_defaults().local_directory,
        /// Interface of the worker's peer port; must be reachable by the other workers and clients.
        listen_host: String = worker_defaults().listen_host,
        /// Port of the worker's peer port (0: any free port).
        listen_port: u16 = worker_defaults().listen_port,
        /// Port of the worker's HTTP endpoint (/health, /metrics, /api/v1/info) on listen_host;
        /// unset: no endpoint; 0: any free port (printed).
        http_port: Option<u16> = None,
        /// Results up to this many bytes travel inline with the task-finished message.
        inline_limit: u64 = worker_defaults().inline_limit,
        /// Most fetches from peers at once.
        max_concurrent_fetches: u32 = worker_defaults().max_concurrent_fetches,
        /// Seconds to keep trying to reach the scheduler at start while nothing listens there.
        connect_timeout_s: f64 = worker_defaults().connect_timeout.as_secs_f64(),
        /// Seconds without anything (not even a keep-alive) from the scheduler after which the worker
        /// takes it as lost (then tries to register again for reconnect_timeout_s, and exits non-zero if it
        /// cannot); 0 = never.
        scheduler_silence_timeout_s: f64 = secs_or_zero(worker_defaults().scheduler_silence_timeout),
        /// Seconds a worker that lost its scheduler keeps its results and keeps trying to register again
        /// (announcing them) before it exits with status 1; 0 = exit at once.
        reconnect_timeout_s: f64 = worker_defaults().reconnect_timeout.as_secs_f64(),
        /// Run the worker under a nanny, a supervising process that restarts it when it crashes or
        /// passes memory_terminate (Dask's --nanny; `rdask cluster up` turns it on).
        nanny: bool = false,
        /// Fraction of memory_limit of process memory past which the nanny kills and restarts the
        /// worker (Dask's worker.memory.terminate; 0: never; only with nanny).
        memory_terminate: f64 = crate::worker::memory::DEFAULT_MEMORY_TERMINATE,
        /// Fetch from workers on the same host through shared memory (a sealed memory file passed over a
        /// Unix socket in a directory under local_directory) instead of loopback TCP, and serve such
        /// fetches; any failure falls back to TCP with a log line. Linux only; false = TCP only.
        shared_memory_transfers: bool = worker_defaults().shared_memory_transfers,
    }
}

config_section! {
    /// `[client]`: connections made by clients. `connect_timeout_s` and
    /// `scheduler_silence_timeout_s` apply to `rdask info`, `rdask shell` and
    /// [`RdaskConfig::client_options`]; the other keys are informative: the
    /// client API reads the constants their defaults come from (see
    /// docs/operations.md).
    ClientSection {
        /// Seconds to keep trying to reach the scheduler while nothing listens at its address.
        connect_timeout_s: f64 = ClientOptions::default().connect_timeout.as_secs_f64(),
        /// Seconds without anything (not even a keep-alive) from the scheduler after which every waiting
        /// call fails with "scheduler at ADDR silent for N s"; 0 = never.
        scheduler_silence_timeout_s: f64 = secs_or_zero(ClientOptions::default().scheduler_silence_timeout),
        /// Seconds a client that lost the scheduler keeps trying to connect again (its futures then resume
        /// with a journaled scheduler, or err clearly without one) before its waiting calls fail; 0 = fail
        /// at once.
        reconnect_timeout_s: f64 = ClientOptions::default().reconnect_timeout.as_secs_f64(),
        /// Tasks per graph update when mapping over many inputs.
        map_chunk: usize = crate::client::MAP_CHUNK,
        /// Most bytes asked of one worker in one request when gathering.
        max_fetch_bytes: u64 = crate::client::MAX_FETCH_BYTES,
    }
}

config_section! {
    /// `[wire]`: limits on frames read from peers, applied by the scheduler and workers.
    WireSection {
        /// Largest message header in a frame, bytes.
        max_header_bytes: u32 = FrameLimits::default().max_header_bytes,
        /// Most raw payloads in one frame.
        max_payloads_per_frame: u32 = FrameLimits::default().max_payloads,
        /// Largest frame in total, bytes.
        max_frame_bytes: u64 = FrameLimits::default().max_frame_bytes,
        /// Seconds a frame from a peer may go without advancing by 64 KiB (or ending) before its
        /// connection is closed (scheduler port and workers' peer ports); 0 = no limit.
        frame_stall_timeout_s: f64 = secs_or_zero(scheduler_defaults().frame_stall_timeout),
    }
}

config_section! {
    /// `[security]`: TLS with mutual authentication, and the shared token
    /// (see docs/operations.md). Unset: plain TCP, no token.
    SecuritySection {
        /// Shared token every connection must present in its handshake; unset: none. Prefer the
        /// environment (RDASK_SECURITY__TOKEN) or --token to a file others can read.
        token: Option<String> = None,
        /// PEM file of the cluster CA: with a certificate and key for the role, connections use TLS and
        /// peers must present a certificate signed by this CA (`rdask certs new DIR` makes one).
        tls_ca_file: Option<PathBuf> = None,
        /// PEM certificate of the scheduler (its port then speaks TLS; its address is tls://).
        tls_scheduler_cert: Option<PathBuf> = None,
        /// PEM private key of the scheduler certificate.
        tls_scheduler_key: Option<PathBuf> = None,
        /// PEM certificate of workers (scheduler connection, peer port, fetches from peers).
        tls_worker_cert: Option<PathBuf> = None,
        /// PEM private key of the worker certificate.
        tls_worker_key: Option<PathBuf> = None,
        /// PEM certificate of clients (rdask info, rdask shell, and the library's clients via
        /// RdaskConfig::client_security).
        tls_client_cert: Option<PathBuf> = None,
        /// PEM private key of the client certificate.
        tls_client_key: Option<PathBuf> = None,
    }
}

config_section! {
    /// `[cluster]`: `rdask cluster up/status/down`.
    ClusterSection {
        /// State file written by `cluster up` and read by `status` and `down`; its directory also holds
        /// the logs of processes started on this machine.
        state_file: PathBuf = PathBuf::from(DEFAULT_STATE_FILE),
        /// Seconds `cluster up` waits for the scheduler and all workers to be up.
        startup_timeout_s: f64 = 60.0,
        /// Seconds `cluster down` waits for processes to exit after SIGTERM before sending SIGKILL.
        shutdown_timeout_s: f64 = 10.0,
    }
}

/// The whole configuration.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct RdaskConfig {
    /// `[scheduler]`.
    pub scheduler: SchedulerSection,
    /// `[worker]`.
    pub worker: WorkerSection,
    /// `[client]`.
    pub client: ClientSection,
    /// `[wire]`.
    pub wire: WireSection,
    /// `[cluster]`.
    pub cluster: ClusterSection,
    /// `[security]`.
    pub security: SecuritySection,
}

/// The sections in file order, with their (key, doc) tables.
pub const SECTIONS: &[(&str, &[(&str, &str)])] = &[
    ("scheduler", SchedulerSection::KEYS),
    ("worker", WorkerSection::KEYS),
    ("client", ClientSection::KEYS),
    ("wire", WireSection::KEYS),
    ("cluster", ClusterSection::KEYS),
    ("security", SecuritySection::KEYS),
];

/// `Some(d)` as seconds, `None` as 0 (the config's "never").
fn secs_or_zero(d: Option<Duration>) -> f64 {
    d.map_or(0.0, |d| d.as_secs_f64())
}

/// Seconds from the config, 0 (or less) meaning "never".
fn zero_is_never(secs: f64) -> Option<Duration> {
    (secs > 0.0).then(|| Duration::from_secs_f64(secs))
}

impl WireSection {
    /// The stall timeout of frames in progress.
    pub fn frame_stall_timeout(&self) -> Option<Duration> {
        zero_is_never(self.frame_stall_timeout_s)
    }

    /// The frame limits these settings describe.
    pub fn limits(&self) -> FrameLimits {
        FrameLimits {
            max_header_bytes: self.max_header_bytes,
            max_payloads: self.max_payloads_per_frame,
            max_frame_bytes: self.max_frame_bytes,
        }
    }
}

impl RdaskConfig {
    /// Options for a scheduler process. The struct literals below list every
    /// field on purpose: a field added to the options fails to compile here
    /// until it gets a config key too.
    pub fn scheduler_options(&self) -> SchedulerOptions {
        let s = &self.scheduler;
        // Start from the defaults so fields the config does not cover keep them.
        let mut state = SchedulerOptions::default().state;
        state.allowed_failures = s.allowed_failures;
        state.heartbeat_ms = s.heartbeat_ms;
        state.default_task_duration_s = s.default_task_duration_s;
        state.default_bandwidth = s.default_bandwidth;
        state.queue_target_s = s.queue_target_s;
        state.min_tasks_per_thread = s.min_tasks_per_thread;
        state.max_tasks_per_thread = s.max_tasks_per_thread;
        state.worker_saturation = s.worker_saturation;
        state.root_run_length = s.root_run_length;
        state.fetch_latency_s = s.fetch_latency_s;
        state.work_stealing_interval_ms = s.work_stealing_interval_ms;
        state.no_worker_timeout_s = s.no_worker_timeout_s;
        state.empty_cluster_timeout_s = s.empty_cluster_timeout_s;
        state.paused_cluster_timeout_s = s.paused_cluster_timeout_s;
        state.lease_timeout_s = s.lease_timeout_s;
        state.journal_worker_wait_s = s.journal_worker_wait_s;
        state.journal_client_wait_s = s.journal_client_wait_s;
        SchedulerOptions {
            state,
            limits: self.wire.limits(),
            worker_timeout: Duration::from_secs_f64(s.worker_timeout_s.max(0.0)),
            paused_worker_timeout: Duration::from_secs_f64(s.paused_worker_timeout_s.max(0.0)),
            max_pending_handshakes: s.max_pending_handshakes,
            handshake_timeout: Duration::from_secs_f64(s.handshake_timeout_s.max(0.0)),
            client_grace: Duration::from_secs_f64(s.client_grace_s.max(0.0)),
            client_silence_timeout: (s.client_silence_timeout_s > 0.0)
                .then(|| Duration::from_secs_f64(s.client_silence_timeout_s)),
            max_connections: s.max_connections,
            max_unsent_bytes_per_connection: s.max_unsent_bytes_per_connection.0,
            keepalive_interval: Duration::from_secs_f64(s.keepalive_interval_s.max(0.0)),
            frame_stall_timeout: self.wire.frame_stall_timeout(),
            // Reading the certificate files can fail, so it is not done
            // here: [`Self::scheduler_security`] loads `[security]`.
            security: Security::default(),
            journal: s.journal.clone(),
            journal_fsync_interval: Duration::from_secs_f64(s.journal_fsync_interval_s.max(0.0)),
            journal_compact_interval: Duration::from_secs_f64(s.journal_compact_interval_s.max(0.0)),
        }
    }

    fn security(&self, cert: &Option<PathBuf>, key: &Option<PathBuf>, role: &str) -> Result<Security, ConfigError> {
        let sec = &self.security;
        let files = TlsFiles::from_parts(
            sec.tls_ca_file.clone(),
            cert.clone(),
            key.clone(),
            [
                "security.tls_ca_file (--tls-ca-file)",
                &format!("security.tls_{role}_cert (--tls-cert)"),
                &format!("security.tls_{role}_key (--tls-key)"),
            ],
        )?;
        let security = match files {
            Some(files) => Security::tls(&files)?,
            None => Security::default(),
        };
        Ok(security.with_token(sec.token.clone().unwrap_or_default()))
    }

    /// The scheduler's [`Security`] from `[security]` (reads the files).
    pub fn scheduler_security(&self) -> Result<Security, ConfigError> {
        let s = &self.security;
        self.security(&s.tls_scheduler_cert, &s.tls_scheduler_key, "scheduler")
    }

    /// A worker's [`Security`] from `[security]` (reads the files).
    pub fn worker_security(&self) -> Result<Security, ConfigError> {
        let s = &self.security;
        self.security(&s.tls_worker_cert, &s.tls_worker_key, "worker")
    }

    /// A client's [`Security`] from `[security]` (reads the files), for
    /// [`crate::ClientOptions`].
    pub fn client_security(&self) -> Result<Security, ConfigError> {
        let s = &self.security;
        self.security(&s.tls_client_cert, &s.tls_client_key, "client")
    }

    /// A client's options from `[client]` and `[security]` (reads the TLS
    /// files).
    pub fn client_options(&self) -> Result<ClientOptions, ConfigError> {
        Ok(ClientOptions {
            connect_timeout: Duration::from_secs_f64(self.client.connect_timeout_s.max(0.0)),
            scheduler_silence_timeout: zero_is_never(self.client.scheduler_silence_timeout_s),
            reconnect_timeout: Duration::from_secs_f64(self.client.reconnect_timeout_s.max(0.0)),
            ..ClientOptions::with_security(self.client_security()?)
        })
    }

    /// Options for a worker process connecting to `scheduler`.
    pub fn worker_options(&self, scheduler: &str, name: Option<String>) -> WorkerOptions {
        let w = &self.worker;
        WorkerOptions {
            scheduler: scheduler.to_string(),
            name,
            nthreads: w.nthreads,
            memory_limit: w.memory_limit.resolve(w.nthreads),
            memory_target: w.memory_target,
            memory_spill: w.memory_spill,
            memory_pause: w.memory_pause,
            memory_monitor_interval: Duration::from_millis(w.memory_monitor_interval_ms.max(1)),
            shuffle_buffer_bytes: w.shuffle_buffer_bytes,
            resources: w.resources.iter().map(|(k, v)| (k.clone(), *v)).collect(),
            local_directory: w.local_directory.clone(),
            listen_host: w.listen_host.clone(),
            listen_port: w.listen_port,
            limits: self.wire.limits(),
            inline_limit: w.inline_limit,
            max_concurrent_fetches: w.max_concurrent_fetches,
            connect_timeout: Duration::from_secs_f64(w.connect_timeout_s.max(0.0)),
            scheduler_silence_timeout: zero_is_never(w.scheduler_silence_timeout_s),
            frame_stall_timeout: self.wire.frame_stall_timeout(),
            reconnect_timeout: Duration::from_secs_f64(w.reconnect_timeout_s.max(0.0)),
            shared_memory_transfers: w.shared_memory_transfers,
            // Loaded by [`Self::worker_security`]: reading files can fail.
            security: Security::default(),
            restarted: None,
            nanny: false,
        }
    }

    /// The address workers and clients use when none is given:
    /// `tcp://<scheduler.host>:<scheduler.port>`, or `tls://...` when a TLS
    /// CA file is configured.
    pub fn scheduler_address(&self) -> String {
        let scheme = if self.security.tls_ca_file.is_some() {
            "tls"
        } else {
            "tcp"
        };
        format!("{scheme}://{}:{}", self.scheduler.host, self.scheduler.port)
    }
}
