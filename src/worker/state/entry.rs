//! One key's entry in the task table, and a `ComputeTask` waiting to be
//! applied.

use std::collections::HashSet;

use super::WorkerTaskState;
use crate::wire::messages::{Arg, DependencyLocation, Key};

/// A `ComputeTask`, minus its key.
#[derive(Debug)]
pub(super) struct ComputeRequest {
    pub(super) function: String,
    pub(super) args: Vec<Arg>,
    pub(super) dependencies: Vec<DependencyLocation>,
    pub(super) priority: i32,
    pub(super) sequence: u64,
    pub(super) resources: Vec<(String, f64)>,
    /// `ComputeTask::run_id`.
    pub(super) run_id: u64,
}

/// One key in the task table.
#[derive(Debug)]
pub(super) struct TaskEntry {
    pub(super) state: WorkerTaskState,
    /// In `Cancelled`: `Flight` or `Executing`, whichever is still busy,
    /// so the entry can resume if it is wanted again before that ends.
    pub(super) cancelled_from: WorkerTaskState,
    /// The scheduler counts this key as assigned to / held by this worker.
    pub(super) held: bool,
    /// A pool thread is running it; its slot is freed only by task_finished,
    /// whatever state the entry moved to meanwhile.
    pub(super) on_thread: bool,
    /// On a thread that seceded from the pool (Dask's `long-running`): it
    /// no longer counts against `nthreads`.
    pub(super) long_running: bool,
    pub(super) nbytes: u64,
    pub(super) priority: i32,
    pub(super) sequence: u64,
    /// Function and args of a waiting/ready task, moved into `Execute`.
    pub(super) run: Option<(String, Vec<Arg>)>,
    /// Resources a run holds (from `ComputeTask`), taken from `available`
    /// while it is on a thread.
    pub(super) resources: Vec<(String, f64)>,
    /// A `ComputeTask` that arrived while the key was in flight: if the
    /// fetch fails we compute it instead.
    pub(super) deferred: Option<Box<ComputeRequest>>,
    /// Keys this task reads; held until it finishes or is forgotten.
    pub(super) dependencies: Vec<Key>,
    /// How many of `dependencies` are not in memory yet.
    pub(super) waiting_on: u32,
    /// Unfinished local tasks that read this key.
    pub(super) dependents: HashSet<Key>,
    /// Peers said to hold it (fetch/flight only).
    pub(super) who_has: Vec<String>,
    /// Position in the fetch queues; FIFO among keys of one peer.
    pub(super) fetch_seq: u64,
    /// The outstanding fetch carrying it (0 = none), so that a stale or
    /// foreign reply is not mistaken for it.
    pub(super) flight_id: u64,
    /// The run id of the latest `ComputeTask` of this key (0 = none),
    /// echoed in `TaskFinished` / `TaskErred`: the scheduler accepts only
    /// the run it waits for.
    pub(super) run_id: u64,
}

impl TaskEntry {
    pub(super) fn new(state: WorkerTaskState) -> Box<Self> {
        Box::new(TaskEntry {
            state,
            cancelled_from: state,
            held: false,
            on_thread: false,
            long_running: false,
            nbytes: 0,
            priority: 0,
            sequence: 0,
            run: None,
            resources: Vec::new(),
            deferred: None,
            dependencies: Vec::new(),
            waiting_on: 0,
            dependents: HashSet::new(),
            who_has: Vec::new(),
            fetch_seq: 0,
            flight_id: 0,
            run_id: 0,
        })
    }

    pub(super) fn in_flight_as(&self, id: u64) -> bool {
        self.flight_id == id
            && (self.state == WorkerTaskState::Flight
                || (self.state == WorkerTaskState::Cancelled && self.cancelled_from == WorkerTaskState::Flight))
    }
}
