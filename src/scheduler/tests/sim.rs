//! Property test: random graphs run on fake workers that die and join at
//! random, checked against the values computed directly.

use super::helpers::*;
use crate::wire::messages::WorkerStatus;

// ------------------------------------------------------------ proptest
/// A fake worker: executes ComputeTask by summing i64 arguments,
/// fetching dependency values from the fake workers the scheduler named.
struct Fake {
    addr: String,
    inbox: VecDeque<ToWorker>,
    /// Tasks to run, with the run id of their `ComputeTask` (echoed).
    ready: Vec<(String, Vec<Arg>, Vec<DependencyLocation>, u64)>,
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
    /// Delivers the messages of one scheduler event, after checking the
    /// state's invariants.
    fn route(&mut self, out: Outbox) {
        if let Err(e) = self.s.check_invariants() {
            for l in self.log.iter().flatten() {
                eprintln!("{l}");
            }
            panic!("invariant broken: {e}");
        }
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
    fn send(&mut self, id: u64, msg: FromWorker) {
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
                run_id,
                ..
            } => f.ready.push((key, args, dependencies, run_id)),
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
                self.send(id, FromWorker::StealResponse { key, stolen });
            }
            // The simulation does not retire workers.
            ToWorker::Close { .. } | ToWorker::RestartWorker { .. } | ToWorker::AcquireReplicas { .. } => {}
        }
        true
    }
    /// Runs ready task `i` of worker `id`.
    fn execute(&mut self, id: u64, i: usize) {
        let (key, args, deps, run_id) = self.fakes.get_mut(&id).unwrap().ready.remove(i);
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
                        FromWorker::MissingData {
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
                FromWorker::AddKeys {
                    keys: fetched.into_iter().map(|k| (k, 8)).collect(),
                },
            );
        }
        let duration_us = self.rand(1000) as u64;
        self.send(
            id,
            FromWorker::TaskFinished {
                key,
                nbytes: 8,
                inline: None,
                duration_us,
                thread: 0,
                run_id,
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
        FromClient::UpdateGraph {
            tasks: specs,
            wanted: first_wanted,
        },
        FromClient::UpdateGraph {
            tasks: second,
            wanted: second_wanted,
        },
        FromClient::ReleaseKeys { keys: needed_later },
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
            // A worker pauses or resumes (its fake goes on running what it
            // has: results from a paused worker must be taken too).
            2 if !sim.fakes.is_empty() => {
                let ids: Vec<u64> = sim.fakes.keys().copied().collect();
                let id = ids[sim.rand(ids.len())];
                let paused = sim.s.pause_serial(WorkerId(id)).is_some();
                let status = if paused {
                    WorkerStatus::Running
                } else {
                    WorkerStatus::Paused
                };
                sim.send(id, FromWorker::WorkerStatus { status, reason: None });
            }
            // A paused worker's timer fires: its tasks are asked back.
            3 => {
                let paused: Vec<(u64, u64)> = sim
                    .fakes
                    .keys()
                    .filter_map(|&id| Some((id, sim.s.pause_serial(WorkerId(id))?)))
                    .collect();
                if !paused.is_empty() {
                    let (id, serial) = paused[sim.rand(paused.len())];
                    let mut out = Outbox::default();
                    sim.s.move_off_paused_worker(WorkerId(id), serial, &mut out);
                    sim.route(out);
                }
            }
            _ => {
                sim.step();
            }
        }
    }
    if sim.fakes.is_empty() {
        sim.add_worker();
    }
    // Every worker resumes, so that nothing waits for one for good.
    let ids: Vec<u64> = sim.fakes.keys().copied().collect();
    for id in ids {
        if sim.s.pause_serial(WorkerId(id)).is_some() {
            sim.send(
                id,
                FromWorker::WorkerStatus {
                    status: WorkerStatus::Running,
                    reason: None,
                },
            );
        }
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
        let t = sim.s.task_id(k).expect("a known key");
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
        .handle_client_message(C1, FromClient::ReleaseKeys { keys: wanted_keys }, &mut out)
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
