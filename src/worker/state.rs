//! The worker's task state machine, free of I/O.
//!
//! [`WorkerState`] tracks every key the scheduler told this worker about
//! (tasks to run, dependencies to fetch, data to hold) through Dask's worker
//! states (waiting, fetch, flight, ready, executing, memory, error,
//! cancelled). Each event method pushes [`WorkerEffect`]s into an outbox;
//! the worker actor carries them out (messages to the scheduler, task runs on
//! the thread pool, peer fetches, data-store puts and deletes) and feeds the
//! outcomes back in. Keeping sockets, threads and actix out of here is what
//! lets it be unit- and property-tested, and simulated at scale.
//!
//! Lifetime rule: an entry lives while the scheduler holds it here (it sent
//! `ComputeTask` or `StoreData` for it, or we reported it with `AddKeys`) or
//! while a local task that has not finished needs it. When neither is true it
//! is forgotten at once, except that a running thread or an outstanding fetch
//! cannot be recalled: those entries wait in `cancelled` for the outcome.
//!
//! One state type, its transitions grouped by concern in the submodules:
//! `execute` (tasks to run and the ready queue), `fetch` (dependencies and
//! replicas from peers), `store` (values entering memory), `release`
//! (forgetting keys), `steal` (giving tasks up); `entry` is the task table's
//! row.

mod entry;
mod execute;
mod fetch;
#[cfg(test)]
mod invariants;
mod release;
mod steal;
mod store;
#[cfg(test)]
mod tests;

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap};

use bytes::Bytes;

use crate::wire::messages::{Arg, FromWorker, Key, Payload, ToWorker, WorkerStatus};

use entry::{ComputeRequest, TaskEntry};
pub use fetch::FETCH_BATCH_BYTES;
use fetch::{FetchQueue, InFlight};

/// Dask's worker task states.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum WorkerTaskState {
    /// A task to run here whose dependencies are not all in memory yet.
    Waiting,
    /// A dependency to fetch from a peer, not yet requested.
    Fetch,
    /// A dependency being fetched from a peer.
    Flight,
    /// A task whose dependencies are in memory, waiting for a thread.
    Ready,
    /// A task running on a thread.
    Executing,
    /// The value is in the data store.
    Memory,
    /// The task failed here.
    Error,
    /// No longer wanted, but a thread or a fetch is still busy with it.
    Cancelled,
}

impl WorkerTaskState {
    /// Dask's name for the state.
    pub fn name(self) -> &'static str {
        match self {
            WorkerTaskState::Waiting => "waiting",
            WorkerTaskState::Fetch => "fetch",
            WorkerTaskState::Flight => "flight",
            WorkerTaskState::Ready => "ready",
            WorkerTaskState::Executing => "executing",
            WorkerTaskState::Memory => "memory",
            WorkerTaskState::Error => "error",
            WorkerTaskState::Cancelled => "cancelled",
        }
    }
}

/// What the worker actor must do after an event.
#[derive(Debug, Clone, PartialEq)]
pub enum WorkerEffect {
    /// Send to the scheduler (the actor batches these into frames).
    Send(FromWorker),
    /// Run this task on the thread pool; every key of its args is in the
    /// store (state memory) when this is emitted.
    Execute {
        /// The task.
        key: Key,
        /// Registered function name.
        function: String,
        /// Arguments, as the scheduler sent them.
        args: Vec<Arg>,
    },
    /// Fetch these keys from the peer at `worker` (address); answer with
    /// fetch_finished / fetch_failed.
    Fetch {
        /// Peer address.
        worker: String,
        /// Keys to ask it for.
        keys: Vec<Key>,
    },
    /// Put a value into the data store.
    StorePut {
        /// The key.
        key: Key,
        /// Its serialized value.
        data: Bytes,
    },
    /// Delete values from the data store.
    StoreDelete {
        /// The keys.
        keys: Vec<Key>,
    },
}

/// Limits of one worker's state machine.
#[derive(Clone, Debug)]
pub struct WorkerStateConfig {
    /// Task threads; at most this many Execute effects outstanding.
    pub nthreads: u32,
    /// Results up to this many bytes ride along in TaskFinished.inline.
    pub inline_limit: u64,
    /// At most this many concurrent Fetch effects (connections) outstanding
    /// in total.
    pub max_concurrent_fetches: u32,
}

impl Default for WorkerStateConfig {
    fn default() -> Self {
        WorkerStateConfig {
            nthreads: std::thread::available_parallelism()
                .map(|n| u32::try_from(n.get()).unwrap_or(u32::MAX))
                .unwrap_or(1),
            inline_limit: 64 * 1024,
            max_concurrent_fetches: 8,
        }
    }
}

/// Misuse of the state machine by its caller.
#[derive(Debug, thiserror::Error)]
pub enum WorkerStateError {
    /// The actor handles this message itself.
    #[error("message {0} is not for the worker state machine")]
    Unexpected(&'static str),
}

/// The worker's task state machine. See the module docs.
#[derive(Debug)]
pub struct WorkerState {
    config: WorkerStateConfig,
    /// Entries boxed: a `TaskEntry` is ~230 bytes, and a worker holding
    /// 500,000 results kept a 270 MB table whose every doubling faulted in
    /// fresh zeroed pages (page clearing was 28 % of a worker's CPU in the
    /// 1M-task benchmark; boxed, the table is 32 bytes a bucket and the
    /// entries reuse freed heap; docs/benchmarks.md).
    tasks: crate::util::FxMap<Key, Box<TaskEntry>>,
    /// Max-heap on (priority, earlier sequence). Entries of tasks that left
    /// `ready` are skipped when popped rather than searched for.
    ready: BinaryHeap<(i32, Reverse<u64>, Key)>,
    ready_count: usize,
    running: usize,
    fetch_queue: FetchQueue,
    /// One outstanding fetch per peer at most: keys that turn up for a busy
    /// peer wait and ride in its next request instead of opening more
    /// connections to it.
    in_flight: HashMap<String, InFlight>,
    next_fetch_seq: u64,
    next_fetch_id: u64,
    mem_keys: usize,
    mem_bytes: u64,
    /// Collected over one event so it leaves as one effect / one message.
    deletes: Vec<Key>,
    add_keys: Vec<(Key, u64)>,
    /// Tasks given a thread in this event, for one `TasksStarted`: by
    /// run id, or by key for a run the scheduler gave no id (0).
    started: Vec<u64>,
    started_keys: Vec<Key>,
    /// Declared resources not held by a task on a thread (see
    /// [`WorkerState::with_resources`]).
    available: Vec<(String, f64)>,
    /// Memory past the pause threshold: no task is handed to a thread, so
    /// ready tasks stay ready, where the scheduler can take them back.
    paused: bool,
    /// Why, as last told to the scheduler (a failing spill directory).
    pause_reason: Option<String>,
}

impl WorkerState {
    /// An empty state machine.
    pub fn new(config: WorkerStateConfig) -> Self {
        WorkerState {
            config,
            tasks: Default::default(),
            ready: BinaryHeap::new(),
            ready_count: 0,
            running: 0,
            fetch_queue: FetchQueue::default(),
            in_flight: HashMap::new(),
            next_fetch_seq: 0,
            next_fetch_id: 0,
            mem_keys: 0,
            mem_bytes: 0,
            deletes: Vec::new(),
            add_keys: Vec::new(),
            started: Vec::new(),
            started_keys: Vec::new(),
            available: Vec::new(),
            paused: false,
            pause_reason: None,
        }
    }

    /// The worker paused (memory past its pause threshold) or resumed:
    /// tells the scheduler (`WorkerStatus`), and while paused hands no
    /// task to a thread. Tasks already handed over (reported started) run.
    /// `reason` says why it cannot free memory (a failing spill directory);
    /// a new reason while paused is told to the scheduler too.
    pub fn set_paused(&mut self, paused: bool, reason: Option<String>, out: &mut Vec<WorkerEffect>) {
        let reason = reason.filter(|_| paused);
        if self.paused == paused && self.pause_reason == reason {
            return;
        }
        let changed = self.paused != paused;
        self.paused = paused;
        self.pause_reason = reason.clone();
        let status = if paused {
            WorkerStatus::Paused
        } else {
            WorkerStatus::Running
        };
        out.push(WorkerEffect::Send(FromWorker::WorkerStatus { status, reason }));
        if changed {
            self.ensure_executing(out);
        }
        self.flush(out);
    }

    /// After registering again with a scheduler: tells it the worker is
    /// paused, if it is (a new registration starts `Running`).
    pub fn announce_status(&mut self, out: &mut Vec<WorkerEffect>) {
        if self.paused {
            out.push(WorkerEffect::Send(FromWorker::WorkerStatus {
                status: WorkerStatus::Paused,
                reason: self.pause_reason.clone(),
            }));
        }
    }

    /// The abstract resources this worker declared: a task asking for
    /// resources is handed to a thread only while that much of each is
    /// free, so a worker with `GPU=2` runs at most two `GPU=1` tasks at
    /// once. A task asking for a resource not declared here never starts
    /// (the scheduler sends such tasks only to workers that declared it).
    pub fn with_resources(mut self, resources: Vec<(String, f64)>) -> Self {
        self.available = resources;
        self
    }

    /// ComputeTask, FreeKeys, StoreData. (Registered and Close are handled by
    /// the actor: they return Err(Unexpected).)
    pub fn handle_scheduler(&mut self, msg: ToWorker, out: &mut Vec<WorkerEffect>) -> Result<(), WorkerStateError> {
        match msg {
            ToWorker::ComputeTask {
                key,
                function,
                args,
                dependencies,
                priority,
                sequence,
                resources,
                run_id,
            } => {
                let req = ComputeRequest {
                    function,
                    args,
                    dependencies,
                    priority,
                    sequence,
                    resources,
                    run_id,
                };
                self.compute_task(key, req, out);
            }
            ToWorker::StealRequest { key } => {
                let stolen = self.give_up(&key);
                out.push(WorkerEffect::Send(FromWorker::StealResponse { key, stolen }));
            }
            ToWorker::FreeKeys { keys } => self.free_keys(keys),
            ToWorker::StoreData { data } => {
                for (key, Payload(bytes)) in data {
                    self.store_data(key, bytes, out);
                }
            }
            ToWorker::AcquireReplicas { keys } => {
                for loc in keys {
                    self.acquire_replica(loc);
                }
            }
            ToWorker::Registered { .. } => return Err(WorkerStateError::Unexpected("Registered")),
            ToWorker::Close { .. } => return Err(WorkerStateError::Unexpected("Close")),
            ToWorker::RestartWorker { .. } => return Err(WorkerStateError::Unexpected("RestartWorker")),
        }
        self.ensure_executing(out);
        self.ensure_fetching(out);
        self.flush(out);
        Ok(())
    }

    /// The heartbeat message to send now.
    pub fn heartbeat(&self) -> FromWorker {
        FromWorker::Heartbeat {
            nkeys: self.mem_keys as u64,
            nbytes: self.mem_bytes,
            executing: self.running as u64,
            ready: self.ready_count as u64,
            // The worker actor fills in what the store and the process
            // know; the state machine knows only its tasks.
            spilled_bytes: 0,
            rss_bytes: 0,
            cpu_percent: 0.0,
            bytes_fetched: 0,
            bytes_served: 0,
            spills: Vec::new(),
            log: Vec::new(),
        }
    }

    /// The key's state, if it is tracked.
    pub fn task_state(&self, key: &str) -> Option<WorkerTaskState> {
        self.tasks.get(key).map(|e| e.state)
    }

    /// Keys in the data store.
    pub fn nkeys_in_memory(&self) -> usize {
        self.mem_keys
    }

    /// Bytes in the data store.
    pub fn nbytes_in_memory(&self) -> u64 {
        self.mem_bytes
    }

    /// Number of tasks/keys tracked in any state (0 when everything was
    /// freed).
    pub fn ntasks(&self) -> usize {
        self.tasks.len()
    }

    /// Pool threads busy, including runs whose task was cancelled.
    pub fn executing_count(&self) -> usize {
        self.running
    }

    /// Tasks waiting for a thread.
    pub fn ready_count(&self) -> usize {
        self.ready_count
    }
    fn flush(&mut self, out: &mut Vec<WorkerEffect>) {
        if !self.deletes.is_empty() {
            out.push(WorkerEffect::StoreDelete {
                keys: std::mem::take(&mut self.deletes),
            });
        }
        if !self.add_keys.is_empty() {
            out.push(WorkerEffect::Send(FromWorker::AddKeys {
                keys: std::mem::take(&mut self.add_keys),
            }));
        }
        if !self.started.is_empty() || !self.started_keys.is_empty() {
            out.push(WorkerEffect::Send(FromWorker::TasksStarted {
                keys: std::mem::take(&mut self.started_keys),
                run_ids: std::mem::take(&mut self.started),
            }));
        }
    }
}
