//! Micro-benchmark of the scheduler's I/O-free state machine (issue 3): one
//! full transition cycle per task.
//!
//! One iteration drives a batch of N = 1,000 independent tasks through
//! `SchedulerState` as the actor layer would, with two fake workers of one
//! thread each (the default cluster shape of `examples/bench.rs`):
//!
//! 1. the client's `UpdateGraph` of the N tasks (all wanted): tasks go to
//!    `processing` (a `ComputeTask` in the outbox) or wait in `queued` while
//!    the workers are saturated;
//! 2. every `ComputeTask` is answered, in order, by a `TaskFinished` with a
//!    small inline result from the worker it went to: `memory` (a
//!    `KeyInMemory` to the client), and queued tasks are pulled onto the
//!    worker that got room;
//! 3. the client's `ReleaseKeys` of the N keys: every task is forgotten and
//!    its data freed (`FreeKeys` to the workers).
//!
//! The messages of steps 1 and 3 are built outside the measurement; the
//! `TaskFinished` messages reuse the keys moved out of the `ComputeTask`s.
//! The same `SchedulerState` is reused by every iteration (keys are
//! forgotten at the end of each, so they can be reused). Throughput is per
//! task.
//!
//! Run with `cargo bench --bench scheduler`.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rdask::scheduler::state::{ClientId, Outbox, Outgoing, SchedulerState, TaskState, WorkerId};
use rdask::wire::messages::{Arg, FromClient, FromWorker, Key, Payload, TaskSpec, ToClient, ToWorker};

mod common;

/// Tasks per iteration.
const N: usize = 1000;
const CLIENT: ClientId = ClientId(1);

fn new_scheduler(nworkers: u64) -> SchedulerState {
    let mut s = SchedulerState::new(common::scheduler_config());
    let mut out = Outbox::default();
    s.add_client(CLIENT, &mut out);
    common::add_workers(&mut s, nworkers as usize);
    s
}

fn keys() -> Vec<Key> {
    (0..N).map(|i| format!("inc-{:016x}", i as u64 * 0x9e37_79b9)).collect()
}

/// The client's two messages of one cycle.
fn messages(keys: &[Key]) -> (FromClient, FromClient) {
    let tasks = keys
        .iter()
        .enumerate()
        .map(|(i, k)| TaskSpec {
            key: k.clone(),
            function: common::FUNCTION.to_string(),
            args: vec![Arg::Value(rmp_serde::to_vec(&(i as i64)).expect("encode an int"))],
            priority: 0,
            workers: Vec::new(),
            allow_other_workers: false,
            retries: 0,
            resources: Vec::new(),
        })
        .collect();
    let update = FromClient::UpdateGraph {
        tasks,
        wanted: keys.to_vec(),
    };
    let release = FromClient::ReleaseKeys { keys: keys.to_vec() };
    (update, release)
}

/// What one cycle produced, to check it did the whole round.
#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    compute: usize,
    in_memory: usize,
    freed: usize,
}

/// Moves the outbox's messages out: `ComputeTask`s join the worklist, the
/// rest is counted.
fn drain(out: &mut Outbox, work: &mut VecDeque<(WorkerId, Key, u64)>, counts: &mut Counts) {
    for m in out.messages.drain(..) {
        match m {
            Outgoing::Worker(w, ToWorker::ComputeTask { key, run_id, .. }) => {
                counts.compute += 1;
                work.push_back((w, key, run_id));
            }
            Outgoing::Worker(_, ToWorker::FreeKeys { keys }) => counts.freed += keys.len(),
            Outgoing::Client(_, ToClient::KeyInMemory { .. }) => counts.in_memory += 1,
            _ => {}
        }
    }
}

/// One full cycle of the batch.
fn cycle(s: &mut SchedulerState, out: &mut Outbox, update: FromClient, release: FromClient) -> Counts {
    let mut counts = Counts::default();
    let mut work = VecDeque::with_capacity(N);
    s.handle_client_message(CLIENT, update, out).expect("UpdateGraph");
    drain(out, &mut work, &mut counts);
    while let Some((w, key, run_id)) = work.pop_front() {
        let msg = FromWorker::TaskFinished {
            key,
            nbytes: 1,
            inline: Some(Payload(Bytes::from_static(b"\x01"))),
            duration_us: 2,
            thread: 0,
            run_id,
        };
        s.handle_worker_message(w, msg, out).expect("TaskFinished");
        drain(out, &mut work, &mut counts);
    }
    s.handle_client_message(CLIENT, release, out).expect("ReleaseKeys");
    drain(out, &mut work, &mut counts);
    counts
}

fn scheduler(c: &mut Criterion) {
    let keys = keys();
    let mut s = new_scheduler(2);
    let mut out = Outbox::default();

    // Sanity: a cycle takes every task through and leaves nothing behind.
    for round in ["cold", "warm"] {
        let (update, release) = messages(&keys);
        s.handle_client_message(CLIENT, update, &mut out).expect("UpdateGraph");
        let queued = keys
            .iter()
            .filter(|k| s.task_state(k) == Some(TaskState::Queued))
            .count();
        eprintln!("scheduler: {round}: {queued} of {N} tasks queued after UpdateGraph (2 workers x 1 thread)");
        s.handle_client_message(CLIENT, release, &mut out).expect("ReleaseKeys");
        out.messages.clear();
        assert_eq!(s.ntasks(), 0);
        let (update, release) = messages(&keys);
        let counts = cycle(&mut s, &mut out, update, release);
        let expected = Counts {
            compute: N,
            in_memory: N,
            freed: N,
        };
        assert_eq!(counts, expected);
        assert_eq!(s.ntasks(), 0);
    }

    let mut g = c.benchmark_group("scheduler");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("cycle_1000_tasks_2_workers", |b| {
        b.iter_batched(
            || messages(&keys),
            |(update, release)| cycle(&mut s, &mut out, update, release),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    assert_eq!(s.ntasks(), 0);
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = scheduler
}
criterion_main!(benches);
