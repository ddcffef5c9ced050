//! Adaptive scaling with real processes: an `rdask scheduler`, workers as
//! local `rdask worker` processes started and stopped by the `Adaptive`
//! loop through `WorkerProcesses`.

use std::time::{Duration, Instant};

use rdask::builtins::sleep_ms;
use rdask::launch::{Adaptive, ScaleBackend, WorkerProcesses, WorkerTemplate};
use rdask::{Client, SubmitOptions};

mod common;
use common::*;

/// Tasks in the burst, and how long each sleeps.
const TASKS: usize = 200;
const TASK_MS: u64 = 200;
/// How long the burst may take end to end (1 worker alone: 40 s).
const BURST_BOUND: Duration = Duration::from_secs(120);

#[test]
fn a_burst_scales_up_finishes_and_scales_back_to_one() {
    let (_scheduler, line) = scheduler();
    let address = line.split_whitespace().last().expect("address").to_string();
    let client = Client::connect(&address).expect("client connects");
    let dir = TempDir::new("adaptive");
    let template = WorkerTemplate {
        binary: Some(rdask_bin().into()),
        nanny: false,
        ..WorkerTemplate::default()
    };
    let backend = WorkerProcesses::new(&address, "local", template, "adaptive", &dir.0);
    let adaptive = Adaptive::new(backend, client.clone(), 1, 4)
        .interval(Duration::from_millis(200))
        .wait_count(3)
        .start();
    // The minimum comes up with nothing to do.
    wait_for_workers(&client, 1);

    let futures = client
        .map_with(sleep_ms, vec![TASK_MS; TASKS], &SubmitOptions::impure())
        .expect("submit");
    let started = Instant::now();
    let mut most = 0;
    let mut done = false;
    while !done {
        assert!(started.elapsed() < BURST_BOUND, "burst not done in {BURST_BOUND:?}");
        most = most.max(client.scheduler_info().expect("info").workers.len());
        done = futures.iter().all(|f| f.done());
        std::thread::sleep(Duration::from_millis(100));
    }
    let results: Vec<u64> = client.gather(&futures).expect("every result");
    assert_eq!(results, vec![TASK_MS; TASKS]);
    let took = started.elapsed();
    assert_eq!(most, 4, "the burst should scale to the maximum of 4 workers");
    eprintln!("{TASKS} × {TASK_MS} ms on adapt(1, 4): {took:?}, at most {most} workers");

    // Idle again: back to the minimum, gracefully, and the processes end.
    let back = Instant::now();
    wait_until("the cluster scales back to 1 worker", || {
        client.scheduler_info().expect("info").workers.len() == 1
    });
    eprintln!("back to 1 worker in {:?}", back.elapsed());
    assert_eq!(adaptive.last_error(), None);
    let adaptive = adaptive.stop().expect("the loop ends");
    let mut backend = adaptive.into_backend();
    backend.refresh().expect("refresh");
    assert_eq!(backend.requested().len(), 1, "{:?}", backend.requested());
    assert_eq!(backend.pids().len(), 1);
}
