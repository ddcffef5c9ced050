//! The nanny (`rdask worker --nanny`) with real processes: a crashed worker
//! is started again and serves tasks, the scheduler is told why; a worker
//! past its memory's terminate fraction is killed and restarted, and the
//! task that did it ends in `KilledWorker`; a signal to the nanny retires
//! its worker.

use std::time::{Duration, Instant};

use rdask::builtins::{inc, make_blob};
use rdask::wire::messages::ErrorKind;
use rdask::{Client, Error, SubmitOptions};

mod common;
use common::*;

/// The pid of the nanny's worker process (its only child).
fn child_of(nanny: u32) -> u32 {
    let path = format!("/proc/{nanny}/task/{nanny}/children");
    let text = wait_for_file(std::path::Path::new(&path), "the nanny has a child", |t| {
        !t.trim().is_empty()
    });
    text.split_whitespace()
        .next()
        .and_then(|p| p.parse().ok())
        .expect("a pid")
}

/// The address of the worker named `name`, once one is registered.
fn address_of(client: &Client, name: &str) -> Option<String> {
    let info = client.scheduler_info().ok()?;
    info.workers.into_iter().find(|w| w.name == name).map(|w| w.address)
}

#[test]
fn a_crashed_worker_is_started_again_and_the_scheduler_is_told_why() -> anyhow::Result<()> {
    let dir = TempDir::new("nanny-crash");
    let log = dir.0.join("scheduler.log");
    let (_s, addr) = start_logging_to(
        std::process::Command::new(rdask_bin()).args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        "rdask scheduler listening on",
        &log,
    );
    let (nanny, _) = worker_with(&addr, "nw", &["--nanny"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let first = address_of(&client, "nw").expect("registered");
    assert_eq!(client.submit(inc, (1i64,))?.result()?, 2);

    let child = child_of(nanny.pid());
    assert_ne!(child, nanny.pid());
    std::process::Command::new("kill")
        .args(["-KILL", &child.to_string()])
        .status()?;
    // The same name comes back at a new address (a new process).
    wait_until("the nanny restarted its worker", || {
        address_of(&client, "nw").is_some_and(|a| a != first)
    });
    let text = wait_for_file(&log, "the scheduler logs the restart", |t| {
        t.contains("restarted by its nanny")
    });
    assert!(text.contains("killed by signal 9"), "{text}");
    let again = client.submit_with(inc, (41i64,), &SubmitOptions::impure())?;
    assert_eq!(again.result_timeout(Some(Duration::from_secs(30)))?, 42);
    Ok(())
}

#[test]
fn a_worker_past_its_terminate_fraction_is_restarted_and_the_task_ends_in_killed_worker() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let dir = TempDir::new("nanny-memory");
    let log = dir.0.join("worker.log");
    let (_nanny, _) = start_logging_to(
        std::process::Command::new(rdask_bin()).args([
            "worker",
            &addr,
            "--name",
            "small",
            "--nanny",
            "--memory-limit",
            "150MB",
        ]),
        "rdask worker",
        &log,
    );
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    // 2 GB while the limit is 150 MB: the nanny kills the worker at 142.5 MB
    // each time the task runs, until the scheduler gives up on the task.
    let started = Instant::now();
    let blob = client.submit(make_blob, (2_000_000_000u64, 7u64))?;
    let err = blob
        .result_timeout(Some(Duration::from_secs(120)))
        .map(|_| ())
        .unwrap_err();
    match &err {
        Error::Task { failure, .. } => assert_eq!(failure.kind, ErrorKind::KilledWorker, "{err}"),
        other => panic!("expected KilledWorker, got {other}"),
    }
    let text = std::fs::read_to_string(&log)?;
    assert!(text.contains("terminate threshold"), "{text}");
    assert!(text.contains("restarting it"), "{text}");
    // The worker is back and serves small tasks.
    wait_for_workers(&client, 1);
    assert_eq!(
        client
            .submit(inc, (1i64,))?
            .result_timeout(Some(Duration::from_secs(30)))?,
        2
    );
    eprintln!("KilledWorker after {:?}", started.elapsed());
    Ok(())
}

#[test]
fn a_signal_to_the_nanny_retires_its_worker_and_both_exit() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (mut nanny, _) = worker_with(&addr, "quiet", &["--nanny"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let child = child_of(nanny.pid());
    nanny.signal("TERM");
    assert_eq!(nanny.wait_exit(), Some(0), "the nanny exits as its retired worker did");
    assert!(
        !std::path::Path::new(&format!("/proc/{child}")).exists()
            || std::fs::read_to_string(format!("/proc/{child}/stat")).is_ok_and(|s| s.contains(") Z ")),
        "the worker process is gone"
    );
    wait_until("the scheduler has no worker", || {
        client.scheduler_info().is_ok_and(|i| i.workers.is_empty())
    });
    Ok(())
}

#[test]
fn a_nanny_killed_outright_takes_its_worker_with_it() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (nanny, _) = worker_with(&addr, "orphan", &["--nanny"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let child = child_of(nanny.pid());
    nanny.signal("KILL");
    // The worker got SIGTERM from the kernel and retired.
    wait_until("the worker left the scheduler", || {
        client.scheduler_info().is_ok_and(|i| i.workers.is_empty())
    });
    wait_until("the worker process ended", || {
        let stat = std::fs::read_to_string(format!("/proc/{child}/stat")).unwrap_or_default();
        stat.is_empty() || stat.contains(") Z ")
    });
    Ok(())
}
