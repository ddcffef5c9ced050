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

use std::cmp::Reverse;
use std::collections::{BTreeMap, BinaryHeap, HashMap, HashSet};

use bytes::Bytes;

use crate::wire::messages::{Arg, DependencyLocation, Key, Payload, TaskFailure, ToScheduler, ToWorker};

/// Byte budget of one `Fetch` request (Dask's `transfer_message_bytes_limit`),
/// so one huge batch does not hold a connection for minutes. A request always
/// carries at least one key, however large.
pub const FETCH_BATCH_BYTES: u64 = 50 * 1024 * 1024;

/// Slack when comparing resource amounts, so that amounts given back in
/// another order than taken (float sums) still cover a request.
const RESOURCE_EPSILON: f64 = 1e-9;

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
    Send(ToScheduler),
    /// Run this task on the thread pool; every Arg::Key in args is in the
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

/// A `ComputeTask`, minus its key.
#[derive(Debug)]
struct ComputeRequest {
    function: String,
    args: Vec<Arg>,
    dependencies: Vec<DependencyLocation>,
    priority: i32,
    sequence: u64,
    resources: Vec<(String, f64)>,
}

#[derive(Debug)]
struct TaskEntry {
    state: WorkerTaskState,
    /// In `Cancelled`: `Flight` or `Executing`, whichever is still busy,
    /// so the entry can resume if it is wanted again before that ends.
    cancelled_from: WorkerTaskState,
    /// The scheduler counts this key as assigned to / held by this worker.
    held: bool,
    /// A pool thread is running it; its slot is freed only by task_finished,
    /// whatever state the entry moved to meanwhile.
    on_thread: bool,
    nbytes: u64,
    priority: i32,
    sequence: u64,
    /// Function and args of a waiting/ready task, moved into `Execute`.
    run: Option<(String, Vec<Arg>)>,
    /// Resources a run holds (from `ComputeTask`), taken from `available`
    /// while it is on a thread.
    resources: Vec<(String, f64)>,
    /// A `ComputeTask` that arrived while the key was in flight: if the
    /// fetch fails we compute it instead.
    deferred: Option<Box<ComputeRequest>>,
    /// Keys this task reads; held until it finishes or is forgotten.
    dependencies: Vec<Key>,
    /// How many of `dependencies` are not in memory yet.
    waiting_on: u32,
    /// Unfinished local tasks that read this key.
    dependents: HashSet<Key>,
    /// Peers said to hold it (fetch/flight only).
    who_has: Vec<String>,
    /// Position in the fetch queues; FIFO among keys of one peer.
    fetch_seq: u64,
    /// The outstanding fetch carrying it (0 = none), so that a stale or
    /// foreign reply is not mistaken for it.
    flight_id: u64,
}

impl TaskEntry {
    fn new(state: WorkerTaskState) -> Self {
        TaskEntry {
            state,
            cancelled_from: state,
            held: false,
            on_thread: false,
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
        }
    }

    fn in_flight_as(&self, id: u64) -> bool {
        self.flight_id == id
            && (self.state == WorkerTaskState::Flight
                || (self.state == WorkerTaskState::Cancelled && self.cancelled_from == WorkerTaskState::Flight))
    }
}

/// Keys in `fetch` state, listed under every peer that holds them, so that
/// the peer with the most wanted keys can be found and asked for all of them
/// in one request.
#[derive(Debug, Default)]
struct FetchQueue {
    by_worker: BTreeMap<String, BTreeMap<u64, Key>>,
}

impl FetchQueue {
    fn add(&mut self, worker: &str, seq: u64, key: &Key) {
        match self.by_worker.get_mut(worker) {
            Some(q) => {
                q.insert(seq, key.clone());
            }
            None => {
                self.by_worker
                    .insert(worker.to_owned(), BTreeMap::from([(seq, key.clone())]));
            }
        }
    }

    fn add_all(&mut self, workers: &[String], seq: u64, key: &Key) {
        for w in workers {
            self.add(w, seq, key);
        }
    }

    fn remove_all(&mut self, workers: &[String], seq: u64) {
        for w in workers {
            if let Some(q) = self.by_worker.get_mut(w) {
                q.remove(&seq);
                if q.is_empty() {
                    self.by_worker.remove(w);
                }
            }
        }
    }
}

#[derive(Debug)]
struct InFlight {
    id: u64,
    keys: Vec<Key>,
}

/// The worker's task state machine. See the module docs.
#[derive(Debug)]
pub struct WorkerState {
    config: WorkerStateConfig,
    tasks: crate::util::FxMap<Key, TaskEntry>,
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
    /// Tasks given a thread in this event, for one `TasksStarted`.
    started: Vec<Key>,
    /// Declared resources not held by a task on a thread (see
    /// [`WorkerState::with_resources`]).
    available: Vec<(String, f64)>,
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
            available: Vec::new(),
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
            } => {
                let req = ComputeRequest {
                    function,
                    args,
                    dependencies,
                    priority,
                    sequence,
                    resources,
                };
                self.compute_task(key, req, out);
            }
            ToWorker::StealRequest { key } => {
                let stolen = self.give_up(&key);
                out.push(WorkerEffect::Send(ToScheduler::StealResponse { key, stolen }));
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
        }
        self.ensure_executing(out);
        self.ensure_fetching(out);
        self.flush(out);
        Ok(())
    }

    /// A task run finished on the pool: Ok(serialized result) or
    /// Err(failure). duration_us = measured run time.
    pub fn task_finished(
        &mut self,
        key: &str,
        result: Result<Bytes, TaskFailure>,
        duration_us: u64,
        out: &mut Vec<WorkerEffect>,
    ) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        if !e.on_thread {
            return;
        }
        let key: Key = key.to_owned();
        e.on_thread = false;
        self.running -= 1;
        if !e.resources.is_empty() {
            for (name, amount) in &e.resources {
                if let Some(a) = self.available.iter_mut().find(|(n, _)| n == name) {
                    a.1 += amount;
                }
            }
        }
        let deps = std::mem::take(&mut e.dependencies);
        match e.state {
            WorkerTaskState::Executing => {
                let held = e.held;
                match result {
                    Ok(bytes) => {
                        let nbytes = bytes.len() as u64;
                        let inline = (held && nbytes <= self.config.inline_limit).then(|| Payload(bytes.clone()));
                        self.put_in_memory(&key, bytes, out);
                        if held {
                            out.push(WorkerEffect::Send(ToScheduler::TaskFinished {
                                key: key.clone(),
                                nbytes,
                                inline,
                                duration_us,
                            }));
                        }
                    }
                    Err(failure) => {
                        // Kept even when not held: local dependents still
                        // point at it until the scheduler frees them.
                        e.state = WorkerTaskState::Error;
                        if held {
                            out.push(WorkerEffect::Send(ToScheduler::TaskErred {
                                key: key.clone(),
                                failure,
                            }));
                        }
                    }
                }
            }
            WorkerTaskState::Cancelled => {
                self.tasks.remove(&key);
            }
            // StoreData overtook the run: the stored value wins.
            _ => {}
        }
        self.release_dependencies(&key, deps);
        if self.tasks.get(&key).is_some_and(|e| !e.held && e.dependents.is_empty()) {
            self.release_unneeded(vec![key]);
        }
        self.ensure_executing(out);
        self.flush(out);
    }

    /// A fetch from `worker` returned: Some(bytes) for keys it had, None for
    /// keys it did not. Requested keys missing from `data` count as None.
    pub fn fetch_finished(&mut self, worker: &str, data: Vec<(Key, Option<Bytes>)>, out: &mut Vec<WorkerEffect>) {
        let Some(InFlight { id, keys: requested }) = self.in_flight.remove(worker) else {
            return;
        };
        for (key, value) in data {
            if !self.tasks.get(&key).is_some_and(|e| e.in_flight_as(id)) {
                continue;
            }
            match value {
                Some(bytes) => self.fetched(&key, bytes, out),
                None => self.missing(worker, &key, out),
            }
        }
        self.fail_requested(worker, id, requested, out);
        self.ensure_executing(out);
        self.ensure_fetching(out);
        self.flush(out);
    }

    /// A fetch from `worker` failed entirely (connection refused/closed/bad
    /// reply). `_keys` is ignored: the keys requested from `worker` are
    /// known here, and are the ones that count.
    pub fn fetch_failed(&mut self, worker: &str, _keys: Vec<Key>, out: &mut Vec<WorkerEffect>) {
        let Some(InFlight { id, keys: requested }) = self.in_flight.remove(worker) else {
            return;
        };
        self.fail_requested(worker, id, requested, out);
        self.ensure_executing(out);
        self.ensure_fetching(out);
        self.flush(out);
    }

    /// The heartbeat message to send now.
    pub fn heartbeat(&self) -> ToScheduler {
        ToScheduler::Heartbeat {
            nkeys: self.mem_keys as u64,
            nbytes: self.mem_bytes,
            executing: self.running as u64,
            ready: self.ready_count as u64,
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

    // ---- transitions

    fn compute_task(&mut self, key: Key, req: ComputeRequest, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(&key) else {
            self.start_compute(key, req);
            return;
        };
        e.held = true;
        match e.state {
            WorkerTaskState::Memory => {
                out.push(WorkerEffect::Send(ToScheduler::TaskFinished {
                    nbytes: e.nbytes,
                    key,
                    inline: None,
                    duration_us: 0,
                }));
            }
            WorkerTaskState::Waiting | WorkerTaskState::Ready | WorkerTaskState::Executing => {}
            WorkerTaskState::Cancelled => {
                e.state = e.cancelled_from;
                if e.state == WorkerTaskState::Flight {
                    e.deferred = Some(Box::new(req));
                }
            }
            WorkerTaskState::Flight => e.deferred = Some(Box::new(req)),
            WorkerTaskState::Fetch => {
                self.fetch_queue.remove_all(&e.who_has, e.fetch_seq);
                e.who_has.clear();
                self.start_compute(key, req);
            }
            WorkerTaskState::Error => self.start_compute(key, req),
        }
    }

    /// Makes `key` a task to run here (new, or replacing a fetch/error entry
    /// that is in no queue), linked to its dependencies.
    fn start_compute(&mut self, key: Key, req: ComputeRequest) {
        let ComputeRequest {
            function,
            args,
            mut dependencies,
            priority,
            sequence,
            resources,
        } = req;
        // Guards Execute's promise that every Arg::Key is in the store, even
        // if a scheduler forgets to list one.
        for arg in &args {
            if let Arg::Key(k) = arg {
                if !dependencies.iter().any(|d| d.key == *k) {
                    dependencies.push(DependencyLocation {
                        key: k.clone(),
                        who_has: Vec::new(),
                        nbytes: 0,
                    });
                }
            }
        }
        let mut dep_keys = Vec::with_capacity(dependencies.len());
        let mut waiting_on = 0u32;
        for loc in dependencies {
            if loc.key == key {
                // Malformed self-dependency: never ready, freed as usual.
                waiting_on += 1;
                continue;
            }
            if let Some((k, in_memory)) = self.link_dependency(&key, loc) {
                waiting_on += u32::from(!in_memory);
                dep_keys.push(k);
            }
        }
        let state = if waiting_on == 0 {
            self.ready.push((priority, Reverse(sequence), key.clone()));
            self.ready_count += 1;
            WorkerTaskState::Ready
        } else {
            WorkerTaskState::Waiting
        };
        let e = match self.tasks.get_mut(&key) {
            Some(e) => e,
            None => self.tasks.entry(key).or_insert_with(|| TaskEntry::new(state)),
        };
        e.state = state;
        e.held = true;
        e.priority = priority;
        e.sequence = sequence;
        e.run = Some((function, args));
        e.resources = resources;
        e.deferred = None;
        e.dependencies = dep_keys;
        e.waiting_on = waiting_on;
        e.who_has = Vec::new();
        e.flight_id = 0;
    }

    /// Records that `dependent` reads `loc.key`. Returns the key and whether
    /// it is in memory, or None if `dependent` already reads it.
    fn link_dependency(&mut self, dependent: &Key, loc: DependencyLocation) -> Option<(Key, bool)> {
        let DependencyLocation { key, who_has, nbytes } = loc;
        let Some(e) = self.tasks.get_mut(&key) else {
            let seq = self.next_fetch_seq;
            self.next_fetch_seq += 1;
            let mut e = TaskEntry::new(WorkerTaskState::Fetch);
            e.nbytes = nbytes;
            e.fetch_seq = seq;
            e.dependents.insert(dependent.clone());
            for w in who_has {
                if !e.who_has.contains(&w) {
                    e.who_has.push(w);
                }
            }
            self.fetch_queue.add_all(&e.who_has, seq, &key);
            self.tasks.insert(key.clone(), e);
            return Some((key, false));
        };
        if !e.dependents.insert(dependent.clone()) {
            return None;
        }
        let queued = match e.state {
            WorkerTaskState::Memory => return Some((key, true)),
            WorkerTaskState::Waiting | WorkerTaskState::Ready | WorkerTaskState::Executing => {
                return Some((key, false))
            }
            WorkerTaskState::Fetch => true,
            WorkerTaskState::Flight => false,
            WorkerTaskState::Cancelled => {
                e.state = e.cancelled_from;
                if e.state == WorkerTaskState::Executing {
                    return Some((key, false));
                }
                false
            }
            WorkerTaskState::Error => {
                // Erred here, yet the scheduler says a peer has it.
                e.state = WorkerTaskState::Fetch;
                e.nbytes = nbytes;
                e.who_has.clear();
                e.fetch_seq = self.next_fetch_seq;
                self.next_fetch_seq += 1;
                true
            }
        };
        for w in who_has {
            if !e.who_has.contains(&w) {
                if queued {
                    self.fetch_queue.add(&w, e.fetch_seq, &key);
                }
                e.who_has.push(w);
            }
        }
        Some((key, false))
    }

    fn free_keys(&mut self, keys: Vec<Key>) {
        let mut stack = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(e) = self.tasks.get_mut(&key) {
                e.held = false;
                stack.push(key);
            }
        }
        // The worklist pops from the end; this keeps deletes in message order.
        stack.reverse();
        self.release_unneeded(stack);
    }

    fn store_data(&mut self, key: Key, data: Bytes, out: &mut Vec<WorkerEffect>) {
        if let Some(e) = self.tasks.get_mut(&key) {
            e.held = true;
            self.put_in_memory(&key, data, out);
            return;
        }
        let mut e = TaskEntry::new(WorkerTaskState::Memory);
        e.held = true;
        e.nbytes = data.len() as u64;
        self.mem_keys += 1;
        self.mem_bytes += e.nbytes;
        self.unqueue_delete(&key);
        self.tasks.insert(key.clone(), e);
        out.push(WorkerEffect::StorePut { key, data });
    }

    /// Moves an existing entry to memory from whatever state it is in,
    /// storing `data` and waking its dependents.
    fn put_in_memory(&mut self, key: &Key, data: Bytes, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        let prev = e.state;
        let nbytes = data.len() as u64;
        let mut released = Vec::new();
        match prev {
            WorkerTaskState::Memory => self.mem_bytes -= e.nbytes,
            WorkerTaskState::Fetch => self.fetch_queue.remove_all(&e.who_has, e.fetch_seq),
            WorkerTaskState::Waiting | WorkerTaskState::Ready => {
                if prev == WorkerTaskState::Ready {
                    self.ready_count -= 1;
                }
                // The value replaces the run, so its inputs are not needed.
                e.run = None;
                released = std::mem::take(&mut e.dependencies);
            }
            // A running thread keeps its dependencies until it finishes.
            _ => {}
        }
        if prev != WorkerTaskState::Memory {
            self.mem_keys += 1;
        }
        self.mem_bytes += nbytes;
        e.state = WorkerTaskState::Memory;
        e.nbytes = nbytes;
        e.who_has = Vec::new();
        e.deferred = None;
        e.flight_id = 0;
        e.waiting_on = 0;
        self.unqueue_delete(key);
        out.push(WorkerEffect::StorePut { key: key.clone(), data });
        if prev != WorkerTaskState::Memory {
            self.notify_dependents(key);
        }
        self.release_dependencies(key, released);
    }

    /// A delete queued earlier in this event must not follow a new put of
    /// the same key out of the door.
    fn unqueue_delete(&mut self, key: &Key) {
        if !self.deletes.is_empty() {
            self.deletes.retain(|k| k != key);
        }
    }

    fn notify_dependents(&mut self, key: &Key) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        if e.dependents.is_empty() {
            return;
        }
        let dependents = std::mem::take(&mut e.dependents);
        for d in &dependents {
            if let Some(de) = self.tasks.get_mut(d) {
                de.waiting_on = de.waiting_on.saturating_sub(1);
                if de.waiting_on == 0 && de.state == WorkerTaskState::Waiting {
                    de.state = WorkerTaskState::Ready;
                    self.ready.push((de.priority, Reverse(de.sequence), d.clone()));
                    self.ready_count += 1;
                }
            }
        }
        if let Some(e) = self.tasks.get_mut(key) {
            e.dependents = dependents;
        }
    }

    /// `dependent` no longer reads `deps`; forget those nobody needs now.
    fn release_dependencies(&mut self, dependent: &Key, mut deps: Vec<Key>) {
        if deps.is_empty() {
            return;
        }
        deps.reverse();
        for d in &deps {
            if let Some(de) = self.tasks.get_mut(d) {
                de.dependents.remove(dependent);
            }
        }
        self.release_unneeded(deps);
    }

    /// Forgets each key of `stack` that is neither held nor needed locally,
    /// cascading to the dependencies of forgotten tasks. A worklist rather
    /// than recursion: a long local chain must not overflow the stack.
    fn release_unneeded(&mut self, mut stack: Vec<Key>) {
        while let Some(k) = stack.pop() {
            let Some(e) = self.tasks.get_mut(&k) else {
                continue;
            };
            if e.held || !e.dependents.is_empty() {
                continue;
            }
            if e.on_thread {
                if e.state == WorkerTaskState::Memory {
                    self.mem_keys -= 1;
                    self.mem_bytes -= e.nbytes;
                    self.deletes.push(k.clone());
                }
                e.state = WorkerTaskState::Cancelled;
                e.cancelled_from = WorkerTaskState::Executing;
                continue;
            }
            match e.state {
                WorkerTaskState::Memory => {
                    self.mem_keys -= 1;
                    self.mem_bytes -= e.nbytes;
                    self.tasks.remove(&k);
                    self.deletes.push(k);
                }
                WorkerTaskState::Waiting | WorkerTaskState::Ready => {
                    if e.state == WorkerTaskState::Ready {
                        self.ready_count -= 1;
                    }
                    let deps = std::mem::take(&mut e.dependencies);
                    self.tasks.remove(&k);
                    for d in deps {
                        if let Some(de) = self.tasks.get_mut(&d) {
                            de.dependents.remove(&k);
                        }
                        stack.push(d);
                    }
                }
                WorkerTaskState::Fetch => {
                    self.fetch_queue.remove_all(&e.who_has, e.fetch_seq);
                    self.tasks.remove(&k);
                }
                WorkerTaskState::Error => {
                    self.tasks.remove(&k);
                }
                WorkerTaskState::Flight => {
                    e.state = WorkerTaskState::Cancelled;
                    e.cancelled_from = WorkerTaskState::Flight;
                    e.deferred = None;
                }
                // Executing implies on_thread, handled above.
                WorkerTaskState::Executing | WorkerTaskState::Cancelled => {}
            }
        }
    }

    fn fetched(&mut self, key: &Key, bytes: Bytes, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        if e.state == WorkerTaskState::Cancelled {
            self.tasks.remove(key);
            return;
        }
        let deferred = e.deferred.take();
        e.held = true;
        let nbytes = bytes.len() as u64;
        let inline = (deferred.is_some() && nbytes <= self.config.inline_limit).then(|| Payload(bytes.clone()));
        self.put_in_memory(key, bytes, out);
        if deferred.is_some() {
            // The scheduler asked us to compute it: answer as a compute.
            out.push(WorkerEffect::Send(ToScheduler::TaskFinished {
                key: key.clone(),
                nbytes,
                inline,
                duration_us: 0,
            }));
        } else {
            self.add_keys.push((key.clone(), nbytes));
        }
    }

    fn missing(&mut self, worker: &str, key: &Key, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        e.flight_id = 0;
        e.who_has.retain(|w| w != worker);
        out.push(WorkerEffect::Send(ToScheduler::MissingData {
            key: key.clone(),
            errant_worker: worker.to_owned(),
        }));
        if e.state == WorkerTaskState::Cancelled {
            self.tasks.remove(key);
            return;
        }
        if let Some(req) = e.deferred.take() {
            self.start_compute(key.clone(), *req);
            return;
        }
        // With no holder left it stays in fetch, queued nowhere, until the
        // scheduler names new holders or frees its dependents.
        e.state = WorkerTaskState::Fetch;
        e.fetch_seq = self.next_fetch_seq;
        self.next_fetch_seq += 1;
        self.fetch_queue.add_all(&e.who_has, e.fetch_seq, key);
    }

    /// Every key still in flight under fetch `id` from `worker` is missing.
    fn fail_requested(&mut self, worker: &str, id: u64, requested: Vec<Key>, out: &mut Vec<WorkerEffect>) {
        for key in requested {
            if self.tasks.get(&key).is_some_and(|e| e.in_flight_as(id)) {
                self.missing(worker, &key, out);
            }
        }
    }

    fn ensure_executing(&mut self, out: &mut Vec<WorkerEffect>) {
        // Ready tasks waiting for resources, put back after the loop.
        let mut blocked = Vec::new();
        while self.running < self.config.nthreads as usize {
            let Some(item) = self.ready.pop() else {
                break;
            };
            let Some(e) = self.tasks.get_mut(&item.2) else {
                continue;
            };
            if e.state != WorkerTaskState::Ready {
                continue;
            }
            if !e.resources.is_empty() {
                let free = e.resources.iter().all(|(name, amount)| {
                    self.available
                        .iter()
                        .any(|(n, a)| n == name && *a >= *amount - RESOURCE_EPSILON)
                });
                if !free {
                    blocked.push(item);
                    continue;
                }
                for (name, amount) in &e.resources {
                    if let Some(a) = self.available.iter_mut().find(|(n, _)| n == name) {
                        a.1 -= amount;
                    }
                }
            }
            let key = item.2;
            e.state = WorkerTaskState::Executing;
            e.on_thread = true;
            self.ready_count -= 1;
            self.running += 1;
            let (function, args) = e.run.take().unwrap_or_default();
            self.started.push(key.clone());
            out.push(WorkerEffect::Execute { key, function, args });
        }
        self.ready.extend(blocked);
        if self.ready_count == 0 {
            self.ready.clear();
        } else if self.ready.len() > 2 * self.ready_count + 1024 {
            let tasks = &self.tasks;
            self.ready
                .retain(|(_, _, k)| tasks.get(k).is_some_and(|e| e.state == WorkerTaskState::Ready));
        }
    }

    fn ensure_fetching(&mut self, out: &mut Vec<WorkerEffect>) {
        while self.in_flight.len() < self.config.max_concurrent_fetches as usize {
            // The idle peer with the most wanted keys: one request, many keys.
            let mut best: Option<(&String, usize)> = None;
            for (w, q) in &self.fetch_queue.by_worker {
                if !self.in_flight.contains_key(w) && best.is_none_or(|(_, n)| q.len() > n) {
                    best = Some((w, q.len()));
                }
            }
            let Some((worker, _)) = best else {
                break;
            };
            let worker = worker.clone();
            let mut keys = Vec::new();
            let mut bytes = 0u64;
            if let Some(q) = self.fetch_queue.by_worker.get(&worker) {
                for key in q.values() {
                    let nbytes = self.tasks.get(key).map_or(0, |e| e.nbytes);
                    if !keys.is_empty() && bytes.saturating_add(nbytes) > FETCH_BATCH_BYTES {
                        break;
                    }
                    bytes = bytes.saturating_add(nbytes);
                    keys.push(key.clone());
                }
            }
            self.next_fetch_id += 1;
            let id = self.next_fetch_id;
            for key in &keys {
                if let Some(e) = self.tasks.get_mut(key) {
                    self.fetch_queue.remove_all(&e.who_has, e.fetch_seq);
                    e.state = WorkerTaskState::Flight;
                    e.flight_id = id;
                }
            }
            self.in_flight
                .insert(worker.clone(), InFlight { id, keys: keys.clone() });
            out.push(WorkerEffect::Fetch { worker, keys });
        }
    }

    /// A `StealRequest`: forgets `key` if it is a task that has not been
    /// handed to a thread (waiting or ready), and says whether it did. A
    /// task on a thread, done, or unknown is kept (false): the scheduler
    /// then leaves it here, so it never runs twice.
    fn give_up(&mut self, key: &str) -> bool {
        let Some(e) = self.tasks.get_mut(key) else {
            return false;
        };
        if e.on_thread || !matches!(e.state, WorkerTaskState::Waiting | WorkerTaskState::Ready) || !e.held {
            return false;
        }
        if !e.dependents.is_empty() {
            // A local task reads its result: it stays until that one goes.
            return false;
        }
        e.held = false;
        self.release_unneeded(vec![key.to_owned()]);
        true
    }

    fn flush(&mut self, out: &mut Vec<WorkerEffect>) {
        if !self.deletes.is_empty() {
            out.push(WorkerEffect::StoreDelete {
                keys: std::mem::take(&mut self.deletes),
            });
        }
        if !self.add_keys.is_empty() {
            out.push(WorkerEffect::Send(ToScheduler::AddKeys {
                keys: std::mem::take(&mut self.add_keys),
            }));
        }
        if !self.started.is_empty() {
            out.push(WorkerEffect::Send(ToScheduler::TasksStarted {
                keys: std::mem::take(&mut self.started),
            }));
        }
    }

    /// The scheduler asks this worker to keep a copy of `loc.key` (another
    /// worker retires): fetch it unless it is here or coming, and hold it.
    /// Once in memory it is announced in `AddKeys`.
    fn acquire_replica(&mut self, loc: DependencyLocation) {
        let DependencyLocation { key, who_has, nbytes } = loc;
        match self.tasks.get_mut(&key) {
            None => {
                let seq = self.next_fetch_seq;
                self.next_fetch_seq += 1;
                let mut e = TaskEntry::new(WorkerTaskState::Fetch);
                e.held = true;
                e.nbytes = nbytes;
                e.fetch_seq = seq;
                for w in who_has {
                    if !e.who_has.contains(&w) {
                        e.who_has.push(w);
                    }
                }
                self.fetch_queue.add_all(&e.who_has, seq, &key);
                self.tasks.insert(key, e);
            }
            Some(e) => match e.state {
                WorkerTaskState::Memory => {
                    e.held = true;
                    self.add_keys.push((key, e.nbytes));
                }
                WorkerTaskState::Fetch => {
                    e.held = true;
                    for w in who_has {
                        if !e.who_has.contains(&w) {
                            self.fetch_queue.add(&w, e.fetch_seq, &key);
                            e.who_has.push(w);
                        }
                    }
                }
                WorkerTaskState::Cancelled if e.cancelled_from == WorkerTaskState::Flight => {
                    e.held = true;
                    e.state = WorkerTaskState::Flight;
                }
                WorkerTaskState::Error => {
                    e.held = true;
                    e.state = WorkerTaskState::Fetch;
                    e.nbytes = nbytes;
                    e.who_has = who_has;
                    e.fetch_seq = self.next_fetch_seq;
                    self.next_fetch_seq += 1;
                    self.fetch_queue.add_all(&e.who_has, e.fetch_seq, &key);
                }
                // Coming anyway (`fetched` announces it), or being computed
                // here: the scheduler learns of it when that ends.
                _ => e.held = true,
            },
        }
    }
}

#[cfg(test)]
impl WorkerState {
    /// Cross-checks every counter and index against the task table.
    fn check_invariants(&self) {
        use WorkerTaskState::*;
        let mut mem_keys = 0;
        let mut mem_bytes = 0;
        let mut ready = 0;
        let mut running = 0;
        let mut queued = 0;
        for (k, e) in &self.tasks {
            match e.state {
                Memory => {
                    mem_keys += 1;
                    mem_bytes += e.nbytes;
                }
                Ready => ready += 1,
                Fetch => queued += e.who_has.len(),
                Flight => assert!(e.flight_id != 0, "{k} in flight without a fetch"),
                Executing => assert!(e.on_thread, "{k} executing off-thread"),
                _ => {}
            }
            running += usize::from(e.on_thread);
            assert!(
                e.held || !e.dependents.is_empty() || e.on_thread || e.in_flight_as(e.flight_id),
                "{k} ({:?}) should have been forgotten",
                e.state
            );
            if e.state == Waiting {
                let missing = e.dependencies.iter().filter(|d| self.tasks[*d].state != Memory).count();
                assert_eq!(e.waiting_on as usize, missing, "{k} waiting_on");
                assert!(missing > 0, "{k} waiting with all deps in memory");
            }
            for d in &e.dependencies {
                assert!(self.tasks[d].dependents.contains(k), "{d} lost dependent {k}");
            }
            for d in &e.dependents {
                assert!(self.tasks[d].dependencies.contains(k), "{d} lost dependency {k}");
            }
        }
        assert_eq!(mem_keys, self.mem_keys);
        assert_eq!(mem_bytes, self.mem_bytes);
        assert_eq!(ready, self.ready_count);
        assert_eq!(running, self.running);
        assert!(self.running <= self.config.nthreads as usize);
        assert!(self.in_flight.len() <= self.config.max_concurrent_fetches as usize);
        let mut in_queue = 0;
        for (w, q) in &self.fetch_queue.by_worker {
            assert!(!q.is_empty());
            for (seq, k) in q {
                let e = &self.tasks[k];
                assert_eq!(e.state, Fetch);
                assert_eq!(e.fetch_seq, *seq);
                assert!(e.who_has.contains(w));
                in_queue += 1;
            }
        }
        assert_eq!(in_queue, queued);
        for f in self.in_flight.values() {
            for k in &f.keys {
                if let Some(e) = self.tasks.get(k) {
                    assert!(e.flight_id != f.id || e.in_flight_as(f.id));
                }
            }
        }
        assert!(self.deletes.is_empty() && self.add_keys.is_empty());
        if self.tasks.is_empty() {
            assert!(self.ready.is_empty() && self.fetch_queue.by_worker.is_empty());
            assert!(self.in_flight.is_empty());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::ErrorKind;
    use proptest::prelude::*;
    use std::collections::VecDeque;
    use WorkerTaskState::*;

    fn cfg(nthreads: u32) -> WorkerStateConfig {
        WorkerStateConfig {
            nthreads,
            inline_limit: 16,
            max_concurrent_fetches: 8,
        }
    }

    fn b(s: &str) -> Bytes {
        Bytes::copy_from_slice(s.as_bytes())
    }

    fn keys(ks: &[&str]) -> Vec<Key> {
        ks.iter().map(|k| k.to_string()).collect()
    }

    /// A task reading each dependency, then one literal argument.
    fn compute(key: &str, deps: &[(&str, &[&str])], priority: i32, sequence: u64) -> ToWorker {
        let mut args: Vec<Arg> = deps.iter().map(|(k, _)| Arg::Key(k.to_string())).collect();
        args.push(Arg::Value(vec![0x2a]));
        ToWorker::ComputeTask {
            key: key.into(),
            function: "f".into(),
            args,
            dependencies: deps
                .iter()
                .map(|(k, w)| DependencyLocation {
                    key: k.to_string(),
                    who_has: keys(w),
                    nbytes: 8,
                })
                .collect(),
            priority,
            sequence,
            resources: Vec::new(),
        }
    }

    fn send(ws: &mut WorkerState, msg: ToWorker) -> Vec<WorkerEffect> {
        let mut out = Vec::new();
        ws.handle_scheduler(msg, &mut out).unwrap();
        ws.check_invariants();
        out
    }

    fn finish(ws: &mut WorkerState, key: &str, r: Result<Bytes, TaskFailure>) -> Vec<WorkerEffect> {
        let mut out = Vec::new();
        ws.task_finished(key, r, 7, &mut out);
        ws.check_invariants();
        out
    }

    fn fetched(ws: &mut WorkerState, w: &str, data: &[(&str, Option<&str>)]) -> Vec<WorkerEffect> {
        let mut out = Vec::new();
        let data = data.iter().map(|(k, v)| (k.to_string(), v.map(b))).collect();
        ws.fetch_finished(w, data, &mut out);
        ws.check_invariants();
        out
    }

    fn free(ws: &mut WorkerState, ks: &[&str]) -> Vec<WorkerEffect> {
        send(ws, ToWorker::FreeKeys { keys: keys(ks) })
    }

    fn executes(out: &[WorkerEffect]) -> Vec<Key> {
        out.iter()
            .filter_map(|e| match e {
                WorkerEffect::Execute { key, .. } => Some(key.clone()),
                _ => None,
            })
            .collect()
    }

    /// Messages to the scheduler, without the `TasksStarted` reports (see
    /// `started_tasks_are_reported_once_per_event`).
    fn sent(out: &[WorkerEffect]) -> Vec<ToScheduler> {
        out.iter()
            .filter_map(|e| match e {
                WorkerEffect::Send(ToScheduler::TasksStarted { .. }) => None,
                WorkerEffect::Send(m) => Some(m.clone()),
                _ => None,
            })
            .collect()
    }

    fn steal(ws: &mut WorkerState, key: &str) -> Vec<ToScheduler> {
        sent(&send(ws, ToWorker::StealRequest { key: key.into() }))
    }

    fn steal_answer(key: &str, stolen: bool) -> Vec<ToScheduler> {
        vec![ToScheduler::StealResponse {
            key: key.into(),
            stolen,
        }]
    }

    #[test]
    fn only_tasks_not_on_a_thread_are_given_up_to_a_steal() {
        use WorkerTaskState::*;
        let mut ws = WorkerState::new(cfg(1));
        send(&mut ws, compute("a", &[], 0, 0));
        send(&mut ws, compute("b", &[], 0, 1));
        send(&mut ws, compute("c", &[("d", &["tcp://p:1"])], 0, 2));
        assert_eq!(ws.task_state("a"), Some(Executing));
        assert_eq!(ws.task_state("b"), Some(Ready));
        assert_eq!(ws.task_state("c"), Some(Waiting));
        // On a thread: kept.
        assert_eq!(steal(&mut ws, "a"), steal_answer("a", false));
        assert_eq!(ws.task_state("a"), Some(Executing));
        // Ready: forgotten, never executed.
        assert_eq!(steal(&mut ws, "b"), steal_answer("b", true));
        assert_eq!(ws.task_state("b"), None);
        // Waiting on a fetch in flight: forgotten; the fetch's result is
        // dropped when it lands.
        assert_eq!(steal(&mut ws, "c"), steal_answer("c", true));
        assert_eq!(ws.task_state("c"), None);
        let out = fetched(&mut ws, "tcp://p:1", &[("d", Some("v"))]);
        assert!(executes(&out).is_empty());
        assert_eq!(ws.task_state("d"), None);
        // Unknown, or done: kept (false).
        assert_eq!(steal(&mut ws, "zz"), steal_answer("zz", false));
        let out = finish(&mut ws, "a", Ok(b("1")));
        assert!(executes(&out).is_empty(), "b was given up: {out:?}");
        assert_eq!(steal(&mut ws, "a"), steal_answer("a", false));
        assert_eq!(ws.task_state("a"), Some(Memory));
    }

    #[test]
    fn resources_limit_how_many_tasks_run_at_once() {
        let mut ws = WorkerState::new(cfg(4)).with_resources(vec![("GPU".into(), 2.0)]);
        let gpu = |key: &str, seq: u64| match compute(key, &[], 0, seq) {
            ToWorker::ComputeTask {
                key,
                function,
                args,
                dependencies,
                priority,
                sequence,
                ..
            } => ToWorker::ComputeTask {
                key,
                function,
                args,
                dependencies,
                priority,
                sequence,
                resources: vec![("GPU".into(), 1.0)],
            },
            other => other,
        };
        let mut ran = Vec::new();
        for (i, k) in ["g0", "g1", "g2"].iter().enumerate() {
            ran.extend(executes(&send(&mut ws, gpu(k, i as u64))));
        }
        // A task without resources is not held up behind them.
        ran.extend(executes(&send(&mut ws, compute("plain", &[], 0, 9))));
        assert_eq!(ran, keys(&["g0", "g1", "plain"]));
        assert_eq!(ws.task_state("g2"), Some(WorkerTaskState::Ready));
        // g2 starts when a GPU is given back.
        assert!(executes(&finish(&mut ws, "plain", Ok(b("p")))).is_empty());
        assert_eq!(executes(&finish(&mut ws, "g0", Ok(b("0")))), keys(&["g2"]));
        // And it can be stolen while it waits; not once it runs.
        assert_eq!(steal(&mut ws, "g2"), steal_answer("g2", false));
    }

    fn started(out: &[WorkerEffect]) -> Vec<Vec<Key>> {
        out.iter()
            .filter_map(|e| match e {
                WorkerEffect::Send(ToScheduler::TasksStarted { keys }) => Some(keys.clone()),
                _ => None,
            })
            .collect()
    }

    #[test]
    fn started_tasks_are_reported_once_per_event() {
        let mut ws = WorkerState::new(cfg(2));
        let mut out = Vec::new();
        for (i, k) in ["a", "b", "c"].iter().enumerate() {
            ws.handle_scheduler(compute(k, &[], 0, i as u64), &mut out).unwrap();
        }
        // Two threads: a and b start (one report per event), c waits.
        assert_eq!(started(&out), vec![keys(&["a"]), keys(&["b"])]);
        let out = finish(&mut ws, "a", Ok(b("1")));
        assert_eq!(started(&out), vec![keys(&["c"])]);
        // The report follows the Execute it describes, in one event.
        let out = finish(&mut ws, "b", Ok(b("2")));
        assert!(started(&out).is_empty());
    }

    #[test]
    fn replicas_are_fetched_held_and_announced() {
        let mut ws = WorkerState::new(cfg(1));
        let loc = |k: &str| DependencyLocation {
            key: k.into(),
            who_has: vec!["tcp://old:1".into()],
            nbytes: 1,
        };
        let mut out = Vec::new();
        ws.handle_scheduler(
            ToWorker::StoreData {
                data: vec![("here".into(), Payload(b("h")))],
            },
            &mut out,
        )
        .unwrap();
        let out = send(
            &mut ws,
            ToWorker::AcquireReplicas {
                keys: vec![loc("x"), loc("here")],
            },
        );
        assert_eq!(fetches(&out), vec![("tcp://old:1".to_string(), keys(&["x"]))]);
        assert_eq!(
            sent(&out),
            vec![ToScheduler::AddKeys {
                keys: vec![("here".into(), 1)]
            }]
        );
        let out = fetched(&mut ws, "tcp://old:1", &[("x", Some("xx"))]);
        assert_eq!(
            sent(&out),
            vec![ToScheduler::AddKeys {
                keys: vec![("x".into(), 2)]
            }]
        );
        // Held: kept with no local reader until the scheduler frees it.
        assert_eq!(ws.task_state("x"), Some(WorkerTaskState::Memory));
        free(&mut ws, &["x", "here"]);
        assert_eq!(ws.ntasks(), 0);
    }

    fn fetches(out: &[WorkerEffect]) -> Vec<(String, Vec<Key>)> {
        out.iter()
            .filter_map(|e| match e {
                WorkerEffect::Fetch { worker, keys } => Some((worker.clone(), keys.clone())),
                _ => None,
            })
            .collect()
    }

    fn missing(key: &str, w: &str) -> ToScheduler {
        ToScheduler::MissingData {
            key: key.into(),
            errant_worker: w.into(),
        }
    }

    #[test]
    fn root_task_runs_and_reports_inline_only_when_small() {
        let mut ws = WorkerState::new(cfg(2));
        let out = send(&mut ws, compute("a", &[], 0, 0));
        assert_eq!(
            out,
            vec![
                WorkerEffect::Execute {
                    key: "a".into(),
                    function: "f".into(),
                    args: vec![Arg::Value(vec![0x2a])],
                },
                WorkerEffect::Send(ToScheduler::TasksStarted { keys: keys(&["a"]) })
            ]
        );
        assert_eq!(ws.task_state("a"), Some(Executing));
        assert_eq!(ws.executing_count(), 1);
        let out = finish(&mut ws, "a", Ok(b("small")));
        assert_eq!(
            out,
            vec![
                WorkerEffect::StorePut {
                    key: "a".into(),
                    data: b("small")
                },
                WorkerEffect::Send(ToScheduler::TaskFinished {
                    key: "a".into(),
                    nbytes: 5,
                    inline: Some(Payload(b("small"))),
                    duration_us: 7,
                }),
            ]
        );
        assert_eq!(ws.task_state("a"), Some(Memory));
        assert_eq!((ws.nkeys_in_memory(), ws.nbytes_in_memory()), (1, 5));

        send(&mut ws, compute("big", &[], 0, 1));
        let large = "x".repeat(17);
        let out = finish(&mut ws, "big", Ok(b(&large)));
        assert_eq!(
            sent(&out),
            vec![ToScheduler::TaskFinished {
                key: "big".into(),
                nbytes: 17,
                inline: None,
                duration_us: 7,
            }]
        );
        assert_eq!(
            ws.heartbeat(),
            ToScheduler::Heartbeat {
                nkeys: 2,
                nbytes: 22,
                executing: 0,
                ready: 0
            }
        );
    }

    #[test]
    fn one_thread_runs_by_priority_then_sequence() {
        let mut ws = WorkerState::new(cfg(1));
        let mut order = executes(&send(&mut ws, compute("first", &[], 0, 0)));
        for (k, p, s) in [("low", -1, 1), ("hi-late", 5, 9), ("hi-early", 5, 3), ("mid", 0, 2)] {
            assert!(send(&mut ws, compute(k, &[], p, s)).is_empty());
        }
        assert_eq!(ws.ready_count(), 4);
        while let Some(k) = order.last().cloned() {
            let next = executes(&finish(&mut ws, &k, Ok(b("v"))));
            if next.is_empty() {
                break;
            }
            order.extend(next);
        }
        assert_eq!(order, keys(&["first", "hi-early", "hi-late", "mid", "low"]));
    }

    #[test]
    fn dependency_is_fetched_stored_reported_then_task_runs() {
        let mut ws = WorkerState::new(cfg(1));
        let out = send(&mut ws, compute("t", &[("d", &["tcp://p"])], 0, 0));
        assert_eq!(fetches(&out), vec![("tcp://p".to_string(), keys(&["d"]))]);
        assert_eq!(ws.task_state("t"), Some(Waiting));
        assert_eq!(ws.task_state("d"), Some(Flight));
        let out = fetched(&mut ws, "tcp://p", &[("d", Some("dval"))]);
        assert_eq!(
            out[0],
            WorkerEffect::StorePut {
                key: "d".into(),
                data: b("dval")
            }
        );
        assert_eq!(executes(&out), keys(&["t"]));
        assert_eq!(
            sent(&out),
            vec![ToScheduler::AddKeys {
                keys: vec![("d".into(), 4)]
            }]
        );
        assert_eq!(ws.task_state("d"), Some(Memory));
        finish(&mut ws, "t", Ok(b("r")));
        // The scheduler decides when the fetched copy goes.
        assert_eq!(ws.task_state("d"), Some(Memory));
    }

    #[test]
    fn keys_held_by_one_peer_come_in_one_request() {
        let mut ws = WorkerState::new(cfg(1));
        let out = send(
            &mut ws,
            compute("t", &[("d1", &["tcp://a", "tcp://b"]), ("d2", &["tcp://b"])], 0, 0),
        );
        assert_eq!(fetches(&out), vec![("tcp://b".to_string(), keys(&["d1", "d2"]))]);
        // Both keys are in flight: a second task reading them fetches nothing.
        let out = send(
            &mut ws,
            compute("u", &[("d1", &["tcp://a"]), ("d2", &["tcp://a"])], 0, 1),
        );
        assert!(fetches(&out).is_empty());
        let out = fetched(&mut ws, "tcp://b", &[("d1", Some("1")), ("d2", Some("2"))]);
        assert_eq!(executes(&out), keys(&["t"]));
        assert_eq!(ws.ready_count(), 1);
    }

    #[test]
    fn missing_data_is_reported_and_other_holder_tried() {
        let mut ws = WorkerState::new(cfg(1));
        let out = send(&mut ws, compute("t", &[("d", &["tcp://a", "tcp://b"])], 0, 0));
        let (w1, _) = fetches(&out).remove(0);
        let other = if w1 == "tcp://a" { "tcp://b" } else { "tcp://a" };
        let out = fetched(&mut ws, &w1, &[("d", None)]);
        assert_eq!(sent(&out), vec![missing("d", &w1)]);
        assert_eq!(fetches(&out), vec![(other.to_string(), keys(&["d"]))]);
        // The last holder lacks it too: stay in fetch and wait, no spinning.
        let out = fetched(&mut ws, other, &[]);
        assert_eq!(sent(&out), vec![missing("d", other)]);
        assert!(fetches(&out).is_empty());
        assert_eq!(ws.task_state("d"), Some(Fetch));
        // The scheduler reschedules: frees the dependent, which drops d.
        free(&mut ws, &["t"]);
        assert_eq!(ws.ntasks(), 0);
    }

    #[test]
    fn fetch_failure_reports_every_key_and_moves_on() {
        let mut ws = WorkerState::new(cfg(1));
        let out = send(
            &mut ws,
            compute(
                "t",
                &[("d1", &["tcp://dead", "tcp://ok"]), ("d2", &["tcp://dead"])],
                0,
                0,
            ),
        );
        assert_eq!(fetches(&out), vec![("tcp://dead".to_string(), keys(&["d1", "d2"]))]);
        let mut out = Vec::new();
        ws.fetch_failed("tcp://dead", keys(&["d1", "d2"]), &mut out);
        ws.check_invariants();
        assert_eq!(
            sent(&out),
            vec![missing("d1", "tcp://dead"), missing("d2", "tcp://dead")]
        );
        assert_eq!(fetches(&out), vec![("tcp://ok".to_string(), keys(&["d1"]))]);
        assert_eq!(ws.task_state("d2"), Some(Fetch));
        // New holders named by a later ComputeTask are used.
        let out = send(&mut ws, compute("u", &[("d2", &["tcp://new"])], 0, 1));
        assert_eq!(fetches(&out), vec![("tcp://new".to_string(), keys(&["d2"]))]);
    }

    #[test]
    fn concurrent_fetches_are_capped() {
        let mut ws = WorkerState::new(WorkerStateConfig {
            max_concurrent_fetches: 2,
            ..cfg(1)
        });
        let out = send(
            &mut ws,
            compute(
                "t",
                &[("a", &["tcp://1"]), ("b", &["tcp://2"]), ("c", &["tcp://3"])],
                0,
                0,
            ),
        );
        assert_eq!(fetches(&out).len(), 2);
        let (w, ks) = fetches(&out).remove(0);
        let out = fetched(&mut ws, &w, &[(&ks[0], Some("x"))]);
        assert_eq!(fetches(&out), vec![("tcp://3".to_string(), keys(&["c"]))]);
    }

    #[test]
    fn freeing_an_executing_task_drops_its_result() {
        let mut ws = WorkerState::new(cfg(1));
        send(&mut ws, compute("a", &[], 0, 0));
        send(&mut ws, compute("b", &[], 0, 1));
        assert!(free(&mut ws, &["a"]).is_empty());
        assert_eq!(ws.task_state("a"), Some(Cancelled));
        assert_eq!(ws.executing_count(), 1);
        let out = finish(&mut ws, "a", Ok(b("late")));
        assert_eq!(executes(&out), keys(&["b"]));
        assert_eq!(started(&out), vec![keys(&["b"])]);
        assert_eq!(out.len(), 2, "no StorePut or TaskFinished for a: {out:?}");
        assert_eq!(ws.task_state("a"), None);
        // A failure of a cancelled run is dropped too.
        free(&mut ws, &["b"]);
        let out = finish(
            &mut ws,
            "b",
            Err(TaskFailure {
                kind: ErrorKind::Failed,
                message: "x".into(),
            }),
        );
        assert!(out.is_empty());
        assert_eq!(ws.ntasks(), 0);
    }

    #[test]
    fn cancelled_task_resumes_when_asked_again() {
        let mut ws = WorkerState::new(cfg(1));
        send(&mut ws, compute("a", &[], 0, 0));
        free(&mut ws, &["a"]);
        assert!(send(&mut ws, compute("a", &[], 0, 1)).is_empty());
        assert_eq!(ws.task_state("a"), Some(Executing));
        let out = finish(&mut ws, "a", Ok(b("v")));
        assert_eq!(sent(&out).len(), 1);
    }

    #[test]
    fn freeing_memory_deletes_in_one_effect() {
        let mut ws = WorkerState::new(cfg(2));
        send(&mut ws, compute("a", &[], 0, 0));
        send(&mut ws, compute("b", &[], 0, 1));
        finish(&mut ws, "a", Ok(b("1")));
        finish(&mut ws, "b", Ok(b("2")));
        let out = free(&mut ws, &["a", "b", "unknown"]);
        assert_eq!(
            out,
            vec![WorkerEffect::StoreDelete {
                keys: keys(&["a", "b"])
            }]
        );
        assert_eq!((ws.ntasks(), ws.nkeys_in_memory(), ws.nbytes_in_memory()), (0, 0, 0));
    }

    #[test]
    fn dependency_freed_early_is_kept_until_its_reader_finishes() {
        let mut ws = WorkerState::new(cfg(1));
        send(&mut ws, compute("blocker", &[], 0, 0));
        send(
            &mut ws,
            ToWorker::StoreData {
                data: vec![("d".into(), Payload(b("dd")))],
            },
        );
        send(&mut ws, compute("t", &[("d", &["tcp://me"])], 0, 1));
        assert_eq!(ws.task_state("t"), Some(Ready));
        assert!(free(&mut ws, &["d"]).is_empty());
        assert_eq!(ws.task_state("d"), Some(Memory));
        let out = finish(&mut ws, "blocker", Ok(b("x")));
        assert_eq!(executes(&out), keys(&["t"]));
        let out = finish(&mut ws, "t", Ok(b("y")));
        assert!(out.contains(&WorkerEffect::StoreDelete { keys: keys(&["d"]) }));
        assert_eq!(ws.task_state("d"), None);
    }

    #[test]
    fn freeing_a_reader_drops_its_fetches_and_flights() {
        let mut ws = WorkerState::new(WorkerStateConfig {
            max_concurrent_fetches: 1,
            ..cfg(1)
        });
        send(
            &mut ws,
            compute("t", &[("f1", &["tcp://a"]), ("f2", &["tcp://b"])], 0, 0),
        );
        let (in_flight, queued) = if ws.task_state("f1") == Some(Flight) {
            ("f1", "f2")
        } else {
            ("f2", "f1")
        };
        assert_eq!(ws.task_state(queued), Some(Fetch));
        free(&mut ws, &["t"]);
        assert_eq!(ws.task_state(queued), None);
        assert_eq!(ws.task_state(in_flight), Some(Cancelled));
        let w = if in_flight == "f1" { "tcp://a" } else { "tcp://b" };
        let out = fetched(&mut ws, w, &[(in_flight, Some("late"))]);
        assert!(out.is_empty(), "arriving data dropped: {out:?}");
        assert_eq!(ws.ntasks(), 0);
    }

    #[test]
    fn failure_is_reported() {
        let mut ws = WorkerState::new(cfg(1));
        send(&mut ws, compute("a", &[], 0, 0));
        let failure = TaskFailure {
            kind: ErrorKind::Panicked,
            message: "boom".into(),
        };
        let out = finish(&mut ws, "a", Err(failure.clone()));
        assert_eq!(
            sent(&out),
            vec![ToScheduler::TaskErred {
                key: "a".into(),
                failure
            }]
        );
        assert_eq!(ws.task_state("a"), Some(Error));
        assert_eq!(ws.executing_count(), 0);
        // A retry reruns it.
        assert_eq!(executes(&send(&mut ws, compute("a", &[], 0, 1))), keys(&["a"]));
        free(&mut ws, &["a"]);
        finish(&mut ws, "a", Ok(b("x")));
        assert_eq!(ws.ntasks(), 0);
    }

    #[test]
    fn store_data_puts_and_wakes_waiters() {
        let mut ws = WorkerState::new(cfg(1));
        send(&mut ws, compute("t", &[("d", &["tcp://p"])], 0, 0));
        let out = send(
            &mut ws,
            ToWorker::StoreData {
                data: vec![("d".into(), Payload(b("abc")))],
            },
        );
        assert_eq!(
            out[0],
            WorkerEffect::StorePut {
                key: "d".into(),
                data: b("abc")
            }
        );
        assert_eq!(executes(&out), keys(&["t"]));
        assert!(sent(&out).is_empty());
        // The outstanding fetch's answer is stale now and ignored.
        let out = fetched(&mut ws, "tcp://p", &[("d", Some("old"))]);
        assert!(out.is_empty());
        assert_eq!(ws.nbytes_in_memory(), 3);
    }

    #[test]
    fn duplicate_compute_task() {
        let mut ws = WorkerState::new(cfg(1));
        send(&mut ws, compute("a", &[], 0, 0));
        send(&mut ws, compute("w", &[("a", &[])], 0, 1));
        assert!(send(&mut ws, compute("a", &[], 0, 0)).is_empty());
        assert!(send(&mut ws, compute("w", &[("a", &[])], 0, 1)).is_empty());
        let out = finish(&mut ws, "a", Ok(b("v")));
        assert_eq!(executes(&out), keys(&["w"]));
        assert_eq!(
            sent(&send(&mut ws, compute("a", &[], 0, 0))),
            vec![ToScheduler::TaskFinished {
                key: "a".into(),
                nbytes: 1,
                inline: None,
                duration_us: 0
            }]
        );
    }

    #[test]
    fn stale_and_foreign_input_is_ignored() {
        let mut ws = WorkerState::new(cfg(1));
        let mut out = Vec::new();
        ws.task_finished("nope", Ok(b("x")), 1, &mut out);
        ws.fetch_finished("tcp://x", vec![("nope".into(), Some(b("x")))], &mut out);
        ws.fetch_failed("tcp://x", keys(&["nope"]), &mut out);
        ws.handle_scheduler(ToWorker::FreeKeys { keys: keys(&["nope"]) }, &mut out)
            .unwrap();
        assert!(out.is_empty());
        assert!(ws
            .handle_scheduler(ToWorker::Close { reason: String::new() }, &mut out)
            .is_err());
        assert!(ws
            .handle_scheduler(
                ToWorker::Registered {
                    worker_id: 1,
                    heartbeat_ms: 1
                },
                &mut out
            )
            .is_err());
        // A task finishing twice frees one slot only.
        send(&mut ws, compute("a", &[], 0, 0));
        finish(&mut ws, "a", Ok(b("x")));
        finish(&mut ws, "a", Ok(b("y")));
        assert_eq!(ws.executing_count(), 0);
    }

    #[test]
    fn nothing_leaks_after_freeing_everything() {
        let mut ws = WorkerState::new(cfg(1));
        send(
            &mut ws,
            ToWorker::StoreData {
                data: vec![("s".into(), Payload(b("s")))],
            },
        );
        send(&mut ws, compute("a", &[("s", &["tcp://me"])], 0, 0));
        send(&mut ws, compute("b", &[("a", &[]), ("r", &["tcp://p"])], 0, 1));
        send(&mut ws, compute("c", &[("b", &[])], 0, 2));
        send(&mut ws, compute("e", &[("lost", &[])], 0, 3));
        fetched(&mut ws, "tcp://p", &[("r", Some("r"))]);
        finish(&mut ws, "a", Ok(b("a")));
        // Free in an unhelpful order, mid-run: b is on a thread, and keeps
        // what it reads until it returns.
        let out = free(&mut ws, &["s", "r", "a", "c", "b", "e", "lost"]);
        assert_eq!(out, vec![WorkerEffect::StoreDelete { keys: keys(&["s"]) }]);
        assert_eq!(ws.task_state("b"), Some(Cancelled));
        assert_eq!(ws.ntasks(), 3);
        let out = finish(&mut ws, "b", Ok(b("b")));
        assert_eq!(
            out,
            vec![WorkerEffect::StoreDelete {
                keys: keys(&["a", "r"])
            }]
        );
        assert_eq!(ws.ntasks(), 0);
        assert!(ws.ready.is_empty() && ws.fetch_queue.by_worker.is_empty());
        assert!(ws.in_flight.is_empty());
    }

    // ---- property test: random DAGs driven to completion in random order

    const ME: &str = "tcp://me";
    const GOOD: &str = "tcp://good";
    /// Peers other than GOOD: one lacks odd-numbered keys, one refuses.
    const OTHERS: [&str; 3] = ["tcp://good2", "tcp://a-lacky", "tcp://dead"];

    #[derive(Clone, Debug)]
    enum Kind {
        Stored,
        Local,
        Remote(Vec<&'static str>),
    }

    fn dag() -> impl Strategy<Value = Vec<(Kind, Vec<usize>)>> {
        let node = (
            0..3u8,
            prop::collection::vec(any::<prop::sample::Index>(), 0..4),
            any::<[bool; 3]>(),
            any::<prop::sample::Index>(),
        );
        prop::collection::vec(node, 1..30).prop_map(|nodes| {
            nodes
                .into_iter()
                .enumerate()
                .map(|(i, (kind, deps, others, pos))| match kind {
                    0 => (Kind::Stored, vec![]),
                    1 if i > 0 => {
                        let mut deps: Vec<usize> = deps.iter().map(|d| d.index(i)).collect();
                        deps.sort();
                        deps.dedup();
                        (Kind::Local, deps)
                    }
                    1 => (Kind::Local, vec![]),
                    _ => {
                        let mut holders: Vec<&str> = OTHERS
                            .iter()
                            .zip(others)
                            .filter_map(|(w, on)| on.then_some(*w))
                            .collect();
                        holders.insert(pos.index(holders.len() + 1), GOOD);
                        (Kind::Remote(holders), vec![])
                    }
                })
                .collect()
        })
    }

    fn key(i: usize) -> Key {
        format!("k{i}")
    }

    fn value(nodes: &[(Kind, Vec<usize>)], i: usize) -> String {
        match &nodes[i].0 {
            Kind::Stored => format!("s{i}"),
            Kind::Remote(_) => format!("r{i}"),
            Kind::Local => {
                let deps: Vec<String> = nodes[i].1.iter().map(|&d| value(nodes, d)).collect();
                format!("k{i}({})", deps.join(","))
            }
        }
    }

    struct Sim {
        ws: WorkerState,
        store: HashMap<Key, Bytes>,
        running: Vec<(Key, Bytes)>,
        fetching: Vec<(String, Vec<Key>)>,
        rng: u64,
    }

    impl Sim {
        fn rand(&mut self, n: usize) -> usize {
            self.rng ^= self.rng << 13;
            self.rng ^= self.rng >> 7;
            self.rng ^= self.rng << 17;
            (self.rng % n as u64) as usize
        }

        fn apply(&mut self, out: Vec<WorkerEffect>) {
            self.ws.check_invariants();
            for effect in out {
                match effect {
                    WorkerEffect::Send(ToScheduler::TaskErred { key, .. }) => panic!("{key} erred"),
                    WorkerEffect::Send(_) => {}
                    WorkerEffect::Execute { key, args, .. } => {
                        assert_eq!(self.ws.task_state(&key), Some(Executing));
                        let vals: Vec<String> = args
                            .iter()
                            .filter_map(|a| match a {
                                Arg::Key(k) => Some(String::from_utf8(self.store[k].to_vec()).unwrap()),
                                Arg::Value(_) => None,
                            })
                            .collect();
                        let v = b(&format!("{key}({})", vals.join(",")));
                        self.running.push((key, v));
                    }
                    WorkerEffect::Fetch { worker, keys } => {
                        assert_ne!(worker, ME);
                        for (_, ks) in &self.fetching {
                            assert!(keys.iter().all(|k| !ks.contains(k)), "fetched twice");
                        }
                        self.fetching.push((worker, keys));
                    }
                    WorkerEffect::StorePut { key, data } => {
                        self.store.insert(key, data);
                    }
                    WorkerEffect::StoreDelete { keys } => {
                        for k in keys {
                            assert!(self.store.remove(&k).is_some(), "deleted absent {k}");
                        }
                    }
                }
            }
            assert_eq!(self.store.len(), self.ws.nkeys_in_memory());
        }

        /// Completes one outstanding run or fetch; false if none is left.
        fn step(&mut self) -> bool {
            let n = self.running.len() + self.fetching.len();
            if n == 0 {
                return false;
            }
            let pick = self.rand(n);
            let mut out = Vec::new();
            if pick < self.running.len() {
                let (k, v) = self.running.swap_remove(pick);
                self.ws.task_finished(&k, Ok(v), 1, &mut out);
            } else {
                let (w, ks) = self.fetching.swap_remove(pick - self.running.len());
                let value = |k: &Key| b(&format!("r{}", &k[1..]));
                match w.as_str() {
                    "tcp://dead" => self.ws.fetch_failed(&w, ks, &mut out),
                    "tcp://a-lacky" => {
                        let data = ks
                            .iter()
                            .map(|k| {
                                let odd = k[1..].parse::<usize>().unwrap() % 2 == 1;
                                (k.clone(), (!odd).then(|| value(k)))
                            })
                            .collect();
                        self.ws.fetch_finished(&w, data, &mut out);
                    }
                    _ => {
                        let data = ks.iter().map(|k| (k.clone(), Some(value(k)))).collect();
                        self.ws.fetch_finished(&w, data, &mut out);
                    }
                }
            }
            self.apply(out);
            true
        }
    }

    fn messages(nodes: &[(Kind, Vec<usize>)]) -> Vec<ToWorker> {
        let mut msgs = vec![ToWorker::StoreData {
            data: (0..nodes.len())
                .filter(|&i| matches!(nodes[i].0, Kind::Stored))
                .map(|i| (key(i), Payload(b(&value(nodes, i)))))
                .collect(),
        }];
        for (i, (kind, deps)) in nodes.iter().enumerate() {
            if !matches!(kind, Kind::Local) {
                continue;
            }
            let dependencies = deps
                .iter()
                .map(|&d| DependencyLocation {
                    key: key(d),
                    who_has: match &nodes[d].0 {
                        Kind::Remote(h) => h.iter().map(|w| w.to_string()).collect(),
                        _ => vec![ME.to_string()],
                    },
                    nbytes: 4,
                })
                .collect();
            msgs.push(ToWorker::ComputeTask {
                key: key(i),
                function: "f".into(),
                args: deps.iter().map(|&d| Arg::Key(key(d))).collect(),
                dependencies,
                priority: (i % 3) as i32,
                sequence: i as u64,
                resources: Vec::new(),
            });
        }
        msgs
    }

    fn run_dag(nodes: &[(Kind, Vec<usize>)], seed: u64, nthreads: u32, max_fetches: u32, cancel_at: Option<usize>) {
        let mut sim = Sim {
            ws: WorkerState::new(WorkerStateConfig {
                nthreads,
                inline_limit: 8,
                max_concurrent_fetches: max_fetches,
            }),
            store: HashMap::new(),
            running: Vec::new(),
            fetching: Vec::new(),
            rng: seed | 1,
        };
        let mut msgs: VecDeque<ToWorker> = messages(nodes).into();
        let all_keys: Vec<Key> = (0..nodes.len()).map(key).collect();
        let mut steps = 0;
        loop {
            if cancel_at == Some(steps) {
                msgs.clear();
                let mut out = Vec::new();
                let free = ToWorker::FreeKeys { keys: all_keys.clone() };
                sim.ws.handle_scheduler(free, &mut out).unwrap();
                sim.apply(out);
            }
            steps += 1;
            let pending = sim.running.len() + sim.fetching.len();
            if !msgs.is_empty() && (pending == 0 || sim.rand(3) == 0) {
                let msg = msgs.pop_front().unwrap();
                if sim.rand(8) == 0 {
                    // A duplicate, sent again later.
                    msgs.push_back(msg.clone());
                }
                let mut out = Vec::new();
                sim.ws.handle_scheduler(msg, &mut out).unwrap();
                sim.apply(out);
            } else if !sim.step() {
                break;
            }
        }
        assert_eq!(sim.ws.executing_count(), 0);
        if cancel_at.is_none_or(|c| c >= steps) {
            for (i, (kind, deps)) in nodes.iter().enumerate() {
                let needed = !matches!(kind, Kind::Remote(_))
                    || nodes.iter().any(|(k, d)| matches!(k, Kind::Local) && d.contains(&i));
                if needed {
                    assert_eq!(sim.ws.task_state(&key(i)), Some(Memory), "k{i} {kind:?} {deps:?}");
                    assert_eq!(sim.store[&key(i)], b(&value(nodes, i)));
                }
            }
            assert_eq!(sim.ws.ready_count(), 0);
            let mut keys = all_keys.clone();
            while !keys.is_empty() {
                let at = sim.rand(keys.len());
                let batch = keys.split_off(at);
                let mut out = Vec::new();
                sim.ws
                    .handle_scheduler(ToWorker::FreeKeys { keys: batch }, &mut out)
                    .unwrap();
                sim.apply(out);
            }
        }
        assert_eq!(sim.ws.ntasks(), 0);
        assert!(sim.store.is_empty());
        assert_eq!(sim.ws.nbytes_in_memory(), 0);
        sim.ws.check_invariants();
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(200))]

        #[test]
        fn random_dags_complete_and_free_cleanly(
            nodes in dag(),
            seed in any::<u64>(),
            nthreads in 1..4u32,
            max_fetches in 1..4u32,
        ) {
            run_dag(&nodes, seed, nthreads, max_fetches, None);
        }

        #[test]
        fn random_dags_freed_midway_leave_nothing(
            nodes in dag(),
            seed in any::<u64>(),
            nthreads in 1..4u32,
            cancel_at in 0..40usize,
        ) {
            run_dag(&nodes, seed, nthreads, 2, Some(cancel_at));
        }
    }
}
