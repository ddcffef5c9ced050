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
//! removal per forgotten dependent). String keys are only used at the edge,
//! through one index (`util::key_index::KeyIndex`) that stores task ids and
//! reads each key from its slot, so a key is stored once (issue 15). Per-task counters (`waiting_on`,
//! `active_dependents`, `live_dependents`) make every check O(1), so wide
//! fan-in/fan-out graphs stay linear. Workers are ranked in a `BTreeSet`
//! by occupancy per thread, so placing a root task costs O(log workers) when
//! workers share their functions. No string formatting on the hot path:
//! `format!` only builds error messages.
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
//! # Run ids
//!
//! Every `ComputeTask` carries a fresh run id (`TaskSlot::run`), and the
//! worker echoes the latest one it received for the key in `TaskFinished` /
//! `TaskErred`. A completion is the current run's only if it comes from the
//! worker the task is processing on *and* carries its run id; any other is
//! stale (the run was since stolen, released, or rescheduled). A stale one
//! from the worker the task is processing on again is ignored: a `FreeKeys`
//! of the old run preceded the new `ComputeTask` on that connection, and
//! the worker will report the new run. A stale one from any other worker is
//! answered with `FreeKeys` (unless that worker is a known holder). Keys a
//! worker announces without running them (`AddKeys`) carry no run id: an
//! `AddKeys` from a worker that was sent a `FreeKeys` of the key since its
//! last `ComputeTask` of it is answered with `FreeKeys` (`Extra::freed_on`).
//!
//! # What this expects of workers
//!
//! `FreeKeys` both deletes data and cancels queued/running tasks of those
//! keys, in message order. After `MissingData` a worker may drop the task
//! that needed the data: the scheduler re-sends its `ComputeTask` (with fresh
//! locations) or cancels it. A `ComputeTask` may name a key the worker
//! already holds or was told to free before: it must run it again.
//!
//! # Layout
//!
//! One state type, [`SchedulerState`], with its behaviour in sibling
//! modules by concern (`impl SchedulerState` blocks): `handlers` (the
//! events), `membership` (workers joining and leaving), `graph` (intake),
//! `release` (the release rule), `transitions` (state changes),
//! `placement`, `no_worker` (why and how long a task waits for a worker),
//! `results`, `lost_data`, `stealing`, `data_moves`, `retirement`,
//! `pausing` (paused workers), `restart` (`Client::restart`), `notify` (outgoing messages), `invariants`,
//! `reconnect` (peers coming back), `journal` and `recovery` (restarting from a journal),
//! and `coordinated` (the coordination primitives of `coordination`).
//! The records
//! live in `ids`, `tasks`, `workers`; the public vocabulary in `types`.

use std::collections::BTreeSet;
use std::time::Instant;

use super::coordination::{Coordination, HOLDER};
use super::diagnostics::Diagnostics;
use super::ids::{FnId, QueueKey, RankKey, TaskId, TaskRef, WIdx};
use super::restart::RestartRequest;
use super::tasks::{FnInfo, TaskSlot};
use super::workers::{ClientSlot, RetireRequest, WorkerSlot};
use crate::util::key_index::KeyIndex;
use crate::util::FxMap;
use crate::wire::messages::{SchedulerInfo, WorkerStatus, WorkerSummary};

pub use super::types::{
    ClientId, Outbox, Outgoing, SchedulerConfig, SchedulerError, TaskState, WorkerId, WorkerRegistration,
    DEEP_PIPELINE_MAX_RESULT_BYTES,
};

/// The scheduler's state machine. See the module documentation.
#[derive(Debug)]
pub struct SchedulerState {
    pub(super) config: SchedulerConfig,
    pub(super) tasks: Vec<TaskSlot>,
    pub(super) free_tasks: Vec<TaskId>,
    /// Task of each key, indexed through the slots (the key lives once,
    /// in its slot; see `util::key_index`).
    pub(super) keys: KeyIndex,
    pub(super) counts: [u64; 8],
    pub(super) fns: Vec<FnInfo>,
    /// The task stream and the event log (bounded rings).
    pub(super) diag: Diagnostics,
    pub(super) fn_ids: FxMap<String, FnId>,
    /// Functions whose queue is not empty.
    pub(super) queued_fns: BTreeSet<FnId>,
    pub(super) no_worker: BTreeSet<QueueKey>,
    /// When each task in `no_worker` was first seen there by
    /// [`SchedulerState::expire_no_worker`] (see `no_worker`).
    pub(super) no_worker_since: FxMap<QueueKey, Instant>,
    /// Worker arena. Indices are never reused (a dead worker's slot stays
    /// `None`, 8 bytes), so that a stale index can never alias a new worker.
    pub(super) workers: Vec<Option<Box<WorkerSlot>>>,
    pub(super) worker_ids: FxMap<WorkerId, WIdx>,
    pub(super) worker_names: FxMap<String, WIdx>,
    pub(super) worker_addrs: FxMap<String, WIdx>,
    pub(super) ranked: BTreeSet<RankKey>,
    pub(super) nroomy: usize,
    pub(super) clients: FxMap<ClientId, ClientSlot>,
    pub(super) next_sequence: u64,
    pub(super) scatter_rr: usize,
    /// Scatters answered once their holders confirm (`scatter_acks`).
    pub(super) pending_scatters: Vec<super::scatter_acks::PendingScatter>,
    pub(super) epoch: u64,
    /// Tasks to check against the release rule at the end of the event.
    pub(super) candidates: Vec<TaskId>,
    /// Workers whose processing shrank: pull queued tasks onto them.
    pub(super) dirty_workers: Vec<WIdx>,
    /// Reused buffer (tasks made ready by a result), to save an allocation.
    pub(super) scratch: Vec<TaskId>,
    /// Graceful retirements in progress.
    pub(super) retire_requests: Vec<RetireRequest>,
    /// The work-stealing pass's thieves and victims, kept between passes
    /// (see `balance_inner`).
    pub(super) steal_scratch: super::stealing::StealScratch,
    /// How many run ids were handed out (`ComputeTask::run_id`): the high
    /// half of the next one (see [`SchedulerState::next_run_id`]).
    pub(super) last_run: u64,
    /// Worker-to-worker bandwidth, bytes/s: `default_bandwidth` until
    /// workers report transfers (`TransferStats`), then their running
    /// average.
    pub(super) bandwidth: f64,
    /// Steal requests awaiting the victim's answer: task → thief. Cleared
    /// whenever the task leaves `processing`, so an answer about an older
    /// assignment is ignored.
    pub(super) steals: FxMap<TaskId, WIdx>,
    /// Rebalance moves under way: task → (source, target). The source is
    /// freed when the target announces the key (`AddKeys`).
    pub(super) moving: FxMap<TaskId, (WIdx, WIdx)>,
    /// Locks, semaphores, queues, variables, events, datasets, topics
    /// (`coordination`, glued in by `coordinated`).
    pub(super) coord: Coordination,
    /// Restarts (`Client::restart`) waiting for their workers to return.
    pub(super) restarts: Vec<RestartRequest>,
    /// Journal records of the events since the actor last took them;
    /// `None`: no journal (`journal`).
    pub(super) journal: Option<Vec<super::journal::JournalRecord>>,
    /// A restart from the journal waiting for its workers (`recovery`).
    pub(super) recovery: Option<Box<super::recovery::Recovery>>,
    /// Client sessions restored from the journal, dropped at the instant
    /// unless they reconnected (`recovery`).
    pub(super) journal_clients: Option<(Instant, Vec<ClientId>)>,
    /// Peer-to-peer shuffles' current runs (`scheduler::shuffle`).
    pub(super) shuffles: crate::shuffle::ShuffleRuns<WorkerId>,
}

impl SchedulerState {
    /// An empty scheduler.
    pub fn new(config: SchedulerConfig) -> Self {
        SchedulerState {
            tasks: Vec::new(),
            free_tasks: Vec::new(),
            keys: KeyIndex::new(),
            counts: [0; 8],
            fns: Vec::new(),
            diag: Diagnostics::default(),
            fn_ids: FxMap::default(),
            queued_fns: BTreeSet::new(),
            no_worker: BTreeSet::new(),
            no_worker_since: FxMap::default(),
            workers: Vec::new(),
            worker_ids: FxMap::default(),
            worker_names: FxMap::default(),
            worker_addrs: FxMap::default(),
            ranked: BTreeSet::new(),
            nroomy: 0,
            clients: FxMap::default(),
            next_sequence: 0,
            scatter_rr: 0,
            pending_scatters: Vec::new(),
            epoch: 0,
            candidates: Vec::new(),
            dirty_workers: Vec::new(),
            scratch: Vec::new(),
            retire_requests: Vec::new(),
            steal_scratch: Default::default(),
            last_run: 0,
            bandwidth: config.default_bandwidth,
            steals: FxMap::default(),
            moving: FxMap::default(),
            coord: Coordination::new(std::time::Duration::from_secs_f64(config.lease_timeout_s.max(0.0))),
            restarts: Vec::new(),
            journal: None,
            recovery: None,
            journal_clients: None,
            shuffles: Default::default(),
            config,
        }
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
            nclients: self.client_count() as u64,
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
                        status: if ws.paused.is_some() {
                            WorkerStatus::Paused
                        } else {
                            WorkerStatus::Running
                        },
                        spilled_bytes: ws.load.figures.spilled_bytes,
                        rss_bytes: ws.load.figures.rss_bytes,
                        cpu_percent: ws.load.figures.cpu_percent.round() as u32,
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
        self.task_id(key).map(|t| self.slot(t).state)
    }

    /// Connected workers.
    pub fn worker_count(&self) -> usize {
        self.worker_ids.len()
    }

    /// Connected clients.
    pub fn client_count(&self) -> usize {
        self.clients.len() - usize::from(self.clients.contains_key(&HOLDER))
    }

    /// The task of `key`, if known.
    pub(super) fn task_id(&self, key: &str) -> Option<TaskId> {
        let tasks = &self.tasks;
        self.keys.get(key, |i| tasks[i as usize].key.as_str()).map(TaskId)
    }

    /// A new run id for an assignment of `t`: a sequence number above the
    /// task's slot index, so that the `TaskFinished` echoing it finds its
    /// slot without a key lookup ([`Self::task_of_run`]). Never 0 (the
    /// sequence runs from 1 to `u32::MAX`, then starts at 1 again); unique
    /// unless 2^32 assignments come between two of one slot, and a match is
    /// also checked against the key.
    pub(super) fn next_run_id(&mut self, t: TaskId) -> u64 {
        self.last_run = self.last_run % u64::from(u32::MAX) + 1;
        (self.last_run << 32) | u64::from(t.0)
    }

    /// The task `key` names, found through `run_id` when that is the
    /// slot's current run of that key (a completion of the current run:
    /// the common case), else through the key index.
    pub(super) fn task_of_run(&self, key: &str, run_id: u64) -> Option<TaskId> {
        let t = TaskId(run_id as u32);
        match self.tasks.get(t.0 as usize) {
            Some(s) if s.run == run_id && s.state != TaskState::Forgotten && s.key == key => Some(t),
            _ => self.task_id(key),
        }
    }

    /// The task whose current run is `run_id`, found without a key
    /// lookup; None for a run that is over (stolen, released, rescheduled).
    pub(super) fn task_of_run_id(&self, run_id: u64) -> Option<TaskId> {
        let t = TaskId(run_id as u32);
        match self.tasks.get(t.0 as usize) {
            Some(s) if s.run == run_id && s.state != TaskState::Forgotten => Some(t),
            _ => None,
        }
    }

    pub(super) fn slot(&self, t: TaskId) -> &TaskSlot {
        &self.tasks[t.0 as usize]
    }

    pub(super) fn slot_mut(&mut self, t: TaskId) -> &mut TaskSlot {
        &mut self.tasks[t.0 as usize]
    }

    pub(super) fn worker(&self, w: WIdx) -> &WorkerSlot {
        self.workers[w.0 as usize].as_ref().expect("live worker index")
    }

    pub(super) fn worker_mut(&mut self, w: WIdx) -> &mut WorkerSlot {
        self.workers[w.0 as usize].as_mut().expect("live worker index")
    }

    pub(super) fn is_live(&self, r: TaskRef) -> bool {
        let s = self.slot(r.id);
        s.gen == r.gen && s.state != TaskState::Forgotten
    }

    pub(super) fn live_dependents(&self, t: TaskId) -> Vec<TaskId> {
        self.slot(t)
            .dependents
            .iter()
            .filter(|&&r| self.is_live(r))
            .map(|r| r.id)
            .collect()
    }

    pub(super) fn addresses(&self, ws: &[WIdx]) -> Vec<String> {
        ws.iter().map(|&w| self.worker(w).address.clone()).collect()
    }

    pub(super) fn needed(&self, t: TaskId) -> bool {
        let s = self.slot(t);
        // A direct scatter's key is its client's only once answered; until
        // then the pending scatter keeps it.
        !s.wanted_by.is_empty()
            || s.active_dependents > 0
            || (s.scattered && self.pending_scatters.iter().any(|p| p.wanted.contains(&t)))
    }

    pub(super) fn intern_fn(&mut self, name: &str) -> FnId {
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
            actor: name.starts_with(crate::wire::messages::ACTOR_FUNCTION_PREFIX),
            counts: [0; 8],
            roots_taken: 0,
            run_worker: None,
        });
        self.fn_ids.insert(name.to_string(), f);
        f
    }

    /// Whether task `t` created an actor (see `FnInfo::actor`).
    pub(super) fn is_actor(&self, t: TaskId) -> bool {
        self.fns[self.slot(t).func as usize].actor
    }

    pub(super) fn expected_ns(&self, f: FnId) -> u64 {
        let avg = self.fns[f as usize]
            .avg_ns
            .unwrap_or(self.config.default_task_duration_s * 1e9);
        (avg as u64).max(1)
    }

    /// Starts an event: batching of `FreeKeys` never spans two events, since
    /// the caller may have drained the outbox in between.
    pub(super) fn begin(&mut self) {
        self.epoch += 1;
    }

    /// Ends an event: runs the deferred release checks and pulls queued tasks
    /// onto workers that got room.
    pub(super) fn finish(&mut self, out: &mut Outbox) {
        loop {
            if let Some(t) = self.candidates.pop() {
                self.maybe_release(t, out);
            } else if !out.held_done.is_empty() {
                self.held_keys_done(out);
            } else if let Some(w) = self.dirty_workers.pop() {
                if self.workers[w.0 as usize].is_some() {
                    self.drain(w, out);
                }
            } else if self.retire_requests.is_empty() || !self.advance_retirements(out) {
                break;
            }
        }
    }
}
