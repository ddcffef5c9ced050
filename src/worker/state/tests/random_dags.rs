//! Property test: random DAGs driven to completion in random order.

use super::*;
use proptest::prelude::*;
use std::collections::{HashMap, VecDeque};
use WorkerTaskState::*;

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
                WorkerEffect::Send(FromWorker::TaskErred { key, .. }) => panic!("{key} erred"),
                WorkerEffect::Send(_) => {}
                WorkerEffect::Execute { key, args, .. } => {
                    assert_eq!(self.ws.task_state(&key), Some(Executing));
                    let vals: Vec<String> = args
                        .iter()
                        .flat_map(Arg::keys)
                        .map(|k| String::from_utf8(self.store[k].to_vec()).unwrap())
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
            self.ws.task_finished(k.clone(), Ok(v), 1, 0, &mut out);
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
            // Every other task takes its dependencies as one list.
            args: if i % 2 == 0 {
                deps.iter().map(|&d| Arg::Key(key(d))).collect()
            } else {
                vec![Arg::Keys(deps.iter().map(|&d| key(d)).collect())]
            },
            dependencies,
            priority: (i % 3) as i32,
            sequence: i as u64,
            resources: Vec::new(),
            run_id: i as u64 + 1,
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
