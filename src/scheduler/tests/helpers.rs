//! Fixtures shared by the scheduler tests: task specs, worker
//! registrations, and `H`, a scheduler with two clients that records what
//! it sent.

pub(super) use std::collections::{BTreeMap, HashMap, VecDeque};

pub(super) use crate::scheduler::ids::WIdx;
pub(super) use crate::scheduler::state::{
    ClientId, Outbox, Outgoing, SchedulerConfig, SchedulerError, SchedulerState, TaskState, WorkerId,
    WorkerRegistration,
};
pub(super) use crate::scheduler::tasks::TaskSlot;
pub(super) use crate::wire::messages::{
    Arg, DependencyLocation, ErrorKind, FromClient, FromWorker, Payload, TaskFailure, TaskSpec, ToClient, ToWorker,
};

pub(super) const C1: ClientId = ClientId(1);

pub(super) const C2: ClientId = ClientId(2);

pub(super) fn spec(key: &str, function: &str, deps: &[&str]) -> TaskSpec {
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

pub(super) fn reg(name: &str, functions: &[&str]) -> WorkerRegistration {
    WorkerRegistration {
        name: name.to_string(),
        address: format!("tcp://{name}:1"),
        nthreads: 1,
        memory_limit: 0,
        functions: functions.iter().map(|f| f.to_string()).collect(),
        resources: Vec::new(),
        restarted: None,
        nanny: false,
        keys: Vec::new(),
    }
}

pub(super) fn reg_with(name: &str, functions: &[&str], nthreads: u32, resources: &[(&str, f64)]) -> WorkerRegistration {
    WorkerRegistration {
        nthreads,
        resources: resources.iter().map(|(n, a)| (n.to_string(), *a)).collect(),
        ..reg(name, functions)
    }
}

pub(super) fn restricted(key: &str, function: &str, deps: &[&str], worker: &str) -> TaskSpec {
    TaskSpec {
        workers: vec![worker.to_string()],
        ..spec(key, function, deps)
    }
}

pub(super) fn finished(key: &str, nbytes: u64, duration_us: u64) -> FromWorker {
    FromWorker::TaskFinished {
        key: key.into(),
        nbytes,
        inline: None,
        duration_us,
        thread: 0,
        run_id: LATEST,
    }
}

/// A `run_id` that [`H::worker_sends`] replaces with the run id of the
/// latest `ComputeTask` of the key it sent that worker, as a worker echoes
/// it (the scheduler never hands out 0).
pub(super) const LATEST: u64 = 0;

pub(super) fn failure(message: &str) -> TaskFailure {
    TaskFailure {
        kind: ErrorKind::Failed,
        message: message.to_string(),
    }
}

/// A scheduler plus the messages it sent, per peer.
pub(super) struct H {
    pub(super) s: SchedulerState,
    pub(super) out: Vec<Outgoing>,
    /// Check the invariants after every event (O(tasks) each: tests of
    /// large graphs turn it off).
    pub(super) check: bool,
    /// The run id of the latest `ComputeTask` sent per (worker, key): what
    /// that worker echoes (see [`LATEST`]).
    pub(super) runs: HashMap<(u64, String), u64>,
}

impl H {
    /// Keeps an event's messages, after checking the state's invariants.
    pub(super) fn absorb(&mut self, o: Outbox) {
        if self.check {
            if let Err(e) = self.s.check_invariants() {
                panic!("invariant broken: {e}");
            }
        }
        for m in &o.messages {
            if let Outgoing::Worker(id, ToWorker::ComputeTask { key, run_id, .. }) = m {
                self.runs.insert((id.0, key.clone()), *run_id);
            }
        }
        self.out.extend(o.messages);
    }
    /// The run id worker `w` echoes for `key`: that of the latest
    /// `ComputeTask` of it sent to `w`, 0 if none.
    pub(super) fn run_on(&self, w: u64, key: &str) -> u64 {
        self.runs.get(&(w, key.to_string())).copied().unwrap_or(0)
    }
    pub(super) fn new() -> H {
        Self::with(SchedulerConfig::default())
    }
    pub(super) fn with(config: SchedulerConfig) -> H {
        let mut h = H {
            s: SchedulerState::new(config),
            out: Vec::new(),
            check: true,
            runs: HashMap::new(),
        };
        let mut o = Outbox::default();
        h.s.add_client(C1, &mut o);
        h.s.add_client(C2, &mut o);
        h
    }
    pub(super) fn worker(&mut self, id: u64, name: &str, fns: &[&str]) {
        let mut o = Outbox::default();
        self.s.add_worker(WorkerId(id), reg(name, fns), &mut o).unwrap();
        self.absorb(o);
    }
    pub(super) fn client(&mut self, c: ClientId, msg: FromClient) {
        let mut o = Outbox::default();
        self.s.handle_client_message(c, msg, &mut o).unwrap();
        self.absorb(o);
    }
    pub(super) fn worker_sends(&mut self, w: u64, mut msg: FromWorker) {
        if let FromWorker::TaskFinished { key, run_id, .. } | FromWorker::TaskErred { key, run_id, .. } = &mut msg {
            if *run_id == LATEST {
                *run_id = self.run_on(w, key);
            }
        }
        let mut o = Outbox::default();
        self.s.handle_worker_message(WorkerId(w), msg, &mut o).unwrap();
        self.absorb(o);
    }
    pub(super) fn kill(&mut self, w: u64) {
        let mut o = Outbox::default();
        self.s.remove_worker(WorkerId(w), &mut o);
        self.absorb(o);
    }
    pub(super) fn submit(&mut self, c: ClientId, tasks: Vec<TaskSpec>, wanted: &[&str]) {
        self.client(
            c,
            FromClient::UpdateGraph {
                tasks,
                wanted: wanted.iter().map(|k| k.to_string()).collect(),
            },
        );
    }
    pub(super) fn release(&mut self, c: ClientId, keys: &[&str]) {
        self.client(
            c,
            FromClient::ReleaseKeys {
                keys: keys.iter().map(|k| k.to_string()).collect(),
            },
        );
    }
    pub(super) fn finish(&mut self, w: u64, key: &str) {
        self.finish_in(w, key, 10);
    }
    pub(super) fn finish_in(&mut self, w: u64, key: &str, duration_us: u64) {
        self.worker_sends(
            w,
            FromWorker::TaskFinished {
                key: key.to_string(),
                nbytes: 8,
                inline: None,
                duration_us,
                thread: 0,
                run_id: LATEST,
            },
        );
    }
    pub(super) fn state(&self, key: &str) -> Option<TaskState> {
        self.s.task_state(key)
    }
    pub(super) fn take(&mut self) -> Vec<Outgoing> {
        std::mem::take(&mut self.out)
    }
    /// Keys of ComputeTask messages sent to worker `w` (drains all).
    pub(super) fn computes(&mut self, w: u64) -> Vec<String> {
        self.take()
            .into_iter()
            .filter_map(|m| match m {
                Outgoing::Worker(id, ToWorker::ComputeTask { key, .. }) if id.0 == w => Some(key),
                _ => None,
            })
            .collect()
    }
    pub(super) fn to_client(&self, c: ClientId) -> Vec<&ToClient> {
        self.out
            .iter()
            .filter_map(|m| match m {
                Outgoing::Client(id, msg) if *id == c => Some(msg),
                _ => None,
            })
            .collect()
    }
    pub(super) fn freed(&self, w: u64) -> Vec<String> {
        self.out
            .iter()
            .filter_map(|m| match m {
                Outgoing::Worker(id, ToWorker::FreeKeys { keys }) if id.0 == w => Some(keys.clone()),
                _ => None,
            })
            .flatten()
            .collect()
    }

    pub(super) fn remove_both(&mut self, keys: &[&str]) {
        self.release(C1, keys);
        self.release(C2, keys);
    }

    pub(super) fn remove_client_all(&mut self) {
        let mut o = Outbox::default();
        self.s.remove_client(C1, &mut o);
        self.s.remove_client(C2, &mut o);
        self.absorb(o);
        assert_eq!(self.s.client_count(), 0);
    }
}
