//! Micro-benchmark of the worker's I/O-free state machine (issue 3): the
//! `ComputeTask` → `Execute` → `task_finished` → `FreeKeys` cycle of 1,000
//! independent tasks on one `WorkerState`.
//!
//! One iteration: the 1,000 `ComputeTask`s arrive one after the other (as
//! from one frame), with two task threads; every `Execute` effect is
//! answered in order by `task_finished` with a small result (which stores
//! it, sends `TaskFinished` with the result inline, and starts the next ready
//! task); then one `FreeKeys` of the 1,000 keys deletes them all. The
//! `ComputeTask`s and the `FreeKeys` are built outside the measurement; the
//! state machine is reused (it is empty again after each iteration).
//! Throughput is per task.
//!
//! Run with `cargo bench --bench worker_state`.

use std::collections::VecDeque;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use rdask::wire::messages::{FromWorker, Key, ToWorker};
use rdask::worker::state::{WorkerEffect, WorkerState, WorkerStateConfig};

mod common;

/// Tasks per iteration.
const N: usize = 1000;

fn messages() -> (Vec<ToWorker>, ToWorker) {
    let keys: Vec<Key> = (0..N).map(common::task_key).collect();
    let compute = keys
        .iter()
        .enumerate()
        .map(|(i, k)| common::compute_task(k.clone(), i))
        .collect();
    (compute, ToWorker::FreeKeys { keys })
}

#[derive(Debug, Default, PartialEq, Eq)]
struct Counts {
    executed: usize,
    finished: usize,
    stored: usize,
    deleted: usize,
}

/// Takes the effects out: `Execute`s join the run queue, the rest is counted.
fn drain(effects: &mut Vec<WorkerEffect>, run: &mut VecDeque<Key>, counts: &mut Counts) {
    for e in effects.drain(..) {
        match e {
            WorkerEffect::Execute { key, .. } => {
                counts.executed += 1;
                run.push_back(key);
            }
            WorkerEffect::Send(FromWorker::TaskFinished { .. }) => counts.finished += 1,
            WorkerEffect::StorePut { .. } => counts.stored += 1,
            WorkerEffect::StoreDelete { keys } => counts.deleted += keys.len(),
            // Anything else (e.g. start notices) is not part of the cycle.
            _ => {}
        }
    }
}

fn cycle(ws: &mut WorkerState, effects: &mut Vec<WorkerEffect>, compute: Vec<ToWorker>, free: ToWorker) -> Counts {
    let mut counts = Counts::default();
    let mut run = VecDeque::new();
    for msg in compute {
        ws.handle_scheduler(msg, effects).expect("ComputeTask");
        drain(effects, &mut run, &mut counts);
    }
    while let Some(key) = run.pop_front() {
        ws.task_finished(key, Ok(Bytes::from_static(b"\x01")), 2, 0, effects);
        drain(effects, &mut run, &mut counts);
    }
    ws.handle_scheduler(free, effects).expect("FreeKeys");
    drain(effects, &mut run, &mut counts);
    counts
}

fn worker_state(c: &mut Criterion) {
    let mut ws = WorkerState::new(WorkerStateConfig {
        nthreads: 2,
        ..WorkerStateConfig::default()
    });
    let mut effects = Vec::new();

    // Sanity: every task runs, is reported, stored and deleted.
    let (compute, free) = messages();
    let counts = cycle(&mut ws, &mut effects, compute, free);
    let expected = Counts {
        executed: N,
        finished: N,
        stored: N,
        deleted: N,
    };
    assert_eq!(counts, expected);
    assert_eq!(ws.ntasks(), 0);

    let mut g = c.benchmark_group("worker_state");
    g.throughput(Throughput::Elements(N as u64));
    g.bench_function("cycle_1000_tasks_2_threads", |b| {
        b.iter_batched(
            messages,
            |(compute, free)| cycle(&mut ws, &mut effects, compute, free),
            BatchSize::PerIteration,
        )
    });
    g.finish();
    assert_eq!(ws.ntasks(), 0);
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = worker_state
}
criterion_main!(benches);
