//! Micro-benchmark of the scheduler's placement decision among 100 and
//! 1,000 workers (issue 3).
//!
//! Setup per cluster size W: W workers of one thread each register with a
//! `SchedulerState`; the client scatters W small values, one per worker
//! (scatter is round-robin over the workers in id order), and keeps them.
//!
//! Measured: one client `UpdateGraph` of 1,000 new tasks, until their
//! `ComputeTask`s are in the outbox, so the cost includes creating the tasks,
//! linking dependencies, the placement of each and building its message:
//!
//! * `dependent/W`: each task takes one scattered value, picked at random,
//!   as its argument (`Arg::Key`): candidates are the holder and the least
//!   occupied worker, ranked by estimated start time;
//! * `root/W`: tasks without dependencies, each put on the least occupied
//!   worker that has room (1,000 tasks fit in 100 idle one-thread workers
//!   at the default 0.5 ms expected duration, so none is queued).
//!
//! After each iteration, outside the measurement, the client releases the
//! tasks (cancelled with `FreeKeys`, forgotten) so every iteration starts
//! from idle workers. Throughput is per task.
//!
//! Run with `cargo bench --bench placement`.

use std::time::{Duration, Instant};

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use rdask::scheduler::state::{ClientId, Outbox, Outgoing, SchedulerState, WorkerId};
use rdask::wire::messages::{Arg, FromClient, FromWorker, Key, Payload, TaskSpec, ToClient, ToWorker};

mod common;

/// Tasks per `UpdateGraph`.
const BATCH: usize = 1000;
const CLIENT: ClientId = ClientId(1);
/// Size of each scattered dependency (0.1 ms at the default bandwidth).
const DEP_BYTES: usize = 100_000;

/// xorshift64*: a fixed, dependency-free pseudo-random sequence.
struct Rng(u64);

impl Rng {
    fn below(&mut self, n: usize) -> usize {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        (self.0.wrapping_mul(0x2545_f491_4f6c_dd1d) % n as u64) as usize
    }
}

/// A scheduler with `nworkers` one-thread workers, each holding one
/// scattered value; returns the scattered keys.
fn cluster(nworkers: usize) -> (SchedulerState, Vec<Key>) {
    let mut s = SchedulerState::new(common::scheduler_config());
    let mut out = Outbox::default();
    s.add_client(CLIENT, &mut out);
    common::add_workers(&mut s, nworkers);
    let data = Bytes::from(vec![0u8; DEP_BYTES]);
    let keys: Vec<Key> = (0..nworkers).map(|i| format!("data-{i:06}")).collect();
    let scatter = FromClient::Scatter {
        request_id: 1,
        data: keys.iter().map(|k| (k.clone(), Payload(data.clone()))).collect(),
        workers: Vec::new(),
        broadcast: false,
    };
    out.messages.clear();
    s.handle_client_message(CLIENT, scatter, &mut out).expect("Scatter");
    let stores: Vec<(WorkerId, Vec<(Key, u64)>)> = out
        .messages
        .iter()
        .filter_map(|m| match m {
            Outgoing::Worker(w, ToWorker::StoreData { data }) => {
                Some((*w, data.iter().map(|(k, p)| (k.clone(), p.0.len() as u64)).collect()))
            }
            _ => None,
        })
        .collect();
    assert_eq!(stores.len(), nworkers, "one value per worker");
    // The workers confirm what they stored; the scatter is answered then.
    for (w, keys) in stores {
        s.handle_worker_message(w, FromWorker::AddKeys { keys }, &mut out)
            .expect("AddKeys");
    }
    assert!(out
        .messages
        .iter()
        .any(|m| matches!(m, Outgoing::Client(_, ToClient::ScatterDone { error: None, .. }))));
    (s, keys)
}

/// The `UpdateGraph` of one batch and its `ReleaseKeys`.
fn batch(iteration: u64, deps: Option<(&[Key], &mut Rng)>) -> (FromClient, FromClient) {
    let keys: Vec<Key> = (0..BATCH)
        .map(|i| format!("inc-{:016x}", (iteration << 20) | i as u64))
        .collect();
    let tasks = match deps {
        Some((deps, rng)) => keys
            .iter()
            .map(|k| spec(k, vec![Arg::Key(deps[rng.below(deps.len())].clone())]))
            .collect(),
        None => keys.iter().map(|k| spec(k, vec![Arg::Value(vec![0x05])])).collect(),
    };
    let update = FromClient::UpdateGraph {
        tasks,
        wanted: keys.clone(),
    };
    (update, FromClient::ReleaseKeys { keys })
}

fn spec(key: &Key, args: Vec<Arg>) -> TaskSpec {
    TaskSpec {
        key: key.clone(),
        function: common::FUNCTION.to_string(),
        args,
        priority: 0,
        workers: Vec::new(),
        allow_other_workers: false,
        retries: 0,
        resources: Vec::new(),
    }
}

fn compute_tasks(out: &Outbox) -> usize {
    out.messages
        .iter()
        .filter(|m| matches!(m, Outgoing::Worker(_, ToWorker::ComputeTask { .. })))
        .count()
}

/// Times `iters` batches, measuring only the `UpdateGraph` call.
fn run(s: &mut SchedulerState, deps: &[Key], rooted: bool, rng: &mut Rng, iters: u64) -> Duration {
    let mut out = Outbox::default();
    let mut total = Duration::ZERO;
    for i in 0..iters {
        let (update, release) = batch(i, (!rooted).then_some((deps, &mut *rng)));
        let start = Instant::now();
        s.handle_client_message(CLIENT, update, &mut out).expect("UpdateGraph");
        total += start.elapsed();
        assert_eq!(compute_tasks(&out), BATCH, "every task placed");
        out.messages.clear();
        s.handle_client_message(CLIENT, release, &mut out).expect("ReleaseKeys");
        out.messages.clear();
    }
    total
}

fn placement(c: &mut Criterion) {
    let mut g = c.benchmark_group("placement");
    g.throughput(Throughput::Elements(BATCH as u64));
    for nworkers in [100, 1000] {
        let (mut s, deps) = cluster(nworkers);
        let mut rng = Rng(0x9e37_79b9_7f4a_7c15);

        // How often locality wins: tasks placed on their dependency's holder.
        let holder: std::collections::HashMap<&str, WorkerId> = deps
            .iter()
            .enumerate()
            .map(|(i, k)| (k.as_str(), WorkerId(i as u64 + 1)))
            .collect();
        let mut out = Outbox::default();
        let (update, release) = batch(0, Some((&deps, &mut rng)));
        s.handle_client_message(CLIENT, update, &mut out).expect("UpdateGraph");
        let local = out
            .messages
            .iter()
            .filter(|m| match m {
                Outgoing::Worker(w, ToWorker::ComputeTask { dependencies, .. }) => holder[&*dependencies[0].key] == *w,
                _ => false,
            })
            .count();
        eprintln!("placement/dependent/{nworkers}: {local} of {BATCH} tasks placed on their dependency's holder");
        s.handle_client_message(CLIENT, release, &mut out).expect("ReleaseKeys");

        g.bench_with_input(BenchmarkId::new("dependent", nworkers), &nworkers, |b, _| {
            b.iter_custom(|iters| run(&mut s, &deps, false, &mut rng, iters))
        });
        g.bench_with_input(BenchmarkId::new("root", nworkers), &nworkers, |b, _| {
            b.iter_custom(|iters| run(&mut s, &deps, true, &mut rng, iters))
        });
        assert_eq!(s.ntasks(), nworkers, "only the scattered values are left");
    }
    g.finish();
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = placement
}
criterion_main!(benches);
