//! The event loop of a simulation: the real [`SchedulerState`] and the
//! simulated workers and client exchange the real messages on a virtual
//! clock. The scheduler is a single server, as its actor is: a message
//! waits in its inbox while it handles another, and each handling takes
//! the virtual time it really took (measured), so a scheduler that cannot
//! keep up shows in the makespan.

use std::cmp::Ordering;
use std::collections::{BinaryHeap, VecDeque};
use std::time::Instant;

use super::shapes::SimTask;
use super::worker::{SimWorker, Slot};
use super::{SimConfig, SimError, SimReport};
use crate::scheduler::{ClientId, Outbox, Outgoing, SchedulerConfig, SchedulerState, WorkerId, WorkerRegistration};
use crate::wire::messages::{Arg, FromClient, FromWorker, TaskSpec, ToClient, ToWorker};

/// The function name simulated tasks call (function 0; function `k` > 0
/// of a graph is this name followed by `-k`, see [`function_name`]).
pub const SIM_FUNCTION: &str = "rdask::simulate::task";

/// The name of a graph's function `f` ([`super::SimTask::func`]).
pub fn function_name(f: u32) -> String {
    if f == 0 {
        SIM_FUNCTION.to_string()
    } else {
        format!("{SIM_FUNCTION}-{f}")
    }
}
const CLIENT: ClientId = ClientId(1);

/// What reaches the scheduler's inbox.
enum SchedIn {
    Worker(WorkerId, FromWorker),
    Client(FromClient),
    /// A worker's connection dropped.
    Lost(WorkerId),
    /// The work-stealing timer.
    Balance,
}

enum Ev {
    // Boxed: the queue moves its entries as it reorders them.
    ToScheduler(Box<SchedIn>),
    SchedulerWake,
    ToWorker(u32, Box<ToWorker>),
    ToClient(Box<ToClient>),
    Fetched {
        w: u32,
        task: u32,
        /// Every input it waited for: (input, holder).
        inputs: Vec<(u32, u32)>,
        /// How many of them this task's own transfer brought.
        transfers: u64,
        /// Their bytes.
        bytes: u64,
        /// How long that transfer took, link queue included.
        took: f64,
    },
    Done {
        w: u32,
        task: u32,
    },
    Kill(u32),
    BalanceTick,
}

struct Timed {
    at: f64,
    seq: u64,
    ev: Ev,
}

impl PartialEq for Timed {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}
impl Eq for Timed {}
impl PartialOrd for Timed {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}
impl Ord for Timed {
    // Earliest first in a max-heap; ties in the order they were queued.
    fn cmp(&self, other: &Self) -> Ordering {
        other.at.total_cmp(&self.at).then(other.seq.cmp(&self.seq))
    }
}

pub(super) struct Engine<'a> {
    cfg: &'a SimConfig,
    tasks: &'a [SimTask],
    state: SchedulerState,
    workers: Vec<SimWorker>,
    by_address: crate::util::FxMap<String, u32>,
    queue: BinaryHeap<Timed>,
    seq: u64,
    now: f64,
    inbox: VecDeque<SchedIn>,
    waking: bool,
    busy_until: f64,
    /// Wanted keys not yet reported to the client.
    outstanding: usize,
    finished_at: Option<f64>,
    /// Priority and sequence of tasks waiting for their inputs.
    orders: crate::util::FxMap<u32, (i32, u64)>,
    pub(super) report: SimReport,
}

fn key(t: u32) -> String {
    format!("sim-{t:x}")
}

fn index(key: &str) -> Option<u32> {
    key.strip_prefix("sim-").and_then(|h| u32::from_str_radix(h, 16).ok())
}

impl<'a> Engine<'a> {
    pub(super) fn new(cfg: &'a SimConfig, tasks: &'a [SimTask]) -> Result<Self, SimError> {
        let mut state = SchedulerState::new(SchedulerConfig {
            default_bandwidth: cfg.bandwidth_bytes_per_s,
            ..cfg.scheduler.clone()
        });
        let mut out = Outbox::default();
        state.add_client(CLIENT, &mut out);
        let mut engine = Engine {
            cfg,
            tasks,
            state,
            workers: Vec::with_capacity(cfg.workers as usize),
            by_address: Default::default(),
            queue: BinaryHeap::new(),
            seq: 0,
            now: 0.0,
            inbox: VecDeque::new(),
            waking: false,
            busy_until: 0.0,
            outstanding: 0,
            finished_at: None,
            orders: Default::default(),
            report: SimReport::default(),
        };
        let nfuncs = tasks.iter().map(|t| t.func).max().unwrap_or(0) + 1;
        let functions: Vec<String> = (0..nfuncs).map(function_name).collect();
        for w in 0..cfg.workers {
            let address = format!("sim://10.{}.{}.{}:1", w >> 16, (w >> 8) & 255, w & 255);
            let registration = WorkerRegistration {
                name: format!("sim-worker-{w}"),
                address: address.clone(),
                nthreads: cfg.threads_per_worker,
                memory_limit: 0,
                functions: functions.clone(),
                resources: Vec::new(),
                restarted: None,
                nanny: false,
                keys: Vec::new(),
            };
            engine
                .state
                .add_worker(WorkerId(u64::from(w) + 1), registration, &mut out)
                .map_err(|e| SimError::Scheduler(e.to_string()))?;
            engine.by_address.insert(address.clone(), w);
            engine.workers.push(SimWorker::new(address, cfg.threads_per_worker));
        }
        engine.route(out, 0.0);
        for &(at, w) in &cfg.kills {
            if w < cfg.workers {
                engine.push(at, Ev::Kill(w));
            }
        }
        Ok(engine)
    }

    fn push(&mut self, at: f64, ev: Ev) {
        self.seq += 1;
        self.queue.push(Timed { at, seq: self.seq, ev });
    }

    /// The client's one submission: every task, the graph's sinks wanted.
    fn submit(&mut self) {
        let mut used = vec![false; self.tasks.len()];
        for t in self.tasks {
            for &d in &t.deps {
                used[d as usize] = true;
            }
        }
        let specs: Vec<TaskSpec> = self
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| TaskSpec {
                key: key(i as u32),
                function: function_name(t.func),
                args: if t.deps.is_empty() {
                    vec![Arg::Value(vec![0])]
                } else {
                    vec![Arg::Keys(t.deps.iter().map(|&d| key(d)).collect())]
                },
                priority: 0,
                workers: Vec::new(),
                allow_other_workers: false,
                retries: 0,
                resources: Vec::new(),
            })
            .collect();
        let wanted: Vec<String> = (0..self.tasks.len())
            .filter(|&i| !used[i])
            .map(|i| key(i as u32))
            .collect();
        self.outstanding = wanted.len();
        self.report.wanted = wanted.len() as u64;
        let msg = FromClient::UpdateGraph { tasks: specs, wanted };
        self.push(self.cfg.latency_s, Ev::ToScheduler(Box::new(SchedIn::Client(msg))));
        if self.cfg.stealing_interval_s > 0.0 {
            self.push(self.cfg.stealing_interval_s, Ev::BalanceTick);
        }
    }

    /// Runs to the end; the report's makespan is when the client had every
    /// wanted result.
    pub(super) fn run(mut self) -> Result<SimReport, SimError> {
        self.submit();
        let mut steps: u64 = 0;
        while let Some(Timed { at, ev, .. }) = self.queue.pop() {
            self.now = at;
            steps += 1;
            if steps > self.cfg.max_events {
                return Err(SimError::Stuck(format!(
                    "more than {} events (max_events) at virtual time {:.3} s with {} wanted results outstanding",
                    self.cfg.max_events, self.now, self.outstanding
                )));
            }
            self.step(ev)?;
        }
        let Some(end) = self.finished_at else {
            return Err(SimError::Stuck(format!(
                "the run went quiet at virtual time {:.3} s with {} of {} wanted results not reported \
                 (live workers: {})",
                self.now,
                self.outstanding,
                self.report.wanted,
                self.workers.iter().filter(|w| w.alive).count()
            )));
        };
        self.report.makespan_s = end;
        self.report.tasks_left = self.state.ntasks() as u64;
        Ok(self.report)
    }

    fn step(&mut self, ev: Ev) -> Result<(), SimError> {
        match ev {
            Ev::ToScheduler(m) => {
                self.inbox.push_back(*m);
                if !self.waking {
                    self.waking = true;
                    self.push(self.now.max(self.busy_until), Ev::SchedulerWake);
                }
            }
            Ev::SchedulerWake => self.scheduler_handles_one()?,
            Ev::ToWorker(w, msg) => self.worker_handles(w, *msg),
            Ev::ToClient(msg) => self.client_handles(*msg),
            Ev::Fetched {
                w,
                task,
                inputs,
                transfers,
                bytes,
                took,
            } => self.fetched(w, task, inputs, transfers, bytes, took),
            Ev::Done { w, task } => self.done(w, task),
            Ev::Kill(w) => {
                let sw = &mut self.workers[w as usize];
                if sw.alive {
                    sw.alive = false;
                    sw.data.clear();
                    sw.tasks.clear();
                    self.report.workers_killed += 1;
                    // A killed process's connections reset at once.
                    let lost = SchedIn::Lost(WorkerId(u64::from(w) + 1));
                    self.push(self.now + self.cfg.latency_s, Ev::ToScheduler(Box::new(lost)));
                }
            }
            Ev::BalanceTick => {
                // Re-armed only while something else can still happen: with
                // nothing else queued the run has gone quiet.
                if self.finished_at.is_none() && !(self.queue.is_empty() && self.inbox.is_empty()) {
                    self.push(self.now, Ev::ToScheduler(Box::new(SchedIn::Balance)));
                    self.push(self.now + self.cfg.stealing_interval_s, Ev::BalanceTick);
                }
            }
        }
        Ok(())
    }

    /// The scheduler handles the next message of its inbox, taking as much
    /// virtual time as the call really took.
    fn scheduler_handles_one(&mut self) -> Result<(), SimError> {
        let Some(msg) = self.inbox.pop_front() else {
            self.waking = false;
            return Ok(());
        };
        let mut out = Outbox::default();
        let started = Instant::now();
        let result = match msg {
            SchedIn::Worker(w, m) => self.state.handle_worker_message(w, m, &mut out).map(|_| ()),
            SchedIn::Client(m) => self.state.handle_client_message(CLIENT, m, &mut out).map(|_| ()),
            SchedIn::Lost(w) => {
                self.state.remove_worker(w, &mut out);
                Ok(())
            }
            SchedIn::Balance => {
                self.state.balance(&mut out);
                Ok(())
            }
        };
        let took = started.elapsed().as_secs_f64();
        self.report.scheduler_s += took;
        self.report.scheduler_max_event_s = self.report.scheduler_max_event_s.max(took);
        self.report.events += 1;
        // A message from a worker the scheduler already removed is refused,
        // as over a real connection that has closed; anything else is a bug.
        if let Err(e) = result {
            if !matches!(e, crate::scheduler::SchedulerError::UnknownWorker(_)) {
                return Err(SimError::Scheduler(e.to_string()));
            }
        }
        self.busy_until = self.now + took * self.cfg.scheduler_time_scale;
        let departs = self.busy_until + self.cfg.latency_s;
        self.route(out, departs);
        if self.inbox.is_empty() {
            self.waking = false;
        } else {
            self.push(self.busy_until, Ev::SchedulerWake);
        }
        Ok(())
    }

    fn route(&mut self, out: Outbox, arrives: f64) {
        for m in out.messages {
            match m {
                Outgoing::Worker(w, msg) => {
                    let w = (w.0 - 1) as u32;
                    self.push(arrives, Ev::ToWorker(w, Box::new(msg)));
                }
                Outgoing::Client(_, msg) => self.push(arrives, Ev::ToClient(Box::new(msg))),
            }
        }
    }

    fn send(&mut self, w: u32, msg: FromWorker) {
        let m = SchedIn::Worker(WorkerId(u64::from(w) + 1), msg);
        self.push(self.now + self.cfg.latency_s, Ev::ToScheduler(Box::new(m)));
    }

    fn client_handles(&mut self, msg: ToClient) {
        let done = match msg {
            ToClient::KeyInMemory { key, .. } => {
                if self.cfg.release_results {
                    let release = FromClient::ReleaseKeys { keys: vec![key] };
                    self.push(
                        self.now + self.cfg.latency_s,
                        Ev::ToScheduler(Box::new(SchedIn::Client(release))),
                    );
                }
                true
            }
            ToClient::TaskErred { .. } => {
                self.report.errors += 1;
                true
            }
            _ => false,
        };
        if done && self.outstanding > 0 {
            self.outstanding -= 1;
            if self.outstanding == 0 {
                self.finished_at = Some(self.now);
            }
        }
    }

    fn worker_handles(&mut self, w: u32, msg: ToWorker) {
        if !self.workers[w as usize].alive {
            return;
        }
        match msg {
            ToWorker::ComputeTask {
                key: k,
                dependencies,
                priority,
                sequence,
                run_id,
                ..
            } => {
                let Some(t) = index(&k) else { return };
                self.workers[w as usize].runs.insert(t, run_id);
                let mut inputs: Vec<(u32, u32)> = Vec::new();
                let mut fresh: Vec<(u32, u64)> = Vec::new();
                let mut arrives = self.now;
                let mut took = 0.0;
                let sw = &self.workers[w as usize];
                for d in &dependencies {
                    let Some(di) = index(&d.key) else { continue };
                    if sw.data.contains_key(&di) {
                        continue;
                    }
                    let from = d.who_has.iter().find_map(|a| self.by_address.get(a).copied());
                    inputs.push((di, from.unwrap_or(u32::MAX)));
                    match sw.in_flight.get(&di) {
                        Some(&at) if at >= self.now => arrives = arrives.max(at),
                        _ => fresh.push((di, d.nbytes)),
                    }
                }
                let bytes: u64 = fresh.iter().map(|&(_, n)| n).sum();
                let sw = &mut self.workers[w as usize];
                if inputs.is_empty() {
                    sw.make_ready(t, priority, sequence);
                    self.start_ready(w);
                } else {
                    // Incoming transfers queue on the worker's link; inputs
                    // already on their way are waited for, not fetched again.
                    if !fresh.is_empty() {
                        let start = self.now.max(sw.link_free_at);
                        sw.link_free_at = start + bytes as f64 / self.cfg.bandwidth_bytes_per_s;
                        let at = sw.link_free_at + self.cfg.latency_s;
                        for &(di, _) in &fresh {
                            sw.in_flight.insert(di, at);
                        }
                        arrives = arrives.max(at);
                        took = at - self.now;
                    }
                    sw.tasks.insert(t, Slot::Fetching);
                    self.push(
                        arrives,
                        Ev::Fetched {
                            w,
                            task: t,
                            inputs,
                            transfers: fresh.len() as u64,
                            bytes,
                            took,
                        },
                    );
                    // Remember the order this task had, for when its inputs arrive.
                    self.pending_order(t, priority, sequence);
                }
            }
            ToWorker::FreeKeys { keys } => {
                for k in keys {
                    if let Some(t) = index(&k) {
                        self.workers[w as usize].free(t);
                    }
                }
            }
            ToWorker::StealRequest { key: k } => {
                let stolen = index(&k).is_some_and(|t| self.workers[w as usize].steal(t));
                self.send(w, FromWorker::StealResponse { key: k, stolen });
            }
            // Registration, data moves, closing and restarts are not simulated.
            _ => {}
        }
    }

    fn pending_order(&mut self, t: u32, priority: i32, sequence: u64) {
        self.orders.insert(t, (priority, sequence));
    }

    fn fetched(&mut self, w: u32, task: u32, inputs: Vec<(u32, u32)>, transfers: u64, bytes: u64, took: f64) {
        if !self.workers[w as usize].alive {
            return;
        }
        let order = self.orders.remove(&task);
        if self.workers[w as usize].tasks.get(&task) != Some(&Slot::Fetching) {
            return; // freed or stolen meanwhile
        }
        // An input whose holder died (or dropped it) is missing, as a real
        // fetch from a closed peer is.
        for &(d, from) in &inputs {
            let held = self
                .workers
                .get(from as usize)
                .is_some_and(|s| s.alive && s.data.contains_key(&d));
            if !held {
                let errant = self
                    .workers
                    .get(from as usize)
                    .map(|s| s.address.clone())
                    .unwrap_or_default();
                self.workers[w as usize].tasks.remove(&task);
                self.send(
                    w,
                    FromWorker::MissingData {
                        key: key(d),
                        errant_worker: errant,
                    },
                );
                return;
            }
        }
        let mut added = Vec::with_capacity(inputs.len());
        for &(d, from) in &inputs {
            let n = self.workers[from as usize].data.get(&d).copied().unwrap_or(0);
            let sw = &mut self.workers[w as usize];
            sw.in_flight.remove(&d);
            // Reported once, by the first task its transfer served.
            if sw.data.insert(d, n).is_none() {
                added.push((key(d), n));
            }
        }
        self.report.transfers += transfers;
        self.report.transfer_bytes += bytes;
        if !added.is_empty() {
            self.send(w, FromWorker::AddKeys { keys: added });
        }
        if bytes > 0 {
            self.send(
                w,
                FromWorker::TransferStats {
                    bytes,
                    duration_us: (took * 1e6) as u64,
                },
            );
        }
        let (priority, sequence) = order.unwrap_or((0, 0));
        self.workers[w as usize].make_ready(task, priority, sequence);
        self.start_ready(w);
    }

    /// Gives free threads their next tasks and tells the scheduler which
    /// started, in one `TasksStarted` as a real worker does per event.
    fn start_ready(&mut self, w: u32) {
        let mut started = Vec::new();
        while let Some(t) = self.workers[w as usize].next_to_run() {
            let d = self.tasks[t as usize].duration_s;
            self.report.busy_s += d;
            self.push(self.now + d, Ev::Done { w, task: t });
            let run_id = self.workers[w as usize].runs.get(&t).copied().unwrap_or(0);
            started.push(run_id);
        }
        if !started.is_empty() {
            self.send(
                w,
                FromWorker::TasksStarted {
                    keys: Vec::new(),
                    run_ids: started,
                },
            );
        }
    }

    fn done(&mut self, w: u32, task: u32) {
        if !self.workers[w as usize].alive {
            return;
        }
        let spec = &self.tasks[task as usize];
        let (nbytes, duration) = (spec.nbytes, spec.duration_s);
        let run_id = self.workers[w as usize].runs.remove(&task).unwrap_or(0);
        if self.workers[w as usize].finish(task, nbytes) {
            self.report.executed += 1;
            self.send(
                w,
                FromWorker::TaskFinished {
                    key: key(task),
                    nbytes,
                    inline: None,
                    duration_us: (duration * 1e6) as u64,
                    thread: 0,
                    run_id,
                },
            );
        }
        self.start_ready(w);
    }
}
