//! Tasks that submit tasks (Dask's `worker_client`, `secede`, `rejoin`):
//! a task waiting for tasks it submitted gives its thread up meanwhile, so a
//! recursive fan-out completes even on one worker with one thread. Each run
//! is bounded by a deadline, so a deadlock fails the test instead of hanging
//! it. In-process `LocalCluster`: its workers run this binary's tasks.

use std::sync::mpsc;
use std::time::Duration;

use rdask::{Client, LocalCluster};

/// A leaf: returns its input.
#[rdask::task]
fn grandchild(x: i64) -> i64 {
    x
}

/// Submits two grandchildren and adds their results.
#[rdask::task]
fn child(i: i64) -> Result<i64, rdask::Error> {
    let client = rdask::worker_client()?;
    let a = client.submit(grandchild, (2 * i,))?;
    let b = client.submit(grandchild, (2 * i + 1,))?;
    Ok(a.result()? + b.result()?)
}

/// Submits `n` children and gathers them.
#[rdask::task]
fn parent(n: i64) -> Result<i64, rdask::Error> {
    let client = rdask::get_client()?;
    let children = client.map(child, 0..n)?;
    Ok(client.gather(&children)?.iter().sum())
}

/// Dask's recursive Fibonacci: every call but the leaves waits on two more.
#[rdask::task]
fn fib(n: u64) -> Result<u64, rdask::Error> {
    if n < 2 {
        return Ok(n);
    }
    let client = rdask::worker_client()?;
    let a = client.submit(fib, (n - 1,))?;
    let b = client.submit(fib, (n - 2,))?;
    Ok(a.result()? + b.result()?)
}

/// Long enough for a debug build on a loaded machine; a deadlock never ends.
const DEADLINE: Duration = Duration::from_secs(120);

fn cluster(workers: usize) -> LocalCluster {
    let c = LocalCluster::builder()
        .workers(workers)
        .threads_per_worker(1)
        .build()
        .expect("cluster starts");
    assert!(c.wait_for_workers(workers, Duration::from_secs(10)));
    c
}

/// Runs `f` on a thread and fails if it does not finish by the deadline.
fn within_deadline<T: Send + 'static>(what: &str, f: impl FnOnce() -> T + Send + 'static) -> T {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let _ = tx.send(f());
    });
    rx.recv_timeout(DEADLINE)
        .unwrap_or_else(|_| panic!("{what} did not finish in {DEADLINE:?}: deadlocked"))
}

fn fan_out(workers: usize) {
    let cluster = cluster(workers);
    let client = cluster.client().expect("client");
    const N: i64 = 100;
    let total = within_deadline("the fan-out", move || client.submit(parent, (N,))?.result());
    // Children i submit 2i and 2i+1: together every number below 2N.
    assert_eq!(total.expect("the fan-out completes"), (0..2 * N).sum::<i64>());
}

#[test]
fn a_recursive_fan_out_completes_on_one_single_threaded_worker() {
    fan_out(1);
}

#[test]
fn a_recursive_fan_out_completes_on_two_single_threaded_workers() {
    fan_out(2);
}

#[test]
fn recursive_fibonacci_completes_on_one_single_threaded_worker() {
    let cluster = cluster(1);
    let client = cluster.client().expect("client");
    let f = within_deadline("fib(12)", move || client.submit(fib, (12u64,))?.result());
    assert_eq!(f.expect("fib completes"), 144);
}

#[test]
fn worker_client_outside_a_task_is_an_error() {
    let err = rdask::worker_client().map(|_: Client| ()).expect_err("not in a task");
    assert!(err.to_string().contains("outside a task"), "{err}");
}
