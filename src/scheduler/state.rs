//! The scheduler's task state machine, without I/O.
//!
//! [`SchedulerState`] is a plain struct: every event (a client or worker
//! message, a worker joining or dying, a client leaving) is a method call that
//! updates the state and pushes the messages to send into an [`Outbox`]. The
//! actor layer owns the sockets; this module owns the decisions. That is what
//! makes it unit- and property-testable with fake workers and no network.
//!
//! # Model (Dask's, simplified)
//!
//! Task states are Dask's: `released`, `waiting`, `no-worker`, `queued`,
//! `processing`, `memory`, `erred` (`forgotten` = removed from the arena).
//!
//! * `waiting`: some dependency is not in memory (`waiting_on` counts them).
//! * ready tasks (all dependencies in memory) are placed at once on the worker
//!   with the earliest estimated start (`processing`), or wait in `queued`
//!   at the scheduler (unrestricted root tasks while every worker that can run
//!   them is saturated: memory back-pressure, as Dask's queuing), or in
//!   `no-worker` (no connected worker has the function / satisfies the
//!   restrictions).
//! * `released`: no data and nothing under way. A task is kept in this state
//!   (rather than forgotten) only while it still has dependents, so that it
//!   can be recomputed if one of them needs it again (lost data, retry).
//!
//! # Release rule
//!
//! A task is *needed* while a client wants it or a dependent is *active*
//! (`waiting`, `processing`, `queued`, `no-worker`). An unneeded task is
//! cancelled (`FreeKeys` to its worker) or has its data freed (`FreeKeys` to
//! every holder), then is forgotten if it has no dependents left, or kept as
//! `released` otherwise. An `erred` task with dependents keeps its error
//! (so that `Retry` of a dependent can find it). Forgetting a task may make
//! its dependencies releasable: the check cascades. Release checks are
//! deferred to the end of each event (`finish`), so that a task that bounces
//! through `released` within one event (a retry, a reschedule) never loses
//! its dependencies on the way.
//!
//! # Performance
//!
//! Tasks live in an arena (`Vec<TaskSlot>` indexed by `TaskId`, with a free
//! list and a generation per slot so that dependents lists may hold stale
//! references that are skipped and compacted lazily, instead of an O(n)
//! removal per forgotten dependent). String keys are only used at the edge
//! (one `HashMap<Key, TaskId>`, Fx-hashed). Per-task counters (`waiting_on`,
//! `active_dependents`, `live_dependents`) make every check O(1), so wide
//! fan-in/fan-out graphs stay linear. Workers are ranked in a `BTreeSet`
//! by occupancy per thread, so placing a root task costs O(log workers) when
//! workers share their functions. No string formatting on the hot path:
//! `format!` only builds error messages.
//!
//! # Things deliberately left out
//!
//! # Policy (see `docs/scheduling.md`)
//!
//! Placement by earliest start (missing dependency bytes over the measured
//! bandwidth, plus occupancy from per-function duration averages); root
//! tasks of heavy or unmeasured functions capped at
//! `ceil(nthreads × worker_saturation)` per worker, light ones pipelined to
//! `queue_target_s`; work stealing by confirmed hand-over (`balance`,
//! `StealRequest` / `StealResponse`, tracked in `steals`); graph order by
//! inherited sequence numbers; resources matched against what workers
//! declared (the worker does the accounting); replicate and rebalance by
//! `AcquireReplicas`, the source freed when the target's `AddKeys` arrives
//! (`moving`).
//!
//! # Things deliberately left out
//!
//! The wire protocol has no run ids, so a `TaskFinished` is only accepted
//! from the worker the task is processing on; from any other worker the
//! result is dropped with `FreeKeys` (unless that worker is already a known
//! holder), because such a worker may have a `FreeKeys` for that key still
//! in flight and would lose the data right after we listed it as a holder.
//! For the same reason an `AddKeys` from a worker that was sent a `FreeKeys`
//! of the key since its last `ComputeTask` of it is answered with `FreeKeys`
//! (`Extra::freed_on`), a task is re-placed on such a worker only when no
//! other can take it, and if it must be, that worker reporting `MissingData`
//! for one of the task's dependencies (or `TaskErred`) after its result was
//! accepted un-lists it as a holder (`Extra::rerun_on`).
//!
//! # What this expects of workers
//!
//! `FreeKeys` both deletes data and cancels queued/running tasks of those
//! keys, in message order. After `MissingData` a worker may drop the task
//! that needed the data: the scheduler re-sends its `ComputeTask` (with fresh
//! locations) or cancels it. A `ComputeTask` may name a key the worker
//! already holds or was told to free before: it must run it again.

use std::cmp::Reverse;
use std::collections::{BTreeSet, HashSet, VecDeque};
use std::sync::Arc;

use crate::wire::messages::{
    Arg, DependencyLocation, ErrorKind, Key, Payload, SchedulerInfo, TaskFailure, TaskSpec, ToClient, ToScheduler,
    ToWorker, WhoHas, WorkerSummary,
};

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
    const ALL: [TaskState; 8] = [
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

    fn index(self) -> usize {
        self as usize
    }

    /// States in which a task needs its dependencies (kept alive by them).
    fn is_active(self) -> bool {
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
}

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
    /// How often the actor calls [`SchedulerState::balance`] (work
    /// stealing), ms; 0 = never.
    pub work_stealing_interval_ms: u64,
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
            work_stealing_interval_ms: 100,
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
}

/// Events the scheduler refuses. The state is unchanged when one is returned.
#[derive(Debug, thiserror::Error)]
pub enum SchedulerError {
    /// Worker names must be unique.
    #[error("a worker named {0:?} is already registered")]
    DuplicateWorkerName(String),
    /// A client sent a worker message or the reverse.
    #[error("message {0} is not valid from a {1}")]
    WrongDirection(&'static str, &'static str),
    /// No such worker is registered.
    #[error("unknown worker {0:?}")]
    UnknownWorker(WorkerId),
    /// No such client is registered.
    #[error("unknown client {0:?}")]
    UnknownClient(ClientId),
}

// ---------------------------------------------------------------- internals

/// Weight of a new sample in the running averages of task durations and
/// result sizes per function (exponentially weighted).
const DURATION_SAMPLE_WEIGHT: f64 = 0.5;
/// Weight of a new transfer in the running bandwidth average: transfers
/// vary more than durations of one function, so each moves it less.
const BANDWIDTH_SAMPLE_WEIGHT: f64 = 0.25;
/// A function whose results average more bytes than this is held to the
/// `worker_saturation` cap when queued, however short its tasks: a deep
/// pipeline of large results is what floods a worker's memory.
pub const DEEP_PIPELINE_MAX_RESULT_BYTES: f64 = 64.0 * 1024.0;
/// A ready task is stolen only if its expected compute time is at least
/// this many times the time to move its inputs to the thief.
const STEAL_COMPUTE_OVER_TRANSFER: f64 = 2.0;
/// Most steal requests one `balance` call sends, so that one call stays
/// cheap however unbalanced the cluster.
const MAX_STEALS_PER_BALANCE: usize = 1024;

use crate::util::{FxMap, FxSet};

/// Index of a task slot in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct TaskId(u32);

/// Index of a worker slot in the worker arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
struct WIdx(u32);

/// Index of an interned function name.
type FnId = u32;

/// A reference to a dependent that may outlive it: valid while the slot's
/// generation matches.
#[derive(Clone, Copy, Debug)]
struct TaskRef {
    id: TaskId,
    gen: u32,
}

/// Ordering of queued / no-worker tasks: higher priority first, then earlier
/// submission.
type QueueKey = (Reverse<i32>, u64, TaskId);

/// Ordering of workers for placement: occupancy per thread (ns), then number
/// of processing tasks, then id.
type RankKey = (u64, u32, WorkerId, WIdx);

/// Rarely used per-task fields, boxed so that the common slot stays small.
#[derive(Debug, Default)]
struct Extra {
    restrictions: Vec<String>,
    allow_other_workers: bool,
    /// Resources one run holds (`TaskSpec::resources`).
    resources: Vec<(String, f64)>,
    /// Names of the workers that died while this task was processing on them.
    killed_on: Vec<String>,
    /// Workers sent a `FreeKeys` of this key that may still be in flight
    /// (a cancel, or a stale result refused) since they were last sent its
    /// `ComputeTask`: an `AddKeys` from them may predate that free (they
    /// fetched it, then drop it), so it is not trusted.
    freed_on: Vec<WIdx>,
    /// Set when the task was assigned to a worker in `freed_on`: its first
    /// `TaskFinished` may come from the old run, whose data the `FreeKeys`
    /// then deletes while the new run is still to come. If that worker then
    /// reports the new run unable to proceed, it is no longer listed as a
    /// holder. (The protocol has no run ids to tell the runs apart.)
    rerun_on: Option<WIdx>,
}

#[derive(Debug)]
struct TaskSlot {
    key: Key,
    gen: u32,
    state: TaskState,
    /// Created by `Scatter`: cannot be recomputed.
    scattered: bool,
    func: FnId,
    priority: i32,
    retries: u32,
    sequence: u64,
    /// Dependencies not in memory; meaningful in `waiting` only.
    waiting_on: u32,
    /// Dependents in an active state (they need this task's data).
    active_dependents: u32,
    /// Dependents not forgotten (`dependents` may also hold stale refs).
    live_dependents: u32,
    args: Vec<Arg>,
    dependencies: Vec<TaskId>,
    dependents: Vec<TaskRef>,
    wanted_by: Vec<ClientId>,
    processing_on: Option<WIdx>,
    who_has: Vec<WIdx>,
    nbytes: u64,
    /// The small result the worker sent along, kept while in memory.
    inline: Option<Payload>,
    failure: Option<Arc<TaskFailure>>,
    extra: Option<Box<Extra>>,
}

impl TaskSlot {
    fn restrictions(&self) -> Option<&Extra> {
        self.extra.as_deref().filter(|e| !e.restrictions.is_empty())
    }
    fn resources(&self) -> &[(String, f64)] {
        self.extra.as_deref().map_or(&[], |e| &e.resources)
    }
    fn freed_on(&self) -> &[WIdx] {
        self.extra.as_deref().map_or(&[], |e| &e.freed_on)
    }
    fn rerun_on(&self) -> Option<WIdx> {
        self.extra.as_deref().and_then(|e| e.rerun_on)
    }
    fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }
    fn queue_key(&self, id: TaskId) -> QueueKey {
        (Reverse(self.priority), self.sequence, id)
    }
}

#[derive(Debug)]
struct WorkerSlot {
    id: WorkerId,
    name: String,
    address: String,
    nthreads: u32,
    memory_limit: u64,
    functions: Vec<String>,
    /// `fn_mask[f]`: whether it has function `f` (functions interned after
    /// it registered are not in its list, hence out of range = false).
    fn_mask: Vec<bool>,
    /// Abstract resources it declared; a task asking for resources goes
    /// only to a worker declaring at least as much of each (the worker
    /// itself limits how many such tasks run at once).
    resources: Vec<(String, f64)>,
    /// Tasks assigned to it, with the duration expected when assigned (so
    /// that removing one subtracts exactly what was added).
    processing: FxMap<TaskId, u64>,
    has_what: FxSet<TaskId>,
    occupancy_ns: u64,
    known_nbytes: u64,
    heartbeat: Option<(u64, u64)>,
    rank: RankKey,
    roomy: bool,
    /// An open `FreeKeys` message to this worker in the outbox of the
    /// current event: (event epoch, index), to batch frees.
    open_free: Option<(u64, usize)>,
    /// Processing tasks the worker reported started (`TasksStarted`): only
    /// these count against `allowed_failures` if it dies.
    executing: FxSet<TaskId>,
    /// Processing tasks whose thread seceded (`LongRunning`): they count
    /// neither in occupancy nor against the saturation cap, so the tasks
    /// they wait for are not queued behind them.
    long_running: FxSet<TaskId>,
    /// Whether it ever sent `TasksStarted`. A worker that does not (another
    /// implementation) has all its processing tasks counted, as in Dask.
    reports_started: bool,
    /// Set while it retires gracefully: the replicas asked of other workers
    /// for the keys only it holds (task → worker asked to fetch it).
    retiring: Option<Box<FxMap<TaskId, WIdx>>>,
}

impl WorkerSlot {
    /// Processing tasks that occupy a thread (long-running ones do not).
    fn busy(&self) -> usize {
        self.processing.len() - self.long_running.len()
    }
    fn has_fn(&self, f: FnId) -> bool {
        self.fn_mask.get(f as usize).copied().unwrap_or(false)
    }
    fn matches(&self, restriction: &str) -> bool {
        self.name == restriction || self.address == restriction
    }
    /// Whether it declared at least `required` of each resource.
    fn satisfies(&self, required: &[(String, f64)]) -> bool {
        required
            .iter()
            .all(|(name, amount)| self.resources.iter().any(|(n, a)| n == name && a >= amount))
    }
}

#[derive(Debug)]
struct FnInfo {
    name: String,
    /// Exponentially weighted average duration, ns.
    avg_ns: Option<f64>,
    /// Exponentially weighted average result size, bytes.
    avg_nbytes: Option<f64>,
    /// Connected workers that have it.
    nworkers: u32,
    /// Queued root tasks of this function.
    queue: BTreeSet<QueueKey>,
}

#[derive(Debug, Default)]
struct ClientSlot {
    wanted: FxSet<TaskId>,
}

/// A graceful retirement in progress (`RetireWorkers` or `RetireMe`).
#[derive(Debug)]
struct RetireRequest {
    /// Who to answer with `RetireWorkersDone` (`None`: a worker's own request).
    client: Option<ClientId>,
    request_id: u64,
    /// Workers still to leave.
    waiting: Vec<WIdx>,
    /// Names of those that left.
    retired: Vec<String>,
    /// Names that could not be retired, and why.
    errors: Vec<String>,
}

/// The scheduler's state machine. See the module documentation.
#[derive(Debug)]
pub struct SchedulerState {
    config: SchedulerConfig,
    tasks: Vec<TaskSlot>,
    free_tasks: Vec<TaskId>,
    keys: FxMap<Key, TaskId>,
    counts: [u64; 8],
    fns: Vec<FnInfo>,
    fn_ids: FxMap<String, FnId>,
    /// Functions whose queue is not empty.
    queued_fns: BTreeSet<FnId>,
    no_worker: BTreeSet<QueueKey>,
    /// Worker arena. Indices are never reused (a dead worker's slot stays
    /// `None`, 8 bytes), so that a stale index can never alias a new worker.
    workers: Vec<Option<Box<WorkerSlot>>>,
    worker_ids: FxMap<WorkerId, WIdx>,
    worker_names: FxMap<String, WIdx>,
    worker_addrs: FxMap<String, WIdx>,
    ranked: BTreeSet<RankKey>,
    nroomy: usize,
    clients: FxMap<ClientId, ClientSlot>,
    next_sequence: u64,
    scatter_rr: usize,
    epoch: u64,
    /// Tasks to check against the release rule at the end of the event.
    candidates: Vec<TaskId>,
    /// Workers whose processing shrank: pull queued tasks onto them.
    dirty_workers: Vec<WIdx>,
    /// Reused buffer (tasks made ready by a result), to save an allocation.
    scratch: Vec<TaskId>,
    /// Graceful retirements in progress.
    retire_requests: Vec<RetireRequest>,
    /// Worker-to-worker bandwidth, bytes/s: `default_bandwidth` until
    /// workers report transfers (`TransferStats`), then their running
    /// average.
    bandwidth: f64,
    /// Steal requests awaiting the victim's answer: task → thief. Cleared
    /// whenever the task leaves `processing`, so an answer about an older
    /// assignment is ignored.
    steals: FxMap<TaskId, WIdx>,
    /// Rebalance moves under way: task → (source, target). The source is
    /// freed when the target announces the key (`AddKeys`).
    moving: FxMap<TaskId, (WIdx, WIdx)>,
}

fn variant_name(msg: &ToScheduler) -> &'static str {
    match msg {
        ToScheduler::UpdateGraph { .. } => "UpdateGraph",
        ToScheduler::ReleaseKeys { .. } => "ReleaseKeys",
        ToScheduler::Scatter { .. } => "Scatter",
        ToScheduler::WhoHas { .. } => "WhoHas",
        ToScheduler::Info { .. } => "Info",
        ToScheduler::Retry { .. } => "Retry",
        ToScheduler::CloseClient => "CloseClient",
        ToScheduler::RegisterWorker { .. } => "RegisterWorker",
        ToScheduler::TaskFinished { .. } => "TaskFinished",
        ToScheduler::TaskErred { .. } => "TaskErred",
        ToScheduler::AddKeys { .. } => "AddKeys",
        ToScheduler::MissingData { .. } => "MissingData",
        ToScheduler::Heartbeat { .. } => "Heartbeat",
        ToScheduler::RetireWorkers { .. } => "RetireWorkers",
        ToScheduler::TasksStarted { .. } => "TasksStarted",
        ToScheduler::LongRunning { .. } => "LongRunning",
        ToScheduler::RetireMe => "RetireMe",
        ToScheduler::StealResponse { .. } => "StealResponse",
        ToScheduler::TransferStats { .. } => "TransferStats",
        ToScheduler::Replicate { .. } => "Replicate",
        ToScheduler::Rebalance { .. } => "Rebalance",
    }
}

impl SchedulerState {
    /// An empty scheduler.
    pub fn new(config: SchedulerConfig) -> Self {
        SchedulerState {
            tasks: Vec::new(),
            free_tasks: Vec::new(),
            keys: FxMap::default(),
            counts: [0; 8],
            fns: Vec::new(),
            fn_ids: FxMap::default(),
            queued_fns: BTreeSet::new(),
            no_worker: BTreeSet::new(),
            workers: Vec::new(),
            worker_ids: FxMap::default(),
            worker_names: FxMap::default(),
            worker_addrs: FxMap::default(),
            ranked: BTreeSet::new(),
            nroomy: 0,
            clients: FxMap::default(),
            next_sequence: 0,
            scatter_rr: 0,
            epoch: 0,
            candidates: Vec::new(),
            dirty_workers: Vec::new(),
            scratch: Vec::new(),
            retire_requests: Vec::new(),
            bandwidth: config.default_bandwidth,
            steals: FxMap::default(),
            moving: FxMap::default(),
            config,
        }
    }

    // ============================================================ public API

    /// A client connected: pushes `Welcome`.
    pub fn add_client(&mut self, id: ClientId, out: &mut Outbox) {
        self.begin();
        self.clients.entry(id).or_default();
        out.messages
            .push(Outgoing::Client(id, ToClient::Welcome { client_id: id.0 }));
    }

    /// A client left: everything only it wanted is released.
    pub fn remove_client(&mut self, id: ClientId, out: &mut Outbox) {
        self.begin();
        self.drop_client(id);
        self.finish(out);
    }

    /// A message from a client.
    pub fn handle_client_message(
        &mut self,
        id: ClientId,
        msg: ToScheduler,
        out: &mut Outbox,
    ) -> Result<(), SchedulerError> {
        if !self.clients.contains_key(&id) {
            return Err(SchedulerError::UnknownClient(id));
        }
        self.begin();
        match msg {
            ToScheduler::UpdateGraph { tasks, wanted } => self.update_graph(id, tasks, wanted, out),
            ToScheduler::ReleaseKeys { keys } => {
                for key in &keys {
                    if let Some(&t) = self.keys.get(key) {
                        self.unwant(id, t);
                    }
                }
            }
            ToScheduler::Scatter {
                request_id,
                data,
                workers,
            } => self.scatter(id, request_id, data, &workers, out),
            ToScheduler::WhoHas { request_id, keys } => {
                let who_has = keys
                    .into_iter()
                    .map(|key| match self.keys.get(&key) {
                        Some(&t) if self.slot(t).state == TaskState::Memory => {
                            let s = self.slot(t);
                            WhoHas {
                                workers: self.addresses(&s.who_has),
                                nbytes: s.nbytes,
                                key,
                            }
                        }
                        _ => WhoHas {
                            key,
                            workers: Vec::new(),
                            nbytes: 0,
                        },
                    })
                    .collect();
                out.messages
                    .push(Outgoing::Client(id, ToClient::WhoHasReply { request_id, who_has }));
            }
            ToScheduler::Info { request_id } => {
                let info = self.info();
                out.messages
                    .push(Outgoing::Client(id, ToClient::InfoReply { request_id, info }));
            }
            ToScheduler::Retry { keys } => {
                for key in &keys {
                    if let Some(&t) = self.keys.get(key) {
                        if self.slot(t).state == TaskState::Erred {
                            self.retry(t, out);
                        }
                    }
                }
            }
            ToScheduler::CloseClient => self.drop_client(id),
            ToScheduler::RetireWorkers { request_id, workers } => {
                self.retire_workers(Some(id), request_id, &workers, out)
            }
            ToScheduler::Replicate { request_id, keys, n } => {
                let moves = self.replicate(&keys, n, out);
                out.messages
                    .push(Outgoing::Client(id, ToClient::DataMoves { request_id, moves }));
            }
            ToScheduler::Rebalance { request_id, keys } => {
                let moves = self.rebalance(&keys, out);
                out.messages
                    .push(Outgoing::Client(id, ToClient::DataMoves { request_id, moves }));
            }
            other => return Err(SchedulerError::WrongDirection(variant_name(&other), "client")),
        }
        self.finish(out);
        Ok(())
    }

    /// A worker registered: pushes `Registered`, then gives it queued and
    /// no-worker tasks it can run.
    pub fn add_worker(
        &mut self,
        id: WorkerId,
        reg: WorkerRegistration,
        out: &mut Outbox,
    ) -> Result<(), SchedulerError> {
        if self.worker_names.contains_key(&reg.name) {
            return Err(SchedulerError::DuplicateWorkerName(reg.name));
        }
        if self.worker_ids.contains_key(&id) {
            // The actor layer hands out fresh ids; a reused one replaces the
            // old registration rather than leaving two slots for one id.
            self.remove_worker(id, out);
        }
        self.begin();
        let mut fn_mask = Vec::new();
        for f in &reg.functions {
            let f = self.intern_fn(f);
            if fn_mask.len() <= f as usize {
                fn_mask.resize(f as usize + 1, false);
            }
            if !fn_mask[f as usize] {
                fn_mask[f as usize] = true;
                self.fns[f as usize].nworkers += 1;
            }
        }
        let w = WIdx(self.workers.len() as u32);
        let rank = (0, 0, id, w);
        self.workers.push(Some(Box::new(WorkerSlot {
            id,
            name: reg.name.clone(),
            address: reg.address.clone(),
            nthreads: reg.nthreads.max(1),
            memory_limit: reg.memory_limit,
            functions: reg.functions,
            fn_mask,
            resources: reg.resources,
            processing: FxMap::default(),
            has_what: FxSet::default(),
            occupancy_ns: 0,
            known_nbytes: 0,
            heartbeat: None,
            rank,
            roomy: false,
            open_free: None,
            executing: FxSet::default(),
            long_running: FxSet::default(),
            reports_started: false,
            retiring: None,
        })));
        self.ranked.insert(rank);
        self.update_rank(w);
        self.worker_ids.insert(id, w);
        self.worker_names.insert(reg.name, w);
        self.worker_addrs.insert(reg.address, w);
        out.messages.push(Outgoing::Worker(
            id,
            ToWorker::Registered {
                worker_id: id.0,
                heartbeat_ms: self.config.heartbeat_ms,
            },
        ));

        // No-worker tasks this worker may be able to run.
        let retry: Vec<TaskId> = {
            let ws = self.worker(w);
            self.no_worker
                .iter()
                .map(|&(_, _, t)| t)
                .filter(|&t| {
                    let s = &self.tasks[t.0 as usize];
                    ws.has_fn(s.func)
                        && ws.satisfies(s.resources())
                        && match s.restrictions() {
                            None => true,
                            Some(e) => e.allow_other_workers || e.restrictions.iter().any(|r| ws.matches(r)),
                        }
                })
                .collect()
        };
        for t in retry {
            self.detach(t, false, out);
            self.place(t, out);
        }
        self.dirty_workers.push(w);
        self.finish(out);
        Ok(())
    }

    /// A message from a worker.
    pub fn handle_worker_message(
        &mut self,
        id: WorkerId,
        msg: ToScheduler,
        out: &mut Outbox,
    ) -> Result<(), SchedulerError> {
        let Some(&w) = self.worker_ids.get(&id) else {
            return Err(SchedulerError::UnknownWorker(id));
        };
        self.begin();
        match msg {
            ToScheduler::TaskFinished {
                key,
                nbytes,
                inline,
                duration_us,
            } => self.task_finished(w, key, nbytes, inline, duration_us, out),
            ToScheduler::TaskErred { key, failure } => self.task_erred(w, &key, failure, out),
            ToScheduler::AddKeys { keys } => {
                for (key, _nbytes) in keys {
                    self.add_key(w, key, out);
                }
            }
            ToScheduler::MissingData { key, errant_worker } => self.missing_data(w, &key, &errant_worker, out),
            ToScheduler::Heartbeat { nkeys, nbytes, .. } => {
                self.worker_mut(w).heartbeat = Some((nkeys, nbytes));
            }
            ToScheduler::TasksStarted { keys } => {
                self.worker_mut(w).reports_started = true;
                for key in keys {
                    if let Some(&t) = self.keys.get(&key) {
                        let s = self.slot(t);
                        if s.state == TaskState::Processing && s.processing_on == Some(w) {
                            self.worker_mut(w).executing.insert(t);
                        }
                    }
                }
            }
            ToScheduler::LongRunning { key } => {
                if let Some(&t) = self.keys.get(&key) {
                    let s = self.slot(t);
                    if s.state == TaskState::Processing && s.processing_on == Some(w) {
                        let ws = self.worker_mut(w);
                        if let Some(exp) = ws.processing.get_mut(&t) {
                            ws.occupancy_ns -= std::mem::take(exp);
                        }
                        ws.long_running.insert(t);
                        self.update_rank(w);
                        self.dirty_workers.push(w);
                    }
                }
            }
            ToScheduler::RetireMe => {
                let name = self.worker(w).name.clone();
                self.retire_workers(None, 0, &[name], out);
            }
            ToScheduler::StealResponse { key, stolen } => self.steal_response(w, &key, stolen, out),
            ToScheduler::TransferStats { bytes, duration_us } => {
                if bytes > 0 && duration_us > 0 {
                    let sample = bytes as f64 / (duration_us as f64 / 1e6);
                    self.bandwidth += BANDWIDTH_SAMPLE_WEIGHT * (sample - self.bandwidth);
                }
            }
            other => return Err(SchedulerError::WrongDirection(variant_name(&other), "worker")),
        }
        self.finish(out);
        Ok(())
    }

    /// A worker died or left: its tasks are rescheduled, the data only it
    /// held is recomputed (or errs, for scattered data).
    pub fn remove_worker(&mut self, id: WorkerId, out: &mut Outbox) {
        let Some(&w) = self.worker_ids.get(&id) else {
            return;
        };
        self.begin();
        self.remove_worker_idx(w, out);
        self.finish(out);
    }

    /// Removes a live worker; the caller ends the event with `finish`.
    fn remove_worker_idx(&mut self, w: WIdx, out: &mut Outbox) {
        let ws = self.workers[w.0 as usize]
            .take()
            .expect("worker id maps to a live slot");
        self.worker_ids.remove(&ws.id);
        self.ranked.remove(&ws.rank);
        if ws.roomy {
            self.nroomy -= 1;
        }
        if self.worker_names.get(&ws.name) == Some(&w) {
            self.worker_names.remove(&ws.name);
        }
        if self.worker_addrs.get(&ws.address) == Some(&w) {
            self.worker_addrs.remove(&ws.address);
        }
        let gone_fns = self.drop_functions(&ws.fn_mask);

        let mut affected = Vec::new();
        // Tasks that were running there.
        let mut processing: Vec<TaskId> = ws.processing.keys().copied().collect();
        processing.sort_by_key(|&t| self.slot(t).sequence);
        for t in processing {
            self.slot_mut(t).processing_on = None;
            if !self.steals.is_empty() {
                self.steals.remove(&t);
            }
            self.set_state(t, TaskState::Released);
            // Only a task that was running when the worker died is suspect;
            // one merely assigned (waiting for a thread or for its
            // dependencies) is not.
            if ws.reports_started && !ws.executing.contains(&t) {
                affected.push(t);
                continue;
            }
            let extra = self.slot_mut(t).extra.get_or_insert_with(Default::default);
            extra.killed_on.push(ws.name.clone());
            if extra.killed_on.len() as u64 > self.config.allowed_failures as u64 {
                let s = self.slot(t);
                let names = s.extra.as_ref().map(|e| e.killed_on.join(", "));
                let message = format!(
                    "attempted to run task {:?} on {} different workers, but all those workers \
                     died while running it; the workers were: {}",
                    s.key,
                    self.config.allowed_failures + 1,
                    names.unwrap_or_default()
                );
                self.mark_erred(
                    t,
                    Arc::new(TaskFailure {
                        kind: ErrorKind::KilledWorker,
                        message,
                    }),
                    out,
                );
            } else {
                affected.push(t);
            }
        }
        // Data that was held there.
        let mut held: Vec<TaskId> = ws.has_what.iter().copied().collect();
        held.sort();
        for t in held {
            let s = self.slot_mut(t);
            s.who_has.retain(|&x| x != w);
            if s.state == TaskState::Memory && s.who_has.is_empty() {
                self.lose_data(t, &ws.name, &mut affected, out);
            }
        }
        self.functions_gone(gone_fns, out);
        self.wake_affected(affected, out);
        // Retirements waiting for this worker (to leave, or to take data).
        let mut done = Vec::new();
        for (i, r) in self.retire_requests.iter_mut().enumerate() {
            if let Some(pos) = r.waiting.iter().position(|&x| x == w) {
                r.waiting.swap_remove(pos);
                r.retired.push(ws.name.clone());
                if r.waiting.is_empty() {
                    done.push(i);
                }
            }
        }
        for i in done.into_iter().rev() {
            let r = self.retire_requests.swap_remove(i);
            self.answer_retirement(r, out);
        }
    }

    /// A worker no longer offers these functions (it left or retires):
    /// returns those that no connected worker offers any more.
    fn drop_functions(&mut self, fn_mask: &[bool]) -> Vec<FnId> {
        let mut gone = Vec::new();
        for (f, &has) in fn_mask.iter().enumerate() {
            if has {
                let info = &mut self.fns[f];
                info.nworkers -= 1;
                if info.nworkers == 0 {
                    gone.push(f as FnId);
                }
            }
        }
        gone
    }

    /// Queued tasks whose function no longer has a worker wait in no-worker.
    fn functions_gone(&mut self, gone: Vec<FnId>, out: &mut Outbox) {
        for f in gone {
            let queued: Vec<QueueKey> = std::mem::take(&mut self.fns[f as usize].queue).into_iter().collect();
            self.queued_fns.remove(&f);
            for (_, _, t) in queued {
                self.enter_no_worker(t, out);
            }
        }
    }

    // ============================================================ retirement

    /// Starts retiring the named workers: they get no new tasks, finish the
    /// ones they have, their results that no staying worker holds are
    /// copied to staying workers (`AcquireReplicas`), then they are sent
    /// `Close` and removed. `RetireWorkersDone` answers the client.
    fn retire_workers(&mut self, client: Option<ClientId>, request_id: u64, names: &[String], out: &mut Outbox) {
        let mut errors = Vec::new();
        let mut targets: Vec<WIdx> = Vec::new();
        for n in names {
            match self.worker_names.get(n).or_else(|| self.worker_addrs.get(n)) {
                Some(&w) if !targets.contains(&w) => targets.push(w),
                Some(_) => {}
                None => errors.push(format!("{n}: no such worker")),
            }
        }
        let staying = self
            .worker_ids
            .values()
            .filter(|&&w| self.worker(w).retiring.is_none() && !targets.contains(&w))
            .count();
        if staying == 0 {
            // Nowhere to move data to: only workers holding none may leave.
            targets.retain(|&w| {
                let ws = self.worker(w);
                let empty = ws.has_what.is_empty();
                if !empty {
                    errors.push(format!(
                        "{}: no other worker would remain to take its {} keys",
                        ws.name,
                        ws.has_what.len()
                    ));
                }
                empty
            });
        }
        for &w in &targets {
            if self.worker(w).retiring.is_none() {
                let mask = std::mem::take(&mut self.worker_mut(w).fn_mask);
                let gone = self.drop_functions(&mask);
                self.functions_gone(gone, out);
                self.worker_mut(w).retiring = Some(Box::default());
            }
        }
        let r = RetireRequest {
            client,
            request_id,
            waiting: targets,
            retired: Vec::new(),
            errors,
        };
        if r.waiting.is_empty() {
            self.answer_retirement(r, out);
        } else {
            self.retire_requests.push(r);
        }
    }

    fn answer_retirement(&mut self, r: RetireRequest, out: &mut Outbox) {
        let Some(c) = r.client else {
            return;
        };
        if !self.clients.contains_key(&c) {
            return;
        }
        let error = (!r.errors.is_empty()).then(|| r.errors.join("; "));
        out.messages.push(Outgoing::Client(
            c,
            ToClient::RetireWorkersDone {
                request_id: r.request_id,
                retired: r.retired,
                error,
            },
        ));
    }

    /// Moves each retiring worker on: asks for replicas of the keys only
    /// retiring workers hold, and closes it once it runs nothing and holds
    /// nothing unique. Returns whether a worker was removed.
    fn advance_retirements(&mut self, out: &mut Outbox) -> bool {
        let mut retiring: Vec<WIdx> = self
            .retire_requests
            .iter()
            .flat_map(|r| r.waiting.iter().copied())
            .collect();
        retiring.sort();
        retiring.dedup();
        let mut staying: Vec<WIdx> = self
            .worker_ids
            .values()
            .copied()
            .filter(|&w| self.worker(w).retiring.is_none())
            .collect();
        staying.sort_by_key(|&w| (self.worker(w).known_nbytes, w));
        let mut removed = false;
        for w in retiring {
            if self.workers[w.0 as usize].is_none() {
                continue;
            }
            let ws = self.worker(w);
            if !ws.processing.is_empty() {
                continue;
            }
            let mut unique: Vec<TaskId> = ws
                .has_what
                .iter()
                .copied()
                .filter(|&t| self.slot(t).who_has.iter().all(|&x| self.worker(x).retiring.is_some()))
                .collect();
            if unique.is_empty() || staying.is_empty() {
                // With no staying worker left (they died meanwhile), the
                // unique keys are lost with it and recomputed as usual.
                let id = ws.id;
                out.messages.push(Outgoing::Worker(
                    id,
                    ToWorker::Close {
                        reason: "retired".into(),
                    },
                ));
                self.remove_worker_idx(w, out);
                removed = true;
                continue;
            }
            unique.sort();
            let mut batches: Vec<Vec<DependencyLocation>> = vec![Vec::new(); staying.len()];
            for (i, t) in unique.into_iter().enumerate() {
                let asked = self.worker(w).retiring.as_ref().and_then(|m| m.get(&t).copied());
                if asked.is_some_and(|x| self.workers[x.0 as usize].is_some()) {
                    continue; // still pending with a live worker
                }
                let target = i % staying.len();
                let s = self.slot(t);
                batches[target].push(DependencyLocation {
                    key: s.key.clone(),
                    who_has: self.addresses(&s.who_has),
                    nbytes: s.nbytes,
                });
                if let Some(m) = self.worker_mut(w).retiring.as_mut() {
                    m.insert(t, staying[target]);
                }
            }
            for (i, keys) in batches.into_iter().enumerate() {
                if !keys.is_empty() {
                    self.send_worker(out, staying[i], ToWorker::AcquireReplicas { keys });
                }
            }
        }
        removed
    }

    /// Scheduler counters. `rss_bytes` is 0: the actor layer fills it.
    pub fn info(&self) -> SchedulerInfo {
        let mut ids: Vec<(WorkerId, WIdx)> = self.worker_ids.iter().map(|(&id, &w)| (id, w)).collect();
        ids.sort();
        SchedulerInfo {
            ntasks: self.keys.len() as u64,
            tasks_by_state: TaskState::ALL[..7]
                .iter()
                .map(|s| (s.name().to_string(), self.counts[s.index()]))
                .collect(),
            nclients: self.clients.len() as u64,
            workers: ids
                .into_iter()
                .map(|(_, w)| {
                    let ws = self.worker(w);
                    let (nkeys, nbytes) = ws.heartbeat.unwrap_or((ws.has_what.len() as u64, ws.known_nbytes));
                    WorkerSummary {
                        name: ws.name.clone(),
                        address: ws.address.clone(),
                        nthreads: ws.nthreads,
                        memory_limit: ws.memory_limit,
                        nkeys,
                        nbytes,
                        processing: ws.processing.len() as u64,
                        functions: ws.functions.clone(),
                    }
                })
                .collect(),
            rss_bytes: 0,
        }
    }

    /// Tasks not forgotten.
    pub fn ntasks(&self) -> usize {
        self.keys.len()
    }

    /// A task's state; `None` if unknown (or forgotten).
    pub fn task_state(&self, key: &str) -> Option<TaskState> {
        self.keys.get(key).map(|&t| self.slot(t).state)
    }

    /// Connected workers.
    pub fn worker_count(&self) -> usize {
        self.worker_ids.len()
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len()
    }

    // ============================================================ accessors

    fn slot(&self, t: TaskId) -> &TaskSlot {
        &self.tasks[t.0 as usize]
    }
    fn slot_mut(&mut self, t: TaskId) -> &mut TaskSlot {
        &mut self.tasks[t.0 as usize]
    }
    fn worker(&self, w: WIdx) -> &WorkerSlot {
        self.workers[w.0 as usize].as_ref().expect("live worker index")
    }
    fn worker_mut(&mut self, w: WIdx) -> &mut WorkerSlot {
        self.workers[w.0 as usize].as_mut().expect("live worker index")
    }
    fn is_live(&self, r: TaskRef) -> bool {
        let s = self.slot(r.id);
        s.gen == r.gen && s.state != TaskState::Forgotten
    }
    fn live_dependents(&self, t: TaskId) -> Vec<TaskId> {
        self.slot(t)
            .dependents
            .iter()
            .filter(|&&r| self.is_live(r))
            .map(|r| r.id)
            .collect()
    }
    fn addresses(&self, ws: &[WIdx]) -> Vec<String> {
        ws.iter().map(|&w| self.worker(w).address.clone()).collect()
    }
    fn needed(&self, t: TaskId) -> bool {
        let s = self.slot(t);
        !s.wanted_by.is_empty() || s.active_dependents > 0
    }

    fn intern_fn(&mut self, name: &str) -> FnId {
        if let Some(&f) = self.fn_ids.get(name) {
            return f;
        }
        let f = self.fns.len() as FnId;
        self.fns.push(FnInfo {
            name: name.to_string(),
            avg_ns: None,
            avg_nbytes: None,
            nworkers: 0,
            queue: BTreeSet::new(),
        });
        self.fn_ids.insert(name.to_string(), f);
        f
    }

    fn expected_ns(&self, f: FnId) -> u64 {
        let avg = self.fns[f as usize]
            .avg_ns
            .unwrap_or(self.config.default_task_duration_s * 1e9);
        (avg as u64).max(1)
    }

    // ============================================================ messages

    /// Starts an event: batching of `FreeKeys` never spans two events, since
    /// the caller may have drained the outbox in between.
    fn begin(&mut self) {
        self.epoch += 1;
    }

    /// Ends an event: runs the deferred release checks and pulls queued tasks
    /// onto workers that got room.
    fn finish(&mut self, out: &mut Outbox) {
        loop {
            if let Some(t) = self.candidates.pop() {
                self.maybe_release(t, out);
            } else if let Some(w) = self.dirty_workers.pop() {
                if self.workers[w.0 as usize].is_some() {
                    self.drain(w, out);
                }
            } else if self.retire_requests.is_empty() || !self.advance_retirements(out) {
                break;
            }
        }
    }

    fn send_worker(&mut self, out: &mut Outbox, w: WIdx, msg: ToWorker) {
        let ws = self.worker_mut(w);
        ws.open_free = None;
        out.messages.push(Outgoing::Worker(ws.id, msg));
    }

    /// Queues a key for `FreeKeys` to a worker, appending to the worker's
    /// `FreeKeys` message of this event if no other message to it followed.
    fn free_key(&mut self, out: &mut Outbox, w: WIdx, key: Key) {
        let epoch = self.epoch;
        let ws = self.worker_mut(w);
        if let Some((e, idx)) = ws.open_free {
            if e == epoch {
                if let Some(Outgoing::Worker(id, ToWorker::FreeKeys { keys })) = out.messages.get_mut(idx) {
                    if *id == ws.id {
                        keys.push(key);
                        return;
                    }
                }
            }
        }
        ws.open_free = Some((epoch, out.messages.len()));
        out.messages
            .push(Outgoing::Worker(ws.id, ToWorker::FreeKeys { keys: vec![key] }));
    }

    /// `FreeKeys` of a known task to `w`, remembered in `freed_on` unless the
    /// task is about to be forgotten (then any later message about the key
    /// from `w` meets an unknown key and gets a `FreeKeys` anyway).
    fn free_task_on(&mut self, t: TaskId, w: WIdx, out: &mut Outbox) {
        let s = self.slot(t);
        let key = s.key.clone();
        if (self.needed(t) || s.live_dependents > 0) && !s.freed_on().contains(&w) {
            self.slot_mut(t).extra_mut().freed_on.push(w);
        }
        self.free_key(out, w, key);
    }

    fn notify(&self, t: TaskId, out: &mut Outbox, msg: impl Fn(&TaskSlot) -> ToClient) {
        let s = self.slot(t);
        for &c in &s.wanted_by {
            out.messages.push(Outgoing::Client(c, msg(s)));
        }
    }

    fn key_in_memory(&self, s: &TaskSlot) -> ToClient {
        ToClient::KeyInMemory {
            key: s.key.clone(),
            nbytes: s.nbytes,
            who_has: self.addresses(&s.who_has),
            inline: s.inline.clone(),
        }
    }

    fn send_state_to(&self, c: ClientId, t: TaskId, out: &mut Outbox) {
        let s = self.slot(t);
        let msg = match s.state {
            TaskState::Memory => self.key_in_memory(s),
            TaskState::Erred => ToClient::TaskErred {
                key: s.key.clone(),
                failure: s.failure.as_deref().cloned().unwrap_or(TaskFailure {
                    kind: ErrorKind::Failed,
                    message: String::new(),
                }),
            },
            TaskState::NoWorker => ToClient::NoWorker {
                key: s.key.clone(),
                function: self.fns[s.func as usize].name.clone(),
            },
            _ => return,
        };
        out.messages.push(Outgoing::Client(c, msg));
    }

    // ============================================================ state core

    /// Changes the label, keeping the per-state counts and the dependencies'
    /// `active_dependents` right. Containers are handled by `detach` and the
    /// `enter_*` functions.
    fn set_state(&mut self, t: TaskId, new: TaskState) {
        let old = self.slot(t).state;
        if old == new {
            return;
        }
        self.counts[old.index()] -= 1;
        self.counts[new.index()] += 1;
        self.slot_mut(t).state = new;
        if old.is_active() != new.is_active() {
            for i in 0..self.slot(t).dependencies.len() {
                let d = self.slot(t).dependencies[i];
                if new.is_active() {
                    self.slot_mut(d).active_dependents += 1;
                } else {
                    self.slot_mut(d).active_dependents -= 1;
                    self.candidates.push(d);
                }
            }
        }
    }

    /// Takes a task out of its state's container (worker processing, queue,
    /// no-worker set, holders). With `cancel`, tells the worker(s) to drop it.
    fn detach(&mut self, t: TaskId, cancel: bool, out: &mut Outbox) {
        match self.slot(t).state {
            TaskState::Processing => {
                if let Some(w) = self.slot_mut(t).processing_on.take() {
                    if self.workers[w.0 as usize].is_some() {
                        let ws = self.worker_mut(w);
                        if let Some(exp) = ws.processing.remove(&t) {
                            ws.occupancy_ns -= exp;
                        }
                        if !ws.executing.is_empty() {
                            ws.executing.remove(&t);
                        }
                        if !ws.long_running.is_empty() {
                            ws.long_running.remove(&t);
                        }
                        if !self.steals.is_empty() {
                            self.steals.remove(&t);
                        }
                        self.update_rank(w);
                        self.dirty_workers.push(w);
                        if cancel {
                            self.free_task_on(t, w, out);
                        }
                    }
                }
            }
            TaskState::Queued => {
                let s = self.slot(t);
                let (f, qk) = (s.func, s.queue_key(t));
                let q = &mut self.fns[f as usize].queue;
                q.remove(&qk);
                if q.is_empty() {
                    self.queued_fns.remove(&f);
                }
            }
            TaskState::NoWorker => {
                let qk = self.slot(t).queue_key(t);
                self.no_worker.remove(&qk);
            }
            TaskState::Memory => {
                if !self.moving.is_empty() {
                    self.moving.remove(&t);
                }
                let holders = std::mem::take(&mut self.slot_mut(t).who_has);
                let nbytes = self.slot(t).nbytes;
                self.slot_mut(t).inline = None;
                if let Some(e) = self.slot_mut(t).extra.as_mut() {
                    e.rerun_on = None;
                }
                for w in holders {
                    let ws = self.worker_mut(w);
                    if ws.has_what.remove(&t) {
                        ws.known_nbytes = ws.known_nbytes.saturating_sub(nbytes);
                    }
                    if cancel {
                        // No record in `freed_on`: data nobody needs is
                        // freed; `w` never fetches a key it holds.
                        let key = self.slot(t).key.clone();
                        self.free_key(out, w, key);
                    }
                }
            }
            _ => {}
        }
    }

    fn alloc_task(&mut self, spec: TaskSpec, scattered: bool, func: FnId) -> TaskId {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let extra = if spec.workers.is_empty() && spec.resources.is_empty() {
            None
        } else {
            Some(Box::new(Extra {
                restrictions: spec.workers,
                allow_other_workers: spec.allow_other_workers,
                resources: spec.resources,
                ..Default::default()
            }))
        };
        let key = spec.key;
        let mut slot = TaskSlot {
            key: key.clone(),
            gen: 0,
            state: TaskState::Released,
            scattered,
            func,
            priority: spec.priority,
            retries: spec.retries,
            sequence,
            waiting_on: 0,
            active_dependents: 0,
            live_dependents: 0,
            args: spec.args,
            dependencies: Vec::new(),
            dependents: Vec::new(),
            wanted_by: Vec::new(),
            processing_on: None,
            who_has: Vec::new(),
            nbytes: 0,
            inline: None,
            failure: None,
            extra,
        };
        let t = if let Some(t) = self.free_tasks.pop() {
            slot.gen = self.slot(t).gen;
            self.tasks[t.0 as usize] = slot;
            t
        } else {
            self.tasks.push(slot);
            TaskId(self.tasks.len() as u32 - 1)
        };
        self.counts[TaskState::Released.index()] += 1;
        self.keys.insert(key, t);
        t
    }

    fn forget(&mut self, t: TaskId) {
        let s = self.slot_mut(t);
        debug_assert!(!s.state.is_active() && s.live_dependents == 0 && s.wanted_by.is_empty());
        let key = std::mem::take(&mut s.key);
        let old = s.state;
        s.state = TaskState::Forgotten;
        s.gen = s.gen.wrapping_add(1);
        let deps = std::mem::take(&mut s.dependencies);
        s.args = Vec::new();
        s.dependents = Vec::new();
        s.wanted_by = Vec::new();
        s.who_has = Vec::new();
        s.inline = None;
        s.failure = None;
        s.extra = None;
        self.counts[old.index()] -= 1;
        self.keys.remove(&key);
        self.free_tasks.push(t);
        for d in deps {
            let live = {
                let ds = self.slot_mut(d);
                ds.live_dependents -= 1;
                ds.live_dependents
            };
            // Compact stale references once they dominate, amortized O(1).
            if self.slot(d).dependents.len() > 2 * live as usize + 16 {
                let mut deps_of_d = std::mem::take(&mut self.slot_mut(d).dependents);
                deps_of_d.retain(|&r| self.is_live(r));
                self.slot_mut(d).dependents = deps_of_d;
            }
            self.candidates.push(d);
        }
    }

    /// The release rule (see the module documentation).
    fn maybe_release(&mut self, t: TaskId, out: &mut Outbox) {
        let s = self.slot(t);
        if s.state == TaskState::Forgotten || self.needed(t) {
            return;
        }
        match s.state {
            TaskState::Erred | TaskState::Released => {
                if s.live_dependents == 0 {
                    self.forget(t);
                }
            }
            _ => {
                self.detach(t, true, out);
                self.slot_mut(t).waiting_on = 0;
                self.set_state(t, TaskState::Released);
                if self.slot(t).live_dependents == 0 {
                    self.forget(t);
                }
            }
        }
    }

    /// Brings a `released` task (and its `released` dependencies, first) to
    /// waiting / ready. Iterative post-order DFS: graphs may be deep chains.
    fn wake(&mut self, root: TaskId, out: &mut Outbox) {
        let s = self.slot(root);
        if s.state != TaskState::Released {
            return;
        }
        if !s
            .dependencies
            .iter()
            .any(|&d| self.slot(d).state == TaskState::Released)
        {
            // The common case: nothing to wake on the way.
            self.enter_waiting_or_ready(root, out);
            return;
        }
        let mut stack = vec![(root, false)];
        while let Some((t, expanded)) = stack.pop() {
            if self.slot(t).state != TaskState::Released {
                continue;
            }
            if expanded {
                self.enter_waiting_or_ready(t, out);
                continue;
            }
            stack.push((t, true));
            for &d in &self.slot(t).dependencies {
                if self.slot(d).state == TaskState::Released {
                    stack.push((d, false));
                }
            }
        }
    }

    /// `released` → erred (scattered, or a dependency erred), waiting, or
    /// placed. Dependencies are not `released` (see `wake`).
    fn enter_waiting_or_ready(&mut self, t: TaskId, out: &mut Outbox) {
        if self.slot(t).scattered {
            let message = format!(
                "data of {:?} was released and cannot be recomputed (it was scattered)",
                self.slot(t).key
            );
            self.mark_erred(
                t,
                Arc::new(TaskFailure {
                    kind: ErrorKind::DataLost,
                    message,
                }),
                out,
            );
            return;
        }
        let mut missing = 0;
        for &d in &self.slot(t).dependencies {
            match self.slot(d).state {
                TaskState::Memory => {}
                TaskState::Erred => {
                    let f = self.derived_failure(d);
                    self.mark_erred(t, f, out);
                    return;
                }
                _ => missing += 1,
            }
        }
        if missing == 0 {
            self.place(t, out);
        } else {
            self.slot_mut(t).waiting_on = missing;
            self.set_state(t, TaskState::Waiting);
        }
    }

    /// The failure that dependents of erred task `d` get: the original key
    /// and message, shared (not re-formatted) down a cascade.
    fn derived_failure(&self, d: TaskId) -> Arc<TaskFailure> {
        let s = self.slot(d);
        match &s.failure {
            Some(f) if f.kind == ErrorKind::DependencyFailed => f.clone(),
            Some(f) => Arc::new(TaskFailure {
                kind: ErrorKind::DependencyFailed,
                message: format!("dependency {:?} failed: {}", s.key, f.message),
            }),
            None => Arc::new(TaskFailure {
                kind: ErrorKind::DependencyFailed,
                message: format!("dependency {:?} failed", s.key),
            }),
        }
    }

    /// Errs a task (detached, not erred) and, recursively, its waiting
    /// dependents; notifies wanting clients.
    fn mark_erred(&mut self, t: TaskId, failure: Arc<TaskFailure>, out: &mut Outbox) {
        let mut stack = vec![(t, failure)];
        while let Some((t, f)) = stack.pop() {
            if self.slot(t).state == TaskState::Erred {
                continue;
            }
            self.set_state(t, TaskState::Erred);
            let s = self.slot_mut(t);
            s.waiting_on = 0;
            s.failure = Some(f.clone());
            self.notify(t, out, |s| ToClient::TaskErred {
                key: s.key.clone(),
                failure: (*f).clone(),
            });
            self.candidates.push(t);
            let derived = self.derived_failure(t);
            for d in self.live_dependents(t) {
                if self.slot(d).state == TaskState::Waiting {
                    stack.push((d, derived.clone()));
                }
            }
        }
    }

    fn enter_no_worker(&mut self, t: TaskId, out: &mut Outbox) {
        self.set_state(t, TaskState::NoWorker);
        let qk = self.slot(t).queue_key(t);
        self.no_worker.insert(qk);
        self.notify(t, out, |s| ToClient::NoWorker {
            key: s.key.clone(),
            function: self.fns[s.func as usize].name.clone(),
        });
    }

    fn enter_queued(&mut self, t: TaskId) {
        self.set_state(t, TaskState::Queued);
        let s = self.slot(t);
        let (f, qk) = (s.func, s.queue_key(t));
        self.fns[f as usize].queue.insert(qk);
        self.queued_fns.insert(f);
    }

    // ============================================================ placement

    fn has_room(&self, ws: &WorkerSlot) -> bool {
        let threads = ws.nthreads.max(1) as u64;
        let n = ws.busy() as u64;
        if n >= self.config.max_tasks_per_thread as u64 * threads {
            return false;
        }
        if n < self.config.min_tasks_per_thread as u64 * threads {
            return true;
        }
        (ws.occupancy_ns as f64 / threads as f64) < self.config.queue_target_s * 1e9
    }

    /// Whether `f`'s tasks are measured short (at most `queue_target_s`)
    /// with small results: only those pipeline deeper than the
    /// `worker_saturation` cap (see `root_fits`).
    fn is_light(&self, f: FnId) -> bool {
        let info = &self.fns[f as usize];
        match (info.avg_ns, info.avg_nbytes) {
            (Some(ns), Some(b)) => ns <= self.config.queue_target_s * 1e9 && b <= DEEP_PIPELINE_MAX_RESULT_BYTES,
            _ => false,
        }
    }

    /// Whether a root task of `f` may go to `ws` (which has room): a
    /// function not known to be light is capped at
    /// `ceil(nthreads × worker_saturation)` processing tasks (Dask's
    /// queuing); a light one only by `has_room`.
    fn root_fits(&self, ws: &WorkerSlot, f: FnId) -> bool {
        self.is_light(f) || (ws.busy() as f64) < self.saturation_cap(ws)
    }

    /// `ceil(nthreads × worker_saturation)`, at least 1.
    fn saturation_cap(&self, ws: &WorkerSlot) -> f64 {
        (ws.nthreads.max(1) as f64 * self.config.worker_saturation)
            .ceil()
            .max(1.0)
    }

    fn update_rank(&mut self, w: WIdx) {
        let ws = self.worker(w);
        let new = (ws.occupancy_ns / ws.nthreads.max(1) as u64, ws.busy() as u32, ws.id, w);
        let old = ws.rank;
        let roomy = self.has_room(ws);
        let was_roomy = ws.roomy;
        if old != new {
            self.ranked.remove(&old);
            self.ranked.insert(new);
        }
        let ws = self.worker_mut(w);
        ws.rank = new;
        ws.roomy = roomy;
        match (was_roomy, roomy) {
            (false, true) => self.nroomy += 1,
            (true, false) => self.nroomy -= 1,
            _ => {}
        }
    }

    /// Estimated start time of `t` on `w`, seconds.
    fn start_time(&self, t: TaskId, w: WIdx) -> f64 {
        let ws = self.worker(w);
        let mut bytes = 0u64;
        for &d in &self.slot(t).dependencies {
            let ds = self.slot(d);
            if !ds.who_has.contains(&w) {
                bytes += ds.nbytes;
            }
        }
        bytes as f64 / self.bandwidth + ws.occupancy_ns as f64 / ws.nthreads.max(1) as f64 / 1e9
    }

    fn best_worker(&self, t: TaskId, candidates: &[WIdx]) -> Option<WIdx> {
        // Workers that may still have a `FreeKeys` of this task in flight
        // come last (see `rerun_on`).
        let freed_on = self.slot(t).freed_on();
        let mut best: Option<(bool, f64, usize, WorkerId, WIdx)> = None;
        for &w in candidates {
            let ws = self.worker(w);
            let key = (
                freed_on.contains(&w),
                self.start_time(t, w),
                ws.processing.len(),
                ws.id,
                w,
            );
            let better = match &best {
                None => true,
                Some(b) => (key.0, key.1, key.2, key.3) < (b.0, b.1, b.2, b.3),
            };
            if better {
                best = Some(key);
            }
        }
        best.map(|b| b.4)
    }

    /// Places a ready, detached task: processing, queued or no-worker.
    fn place(&mut self, t: TaskId, out: &mut Outbox) {
        let s = self.slot(t);
        let f = s.func;
        if self.fns[f as usize].nworkers == 0 {
            self.enter_no_worker(t, out);
            return;
        }
        let mut restricted = false;
        let resources = s.resources();
        if let Some(extra) = s.restrictions() {
            let mut cands: Vec<WIdx> = Vec::new();
            for r in &extra.restrictions {
                let w = self.worker_names.get(r).or_else(|| self.worker_addrs.get(r));
                if let Some(&w) = w {
                    let ws = self.worker(w);
                    if ws.has_fn(f) && ws.satisfies(resources) && !cands.contains(&w) {
                        cands.push(w);
                    }
                }
            }
            if let Some(w) = self.best_worker(t, &cands) {
                self.assign(t, w, out);
                return;
            }
            if !extra.allow_other_workers {
                self.enter_no_worker(t, out);
                return;
            }
            restricted = true;
        }
        if s.dependencies.is_empty() && !restricted && resources.is_empty() {
            // Root task: only onto a worker with room, else queue.
            if self.nroomy > 0 {
                let mut fallback = None;
                let found = self.ranked.iter().map(|r| r.3).find(|&w| {
                    let ws = self.worker(w);
                    if !(ws.roomy && ws.has_fn(f) && self.root_fits(ws, f)) {
                        return false;
                    }
                    if s.freed_on().contains(&w) {
                        fallback = fallback.or(Some(w));
                        return false;
                    }
                    true
                });
                if let Some(w) = found.or(fallback) {
                    self.assign(t, w, out);
                    return;
                }
            }
            self.enter_queued(t);
            return;
        }
        // Candidates: workers holding dependencies, plus the least occupied.
        let mut cands: Vec<WIdx> = Vec::new();
        for &d in &s.dependencies {
            for &w in &self.slot(d).who_has {
                if !cands.contains(&w) && self.worker(w).has_fn(f) && self.worker(w).satisfies(resources) {
                    cands.push(w);
                }
            }
        }
        if let Some(w) = self.ranked.iter().map(|r| r.3).find(|&w| {
            let ws = self.worker(w);
            ws.has_fn(f) && ws.satisfies(resources) && !s.freed_on().contains(&w)
        }) {
            if !cands.contains(&w) {
                cands.push(w);
            }
        }
        match self.best_worker(t, &cands) {
            Some(w) => self.assign(t, w, out),
            None => self.enter_no_worker(t, out),
        }
    }

    fn assign(&mut self, t: TaskId, w: WIdx, out: &mut Outbox) {
        let f = self.slot(t).func;
        let exp = self.expected_ns(f);
        // The ComputeTask follows any earlier FreeKeys on the connection.
        if let Some(e) = self.slot_mut(t).extra.as_mut() {
            let was_freed = e.freed_on.contains(&w);
            e.freed_on.retain(|&x| x != w);
            e.rerun_on = was_freed.then_some(w);
        }
        let ws = self.worker_mut(w);
        ws.processing.insert(t, exp);
        ws.occupancy_ns += exp;
        self.update_rank(w);
        self.slot_mut(t).processing_on = Some(w);
        self.set_state(t, TaskState::Processing);
        let s = self.slot(t);
        let dependencies = s
            .dependencies
            .iter()
            .map(|&d| {
                let ds = self.slot(d);
                DependencyLocation {
                    key: ds.key.clone(),
                    who_has: self.addresses(&ds.who_has),
                    nbytes: ds.nbytes,
                }
            })
            .collect();
        let msg = ToWorker::ComputeTask {
            key: s.key.clone(),
            function: self.fns[f as usize].name.clone(),
            args: s.args.clone(),
            dependencies,
            priority: s.priority,
            sequence: s.sequence,
            resources: s.resources().to_vec(),
        };
        self.send_worker(out, w, msg);
    }

    /// Pulls queued root tasks onto `w` while it has room, best first.
    fn drain(&mut self, w: WIdx, out: &mut Outbox) {
        while !self.queued_fns.is_empty() && self.worker(w).roomy {
            let ws = self.worker(w);
            let best = self
                .queued_fns
                .iter()
                .filter(|&&f| ws.has_fn(f) && self.root_fits(ws, f))
                .filter_map(|&f| self.fns[f as usize].queue.first().copied())
                .min();
            let Some((_, _, t)) = best else {
                break;
            };
            self.detach(t, false, out);
            self.assign(t, w, out);
        }
    }

    // ============================================================ events

    fn update_graph(&mut self, c: ClientId, tasks: Vec<TaskSpec>, wanted: Vec<Key>, out: &mut Outbox) {
        // 1. Create the new tasks (an existing key is kept as is).
        let mut created: Vec<TaskId> = Vec::new();
        for spec in tasks {
            if self.keys.contains_key(&spec.key) {
                continue;
            }
            let f = self.intern_fn(&spec.function);
            created.push(self.alloc_task(spec, false, f));
        }
        // 2. Link dependencies (they may come later in the batch).
        let mut missing: Vec<(TaskId, Key)> = Vec::new();
        let mut self_dep: Vec<TaskId> = Vec::new();
        for &t in &created {
            let mut deps: Vec<TaskId> = Vec::new();
            let mut missing_key = None;
            for k in self.slot(t).args.iter().flat_map(Arg::keys) {
                match self.keys.get(k) {
                    Some(&d) if d == t => self_dep.push(t),
                    Some(&d) => deps.push(d),
                    None => {
                        if missing_key.is_none() {
                            missing_key = Some(k.clone());
                        }
                    }
                }
            }
            deps.sort_unstable();
            deps.dedup();
            let gen = self.slot(t).gen;
            for &d in &deps {
                let ds = self.slot_mut(d);
                ds.dependents.push(TaskRef { id: t, gen });
                ds.live_dependents += 1;
            }
            self.slot_mut(t).dependencies = deps;
            if let Some(k) = missing_key {
                missing.push((t, k));
            }
        }
        // 3. Topological order of the batch (Kahn); what is left is in or
        //    behind a cycle.
        let pos: FxMap<TaskId, usize> = created.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        let mut indeg: Vec<u32> = created
            .iter()
            .map(|&t| self.slot(t).dependencies.iter().filter(|d| pos.contains_key(d)).count() as u32)
            .collect();
        for &t in &self_dep {
            indeg[pos[&t]] += 1;
        }
        let mut ready: VecDeque<TaskId> = created.iter().copied().filter(|t| indeg[pos[t]] == 0).collect();
        let mut order = Vec::with_capacity(created.len());
        while let Some(t) = ready.pop_front() {
            order.push(t);
            // All dependents of a new task are new, and live.
            for r in 0..self.slot(t).dependents.len() {
                let d = self.slot(t).dependents[r].id;
                if let Some(&i) = pos.get(&d) {
                    indeg[i] -= 1;
                    if indeg[i] == 0 {
                        ready.push_back(d);
                    }
                }
            }
        }
        // 4. Errors found at submission.
        for (t, k) in missing {
            let message = format!(
                "dependency {:?} of {:?} is not known to the scheduler",
                k,
                self.slot(t).key
            );
            self.mark_erred(
                t,
                Arc::new(TaskFailure {
                    kind: ErrorKind::DataLost,
                    message,
                }),
                out,
            );
        }
        if order.len() < created.len() {
            let cyclic: Vec<TaskId> = created.iter().copied().filter(|t| indeg[pos[t]] > 0).collect();
            // Unlink them so that they can be forgotten later.
            for &t in &cyclic {
                let deps = std::mem::take(&mut self.slot_mut(t).dependencies);
                for d in deps {
                    let ds = self.slot_mut(d);
                    ds.dependents.retain(|r| r.id != t);
                    ds.live_dependents -= 1;
                    self.candidates.push(d);
                }
            }
            for &t in &cyclic {
                if self.slot(t).state != TaskState::Erred {
                    let message = format!(
                        "task {:?} is part of, or depends on, a dependency cycle",
                        self.slot(t).key
                    );
                    self.mark_erred(
                        t,
                        Arc::new(TaskFailure {
                            kind: ErrorKind::Failed,
                            message,
                        }),
                        out,
                    );
                }
            }
        }
        // 5. Graph order: a task takes the latest sequence among its
        //    dependencies of this batch, so that it sorts right after the
        //    last of them instead of after every task of the batch. When it
        //    becomes ready it runs ahead of the leaves submitted later:
        //    reductions finish branch by branch (depth-first), freeing their
        //    inputs, as Dask's `order` intends. `order` is topological, so
        //    dependencies are renumbered first.
        for &t in &order {
            let inherited = self
                .slot(t)
                .dependencies
                .iter()
                .filter(|d| pos.contains_key(d))
                .map(|&d| self.slot(d).sequence)
                .max();
            if let Some(seq) = inherited {
                self.slot_mut(t).sequence = seq;
            }
        }
        // 6. Schedule, dependencies first.
        for &t in &order {
            self.wake(t, out);
        }
        // 7. Wanted keys.
        for key in wanted {
            match self.keys.get(&key) {
                Some(&t) => self.want(c, t, out),
                None => out.messages.push(Outgoing::Client(
                    c,
                    ToClient::TaskErred {
                        failure: TaskFailure {
                            kind: ErrorKind::DataLost,
                            message: format!("key {key:?} is not known to the scheduler"),
                        },
                        key,
                    },
                )),
            }
        }
        // 8. New tasks nobody needs go away at `finish`.
        self.candidates.extend(created);
    }

    fn want(&mut self, c: ClientId, t: TaskId, out: &mut Outbox) {
        let Some(client) = self.clients.get_mut(&c) else {
            return;
        };
        if !client.wanted.insert(t) {
            return;
        }
        self.slot_mut(t).wanted_by.push(c);
        if self.slot(t).state == TaskState::Released {
            // Its data was released earlier (e.g. an intermediate result):
            // compute it again.
            self.wake(t, out);
        } else {
            self.send_state_to(c, t, out);
        }
    }

    fn unwant(&mut self, c: ClientId, t: TaskId) {
        if let Some(client) = self.clients.get_mut(&c) {
            if client.wanted.remove(&t) {
                self.slot_mut(t).wanted_by.retain(|&x| x != c);
                self.candidates.push(t);
            }
        }
    }

    fn drop_client(&mut self, c: ClientId) {
        if let Some(client) = self.clients.remove(&c) {
            for t in client.wanted {
                self.slot_mut(t).wanted_by.retain(|&x| x != c);
                self.candidates.push(t);
            }
        }
    }

    fn task_finished(
        &mut self,
        w: WIdx,
        key: Key,
        nbytes: u64,
        inline: Option<Payload>,
        duration_us: u64,
        out: &mut Outbox,
    ) {
        let Some(&t) = self.keys.get(&key) else {
            self.free_key(out, w, key);
            return;
        };
        let s = self.slot(t);
        if s.state == TaskState::Processing && s.processing_on == Some(w) {
            let f = s.func;
            self.detach(t, false, out);
            let d = duration_us as f64 * 1e3;
            let info = &mut self.fns[f as usize];
            info.avg_ns = Some(match info.avg_ns {
                None => d,
                Some(a) => a + DURATION_SAMPLE_WEIGHT * (d - a),
            });
            let b = nbytes as f64;
            info.avg_nbytes = Some(match info.avg_nbytes {
                None => b,
                Some(a) => a + DURATION_SAMPLE_WEIGHT * (b - a),
            });
            self.enter_memory(t, w, nbytes, inline, out);
        } else if s.state == TaskState::Memory && s.who_has.contains(&w) {
            // Already known (a rerun reporting too: now it surely has it).
            if s.rerun_on() == Some(w) {
                self.slot_mut(t).extra_mut().rerun_on = None;
            }
        } else {
            // Stale (released, rescheduled, or computed elsewhere meanwhile).
            self.free_task_on(t, w, out);
        }
    }

    /// A detached task's result is on `w`.
    fn enter_memory(&mut self, t: TaskId, w: WIdx, nbytes: u64, inline: Option<Payload>, out: &mut Outbox) {
        self.set_state(t, TaskState::Memory);
        let s = self.slot_mut(t);
        s.who_has.push(w);
        s.nbytes = nbytes;
        s.inline = inline;
        let ws = self.worker_mut(w);
        ws.has_what.insert(t);
        ws.known_nbytes += nbytes;
        let s = self.slot(t);
        if let Some((&last, rest)) = s.wanted_by.split_last() {
            let msg = self.key_in_memory(s);
            for &c in rest {
                out.messages.push(Outgoing::Client(c, msg.clone()));
            }
            out.messages.push(Outgoing::Client(last, msg));
        }
        let mut ready = std::mem::take(&mut self.scratch);
        for i in 0..self.slot(t).dependents.len() {
            let r = self.slot(t).dependents[i];
            if self.is_live(r) && self.slot(r.id).state == TaskState::Waiting {
                let ds = self.slot_mut(r.id);
                ds.waiting_on -= 1;
                if ds.waiting_on == 0 {
                    ready.push(r.id);
                }
            }
        }
        if ready.len() > 1 {
            ready.sort_by_key(|&d| self.slot(d).queue_key(d));
        }
        for &d in &ready {
            self.place(d, out);
        }
        ready.clear();
        self.scratch = ready;
        self.candidates.push(t);
    }

    fn task_erred(&mut self, w: WIdx, key: &str, failure: TaskFailure, out: &mut Outbox) {
        let Some(&t) = self.keys.get(key) else {
            return;
        };
        let s = self.slot(t);
        if s.state == TaskState::Memory && s.rerun_on() == Some(w) {
            // The rerun failed after the old run's data was freed.
            let mut affected = Vec::new();
            self.drop_rerun_holder(t, w, &mut affected, out);
            self.wake_affected(affected, out);
            return;
        }
        if s.state != TaskState::Processing || s.processing_on != Some(w) {
            return; // stale
        }
        self.detach(t, false, out);
        if self.slot(t).retries > 0 {
            self.slot_mut(t).retries -= 1;
            self.set_state(t, TaskState::Released);
            self.wake(t, out);
        } else {
            self.mark_erred(t, Arc::new(failure), out);
        }
    }

    fn add_key(&mut self, w: WIdx, key: Key, out: &mut Outbox) {
        let Some(&t) = self.keys.get(&key) else {
            self.free_key(out, w, key);
            return;
        };
        match self.slot(t).state {
            // A `FreeKeys` of it may still be on its way to `w`: do not list
            // `w` as a holder, make sure it drops its copy.
            TaskState::Memory if self.slot(t).freed_on().contains(&w) => self.free_key(out, w, key),
            TaskState::Memory => {
                if !self.slot(t).who_has.contains(&w) {
                    let nbytes = self.slot(t).nbytes;
                    self.slot_mut(t).who_has.push(w);
                    let ws = self.worker_mut(w);
                    ws.has_what.insert(t);
                    ws.known_nbytes += nbytes;
                }
                if self.moving.get(&t).is_some_and(|&(_, to)| to == w) {
                    if let Some((from, _)) = self.moving.remove(&t) {
                        self.drop_replica(t, from, out);
                    }
                }
            }
            // Running on this very worker: leave it alone.
            TaskState::Processing if self.slot(t).processing_on == Some(w) => {}
            // Not in memory as far as we know: this copy is not tracked, and
            // `w` runs nothing of that key, so dropping it is safe (a task of
            // `w` that needed it was reset when the key left memory).
            _ => self.free_task_on(t, w, out),
        }
    }

    fn missing_data(&mut self, reporter: WIdx, key: &str, errant: &str, out: &mut Outbox) {
        let Some(&t) = self.keys.get(key) else {
            return;
        };
        let mut lost_with = errant.to_string();
        if let Some(&e) = self.worker_addrs.get(errant) {
            lost_with = self.worker(e).name.clone();
            let s = self.slot_mut(t);
            if let Some(i) = s.who_has.iter().position(|&x| x == e) {
                s.who_has.swap_remove(i);
                let nbytes = s.nbytes;
                let ews = self.worker_mut(e);
                ews.has_what.remove(&t);
                ews.known_nbytes = ews.known_nbytes.saturating_sub(nbytes);
            }
        }
        let mut affected = Vec::new();
        // Reruns on the reporter that cannot proceed: see `rerun_on`.
        for d in self.live_dependents(t) {
            let ds = self.slot(d);
            if ds.state == TaskState::Memory && ds.rerun_on() == Some(reporter) {
                self.drop_rerun_holder(d, reporter, &mut affected, out);
            }
        }
        if self.slot(t).state != TaskState::Memory {
            // Its dependents were reset when it left memory.
        } else if self.slot(t).who_has.is_empty() {
            self.lose_data(t, &lost_with, &mut affected, out);
        } else {
            // Still held elsewhere: resend the reporter's tasks that needed
            // it with fresh locations (it may only have known the errant one).
            for d in self.live_dependents(t) {
                let ds = self.slot(d);
                if ds.state == TaskState::Processing && ds.processing_on == Some(reporter) {
                    self.detach(d, true, out);
                    self.set_state(d, TaskState::Released);
                    affected.push(d);
                }
            }
        }
        self.wake_affected(affected, out);
    }

    /// `w` reported that its rerun of `t` (see `rerun_on`) cannot proceed:
    /// it no longer holds `t`. Stop listing it; make sure it drops any copy.
    fn drop_rerun_holder(&mut self, t: TaskId, w: WIdx, affected: &mut Vec<TaskId>, out: &mut Outbox) {
        let s = self.slot_mut(t);
        s.extra_mut().rerun_on = None;
        s.who_has.retain(|&x| x != w);
        let nbytes = s.nbytes;
        let ws = self.worker_mut(w);
        if ws.has_what.remove(&t) {
            ws.known_nbytes = ws.known_nbytes.saturating_sub(nbytes);
        }
        self.free_task_on(t, w, out);
        if self.slot(t).who_has.is_empty() {
            let name = self.worker(w).name.clone();
            self.lose_data(t, &name, affected, out);
        }
    }

    /// A task in memory lost its last copy. Its dependents that relied on
    /// it are reset; it is pushed on `affected` for recompute (or errs if
    /// it was scattered).
    fn lose_data(&mut self, t: TaskId, lost_with: &str, affected: &mut Vec<TaskId>, out: &mut Outbox) {
        self.detach(t, false, out);
        self.set_state(t, TaskState::Released);
        let scattered = self.slot(t).scattered;
        if !scattered {
            self.notify(t, out, |s| ToClient::KeyLost { key: s.key.clone() });
        }
        for d in self.live_dependents(t) {
            match self.slot(d).state {
                TaskState::Waiting => self.slot_mut(d).waiting_on += 1,
                TaskState::Processing | TaskState::Queued | TaskState::NoWorker => {
                    self.detach(d, true, out);
                    self.set_state(d, TaskState::Released);
                    affected.push(d);
                }
                _ => {}
            }
        }
        if scattered {
            let s = self.slot(t);
            if !s.wanted_by.is_empty() || s.live_dependents > 0 {
                let message = format!("data of {:?} lost with worker {}", s.key, lost_with);
                self.mark_erred(
                    t,
                    Arc::new(TaskFailure {
                        kind: ErrorKind::DataLost,
                        message,
                    }),
                    out,
                );
            } else {
                self.candidates.push(t);
            }
        } else {
            affected.push(t);
        }
    }

    /// Recomputes the `released` tasks of an event that are still needed;
    /// the others go to the release check.
    fn wake_affected(&mut self, affected: Vec<TaskId>, out: &mut Outbox) {
        for t in affected {
            if self.slot(t).state != TaskState::Released {
                continue;
            }
            if self.needed(t) {
                self.wake(t, out);
            } else {
                // A needed dependent woken later wakes it through `wake`.
                self.candidates.push(t);
            }
        }
    }

    fn retry(&mut self, t: TaskId, out: &mut Outbox) {
        // Up: the task and its erred dependencies become released again.
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            if self.slot(x).state != TaskState::Erred {
                continue;
            }
            self.set_state(x, TaskState::Released);
            let s = self.slot_mut(x);
            s.failure = None;
            if let Some(e) = s.extra.as_mut() {
                e.killed_on.clear();
            }
            stack.extend(self.slot(x).dependencies.iter().copied());
        }
        self.wake(t, out);
        // Down: dependents that erred because of it, unless another of their
        // dependencies is still erred.
        let mut down = Vec::new();
        let mut queue: VecDeque<TaskId> = self.live_dependents(t).into();
        while let Some(d) = queue.pop_front() {
            let s = self.slot(d);
            let dep_failed = s.state == TaskState::Erred
                && s.failure.as_ref().map(|f| f.kind) == Some(ErrorKind::DependencyFailed)
                && !s.dependencies.iter().any(|&x| self.slot(x).state == TaskState::Erred);
            if dep_failed {
                self.set_state(d, TaskState::Released);
                self.slot_mut(d).failure = None;
                down.push(d);
                queue.extend(self.live_dependents(d));
            }
        }
        self.wake_affected(down, out);
    }

    // ============================================================ stealing

    /// Work stealing, called periodically by the actor: for each worker
    /// with an idle thread (the thief), asks a worker with tasks waiting
    /// beyond its threads (the victim) to give up some of them
    /// (`StealRequest`), when a task's expected compute time is at least
    /// `STEAL_COMPUTE_OVER_TRANSFER` times the time to move its inputs to
    /// the thief. Only the victim's `StealResponse { stolen: true }` moves
    /// the task (see `steal_response`), so a task never runs twice.
    pub fn balance(&mut self, out: &mut Outbox) {
        self.begin();
        self.balance_inner(out);
        self.finish(out);
    }

    fn balance_inner(&mut self, out: &mut Outbox) {
        if self.worker_ids.len() < 2 {
            return;
        }
        let mut incoming: FxMap<WIdx, usize> = FxMap::default();
        for &thief in self.steals.values() {
            *incoming.entry(thief).or_default() += 1;
        }
        // Thieves and their idle threads.
        let mut thieves: Vec<(WIdx, usize)> = Vec::new();
        let mut victims: Vec<(u64, WIdx)> = Vec::new();
        for &w in self.worker_ids.values() {
            let ws = self.worker(w);
            if ws.retiring.is_some() {
                continue;
            }
            let threads = ws.nthreads.max(1) as usize;
            let busy = ws.busy() + incoming.get(&w).copied().unwrap_or(0);
            if busy < threads {
                // Up to the saturation cap (at most twice its threads), so
                // a thread finds its next task there when one ends.
                let cap = (self.saturation_cap(ws) as usize).clamp(threads, 2 * threads);
                thieves.push((w, cap - busy));
            } else if ws.processing.len() > threads && ws.processing.len() > ws.executing.len() {
                victims.push((ws.occupancy_ns / threads as u64, w));
            }
        }
        if thieves.is_empty() || victims.is_empty() {
            return;
        }
        thieves.sort_by_key(|&(w, _)| w);
        // Most loaded first.
        victims.sort_by_key(|&(occ, w)| (Reverse(occ), w));
        let mut sent = 0;
        for (_, v) in victims {
            let vs = self.worker(v);
            let threads = vs.nthreads.max(1) as usize;
            // Tasks not reported started, the ones it would run last first.
            let mut cands: Vec<(QueueKey, TaskId)> = vs
                .processing
                .keys()
                .copied()
                .filter(|t| !vs.executing.contains(t) && !self.steals.contains_key(t))
                .map(|t| (self.slot(t).queue_key(t), t))
                .collect();
            cands.sort_unstable_by_key(|c| Reverse(c.0));
            // Leave the victim as many tasks as it has threads.
            let mut spare = vs.processing.len().saturating_sub(threads);
            for (_, t) in cands {
                if spare == 0 || sent >= MAX_STEALS_PER_BALANCE {
                    break;
                }
                let s = self.slot(t);
                if s.extra.is_some() && (s.restrictions().is_some() || !s.resources().is_empty()) {
                    continue; // pinned: restrictions and resources are not re-checked on a thief
                }
                let compute_s = self.expected_ns(s.func) as f64 / 1e9;
                let mut best: Option<(f64, usize)> = None;
                for (i, &(w, free)) in thieves.iter().enumerate() {
                    if free == 0 || w == v || !self.worker(w).has_fn(s.func) {
                        continue;
                    }
                    let transfer_s = self.start_time(t, w) - self.worker(w).occupancy_ns as f64 / 1e9;
                    if compute_s < STEAL_COMPUTE_OVER_TRANSFER * transfer_s {
                        continue;
                    }
                    if best.is_none_or(|(b, _)| transfer_s < b) {
                        best = Some((transfer_s, i));
                    }
                }
                let Some((_, i)) = best else {
                    continue;
                };
                thieves[i].1 -= 1;
                spare -= 1;
                sent += 1;
                self.steals.insert(t, thieves[i].0);
                let key = self.slot(t).key.clone();
                self.send_worker(out, v, ToWorker::StealRequest { key });
            }
        }
    }

    /// The victim's answer to a `StealRequest`.
    fn steal_response(&mut self, w: WIdx, key: &str, stolen: bool, out: &mut Outbox) {
        let Some(&t) = self.keys.get(key) else {
            return;
        };
        let s = self.slot(t);
        if s.state != TaskState::Processing || s.processing_on != Some(w) {
            return; // moved on meanwhile; `steals` was cleared then
        }
        let Some(thief) = self.steals.remove(&t) else {
            return; // an answer about an earlier assignment
        };
        if !stolen {
            return; // it started (or is about to): it stays
        }
        // The victim forgot the task: no FreeKeys.
        self.detach(t, false, out);
        let ok = self.workers[thief.0 as usize]
            .as_ref()
            .is_some_and(|ts| ts.retiring.is_none() && ts.has_fn(self.slot(t).func));
        if ok {
            self.assign(t, thief, out);
        } else {
            self.place(t, out);
        }
    }

    // ============================================================ replicas

    /// Live workers that are not retiring, by bytes held then id.
    fn staying_workers(&self) -> Vec<WIdx> {
        let mut ws: Vec<WIdx> = self
            .worker_ids
            .values()
            .copied()
            .filter(|&w| self.worker(w).retiring.is_none())
            .collect();
        ws.sort_by_key(|&w| (self.worker(w).known_nbytes, self.worker(w).id));
        ws
    }

    /// Asks workers to copy each key in memory until `n` workers (at most
    /// all of them) hold it, choosing those holding the fewest bytes.
    fn replicate(&mut self, keys: &[Key], n: u32, out: &mut Outbox) -> Vec<crate::wire::messages::DataMove> {
        let workers = self.staying_workers();
        let mut tally: FxMap<WIdx, u64> = workers.iter().map(|&w| (w, self.worker(w).known_nbytes)).collect();
        let mut batches: FxMap<WIdx, Vec<DependencyLocation>> = FxMap::default();
        let mut moves = Vec::new();
        let mut seen = FxSet::default();
        for key in keys {
            let Some(&t) = self.keys.get(key) else {
                continue;
            };
            let s = self.slot(t);
            if s.state != TaskState::Memory || !seen.insert(t) {
                continue;
            }
            let need = (n as usize).min(workers.len()).saturating_sub(s.who_has.len());
            let mut targets: Vec<WIdx> = workers
                .iter()
                .copied()
                .filter(|w| !s.who_has.contains(w) && !s.freed_on().contains(w))
                .collect();
            targets.sort_by_key(|w| (tally[w], *w));
            for &w in targets.iter().take(need) {
                *tally.entry(w).or_default() += s.nbytes;
                batches.entry(w).or_default().push(DependencyLocation {
                    key: s.key.clone(),
                    who_has: self.addresses(&s.who_has),
                    nbytes: s.nbytes,
                });
                moves.push(crate::wire::messages::DataMove {
                    key: s.key.clone(),
                    to: self.worker(w).address.clone(),
                    from: String::new(),
                });
            }
        }
        let mut batches: Vec<(WIdx, Vec<DependencyLocation>)> = batches.into_iter().collect();
        batches.sort_by_key(|(w, _)| *w);
        for (w, keys) in batches {
            self.send_worker(out, w, ToWorker::AcquireReplicas { keys });
        }
        moves
    }

    /// Moves data of `keys` (every key in memory if empty) from workers
    /// holding more bytes than the average to workers holding less: the
    /// target fetches a copy (`AcquireReplicas`), and once it announces it
    /// (`AddKeys`) the source is told to free its copy. A move overshoots
    /// the average by at most half the key's size.
    fn rebalance(&mut self, keys: &[Key], out: &mut Outbox) -> Vec<crate::wire::messages::DataMove> {
        // Moves of an earlier rebalance that never completed (a failed
        // fetch) would only leave an extra copy: forget them.
        self.moving.clear();
        let workers = self.staying_workers();
        if workers.len() < 2 {
            return Vec::new();
        }
        let selected: Option<FxSet<TaskId>> =
            (!keys.is_empty()).then(|| keys.iter().filter_map(|k| self.keys.get(k).copied()).collect());
        let mut tally: FxMap<WIdx, u64> = workers.iter().map(|&w| (w, self.worker(w).known_nbytes)).collect();
        let mean = tally.values().sum::<u64>() as f64 / workers.len() as f64;
        let mut batches: FxMap<WIdx, Vec<DependencyLocation>> = FxMap::default();
        let mut moves = Vec::new();
        // Senders: most loaded first.
        for &from in workers.iter().rev() {
            if tally[&from] as f64 <= mean {
                break;
            }
            let mut held: Vec<(u64, TaskId)> = self
                .worker(from)
                .has_what
                .iter()
                .copied()
                .filter(|t| selected.as_ref().is_none_or(|s| s.contains(t)))
                .filter(|&t| self.slot(t).state == TaskState::Memory && !self.moving.contains_key(&t))
                .map(|t| (self.slot(t).nbytes, t))
                .collect();
            held.sort_unstable_by_key(|&(nb, t)| (Reverse(nb), t));
            for (nb, t) in held {
                if tally[&from] as f64 <= mean {
                    break;
                }
                let s = self.slot(t);
                let to = workers
                    .iter()
                    .copied()
                    .filter(|w| *w != from && !s.who_has.contains(w) && !s.freed_on().contains(w))
                    .min_by_key(|w| (tally[w], *w));
                let Some(to) = to else {
                    continue;
                };
                if tally[&to] as f64 + nb as f64 / 2.0 > mean {
                    continue; // would overshoot: a smaller key may fit
                }
                *tally.entry(to).or_default() += nb;
                *tally.entry(from).or_default() -= nb;
                batches.entry(to).or_default().push(DependencyLocation {
                    key: s.key.clone(),
                    who_has: self.addresses(&s.who_has),
                    nbytes: nb,
                });
                moves.push(crate::wire::messages::DataMove {
                    key: s.key.clone(),
                    to: self.worker(to).address.clone(),
                    from: self.worker(from).address.clone(),
                });
                self.moving.insert(t, (from, to));
            }
        }
        let mut batches: Vec<(WIdx, Vec<DependencyLocation>)> = batches.into_iter().collect();
        batches.sort_by_key(|(w, _)| *w);
        for (w, keys) in batches {
            self.send_worker(out, w, ToWorker::AcquireReplicas { keys });
        }
        moves
    }

    /// A rebalance's target holds `t`: the source `from` drops its copy,
    /// if another copy remains.
    fn drop_replica(&mut self, t: TaskId, from: WIdx, out: &mut Outbox) {
        if self.workers[from.0 as usize].is_none() || self.slot(t).who_has.len() < 2 {
            return;
        }
        let s = self.slot_mut(t);
        let Some(i) = s.who_has.iter().position(|&x| x == from) else {
            return;
        };
        s.who_has.swap_remove(i);
        let nbytes = s.nbytes;
        let ws = self.worker_mut(from);
        if ws.has_what.remove(&t) {
            ws.known_nbytes = ws.known_nbytes.saturating_sub(nbytes);
        }
        self.free_task_on(t, from, out);
    }

    fn scatter(
        &mut self,
        c: ClientId,
        request_id: u64,
        data: Vec<(Key, Payload)>,
        restrictions: &[String],
        out: &mut Outbox,
    ) {
        let mut allowed: Vec<(WorkerId, WIdx)> = self
            .worker_ids
            .iter()
            .filter(|(_, &w)| restrictions.is_empty() || restrictions.iter().any(|r| self.worker(w).matches(r)))
            .map(|(&id, &w)| (id, w))
            .collect();
        allowed.sort();
        if allowed.is_empty() {
            let error = if self.worker_ids.is_empty() {
                "no workers connected".to_string()
            } else {
                format!("none of the workers {restrictions:?} is connected")
            };
            out.messages.push(Outgoing::Client(
                c,
                ToClient::ScatterDone {
                    request_id,
                    error: Some(error),
                },
            ));
            return;
        }
        // Decide first, send the data, then record it: the StoreData must
        // precede any ComputeTask that could name the new holder.
        let mut per_worker: Vec<Vec<(Key, Payload)>> = vec![Vec::new(); allowed.len()];
        let mut stored: Vec<(Key, u64, usize)> = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        for (key, payload) in &data {
            if !seen.insert(key.as_str()) {
                continue;
            }
            let store = match self.keys.get(key) {
                None => true,
                Some(&t) => self.slot(t).state == TaskState::Released,
            };
            if store {
                let i = self.scatter_rr % allowed.len();
                self.scatter_rr = self.scatter_rr.wrapping_add(1);
                per_worker[i].push((key.clone(), payload.clone()));
                stored.push((key.clone(), payload.len() as u64, i));
            }
        }
        for (i, batch) in per_worker.into_iter().enumerate() {
            if !batch.is_empty() {
                self.send_worker(out, allowed[i].1, ToWorker::StoreData { data: batch });
            }
        }
        let f = self.intern_fn("");
        for (key, nbytes, i) in stored {
            let w = allowed[i].1;
            let t = match self.keys.get(&key) {
                Some(&t) => t,
                None => self.alloc_task(
                    TaskSpec {
                        key: key.clone(),
                        function: String::new(),
                        args: Vec::new(),
                        priority: 0,
                        workers: Vec::new(),
                        allow_other_workers: false,
                        retries: 0,
                        resources: Vec::new(),
                    },
                    true,
                    f,
                ),
            };
            self.enter_memory(t, w, nbytes, None, out);
        }
        for (key, _) in data {
            if let Some(&t) = self.keys.get(&key) {
                self.want(c, t, out);
            }
        }
        out.messages.push(Outgoing::Client(
            c,
            ToClient::ScatterDone {
                request_id,
                error: None,
            },
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;
    use std::collections::HashMap;

    const C1: ClientId = ClientId(1);
    const C2: ClientId = ClientId(2);

    fn spec(key: &str, function: &str, deps: &[&str]) -> TaskSpec {
        let mut args = vec![Arg::Value(vec![1])];
        args.extend(deps.iter().map(|d| Arg::Key(d.to_string())));
        TaskSpec {
            key: key.to_string(),
            function: function.to_string(),
            args,
            priority: 0,
            workers: Vec::new(),
            allow_other_workers: false,
            retries: 0,
            resources: Vec::new(),
        }
    }

    fn reg(name: &str, functions: &[&str]) -> WorkerRegistration {
        WorkerRegistration {
            name: name.to_string(),
            address: format!("tcp://{name}:1"),
            nthreads: 1,
            memory_limit: 0,
            functions: functions.iter().map(|f| f.to_string()).collect(),
            resources: Vec::new(),
        }
    }

    fn failure(message: &str) -> TaskFailure {
        TaskFailure {
            kind: ErrorKind::Failed,
            message: message.to_string(),
        }
    }

    /// A scheduler plus the messages it sent, per peer.
    struct H {
        s: SchedulerState,
        out: Vec<Outgoing>,
    }

    impl H {
        fn new() -> H {
            Self::with(SchedulerConfig::default())
        }
        fn with(config: SchedulerConfig) -> H {
            let mut h = H {
                s: SchedulerState::new(config),
                out: Vec::new(),
            };
            let mut o = Outbox::default();
            h.s.add_client(C1, &mut o);
            h.s.add_client(C2, &mut o);
            h
        }
        fn worker(&mut self, id: u64, name: &str, fns: &[&str]) {
            let mut o = Outbox::default();
            self.s.add_worker(WorkerId(id), reg(name, fns), &mut o).unwrap();
            self.out.extend(o.messages);
        }
        fn client(&mut self, c: ClientId, msg: ToScheduler) {
            let mut o = Outbox::default();
            self.s.handle_client_message(c, msg, &mut o).unwrap();
            self.out.extend(o.messages);
        }
        fn worker_sends(&mut self, w: u64, msg: ToScheduler) {
            let mut o = Outbox::default();
            self.s.handle_worker_message(WorkerId(w), msg, &mut o).unwrap();
            self.out.extend(o.messages);
        }
        fn kill(&mut self, w: u64) {
            let mut o = Outbox::default();
            self.s.remove_worker(WorkerId(w), &mut o);
            self.out.extend(o.messages);
        }
        fn submit(&mut self, c: ClientId, tasks: Vec<TaskSpec>, wanted: &[&str]) {
            self.client(
                c,
                ToScheduler::UpdateGraph {
                    tasks,
                    wanted: wanted.iter().map(|k| k.to_string()).collect(),
                },
            );
        }
        fn release(&mut self, c: ClientId, keys: &[&str]) {
            self.client(
                c,
                ToScheduler::ReleaseKeys {
                    keys: keys.iter().map(|k| k.to_string()).collect(),
                },
            );
        }
        fn finish(&mut self, w: u64, key: &str) {
            self.finish_in(w, key, 10);
        }
        fn finish_in(&mut self, w: u64, key: &str, duration_us: u64) {
            self.worker_sends(
                w,
                ToScheduler::TaskFinished {
                    key: key.to_string(),
                    nbytes: 8,
                    inline: None,
                    duration_us,
                },
            );
        }
        fn state(&self, key: &str) -> Option<TaskState> {
            self.s.task_state(key)
        }
        fn take(&mut self) -> Vec<Outgoing> {
            std::mem::take(&mut self.out)
        }
        /// Keys of ComputeTask messages sent to worker `w` (drains all).
        fn computes(&mut self, w: u64) -> Vec<String> {
            self.take()
                .into_iter()
                .filter_map(|m| match m {
                    Outgoing::Worker(id, ToWorker::ComputeTask { key, .. }) if id.0 == w => Some(key),
                    _ => None,
                })
                .collect()
        }
        fn to_client(&self, c: ClientId) -> Vec<&ToClient> {
            self.out
                .iter()
                .filter_map(|m| match m {
                    Outgoing::Client(id, msg) if *id == c => Some(msg),
                    _ => None,
                })
                .collect()
        }
        fn freed(&self, w: u64) -> Vec<String> {
            self.out
                .iter()
                .filter_map(|m| match m {
                    Outgoing::Worker(id, ToWorker::FreeKeys { keys }) if id.0 == w => Some(keys.clone()),
                    _ => None,
                })
                .flatten()
                .collect()
        }
    }

    #[test]
    fn names_and_wrong_direction() {
        assert_eq!(TaskState::NoWorker.name(), "no-worker");
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        let mut o = Outbox::default();
        let err =
            h.s.handle_client_message(
                C1,
                ToScheduler::TaskFinished {
                    key: "x".into(),
                    nbytes: 1,
                    inline: None,
                    duration_us: 1,
                },
                &mut o,
            )
            .unwrap_err();
        assert!(matches!(err, SchedulerError::WrongDirection("TaskFinished", "client")));
        let err =
            h.s.handle_worker_message(WorkerId(1), ToScheduler::CloseClient, &mut o)
                .unwrap_err();
        assert!(matches!(err, SchedulerError::WrongDirection("CloseClient", "worker")));
        let err =
            h.s.handle_worker_message(
                WorkerId(1),
                ToScheduler::RegisterWorker {
                    name: "b".into(),
                    address: "tcp://b:1".into(),
                    nthreads: 1,
                    memory_limit: 0,
                    functions: vec![],
                    resources: vec![],
                },
                &mut o,
            )
            .unwrap_err();
        assert!(matches!(
            err,
            SchedulerError::WrongDirection("RegisterWorker", "worker")
        ));
        assert!(o.messages.is_empty());
        assert!(matches!(
            h.s.handle_worker_message(WorkerId(9), ToScheduler::CloseClient, &mut o),
            Err(SchedulerError::UnknownWorker(WorkerId(9)))
        ));
        assert!(matches!(
            h.s.handle_client_message(ClientId(9), ToScheduler::CloseClient, &mut o),
            Err(SchedulerError::UnknownClient(ClientId(9)))
        ));
        let mut o = Outbox::default();
        assert!(matches!(
            h.s.add_worker(WorkerId(2), reg("a", &[]), &mut o),
            Err(SchedulerError::DuplicateWorkerName(_))
        ));
        assert_eq!(h.s.worker_count(), 1);
        assert_eq!(h.s.client_count(), 2);
    }

    #[test]
    fn submit_compute_memory_release_forget() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.take();
        h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["y"]);
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        assert_eq!(h.state("y"), Some(TaskState::Waiting));
        let msgs = h.take();
        match &msgs[..] {
            [Outgoing::Worker(WorkerId(1), ToWorker::ComputeTask { key, sequence, .. })] => {
                assert_eq!(key, "x");
                assert_eq!(*sequence, 0);
            }
            other => panic!("{other:?}"),
        }
        h.finish(1, "x");
        assert_eq!(h.state("x"), Some(TaskState::Memory));
        assert_eq!(h.state("y"), Some(TaskState::Processing));
        let msgs = h.take();
        match &msgs[..] {
            [Outgoing::Worker(
                WorkerId(1),
                ToWorker::ComputeTask {
                    key,
                    dependencies,
                    sequence,
                    ..
                },
            )] => {
                assert_eq!(key, "y");
                // Graph order: it inherits its dependency's sequence.
                assert_eq!(*sequence, 0);
                assert_eq!(dependencies[0].key, "x");
                assert_eq!(dependencies[0].who_has, vec!["tcp://a:1".to_string()]);
            }
            other => panic!("{other:?}"),
        }
        h.worker_sends(
            1,
            ToScheduler::TaskFinished {
                key: "y".into(),
                nbytes: 3,
                inline: Some(Payload::new(vec![1, 2, 3])),
                duration_us: 5,
            },
        );
        // x is no longer needed: freed and kept released (y could need it).
        assert_eq!(h.state("x"), Some(TaskState::Released));
        assert_eq!(h.freed(1), vec!["x".to_string()]);
        assert!(matches!(
            h.to_client(C1)[..],
            [ToClient::KeyInMemory { key, inline: Some(_), .. }] if key == "y"
        ));
        // A late wanter gets the inline value at once.
        h.take();
        h.submit(C2, vec![], &["y"]);
        assert!(matches!(
            h.to_client(C2)[..],
            [ToClient::KeyInMemory { key, inline: Some(_), .. }] if key == "y"
        ));
        h.release(C1, &["y"]);
        assert_eq!(h.state("y"), Some(TaskState::Memory));
        h.release(C2, &["y"]);
        assert_eq!(h.s.ntasks(), 0);
        assert!(h.freed(1).contains(&"y".to_string()));
        let info = h.s.info();
        assert_eq!(info.ntasks, 0);
        assert_eq!(info.workers[0].nkeys, 0);
    }

    #[test]
    fn same_key_dedupes_and_two_clients() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
        h.submit(C2, vec![spec("x", "other", &[])], &["x", "x"]);
        assert_eq!(h.computes(1), vec!["x".to_string()]);
        h.finish(1, "x");
        let n = h
            .to_client(C1)
            .iter()
            .chain(h.to_client(C2).iter())
            .filter(|m| matches!(m, ToClient::KeyInMemory { .. }))
            .count();
        assert_eq!(n, 2);
        h.take();
        h.release(C1, &["x"]);
        assert_eq!(h.state("x"), Some(TaskState::Memory));
        assert!(h.freed(1).is_empty());
        h.release(C2, &["x"]);
        assert_eq!(h.state("x"), None);
        assert_eq!(h.freed(1), vec!["x".to_string()]);
    }

    #[test]
    fn release_while_processing_cancels() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["y"]);
        h.take();
        h.release(C1, &["y"]);
        assert_eq!(h.s.ntasks(), 0);
        assert_eq!(h.freed(1), vec!["x".to_string()]);
        // The late result is dropped.
        h.take();
        h.finish(1, "x");
        assert_eq!(h.freed(1), vec!["x".to_string()]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn queued_when_saturated_then_drained() {
        // Pinned, so that the figures below do not move with the default.
        let mut h = H::with(SchedulerConfig {
            default_task_duration_s: 0.0005,
            ..Default::default()
        });
        h.worker(1, "a", &["inc"]); // 1 thread
        h.take();
        let tasks: Vec<TaskSpec> = (0..30).map(|i| spec(&format!("t{i}"), "inc", &[])).collect();
        let keys: Vec<String> = tasks.iter().map(|t| t.key.clone()).collect();
        let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        h.submit(C1, tasks, &wanted);
        // Not measured yet: ceil(1 thread × worker_saturation 1.1) = 2.
        let sent = h.computes(1);
        assert_eq!(sent, vec!["t0".to_string(), "t1".to_string()]);
        assert_eq!(h.state("t2"), Some(TaskState::Queued));
        assert_eq!(h.s.info().tasks_by_state[3], ("queued".to_string(), 28));
        // A higher priority root task jumps the queue.
        let mut p = spec("urgent", "inc", &[]);
        p.priority = 5;
        h.submit(C1, vec![p], &["urgent"]);
        assert_eq!(h.state("urgent"), Some(TaskState::Queued));
        // Measured short (0.5 ms) with small results: the pipeline deepens
        // to queue_target_s (5 ms) of work, the urgent task first.
        h.finish_in(1, "t0", 500);
        let next = h.computes(1);
        assert_eq!(next.len(), 9, "{next:?}");
        assert_eq!(next[0], "urgent");
        assert_eq!(next[8], "t9");
        h.finish_in(1, "t1", 500);
        assert_eq!(h.computes(1), vec!["t10".to_string()]);
        // A new worker takes queued tasks.
        h.worker(2, "b", &["inc"]);
        assert!(h.computes(2).len() >= 2);
        // Everything runs to completion.
        for _ in 0..100 {
            let pending: Vec<(u64, String)> = (1..=2)
                .flat_map(|w| {
                    h.s.worker_ids
                        .get(&WorkerId(w))
                        .map(|&x| {
                            let mut v: Vec<String> =
                                h.s.worker(x)
                                    .processing
                                    .keys()
                                    .map(|&t| h.s.slot(t).key.clone())
                                    .collect();
                            v.sort();
                            v.into_iter().map(|k| (w, k)).collect::<Vec<_>>()
                        })
                        .unwrap_or_default()
                })
                .collect();
            if pending.is_empty() {
                break;
            }
            for (w, k) in pending {
                h.finish_in(w, &k, 500);
            }
        }
        for k in &keys {
            assert_eq!(h.state(k), Some(TaskState::Memory), "{k}");
        }
        let mut all = wanted.clone();
        all.push("urgent");
        h.release(C1, &all);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn no_worker_then_runs_when_worker_joins() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "double", &[])], &["x"]);
        assert_eq!(h.state("x"), Some(TaskState::NoWorker));
        assert!(matches!(
            h.to_client(C1)[..],
            [ToClient::NoWorker { key, function }] if key == "x" && function == "double"
        ));
        h.take();
        // A second wanter is told too.
        h.submit(C2, vec![], &["x"]);
        assert!(matches!(h.to_client(C2)[..], [ToClient::NoWorker { .. }]));
        h.worker(2, "b", &["double"]);
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        assert_eq!(h.computes(2), vec!["x".to_string()]);
        // It leaves: back to no-worker.
        h.kill(2);
        assert_eq!(h.state("x"), Some(TaskState::NoWorker));
        h.remove_both(&["x"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    impl H {
        fn remove_both(&mut self, keys: &[&str]) {
            self.release(C1, keys);
            self.release(C2, keys);
        }
    }

    #[test]
    fn restrictions() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        h.take();
        let mut x = spec("x", "inc", &[]);
        x.workers = vec!["tcp://b:1".into()];
        let mut y = spec("y", "inc", &[]);
        y.workers = vec!["c".into()];
        let mut z = spec("z", "inc", &[]);
        z.workers = vec!["c".into()];
        z.allow_other_workers = true;
        h.submit(C1, vec![x, y, z], &["x", "y", "z"]);
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        assert_eq!(h.state("y"), Some(TaskState::NoWorker));
        assert_eq!(h.state("z"), Some(TaskState::Processing));
        assert_eq!(h.computes(2), vec!["x".to_string()]);
        h.worker(3, "c", &["inc"]);
        assert_eq!(h.computes(3), vec!["y".to_string()]);
        h.release(C1, &["x", "y", "z"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn placement_prefers_data_locality_and_low_occupancy() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
        // Ties: fewest processing, then lowest id.
        assert_eq!(h.computes(1), vec!["x".to_string()]);
        h.worker_sends(
            1,
            ToScheduler::TaskFinished {
                key: "x".into(),
                nbytes: 100_000_000,
                inline: None,
                duration_us: 10,
            },
        );
        h.take();
        h.submit(C1, vec![spec("y", "inc", &["x"])], &["y"]);
        assert_eq!(h.computes(1), vec!["y".to_string()]);
        // A root task goes to the idle worker.
        h.submit(C1, vec![spec("r", "inc", &[])], &["r"]);
        assert_eq!(h.computes(2), vec!["r".to_string()]);
    }

    fn reg_with(name: &str, functions: &[&str], nthreads: u32, resources: &[(&str, f64)]) -> WorkerRegistration {
        WorkerRegistration {
            nthreads,
            resources: resources.iter().map(|(n, a)| (n.to_string(), *a)).collect(),
            ..reg(name, functions)
        }
    }

    fn finished(key: &str, nbytes: u64, duration_us: u64) -> ToScheduler {
        ToScheduler::TaskFinished {
            key: key.into(),
            nbytes,
            inline: None,
            duration_us,
        }
    }

    fn restricted(key: &str, function: &str, deps: &[&str], worker: &str) -> TaskSpec {
        TaskSpec {
            workers: vec![worker.to_string()],
            ..spec(key, function, deps)
        }
    }

    #[test]
    fn placement_weighs_measured_bandwidth_against_measured_occupancy() {
        let mut h = H::new();
        h.worker(1, "a", &["inc", "slow"]);
        h.worker(2, "b", &["inc", "slow"]);
        // x: 100 MB on a.
        h.submit(C1, vec![restricted("x", "inc", &[], "a")], &["x"]);
        h.worker_sends(1, finished("x", 100_000_000, 10));
        // a is busy: two tasks of a function measured at 100 ms.
        h.submit(C1, vec![restricted("m", "slow", &[], "a")], &["m"]);
        h.worker_sends(1, finished("m", 8, 100_000));
        let busy: Vec<TaskSpec> = (0..2).map(|i| restricted(&format!("s{i}"), "slow", &[], "a")).collect();
        h.submit(C1, busy, &["s0", "s1"]);
        h.take();
        // Default bandwidth (1 GB/s): fetching x (0.1 s) beats waiting
        // 0.2 s for a, so its dependent goes to the idle worker.
        h.submit(C1, vec![spec("y1", "inc", &["x"])], &["y1"]);
        assert_eq!(h.computes(2), vec!["y1".to_string()]);
        // Workers measure 100 MB/s: fetching x now takes 1 s, so the next
        // dependent waits for a, which holds the big dependency.
        for _ in 0..40 {
            h.worker_sends(
                2,
                ToScheduler::TransferStats {
                    bytes: 10_000_000,
                    duration_us: 100_000,
                },
            );
        }
        assert!((h.s.bandwidth - 1e8).abs() < 1e6, "{}", h.s.bandwidth);
        h.submit(C1, vec![spec("y2", "inc", &["x"])], &["y2"]);
        assert_eq!(h.computes(1), vec!["y2".to_string()]);
        // A small dependency on the busy worker: its dependent goes to the
        // idle one.
        h.submit(C1, vec![restricted("z", "inc", &[], "a")], &["z"]);
        h.worker_sends(1, finished("z", 100, 10));
        h.take();
        h.submit(C1, vec![spec("w", "inc", &["z"])], &["w"]);
        assert_eq!(h.computes(2), vec!["w".to_string()]);
    }

    #[test]
    fn root_tasks_of_heavy_functions_are_capped_by_worker_saturation() {
        let mut h = H::with(SchedulerConfig {
            default_task_duration_s: 0.0005,
            ..Default::default()
        });
        let mut o = Outbox::default();
        h.s.add_worker(WorkerId(1), reg_with("a", &["blob", "tiny"], 4, &[]), &mut o)
            .unwrap();
        let blobs: Vec<TaskSpec> = (0..100).map(|i| spec(&format!("b{i}"), "blob", &[])).collect();
        let keys: Vec<String> = blobs.iter().map(|t| t.key.clone()).collect();
        let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        h.submit(C1, blobs, &wanted);
        // Unmeasured: ceil(4 × 1.1) = 5.
        assert_eq!(h.computes(1).len(), 5);
        // Measured short but with 1 MB results: still 5 at a time.
        for i in 0..3 {
            h.worker_sends(1, finished(&format!("b{i}"), 1_000_000, 100));
            assert_eq!(h.computes(1).len(), 1);
        }
        assert_eq!(h.s.worker(WIdx(0)).processing.len(), 5);
        // A short function with small results pipelines deeper (a higher
        // priority puts it ahead of the queued blobs).
        let tiny: Vec<TaskSpec> = (0..100)
            .map(|i| TaskSpec {
                priority: 1,
                ..spec(&format!("t{i}"), "tiny", &[])
            })
            .collect();
        let keys: Vec<String> = tiny.iter().map(|t| t.key.clone()).collect();
        let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        h.submit(C1, tiny, &wanted);
        h.take();
        // Not measured yet: held back by the cap too.
        assert_eq!(h.s.worker(WIdx(0)).processing.len(), 5);
        h.worker_sends(1, finished("b3", 1_000_000, 100));
        let sent = h.computes(1);
        assert!(sent.iter().any(|k| k.starts_with('t')), "{sent:?}");
        let t = sent.iter().find(|k| k.starts_with('t')).cloned().unwrap_or_default();
        h.worker_sends(1, finished(&t, 8, 100));
        assert!(h.computes(1).len() > 5);
        assert!(h.s.worker(WIdx(0)).processing.len() > 10);
    }

    #[test]
    fn stealing_moves_a_task_only_when_the_victim_confirms() {
        let mut h = H::new();
        h.worker(1, "a", &["inc", "slow"]);
        h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
        h.worker_sends(1, finished("x", 8, 10));
        h.take();
        let ts: Vec<TaskSpec> = (0..10).map(|i| spec(&format!("t{i}"), "slow", &["x"])).collect();
        let keys: Vec<String> = ts.iter().map(|t| t.key.clone()).collect();
        let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
        h.submit(C1, ts, &wanted);
        assert_eq!(h.computes(1).len(), 10);
        h.worker_sends(
            1,
            ToScheduler::TasksStarted {
                keys: vec!["t0".into()],
            },
        );
        h.worker(2, "b", &["inc", "slow"]);
        h.take();
        let mut o = Outbox::default();
        h.s.balance(&mut o);
        let asked: Vec<String> = o
            .messages
            .iter()
            .filter_map(|m| match m {
                Outgoing::Worker(WorkerId(1), ToWorker::StealRequest { key }) => Some(key.clone()),
                _ => None,
            })
            .collect();
        // b's capacity: ceil(1 × 1.1) = 2; latest submitted first; never
        // the task a reported started.
        assert_eq!(asked, vec!["t9".to_string(), "t8".to_string()]);
        assert_eq!(o.messages.len(), 2);
        // Requests pending: a second round asks nothing more.
        let mut o = Outbox::default();
        h.s.balance(&mut o);
        assert!(o.messages.is_empty(), "{:?}", o.messages);
        // t9 had not started: it moves to b. t8 had: it stays on a.
        h.worker_sends(
            1,
            ToScheduler::StealResponse {
                key: "t9".into(),
                stolen: true,
            },
        );
        assert_eq!(h.computes(2), vec!["t9".to_string()]);
        h.worker_sends(
            1,
            ToScheduler::StealResponse {
                key: "t8".into(),
                stolen: false,
            },
        );
        assert!(h.take().is_empty());
        assert_eq!(h.state("t8"), Some(TaskState::Processing));
        assert!(h.s.worker(WIdx(0)).processing.keys().any(|&t| h.s.slot(t).key == "t8"));
        // An answer nobody asked for changes nothing.
        h.worker_sends(
            1,
            ToScheduler::StealResponse {
                key: "t7".into(),
                stolen: true,
            },
        );
        assert!(h.take().is_empty());
        assert!(h.s.worker(WIdx(0)).processing.keys().any(|&t| h.s.slot(t).key == "t7"));
        // A late report from a about t9 (now b's) is refused.
        h.worker_sends(1, finished("t9", 8, 10));
        assert_eq!(h.freed(1), vec!["t9".to_string()]);
        assert_eq!(h.state("t9"), Some(TaskState::Processing));
        h.worker_sends(2, finished("t9", 8, 10));
        assert_eq!(h.state("t9"), Some(TaskState::Memory));
    }

    #[test]
    fn stealing_skips_tasks_whose_inputs_cost_more_to_move_than_to_wait_for() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
        // 100 MB: 0.1 s to move, tasks measured at 10 µs.
        h.worker_sends(1, finished("x", 100_000_000, 10));
        let ts: Vec<TaskSpec> = (0..10).map(|i| spec(&format!("t{i}"), "inc", &["x"])).collect();
        h.submit(C1, ts, &[]);
        h.worker(2, "b", &["inc"]);
        h.take();
        let mut o = Outbox::default();
        h.s.balance(&mut o);
        assert!(o.messages.is_empty(), "{:?}", o.messages);
    }

    #[test]
    fn graph_order_puts_a_reduction_right_after_its_inputs() {
        let mut h = H::new();
        h.worker(1, "a", &["inc", "add"]);
        let mut tasks: Vec<TaskSpec> = (0..4).map(|i| spec(&format!("l{i}"), "inc", &[])).collect();
        tasks.push(spec("r0", "add", &["l0", "l1"]));
        tasks.push(spec("r1", "add", &["l2", "l3"]));
        tasks.push(spec("total", "add", &["r0", "r1"]));
        h.submit(C1, tasks, &["total"]);
        let seq = |h: &H, k: &str| h.s.slot(h.s.keys[k]).sequence;
        assert_eq!(seq(&h, "r0"), seq(&h, "l1"));
        assert!(seq(&h, "r0") < seq(&h, "l2"));
        assert_eq!(seq(&h, "r1"), seq(&h, "l3"));
        assert_eq!(seq(&h, "total"), seq(&h, "l3"));
        // So r0, ready once l0 and l1 are done, sorts ahead of l2 and l3
        // at the worker (and in the scheduler's queues).
        let r0 = h.s.keys["r0"];
        let l2 = h.s.keys["l2"];
        assert!(h.s.slot(r0).queue_key(r0) < h.s.slot(l2).queue_key(l2));
    }

    #[test]
    fn resources_choose_workers_and_wait_in_no_worker_for_one() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        let gpu = TaskSpec {
            resources: vec![("GPU".into(), 1.0)],
            ..spec("g", "inc", &[])
        };
        let big = TaskSpec {
            resources: vec![("GPU".into(), 3.0)],
            ..spec("g3", "inc", &[])
        };
        h.submit(C1, vec![gpu, big], &["g", "g3"]);
        assert_eq!(h.state("g"), Some(TaskState::NoWorker));
        assert_eq!(h.state("g3"), Some(TaskState::NoWorker));
        h.take();
        let mut o = Outbox::default();
        h.s.add_worker(WorkerId(2), reg_with("b", &["inc"], 4, &[("GPU", 2.0)]), &mut o)
            .unwrap();
        h.out.extend(o.messages);
        let sent: Vec<(String, Vec<(String, f64)>)> = h
            .take()
            .into_iter()
            .filter_map(|m| match m {
                Outgoing::Worker(WorkerId(2), ToWorker::ComputeTask { key, resources, .. }) => Some((key, resources)),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![("g".to_string(), vec![("GPU".to_string(), 1.0)])]);
        assert_eq!(h.state("g3"), Some(TaskState::NoWorker));
        // A dependent asking for GPU goes to b even though a holds its input.
        h.submit(C1, vec![restricted("x", "inc", &[], "a")], &["x"]);
        h.worker_sends(1, finished("x", 100_000_000, 10));
        h.take();
        let dep = TaskSpec {
            resources: vec![("GPU".into(), 1.0)],
            ..spec("gx", "inc", &["x"])
        };
        h.submit(C1, vec![dep], &["gx"]);
        assert_eq!(h.computes(2), vec!["gx".to_string()]);
    }

    #[test]
    fn replicate_and_rebalance_move_data_between_workers() {
        let mut h = H::new();
        for (i, n) in ["a", "b", "c"].iter().enumerate() {
            h.worker(i as u64 + 1, n, &["inc"]);
        }
        let ks: Vec<TaskSpec> = (0..4).map(|i| restricted(&format!("k{i}"), "inc", &[], "a")).collect();
        h.submit(C1, ks, &["k0", "k1", "k2", "k3"]);
        for i in 0..4 {
            h.worker_sends(1, finished(&format!("k{i}"), 1000, 10));
        }
        h.take();
        // Replicate k0 to 3 workers: b and c fetch it from a.
        h.client(
            C1,
            ToScheduler::Replicate {
                request_id: 1,
                keys: vec!["k0".into()],
                n: 3,
            },
        );
        let msgs = h.take();
        let acquire: Vec<u64> = msgs
            .iter()
            .filter_map(|m| match m {
                Outgoing::Worker(w, ToWorker::AcquireReplicas { keys }) => {
                    assert_eq!(keys[0].who_has, vec!["tcp://a:1".to_string()]);
                    Some(w.0)
                }
                _ => None,
            })
            .collect();
        assert_eq!(acquire, vec![2, 3]);
        assert!(msgs.iter().any(|m| matches!(m,
            Outgoing::Client(C1, ToClient::DataMoves { request_id: 1, moves }) if moves.len() == 2)));
        for w in [2, 3] {
            h.worker_sends(
                w,
                ToScheduler::AddKeys {
                    keys: vec![("k0".into(), 1000)],
                },
            );
        }
        let k0 = h.s.keys["k0"];
        assert_eq!(h.s.slot(k0).who_has.len(), 3);
        // Rebalance: a holds 4000 bytes, b and c 1000 each (mean 2000).
        h.client(
            C1,
            ToScheduler::Rebalance {
                request_id: 2,
                keys: Vec::new(),
            },
        );
        let msgs = h.take();
        let moves = msgs
            .iter()
            .find_map(|m| match m {
                Outgoing::Client(C1, ToClient::DataMoves { request_id: 2, moves }) => Some(moves.clone()),
                _ => None,
            })
            .expect("answered");
        // a sheds a key to b and one to c (2000 each after), then stops at
        // the mean; k0, held everywhere, does not move.
        assert_eq!(moves.len(), 2, "{moves:?}");
        assert!(moves.iter().all(|m| m.from == "tcp://a:1" && m.key != "k0"));
        assert_eq!(moves[0].to, "tcp://b:1");
        assert_eq!(moves[1].to, "tcp://c:1");
        let key = moves[0].key.clone();
        assert!(h.freed(1).is_empty());
        h.worker_sends(
            2,
            ToScheduler::AddKeys {
                keys: vec![(key.clone(), 1000)],
            },
        );
        assert_eq!(h.freed(1), vec![key.clone()]);
        let t = h.s.keys[&key];
        assert_eq!(h.s.addresses(&h.s.slot(t).who_has), vec!["tcp://b:1".to_string()]);
        // a's late AddKeys of it (crossing the free) is refused.
        h.take();
        h.worker_sends(
            1,
            ToScheduler::AddKeys {
                keys: vec![(key.clone(), 1000)],
            },
        );
        assert_eq!(h.freed(1), vec![key]);
    }

    #[test]
    fn erred_and_dependency_failed_then_retry() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(
            C1,
            vec![
                spec("x", "inc", &[]),
                spec("y", "inc", &["x"]),
                spec("z", "inc", &["y"]),
            ],
            &["x", "z"],
        );
        h.take();
        h.worker_sends(
            1,
            ToScheduler::TaskErred {
                key: "x".into(),
                failure: failure("boom"),
            },
        );
        assert_eq!(h.state("x"), Some(TaskState::Erred));
        assert_eq!(h.state("y"), Some(TaskState::Erred));
        assert_eq!(h.state("z"), Some(TaskState::Erred));
        let msgs = h.to_client(C1);
        assert_eq!(msgs.len(), 2);
        match msgs[1] {
            ToClient::TaskErred { key, failure } => {
                assert_eq!(key, "z");
                assert_eq!(failure.kind, ErrorKind::DependencyFailed);
                assert_eq!(failure.message, "dependency \"x\" failed: boom");
            }
            other => panic!("{other:?}"),
        }
        // A new task on an erred key errs at once; a late wanter is told.
        h.take();
        h.submit(C2, vec![spec("w", "inc", &["z"])], &["w", "x"]);
        assert_eq!(h.state("w"), Some(TaskState::Erred));
        assert_eq!(h.to_client(C2).len(), 2);
        h.release(C2, &["w", "x"]);
        assert_eq!(h.state("w"), None);
        h.take();
        // Retry the leaf: x reruns, y and z wait again.
        h.client(C1, ToScheduler::Retry { keys: vec!["z".into()] });
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        assert_eq!(h.state("y"), Some(TaskState::Waiting));
        assert_eq!(h.state("z"), Some(TaskState::Waiting));
        h.finish(1, "x");
        h.finish(1, "y");
        h.finish(1, "z");
        assert_eq!(h.state("z"), Some(TaskState::Memory));
        h.release(C1, &["x", "z"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn retry_of_root_resets_dependents() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["y"]);
        h.worker_sends(
            1,
            ToScheduler::TaskErred {
                key: "x".into(),
                failure: failure("boom"),
            },
        );
        // x is unwanted but kept erred: y depends on it.
        assert_eq!(h.state("x"), Some(TaskState::Erred));
        h.client(C1, ToScheduler::Retry { keys: vec!["x".into()] });
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        assert_eq!(h.state("y"), Some(TaskState::Waiting));
        h.finish(1, "x");
        h.finish(1, "y");
        assert_eq!(h.state("y"), Some(TaskState::Memory));
        h.release(C1, &["y"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn task_retries() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        let mut x = spec("x", "inc", &[]);
        x.retries = 1;
        h.submit(C1, vec![x], &["x"]);
        h.take();
        h.worker_sends(
            1,
            ToScheduler::TaskErred {
                key: "x".into(),
                failure: failure("flaky"),
            },
        );
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        assert_eq!(h.computes(1), vec!["x".to_string()]);
        h.worker_sends(
            1,
            ToScheduler::TaskErred {
                key: "x".into(),
                failure: failure("flaky"),
            },
        );
        assert_eq!(h.state("x"), Some(TaskState::Erred));
    }

    #[test]
    fn unknown_dependency_errs() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("y", "inc", &["nope"])], &["y"]);
        assert_eq!(h.state("y"), Some(TaskState::Erred));
        match h.to_client(C1)[..] {
            [ToClient::TaskErred { failure, .. }] => {
                assert_eq!(failure.kind, ErrorKind::DataLost);
                assert!(failure.message.contains("\"nope\""));
            }
            ref other => panic!("{other:?}"),
        }
        h.release(C1, &["y"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn cycles_err_and_are_forgotten() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(
            C1,
            vec![
                spec("a", "inc", &["b"]),
                spec("b", "inc", &["a"]),
                spec("c", "inc", &["c"]),
                spec("d", "inc", &["a"]),
            ],
            &["a", "c", "d"],
        );
        for k in ["a", "c", "d"] {
            assert_eq!(h.state(k), Some(TaskState::Erred), "{k}");
        }
        // b erred too, but nobody wants it and nothing depends on it anymore.
        assert_eq!(h.state("b"), None);
        h.release(C1, &["a", "c", "d"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn worker_death_reschedules_and_recomputes() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        h.submit(
            C1,
            vec![
                spec("x", "inc", &[]),
                spec("y", "inc", &["x"]),
                spec("z", "inc", &["x"]),
            ],
            &["x", "y", "z"],
        );
        assert_eq!(h.computes(1), vec!["x".to_string()]);
        h.finish(1, "x");
        // y goes to worker 1 (data locality), z to the idle worker 2 (x is
        // tiny, worker 1 is busy with y).
        let msgs = h.take();
        let sent: Vec<(u64, String)> = msgs
            .into_iter()
            .filter_map(|m| match m {
                Outgoing::Worker(w, ToWorker::ComputeTask { key, .. }) => Some((w.0, key)),
                _ => None,
            })
            .collect();
        assert_eq!(sent, vec![(1, "y".to_string()), (2, "z".to_string())]);
        h.finish(1, "y");
        h.take();
        // Worker 1 dies: x and y were only there; z, processing on worker 2,
        // needs x: it is cancelled there and waits again.
        h.kill(1);
        let lost: Vec<&ToClient> = h.to_client(C1);
        assert_eq!(lost.iter().filter(|m| matches!(m, ToClient::KeyLost { .. })).count(), 2);
        assert_eq!(h.freed(2), vec!["z".to_string()]);
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        assert_eq!(h.state("y"), Some(TaskState::Waiting));
        assert_eq!(h.state("z"), Some(TaskState::Waiting));
        assert_eq!(h.computes(2), vec!["x".to_string()]);
        h.finish(2, "x");
        let mut sent = h.computes(2);
        sent.sort();
        assert_eq!(sent, vec!["y".to_string(), "z".to_string()]);
        h.finish(2, "y");
        h.finish(2, "z");
        h.release(C1, &["x", "y", "z"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn lost_dependency_resets_processing_dependent() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
        h.finish(1, "x");
        h.take();
        // y must run on b, fetching x from a.
        let mut y = spec("y", "inc", &["x"]);
        y.workers = vec!["b".into()];
        h.submit(C1, vec![y], &["y"]);
        assert_eq!(h.computes(2), vec!["y".to_string()]);
        h.kill(1);
        // y is cancelled on b, x recomputed on b, then y again.
        assert_eq!(h.freed(2), vec!["y".to_string()]);
        assert_eq!(h.state("y"), Some(TaskState::Waiting));
        assert_eq!(h.computes(2), vec!["x".to_string()]);
        h.finish(2, "x");
        assert_eq!(h.computes(2), vec!["y".to_string()]);
    }

    #[test]
    fn missing_data_recomputes() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["y"]);
        h.finish(1, "x");
        h.take();
        let y = h.s.keys["y"];
        assert_eq!(h.s.slot(y).processing_on, Some(h.s.worker_ids[&WorkerId(1)]));
        h.worker_sends(
            1,
            ToScheduler::MissingData {
                key: "x".into(),
                errant_worker: "tcp://a:1".into(),
            },
        );
        assert_eq!(h.freed(1), vec!["y".to_string()]);
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        assert_eq!(h.state("y"), Some(TaskState::Waiting));
        // Unknown key / address: ignored.
        h.worker_sends(
            1,
            ToScheduler::MissingData {
                key: "nope".into(),
                errant_worker: "tcp://zz:1".into(),
            },
        );
    }

    #[test]
    fn killed_worker_after_allowed_failures() {
        let mut h = H::with(SchedulerConfig {
            allowed_failures: 1,
            ..Default::default()
        });
        h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
        assert_eq!(h.state("x"), Some(TaskState::NoWorker));
        h.worker(1, "a", &["inc"]);
        h.kill(1);
        assert_eq!(h.state("x"), Some(TaskState::NoWorker));
        h.worker(2, "b", &["inc"]);
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        h.take();
        h.kill(2);
        assert_eq!(h.state("x"), Some(TaskState::Erred));
        match h.to_client(C1)[..] {
            [ToClient::TaskErred { failure, .. }] => {
                assert_eq!(failure.kind, ErrorKind::KilledWorker);
                assert!(failure.message.contains("\"x\""));
                assert!(failure.message.contains("a, b"), "{}", failure.message);
            }
            ref other => panic!("{other:?}"),
        }
        h.release(C1, &["x"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn only_tasks_reported_started_count_as_suspicious() {
        let mut h = H::with(SchedulerConfig {
            allowed_failures: 0,
            ..Default::default()
        });
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &[])], &["x", "y"]);
        assert_eq!(h.computes(1), vec!["x", "y"]);
        // x runs on the worker's one thread; y only waits for it.
        let started = ToScheduler::TasksStarted { keys: vec!["x".into()] };
        h.worker_sends(1, started);
        h.worker(2, "b", &["inc"]);
        h.take();
        h.kill(1);
        assert_eq!(h.state("x"), Some(TaskState::Erred));
        assert_eq!(h.state("y"), Some(TaskState::Processing));
        match h.to_client(C1)[..] {
            [ToClient::TaskErred { key, failure }] => {
                assert_eq!((key.as_str(), failure.kind), ("x", ErrorKind::KilledWorker));
            }
            ref other => panic!("{other:?}"),
        }
        // A finished task leaves the executing set: the worker's death later
        // does not count it.
        h.worker_sends(2, ToScheduler::TasksStarted { keys: vec!["y".into()] });
        h.finish(2, "y");
        assert_eq!(h.state("y"), Some(TaskState::Memory));
        h.release(C1, &["x", "y"]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn a_worker_that_never_reports_starts_has_every_processing_task_counted() {
        let mut h = H::with(SchedulerConfig {
            allowed_failures: 0,
            ..Default::default()
        });
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &[])], &["x", "y"]);
        h.kill(1);
        assert_eq!(h.state("x"), Some(TaskState::Erred));
        assert_eq!(h.state("y"), Some(TaskState::Erred));
    }

    #[test]
    fn retirement_moves_unique_data_then_closes() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        let tasks = vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])];
        h.submit(C1, tasks, &["x", "y"]);
        let on_a = |h: &mut H| h.computes(1);
        assert_eq!(on_a(&mut h), vec!["x"]);
        h.finish(1, "x");
        // y runs next to its data, on a.
        assert_eq!(on_a(&mut h), vec!["y"]);
        h.client(
            C1,
            ToScheduler::RetireWorkers {
                request_id: 7,
                workers: vec!["a".into(), "nope".into()],
            },
        );
        // a still runs y: nothing moves yet, no new task goes to a.
        assert!(h
            .take()
            .iter()
            .all(|m| !matches!(m, Outgoing::Worker(_, ToWorker::AcquireReplicas { .. }))));
        h.submit(C1, vec![spec("z", "inc", &[])], &["z"]);
        let out = h.take();
        assert!(out
            .iter()
            .any(|m| matches!(m, Outgoing::Worker(WorkerId(2), ToWorker::ComputeTask { key, .. }) if key == "z")));
        h.finish(1, "y");
        // x and y are only on a: b is asked to copy them.
        let out = h.take();
        let asked: Vec<_> = out
            .iter()
            .filter_map(|m| match m {
                Outgoing::Worker(id, ToWorker::AcquireReplicas { keys }) => Some((id.0, keys.clone())),
                _ => None,
            })
            .collect();
        assert_eq!(asked.len(), 1, "{out:?}");
        assert_eq!(asked[0].0, 2);
        assert_eq!(
            asked[0].1.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
            ["x", "y"]
        );
        assert_eq!(asked[0].1[0].who_has, vec!["tcp://a:1".to_string()]);
        h.worker_sends(
            2,
            ToScheduler::AddKeys {
                keys: vec![("x".into(), 8)],
            },
        );
        // Not before every unique key has a copy; nothing asked twice.
        assert_eq!(h.s.worker_count(), 2);
        assert!(h.take().is_empty());
        h.worker_sends(
            2,
            ToScheduler::AddKeys {
                keys: vec![("y".into(), 8)],
            },
        );
        let out = h.take();
        assert!(out
            .iter()
            .any(|m| matches!(m, Outgoing::Worker(WorkerId(1), ToWorker::Close { .. }))));
        assert!(
            out.iter().any(|m| matches!(
                m,
                Outgoing::Client(C1, ToClient::RetireWorkersDone { request_id: 7, retired, error: Some(e) })
                    if retired == &["a".to_string()] && e.contains("nope")
            )),
            "{out:?}"
        );
        assert_eq!(h.s.worker_count(), 1);
        // Nothing lost, nothing recomputed.
        assert_eq!(h.state("x"), Some(TaskState::Memory));
        assert_eq!(h.state("y"), Some(TaskState::Memory));
        assert!(!out
            .iter()
            .any(|m| matches!(m, Outgoing::Client(_, ToClient::KeyLost { .. }))));
        h.release(C1, &["x", "y", "z"]);
        h.finish(2, "z");
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn the_last_worker_holding_data_is_not_retired() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
        h.finish(1, "x");
        h.take();
        h.client(
            C1,
            ToScheduler::RetireWorkers {
                request_id: 1,
                workers: vec!["a".into()],
            },
        );
        match h.to_client(C1)[..] {
            [ToClient::RetireWorkersDone {
                retired,
                error: Some(e),
                ..
            }] => {
                assert!(retired.is_empty());
                assert!(e.contains("no other worker"), "{e}");
            }
            ref other => panic!("{other:?}"),
        }
        assert_eq!(h.s.worker_count(), 1);
        // It still runs tasks.
        h.take();
        h.submit(C1, vec![spec("y", "inc", &[])], &["y"]);
        assert_eq!(h.computes(1), vec!["y"]);
    }

    #[test]
    fn a_worker_retiring_itself_with_nothing_unique_closes_at_once() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        h.take();
        h.worker_sends(1, ToScheduler::RetireMe);
        assert!(h
            .take()
            .iter()
            .any(|m| matches!(m, Outgoing::Worker(WorkerId(1), ToWorker::Close { .. }))));
        assert_eq!(h.s.worker_count(), 1);
    }

    #[test]
    fn scatter_and_data_lost() {
        let mut h = H::new();
        h.client(
            C1,
            ToScheduler::Scatter {
                request_id: 7,
                data: vec![("s".into(), Payload::new(vec![1]))],
                workers: vec![],
            },
        );
        assert!(matches!(
            h.to_client(C1)[..],
            [ToClient::ScatterDone {
                request_id: 7,
                error: Some(_)
            }]
        ));
        assert_eq!(h.s.ntasks(), 0);
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        h.take();
        h.client(
            C1,
            ToScheduler::Scatter {
                request_id: 8,
                data: vec![
                    ("s1".into(), Payload::new(vec![1])),
                    ("s2".into(), Payload::new(vec![2, 2])),
                ],
                workers: vec![],
            },
        );
        let stores: Vec<u64> = h
            .out
            .iter()
            .filter_map(|m| match m {
                Outgoing::Worker(w, ToWorker::StoreData { .. }) => Some(w.0),
                _ => None,
            })
            .collect();
        assert_eq!(stores, vec![1, 2]);
        assert!(matches!(
            h.to_client(C1).last(),
            Some(ToClient::ScatterDone {
                request_id: 8,
                error: None
            })
        ));
        assert_eq!(h.state("s1"), Some(TaskState::Memory));
        h.take();
        h.client(
            C1,
            ToScheduler::WhoHas {
                request_id: 3,
                keys: vec!["s2".into(), "zz".into()],
            },
        );
        match h.to_client(C1)[..] {
            [ToClient::WhoHasReply { request_id: 3, who_has }] => {
                assert_eq!(who_has[0].workers, vec!["tcp://b:1".to_string()]);
                assert_eq!(who_has[0].nbytes, 2);
                assert!(who_has[1].workers.is_empty());
            }
            ref other => panic!("{other:?}"),
        }
        // A task on scattered data, then the holder dies.
        h.submit(C1, vec![spec("t", "inc", &["s2"])], &["t"]);
        assert_eq!(h.computes(2), vec!["t".to_string()]);
        h.kill(2);
        assert_eq!(h.state("s2"), Some(TaskState::Erred));
        assert_eq!(h.state("t"), Some(TaskState::Erred));
        let errs: Vec<&TaskFailure> = h
            .to_client(C1)
            .into_iter()
            .filter_map(|m| match m {
                ToClient::TaskErred { failure, .. } => Some(failure),
                _ => None,
            })
            .collect();
        assert_eq!(errs.len(), 2);
        assert_eq!(errs[0].kind, ErrorKind::DataLost);
        assert!(errs[0].message.contains("lost with worker b"));
        assert_eq!(errs[1].kind, ErrorKind::DependencyFailed);
        h.remove_client_all();
        assert_eq!(h.s.ntasks(), 0);
    }

    impl H {
        fn remove_client_all(&mut self) {
            let mut o = Outbox::default();
            self.s.remove_client(C1, &mut o);
            self.s.remove_client(C2, &mut o);
            self.out.extend(o.messages);
            assert_eq!(self.s.client_count(), 0);
        }
    }

    #[test]
    fn add_keys_and_stale_messages() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.worker(2, "b", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
        h.finish(1, "x");
        h.take();
        h.worker_sends(
            2,
            ToScheduler::AddKeys {
                keys: vec![("x".into(), 8), ("gone".into(), 1)],
            },
        );
        assert_eq!(h.freed(2), vec!["gone".to_string()]);
        // A stale finish from a worker that was not running it.
        h.take();
        h.finish(2, "zzz");
        h.worker_sends(
            2,
            ToScheduler::TaskErred {
                key: "x".into(),
                failure: failure("late"),
            },
        );
        assert_eq!(h.state("x"), Some(TaskState::Memory));
        assert_eq!(h.freed(2), vec!["zzz".to_string()]);
        h.worker_sends(
            2,
            ToScheduler::Heartbeat {
                nkeys: 5,
                nbytes: 50,
                executing: 0,
                ready: 0,
            },
        );
        let info = h.s.info();
        assert_eq!(info.workers[1].nkeys, 5);
        assert_eq!(info.nclients, 2);
        h.take();
        h.release(C1, &["x"]);
        let mut f = h.freed(1);
        f.extend(h.freed(2));
        assert_eq!(f, vec!["x".to_string(), "x".to_string()]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn close_client_releases() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["x", "y"]);
        h.submit(C2, vec![], &["x"]);
        h.client(C1, ToScheduler::CloseClient);
        assert_eq!(h.state("y"), None);
        assert_eq!(h.state("x"), Some(TaskState::Processing));
        let mut o = Outbox::default();
        h.s.remove_client(C2, &mut o);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn deep_chain_and_wide_fan_in() {
        let mut h = H::new();
        h.worker(1, "a", &["inc"]);
        let n = 20_000;
        let mut tasks = vec![spec("k0", "inc", &[])];
        for i in 1..n {
            tasks.push(spec(&format!("k{i}"), "inc", &[&format!("k{}", i - 1)]));
        }
        let last = format!("k{}", n - 1);
        h.submit(C1, tasks, &[&last]);
        for i in 0..n {
            h.finish(1, &format!("k{i}"));
            h.take();
        }
        assert_eq!(h.state(&last), Some(TaskState::Memory));
        // Intermediate data was freed as it went.
        assert_eq!(h.s.counts[TaskState::Memory.index()], 1);
        h.release(C1, &[&last]);
        assert_eq!(h.s.ntasks(), 0);
    }

    #[test]
    fn slot_size() {
        // Keep an eye on the per-task footprint.
        assert!(
            std::mem::size_of::<TaskSlot>() <= 256,
            "{}",
            std::mem::size_of::<TaskSlot>()
        );
    }

    /// `cargo test --release -- --ignored --nocapture bench_`: rough cost
    /// per task through submit, compute, finish and release.
    #[test]
    #[ignore]
    fn bench_throughput() {
        let n: usize = std::env::var("BENCH_N")
            .ok()
            .and_then(|v| v.parse().ok())
            .unwrap_or(200_000);
        for &(n, width) in &[(n, 1usize), (n, 100)] {
            let mut s = SchedulerState::new(SchedulerConfig::default());
            let mut out = Outbox::default();
            s.add_client(C1, &mut out);
            for w in 0..8 {
                let mut r = reg(&format!("w{w}"), &["inc"]);
                r.nthreads = 4;
                s.add_worker(WorkerId(w), r, &mut out).unwrap();
            }
            // `width` independent chains of n / width tasks, all wanted.
            let specs: Vec<TaskSpec> = (0..n)
                .map(|i| {
                    if i < width {
                        spec(&format!("t{i}"), "inc", &[])
                    } else {
                        spec(&format!("t{i}"), "inc", &[&format!("t{}", i - width)])
                    }
                })
                .collect();
            let keys: Vec<String> = specs.iter().map(|t| t.key.clone()).collect();
            out.messages.clear();
            let start = std::time::Instant::now();
            s.handle_client_message(
                C1,
                ToScheduler::UpdateGraph {
                    tasks: specs,
                    wanted: keys.clone(),
                },
                &mut out,
            )
            .unwrap();
            let submitted = start.elapsed();
            let mut done = 0;
            while !out.messages.is_empty() {
                let msgs = std::mem::take(&mut out.messages);
                for m in msgs {
                    if let Outgoing::Worker(w, ToWorker::ComputeTask { key, .. }) = m {
                        done += 1;
                        s.handle_worker_message(
                            w,
                            ToScheduler::TaskFinished {
                                key,
                                nbytes: 8,
                                inline: Some(Payload::new(vec![0u8; 8])),
                                duration_us: 100,
                            },
                            &mut out,
                        )
                        .unwrap();
                    }
                }
            }
            let computed = start.elapsed();
            assert_eq!(done, n);
            let start = std::time::Instant::now();
            s.handle_client_message(C1, ToScheduler::ReleaseKeys { keys }, &mut out)
                .unwrap();
            let released = start.elapsed();
            assert_eq!(s.ntasks(), 0);
            eprintln!(
                "{n} tasks in {width} chains: submit {:.0} ns/task, submit+compute {:.0} ns/task, release {:.0} ns/task",
                submitted.as_nanos() as f64 / n as f64,
                computed.as_nanos() as f64 / n as f64,
                released.as_nanos() as f64 / n as f64
            );
        }
        eprintln!("TaskSlot: {} bytes", std::mem::size_of::<TaskSlot>());
    }

    // ------------------------------------------------------------ proptest

    /// A fake worker: executes ComputeTask by summing i64 arguments,
    /// fetching dependency values from the fake workers the scheduler named.
    struct Fake {
        addr: String,
        inbox: VecDeque<ToWorker>,
        ready: Vec<(String, Vec<Arg>, Vec<DependencyLocation>)>,
        data: HashMap<String, i64>,
    }

    struct Sim {
        s: SchedulerState,
        fakes: BTreeMap<u64, Fake>,
        next_worker: u64,
        client_msgs: Vec<ToClient>,
        rng: u64,
        /// Message trace, printed for the failing key; on with SIM_LOG=1.
        log: Option<Vec<String>>,
    }

    impl Sim {
        fn rand(&mut self, n: usize) -> usize {
            // xorshift
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            (self.rng % n.max(1) as u64) as usize
        }
        fn route(&mut self, out: Outbox) {
            for m in out.messages {
                if let Some(log) = &mut self.log {
                    log.push(format!("S-> {m:?}"));
                }
                match m {
                    Outgoing::Worker(w, msg) => {
                        if let Some(f) = self.fakes.get_mut(&w.0) {
                            f.inbox.push_back(msg);
                        }
                    }
                    Outgoing::Client(_, msg) => self.client_msgs.push(msg),
                }
            }
        }
        fn add_worker(&mut self) {
            let id = self.next_worker;
            self.next_worker += 1;
            let mut r = reg(&format!("w{id}"), &["add"]);
            r.nthreads = 1 + (id % 2) as u32;
            self.fakes.insert(
                id,
                Fake {
                    addr: r.address.clone(),
                    inbox: VecDeque::new(),
                    ready: Vec::new(),
                    data: HashMap::new(),
                },
            );
            let mut out = Outbox::default();
            self.s.add_worker(WorkerId(id), r, &mut out).unwrap();
            self.route(out);
        }
        fn kill(&mut self, id: u64) {
            if let Some(log) = &mut self.log {
                log.push(format!("KILL w{id}"));
            }
            self.fakes.remove(&id);
            let mut out = Outbox::default();
            self.s.remove_worker(WorkerId(id), &mut out);
            self.route(out);
        }
        fn send(&mut self, id: u64, msg: ToScheduler) {
            if let Some(log) = &mut self.log {
                log.push(format!("w{id} -> S {msg:?}"));
            }
            let mut out = Outbox::default();
            self.s.handle_worker_message(WorkerId(id), msg, &mut out).unwrap();
            self.route(out);
        }
        /// Processes one inbox message of worker `id`.
        fn deliver(&mut self, id: u64) -> bool {
            let Some(f) = self.fakes.get_mut(&id) else {
                return false;
            };
            let Some(msg) = f.inbox.pop_front() else {
                return false;
            };
            if let Some(log) = &mut self.log {
                log.push(format!("w{id} handles {msg:?}"));
            }
            match msg {
                ToWorker::ComputeTask {
                    key,
                    args,
                    dependencies,
                    ..
                } => f.ready.push((key, args, dependencies)),
                ToWorker::FreeKeys { keys } => {
                    for k in keys {
                        f.data.remove(&k);
                        f.ready.retain(|r| r.0 != k);
                    }
                }
                ToWorker::StoreData { .. } | ToWorker::Registered { .. } => {}
                // A task not yet run may be given up (as a real worker's
                // ready task not yet handed to a thread).
                ToWorker::StealRequest { key } => {
                    let before = f.ready.len();
                    f.ready.retain(|r| r.0 != key);
                    let stolen = f.ready.len() < before;
                    self.send(id, ToScheduler::StealResponse { key, stolen });
                }
                // The simulation does not retire workers.
                ToWorker::Close { .. } | ToWorker::AcquireReplicas { .. } => {}
            }
            true
        }
        /// Runs ready task `i` of worker `id`.
        fn execute(&mut self, id: u64, i: usize) {
            let (key, args, deps) = self.fakes.get_mut(&id).unwrap().ready.remove(i);
            let mut fetched = Vec::new();
            let mut values: HashMap<String, i64> = HashMap::new();
            for d in &deps {
                if let Some(&v) = self.fakes[&id].data.get(&d.key) {
                    values.insert(d.key.clone(), v);
                    continue;
                }
                let found = d.who_has.iter().find_map(|a| {
                    self.fakes
                        .values()
                        .find(|f| &f.addr == a)
                        .and_then(|f| f.data.get(&d.key).copied())
                });
                match found {
                    Some(v) => {
                        values.insert(d.key.clone(), v);
                        fetched.push(d.key.clone());
                    }
                    None => {
                        let errant = d.who_has.first().cloned().unwrap_or_default();
                        self.send(
                            id,
                            ToScheduler::MissingData {
                                key: d.key.clone(),
                                errant_worker: errant,
                            },
                        );
                        return;
                    }
                }
            }
            let mut sum = 0i64;
            for a in &args {
                match a {
                    Arg::Value(b) => sum += i64::from_le_bytes(b[..8].try_into().unwrap()),
                    keys => sum += keys.keys().map(|k| values[k]).sum::<i64>(),
                }
            }
            let f = self.fakes.get_mut(&id).unwrap();
            for k in &fetched {
                f.data.insert(k.clone(), values[k]);
            }
            f.data.insert(key.clone(), sum);
            if !fetched.is_empty() {
                self.send(
                    id,
                    ToScheduler::AddKeys {
                        keys: fetched.into_iter().map(|k| (k, 8)).collect(),
                    },
                );
            }
            let duration_us = self.rand(1000) as u64;
            self.send(
                id,
                ToScheduler::TaskFinished {
                    key,
                    nbytes: 8,
                    inline: None,
                    duration_us,
                },
            );
        }
        /// One random step: deliver a message or execute a task.
        fn step(&mut self) -> bool {
            let ids: Vec<u64> = self.fakes.keys().copied().collect();
            let busy: Vec<u64> = ids
                .iter()
                .copied()
                .filter(|id| !self.fakes[id].inbox.is_empty() || !self.fakes[id].ready.is_empty())
                .collect();
            if busy.is_empty() {
                return false;
            }
            if self.rand(16) == 0 {
                let mut out = Outbox::default();
                self.s.balance(&mut out);
                self.route(out);
            }
            let id = busy[self.rand(busy.len())];
            let f = &self.fakes[&id];
            if !f.inbox.is_empty() && (f.ready.is_empty() || self.rand(2) == 0) {
                self.deliver(id);
            } else {
                let n = self.fakes[&id].ready.len();
                let i = self.rand(n);
                self.execute(id, i);
            }
            true
        }
        fn dump(&self, k: &str) {
            let pat = format!("\"{k}\"");
            for l in self.log.iter().flatten() {
                if l.contains(&pat) || l.starts_with("KILL") {
                    eprintln!("{l}");
                }
            }
        }
        fn run_to_quiescence(&mut self) {
            for _ in 0..200_000 {
                if !self.step() {
                    return;
                }
            }
            panic!("no quiescence");
        }
    }

    fn truth(graph: &[(Vec<usize>, i64)]) -> Vec<i64> {
        let mut v: Vec<i64> = Vec::new();
        for (deps, c) in graph {
            let x = c + deps.iter().map(|&d| v[d]).sum::<i64>();
            v.push(x);
        }
        v
    }

    fn run_sim(
        graph: Vec<(Vec<usize>, i64)>,
        wanted: Vec<bool>,
        priorities: Vec<i32>,
        nworkers: usize,
        actions: Vec<u16>,
        seed: u64,
        split: usize,
    ) {
        let mut sim = Sim {
            s: SchedulerState::new(SchedulerConfig {
                allowed_failures: 1000,
                ..Default::default()
            }),
            fakes: BTreeMap::new(),
            next_worker: 1,
            client_msgs: Vec::new(),
            rng: seed | 1,
            log: std::env::var_os("SIM_LOG").map(|_| Vec::new()),
        };
        let mut out = Outbox::default();
        sim.s.add_client(C1, &mut out);
        sim.route(out);
        for _ in 0..nworkers {
            sim.add_worker();
        }
        let key = |i: usize| format!("add-{i}");
        let specs: Vec<TaskSpec> = graph
            .iter()
            .enumerate()
            .map(|(i, (deps, c))| {
                let mut args = vec![Arg::Value(c.to_le_bytes().to_vec())];
                // Every other task takes its dependencies as one list
                // argument, so lists get the same deaths and releases.
                if i % 2 == 0 {
                    args.extend(deps.iter().map(|&d| Arg::Key(key(d))));
                } else {
                    args.push(Arg::Keys(deps.iter().map(|&d| key(d)).collect()));
                }
                TaskSpec {
                    key: key(i),
                    function: "add".into(),
                    args,
                    priority: priorities[i % priorities.len()],
                    workers: Vec::new(),
                    allow_other_workers: false,
                    retries: 0,
                    resources: Vec::new(),
                }
            })
            .collect();
        let wanted_keys: Vec<String> = (0..graph.len())
            .filter(|&i| wanted[i % wanted.len()])
            .map(key)
            .collect();
        // Submit in two batches (the second may depend on the first): the
        // first batch's keys the second needs are wanted meanwhile, then
        // released once the second batch holds them.
        let split = split % (specs.len() + 1);
        let mut specs = specs;
        let second = specs.split_off(split);
        let needed_later: Vec<String> = (0..split)
            .filter(|&i| !wanted_keys.contains(&key(i)) && graph[split..].iter().any(|(d, _)| d.contains(&i)))
            .map(key)
            .collect();
        let first_wanted: Vec<String> = (0..split)
            .map(key)
            .filter(|k| wanted_keys.contains(k) || needed_later.contains(k))
            .collect();
        let second_wanted: Vec<String> = (split..graph.len())
            .map(key)
            .filter(|k| wanted_keys.contains(k))
            .collect();
        for msg in [
            ToScheduler::UpdateGraph {
                tasks: specs,
                wanted: first_wanted,
            },
            ToScheduler::UpdateGraph {
                tasks: second,
                wanted: second_wanted,
            },
            ToScheduler::ReleaseKeys { keys: needed_later },
        ] {
            let mut out = Outbox::default();
            sim.s.handle_client_message(C1, msg, &mut out).unwrap();
            sim.route(out);
            sim.step();
        }
        let mut deaths = 0;
        for a in actions {
            match a % 16 {
                0 if deaths < 6 && !sim.fakes.is_empty() => {
                    let ids: Vec<u64> = sim.fakes.keys().copied().collect();
                    let id = ids[sim.rand(ids.len())];
                    sim.kill(id);
                    deaths += 1;
                }
                1 if sim.fakes.len() < 4 => sim.add_worker(),
                _ => {
                    sim.step();
                }
            }
        }
        if sim.fakes.is_empty() {
            sim.add_worker();
        }
        sim.run_to_quiescence();

        let values = truth(&graph);
        // Every value anywhere is right.
        for f in sim.fakes.values() {
            for (k, v) in &f.data {
                let i: usize = k[4..].parse().unwrap();
                assert_eq!(*v, values[i], "{k}");
            }
        }
        // Every wanted key's last news is KeyInMemory, and the scheduler's
        // holders are alive and have it.
        for k in &wanted_keys {
            let last = sim.client_msgs.iter().rev().find(|m| match m {
                ToClient::KeyInMemory { key, .. }
                | ToClient::KeyLost { key }
                | ToClient::TaskErred { key, .. }
                | ToClient::NoWorker { key, .. } => key == k,
                _ => false,
            });
            assert!(
                matches!(last, Some(ToClient::KeyInMemory { .. })),
                "{k}: {last:?} state {:?}",
                sim.s.task_state(k)
            );
            assert_eq!(sim.s.task_state(k), Some(TaskState::Memory));
            let t = sim.s.keys[k];
            let holders = sim.s.addresses(&sim.s.slot(t).who_has);
            assert!(!holders.is_empty());
            let i: usize = k[4..].parse().unwrap();
            for a in holders {
                let f = sim.fakes.values().find(|f| f.addr == a).expect("holder alive");
                if f.data.get(k) != Some(&values[i]) {
                    sim.dump(k);
                }
                assert_eq!(f.data.get(k), Some(&values[i]), "{k} on {a}");
            }
        }
        // Nothing is processing anymore.
        assert_eq!(sim.s.counts[TaskState::Processing.index()], 0);
        // Release everything: nothing is left, anywhere.
        let mut out = Outbox::default();
        sim.s
            .handle_client_message(C1, ToScheduler::ReleaseKeys { keys: wanted_keys }, &mut out)
            .unwrap();
        sim.route(out);
        sim.run_to_quiescence();
        assert_eq!(sim.s.ntasks(), 0);
        for f in sim.fakes.values() {
            if let Some(k) = f.data.keys().next() {
                sim.dump(k);
            }
            assert!(f.data.is_empty(), "{:?}", f.data);
        }
        assert!(sim.s.keys.is_empty() && sim.s.no_worker.is_empty());
        assert!(sim.s.queued_fns.is_empty());
        for w in sim.s.workers.iter().flatten() {
            assert!(w.processing.is_empty() && w.has_what.is_empty());
            assert_eq!(w.occupancy_ns, 0);
        }
    }

    proptest::proptest! {
        // 64 cases by default (fast); PROPTEST_CASES=5000 for a soak.
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(
            std::env::var("PROPTEST_CASES").ok().and_then(|v| v.parse().ok()).unwrap_or(64)
        ))]
        #[test]
        fn random_dags_with_worker_deaths(
            raw in proptest::collection::vec(
                (proptest::collection::vec(proptest::prelude::any::<u16>(), 0..4), -100i64..100),
                1..60,
            ),
            wanted in proptest::collection::vec(proptest::prelude::any::<bool>(), 1..8),
            priorities in proptest::collection::vec(-2i32..3, 1..5),
            nworkers in 1usize..=4,
            actions in proptest::collection::vec(proptest::prelude::any::<u16>(), 0..400),
            seed in proptest::prelude::any::<u64>(),
            split in proptest::prelude::any::<usize>(),
        ) {
            let graph: Vec<(Vec<usize>, i64)> = raw
                .into_iter()
                .enumerate()
                .map(|(i, (deps, c))| {
                    let deps = if i == 0 {
                        Vec::new()
                    } else {
                        deps.into_iter().map(|d| d as usize % i).collect()
                    };
                    (deps, c)
                })
                .collect();
            run_sim(graph, wanted, priorities, nworkers, actions, seed, split);
        }
    }
}
