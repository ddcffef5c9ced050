//! The worker table's records: worker slots, client slots and graceful
//! retirement requests.

use super::ids::{FnId, RankKey, TaskId, WIdx};
use super::pausing::Pause;
use super::types::{ClientId, WorkerId};
use crate::util::{FxMap, FxSet};

#[derive(Debug)]
pub(super) struct WorkerSlot {
    pub(super) id: WorkerId,
    pub(super) name: String,
    pub(super) address: String,
    pub(super) nthreads: u32,
    pub(super) memory_limit: u64,
    pub(super) functions: Vec<String>,
    /// `fn_mask[f]`: whether it has function `f` (functions interned after
    /// it registered are not in its list, hence out of range = false).
    pub(super) fn_mask: Vec<bool>,
    /// Abstract resources it declared; a task asking for resources goes
    /// only to a worker declaring at least as much of each (the worker
    /// itself limits how many such tasks run at once).
    pub(super) resources: Vec<(String, f64)>,
    /// Tasks assigned to it, with what they were expected to cost it when
    /// assigned (so that removing one subtracts exactly what was added).
    pub(super) processing: FxMap<TaskId, Expected>,
    pub(super) has_what: FxSet<TaskId>,
    pub(super) occupancy_ns: u64,
    /// The part of `occupancy_ns` that is a guess: tasks whose function
    /// had no measured duration when they were assigned (each counted at
    /// `default_task_duration_s`). Placement does not let it pay for
    /// moving bytes (`docs/scheduling.md`, "Placement on first sight").
    pub(super) guessed_ns: u64,
    /// The fetches of the inputs its processing tasks lacked when they
    /// were assigned (with `first_sight_locality`), ns: known work that
    /// placement counts (as Dask counts it in occupancy); not in
    /// `occupancy_ns`, which also decides root-task room.
    pub(super) fetch_ns: u64,
    pub(super) known_nbytes: u64,
    pub(super) heartbeat: Option<(u64, u64)>,
    pub(super) rank: RankKey,
    pub(super) roomy: bool,
    /// An open `FreeKeys` message to this worker in the outbox of the
    /// current event: (event epoch, index), to batch frees.
    pub(super) open_free: Option<(u64, usize)>,
    /// Processing tasks the worker reported started (`TasksStarted`): only
    /// these count against `allowed_failures` if it dies.
    pub(super) executing: FxSet<TaskId>,
    /// Processing tasks whose thread seceded (`LongRunning`): they count
    /// neither in occupancy nor against the saturation cap, so the tasks
    /// they wait for are not queued behind them.
    pub(super) long_running: FxSet<TaskId>,
    /// Whether it ever sent `TasksStarted`. A worker that does not (another
    /// implementation) has all its processing tasks counted, as in Dask.
    pub(super) reports_started: bool,
    /// Set while it retires gracefully: the replicas asked of other workers
    /// for the keys only it holds (task → worker asked to fetch it).
    pub(super) retiring: Option<Box<FxMap<TaskId, WIdx>>>,
    /// Set while it is paused (`WorkerStatus`): it offers no function
    /// meanwhile. Never set together with `retiring`.
    pub(super) paused: Option<Pause>,
    /// Whether it runs under a nanny, so that a restart restarts it
    /// (`RegisterWorker.nanny`).
    pub(super) nanny: bool,
    /// What its heartbeats say beyond counts (for the dashboard).
    pub(super) load: super::worker_load::WorkerLoad,
}

/// What a processing task was expected to cost its worker when assigned.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub(super) struct Expected {
    /// Its duration, ns: its function's average, or
    /// `default_task_duration_s` if not measured yet (0 once it seceded).
    pub(super) ns: u64,
    /// `ns` is a guess: its function had no measured duration.
    pub(super) guessed: bool,
    /// The fetch of the inputs the worker lacked, ns (with
    /// `first_sight_locality`; 0 once it seceded).
    pub(super) fetch_ns: u64,
}

impl WorkerSlot {
    /// Adds a processing task's expected cost to the worker's sums.
    pub(super) fn load(&mut self, e: Expected) {
        self.occupancy_ns += e.ns;
        if e.guessed {
            self.guessed_ns += e.ns;
        }
        self.fetch_ns += e.fetch_ns;
    }
    /// Takes it out again.
    pub(super) fn unload(&mut self, e: Expected) {
        self.occupancy_ns -= e.ns;
        if e.guessed {
            self.guessed_ns -= e.ns;
        }
        self.fetch_ns -= e.fetch_ns;
    }
    /// Processing tasks that occupy a thread (long-running ones do not).
    pub(super) fn busy(&self) -> usize {
        self.processing.len() - self.long_running.len()
    }
    pub(super) fn has_fn(&self, f: FnId) -> bool {
        self.fn_mask.get(f as usize).copied().unwrap_or(false)
    }
    pub(super) fn matches(&self, restriction: &str) -> bool {
        self.name == restriction || self.address == restriction
    }
    /// Whether it declared at least `required` of each resource.
    pub(super) fn satisfies(&self, required: &[(String, f64)]) -> bool {
        required
            .iter()
            .all(|(name, amount)| self.resources.iter().any(|(n, a)| n == name && a >= amount))
    }
}

/// A connected client. What it wants is in the tasks' `wanted_by`, not
/// here as well: a second set of a million ids cost 10 MB and two cache
/// misses per key wanted and released (issue 15); the rare walks over one
/// client's keys (it leaves, a restart, a journal image) scan the slots.
#[derive(Debug, Default)]
pub(super) struct ClientSlot {}

/// A graceful retirement in progress (`RetireWorkers` or `RetireMe`).
#[derive(Debug)]
pub(super) struct RetireRequest {
    /// Who to answer with `RetireWorkersDone` (`None`: a worker's own request).
    pub(super) client: Option<ClientId>,
    pub(super) request_id: u64,
    /// Workers still to leave.
    pub(super) waiting: Vec<WIdx>,
    /// Names of those that left.
    pub(super) retired: Vec<String>,
    /// Names that could not be retired, and why.
    pub(super) errors: Vec<String>,
}
