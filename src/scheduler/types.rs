//! The scheduler's public vocabulary: ids, task states, the outbox, its
//! configuration and errors.

use crate::wire::messages::{Key, ToClient, ToWorker};

/// The scheduler's id for a client session (chosen by the actor layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ClientId(pub u64);

/// The scheduler's id for a worker connection (chosen by the actor layer).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct WorkerId(pub u64);

/// Dask's scheduler task states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum TaskState {
    /// Known, no data, nothing under way.
    Released,
    /// Waiting for dependencies to be in memory.
    Waiting,
    /// Ready, but no connected worker can run it.
    NoWorker,
    /// Ready root task held at the scheduler while workers are saturated.
    Queued,
    /// Assigned to a worker.
    Processing,
    /// Result held by at least one worker.
    Memory,
    /// Failed.
    Erred,
    /// Removed (never stored; only for completeness).
    Forgotten,
}

impl TaskState {
    pub(super) const ALL: [TaskState; 8] = [
        TaskState::Released,
        TaskState::Waiting,
        TaskState::NoWorker,
        TaskState::Queued,
        TaskState::Processing,
        TaskState::Memory,
        TaskState::Erred,
        TaskState::Forgotten,
    ];

    /// Dask's name of the state.
    pub fn name(self) -> &'static str {
        match self {
            TaskState::Released => "released",
            TaskState::Waiting => "waiting",
            TaskState::NoWorker => "no-worker",
            TaskState::Queued => "queued",
            TaskState::Processing => "processing",
            TaskState::Memory => "memory",
            TaskState::Erred => "erred",
            TaskState::Forgotten => "forgotten",
        }
    }

    pub(super) fn index(self) -> usize {
        self as usize
    }

    /// States in which a task needs its dependencies (kept alive by them).
    pub(super) fn is_active(self) -> bool {
        matches!(
            self,
            TaskState::Waiting | TaskState::Processing | TaskState::Queued | TaskState::NoWorker
        )
    }
}

/// One message to send.
#[derive(Clone, Debug, PartialEq)]
pub enum Outgoing {
    /// To a worker.
    Worker(WorkerId, ToWorker),
    /// To a client.
    Client(ClientId, ToClient),
}

/// Messages produced by one or more events, in the order they must be sent
/// (order matters per peer: e.g. a `FreeKeys` before a new `ComputeTask` of
/// the same key).
#[derive(Debug, Default)]
pub struct Outbox {
    /// The messages.
    pub messages: Vec<Outgoing>,
    /// Keys held by a coordination primitive that reached memory or erred
    /// in this event (the news the holder would have been sent), for
    /// `fire_and_forget`; drained at the end of the event.
    pub(super) held_done: Vec<Key>,
}

impl Outbox {
    /// Task news for client `c`; for the coordination holder, which has no
    /// connection, a finished key is noted instead.
    pub(super) fn client(&mut self, c: ClientId, msg: ToClient) {
        if c == super::coordination::HOLDER {
            if let ToClient::KeyInMemory { key, .. } | ToClient::TaskErred { key, .. } = msg {
                self.held_done.push(key);
            }
        } else {
            self.messages.push(Outgoing::Client(c, msg));
        }
    }
}

/// Default of [`SchedulerConfig::no_worker_timeout_s`]: long enough for a
/// worker being restarted to come back, short enough that a task whose
/// function no worker links fails while its user still watches.
pub const DEFAULT_NO_WORKER_TIMEOUT_S: f64 = 10.0;
/// Default of [`SchedulerConfig::empty_cluster_timeout_s`].
pub const DEFAULT_EMPTY_CLUSTER_TIMEOUT_S: f64 = 300.0;
/// Default of [`SchedulerConfig::paused_cluster_timeout_s`].
pub const DEFAULT_PAUSED_CLUSTER_TIMEOUT_S: f64 = 120.0;

/// Default of [`SchedulerConfig::journal_worker_wait_s`]: workers retry
/// with a back-off of at most a second, so those still alive are back
/// within a few seconds of the scheduler.
pub const DEFAULT_JOURNAL_WORKER_WAIT_S: f64 = 30.0;
/// Default of [`SchedulerConfig::journal_client_wait_s`]: longer than the
/// clients' default reconnect timeout (60 s).
pub const DEFAULT_JOURNAL_CLIENT_WAIT_S: f64 = 90.0;

/// Default of [`SchedulerConfig::root_run_length`]: a multiple of the
/// usual fan-ins of tree reductions (Dask's `split_every` of 8 for bags,
/// 32 for dataframes), so runs rarely split a group of siblings. In the
/// simulator (`rdask simulate --shape tree`, 52,574 tasks of 10 µs on two
/// workers) it cut the inputs moved between workers from 21,852 to 406
/// (fan-in 8) and from 24,342 to 820 (fan-in 32), makespan unchanged.
pub const DEFAULT_ROOT_RUN_LENGTH: u32 = 64;
/// Default of [`SchedulerConfig::fetch_latency_s`]: a peer request's round
/// trip on a loaded host (loopback measures 0.1-0.3 ms).
pub const DEFAULT_FETCH_LATENCY_S: f64 = 0.001;

/// Scheduler tuning.
#[derive(Clone, Debug)]
pub struct SchedulerConfig {
    /// A task that was processing on this many workers that died, plus one, errs with KilledWorker.
    pub allowed_failures: u32,
    /// Heartbeat interval told to workers, ms.
    pub heartbeat_ms: u64,
    /// Assumed duration of a task whose function has no measured duration yet, seconds.
    /// Dask's 0.5 s: until a function's first run is measured, only
    /// `min_tasks_per_thread` of its root tasks go to each worker, so a batch of
    /// long tasks is not split unevenly on a guess.
    pub default_task_duration_s: f64,
    /// Assumed worker-to-worker bandwidth before any is measured, bytes/s.
    pub default_bandwidth: f64,
    /// Root tasks go to a worker only while its expected queued work is below this many seconds per thread (else they wait in `queued` at the scheduler).
    pub queue_target_s: f64,
    /// But at least this many tasks per thread may be assigned regardless (keeps pipelines full when durations are tiny).
    pub min_tasks_per_thread: u32,
    /// And never more than this many tasks per thread.
    pub max_tasks_per_thread: u32,
    /// Dask's `worker-saturation`: root tasks of a function whose results
    /// are large or whose duration is long or not yet measured go to a
    /// worker only while it processes fewer than `ceil(nthreads × this)`
    /// tasks. Functions measured short with small results pipeline deeper
    /// (`queue_target_s`). `inf` disables the cap.
    pub worker_saturation: f64,
    /// Consecutive root tasks of one light function (in priority order)
    /// that go to the same worker together, Dask's former co-assignment:
    /// the siblings a reduction combines are then computed in one place
    /// instead of alternating between workers and being moved to meet.
    /// A worker taking a run may exceed its room by `root_run_length - 1`
    /// tasks. 1 = one task at a time.
    pub root_run_length: u32,
    /// What fetching a task's missing inputs from peers is counted to cost
    /// on top of their bytes ÷ bandwidth, seconds: a request's round trip.
    /// Without it a task whose inputs are small goes to whichever worker
    /// is a little less busy, and its inputs move for nothing.
    pub fetch_latency_s: f64,
    /// Placement on first sight: the guessed part of a worker's queue
    /// (tasks of functions not measured yet, each counted at
    /// `default_task_duration_s`) may not pay for moving a task's inputs
    /// away from the candidate that needs the fewest bytes moved; only
    /// known work (measured durations, queued fetches) plus one
    /// `fetch_latency_s` may (`docs/scheduling.md`). Off, a guess counts
    /// as measured work does, as in Dask (kept for comparisons:
    /// `rdask simulate --no-first-sight-locality`).
    pub first_sight_locality: bool,
    /// How often the actor calls [`super::SchedulerState::balance`] (work
    /// stealing), ms; 0 = never.
    pub work_stealing_interval_ms: u64,
    /// Dask's `scheduler.no-workers-timeout`, for a cluster with workers:
    /// a ready task that none of the connected workers can run (none has its
    /// function, or none satisfies its restrictions) errs with `NoWorker`
    /// after waiting this many seconds; 0 = waits for ever.
    pub no_worker_timeout_s: f64,
    /// The same bound while no worker at all is connected (workers are
    /// usually on their way: a cluster starting, a batch job queued), so
    /// longer; 0 = waits for ever.
    pub empty_cluster_timeout_s: f64,
    /// The same while the only workers that could run it are paused
    /// (their memory past its pause threshold): pauses usually pass as
    /// memory is spilled or freed, so longer than `no_worker_timeout_s`;
    /// one that does not (a spill directory that cannot be written) errs
    /// the task after it. 0 = waits for ever.
    pub paused_cluster_timeout_s: f64,
    /// Dask's `locks.lease-timeout`: a lock or semaphore lease whose
    /// holder's connection sent nothing (not even a keep-alive) for this
    /// many seconds is taken back; 0 = only when the connection closes.
    /// Must exceed the clients' keep-alive interval (5 s).
    pub lease_timeout_s: f64,
    /// Set by `LocalCluster`: the workers live in the scheduler's own
    /// process, without a nanny, so `Client::restart` is refused (it
    /// would only close them) instead of leaving the cluster empty.
    pub in_process_workers: bool,
    /// Restarting from a journal: how long to wait, seconds, for the
    /// workers the journal lists as holding results to register again
    /// before loading it anyway (their results are then recomputed if
    /// needed).
    pub journal_worker_wait_s: f64,
    /// Restarting from a journal: how long a journaled client session
    /// keeps its keys, seconds, waiting for its client to reconnect
    /// (`ReconnectClient`) before they are released as if it had closed.
    pub journal_client_wait_s: f64,
}

impl Default for SchedulerConfig {
    fn default() -> Self {
        SchedulerConfig {
            allowed_failures: 3,
            heartbeat_ms: 1000,
            default_task_duration_s: 0.5,
            default_bandwidth: 1e9,
            queue_target_s: 0.005,
            min_tasks_per_thread: 2,
            max_tasks_per_thread: 512,
            worker_saturation: 1.1,
            root_run_length: DEFAULT_ROOT_RUN_LENGTH,
            fetch_latency_s: DEFAULT_FETCH_LATENCY_S,
            first_sight_locality: true,
            work_stealing_interval_ms: 100,
            no_worker_timeout_s: DEFAULT_NO_WORKER_TIMEOUT_S,
            empty_cluster_timeout_s: DEFAULT_EMPTY_CLUSTER_TIMEOUT_S,
            paused_cluster_timeout_s: DEFAULT_PAUSED_CLUSTER_TIMEOUT_S,
            lease_timeout_s: super::coordination::DEFAULT_LEASE_TIMEOUT_S,
            in_process_workers: false,
            journal_worker_wait_s: DEFAULT_JOURNAL_WORKER_WAIT_S,
            journal_client_wait_s: DEFAULT_JOURNAL_CLIENT_WAIT_S,
        }
    }
}

/// What a worker announced in `RegisterWorker`.
#[derive(Clone, Debug)]
pub struct WorkerRegistration {
    /// Unique name.
    pub name: String,
    /// Peer address, `tcp://host:port`.
    pub address: String,
    /// Task threads.
    pub nthreads: u32,
    /// Memory limit in bytes (0 = none).
    pub memory_limit: u64,
    /// Functions it can run.
    pub functions: Vec<String>,
    /// Abstract resources it offers.
    pub resources: Vec<(String, f64)>,
    /// Why its nanny restarted it (logged), if it did.
    pub restarted: Option<String>,
    /// Whether it runs under a nanny (a restart restarts it, else closes it).
    pub nanny: bool,
    /// Keys (and sizes) it already holds: a worker registering again after
    /// losing its scheduler.
    pub keys: Vec<(Key, u64)>,
}

/// Events the scheduler refuses. The state is unchanged when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Worker names must be unique.
    #[error("a worker named {0:?} is already registered")]
    DuplicateWorkerName(String),
    /// A registered worker sent `RegisterWorker` again. It is refused as
    /// a client's or worker's message on the wrong connection is, in the
    /// same words (those are refused when the frame is decoded, by type).
    #[error("message RegisterWorker is not valid from a worker")]
    RegisteredAgain,
    /// No such worker is registered.
    #[error("unknown worker {0:?}")]
    UnknownWorker(WorkerId),
    /// No such client is registered.
    #[error("unknown client {0:?}")]
    UnknownClient(ClientId),
}

/// A function whose results average more bytes than this is held to the
/// `worker_saturation` cap when queued, however short its tasks: a deep
/// pipeline of large results is what floods a worker's memory.
pub const DEEP_PIPELINE_MAX_RESULT_BYTES: f64 = 64.0 * 1024.0;
