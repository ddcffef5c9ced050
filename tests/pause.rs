//! Pauses with real processes (issue 16 cases 1 and 2): a scheduler
//! SIGSTOPped for longer than the worker timeout keeps its workers when it
//! wakes. Waits poll with generous deadlines; the only timing in the test is
//! the length of the pause, which must exceed the worker timeout for the
//! test to mean anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdask::builtins::sleep_ms;
use rdask::client::ReturnWhen;
use rdask::Client;

mod common;
use common::*;

/// Writes `text` as a config file in `dir`.
fn config(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.0.join("rdask.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// `rdask --config CONFIG worker ADDR --name NAME`.
fn worker(config: &Path, addr: &str, name: &str) -> Proc {
    start(
        Command::new(rdask_bin())
            .arg("--config")
            .arg(config)
            .args(["worker", addr, "--name", name, "--nthreads", "1"]),
        "rdask worker",
    )
    .0
}

fn worker_names(client: &Client) -> Vec<String> {
    let mut names: Vec<String> = client
        .scheduler_info()
        .expect("info")
        .workers
        .into_iter()
        .map(|w| w.name)
        .collect();
    names.sort();
    names
}

/// Issue 16 case 1: on waking, the scheduler must read the heartbeats
/// waiting in its sockets before judging liveness; a check that runs late
/// means the scheduler was not running, so it judges no one then.
#[test]
fn a_scheduler_stopped_longer_than_the_worker_timeout_keeps_its_workers() {
    const WORKER_TIMEOUT_S: u64 = 3;
    /// Twice the worker timeout: every worker looks silent for that long.
    const PAUSE: Duration = Duration::from_secs(2 * WORKER_TIMEOUT_S);
    let dir = TempDir::new("stopped-scheduler");
    let cfg = config(
        &dir,
        &format!("[scheduler]\nheartbeat_ms = 200\nworker_timeout_s = {WORKER_TIMEOUT_S}\n"),
    );
    let log = dir.0.join("scheduler.log");
    let (sched, addrs) = start_logged(
        Command::new(rdask_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        &["rdask scheduler listening on"],
        &log,
    );
    let addr = addrs[0].clone();
    let mut workers = [worker(&cfg, &addr, "a"), worker(&cfg, &addr, "b")];
    let client = Client::connect(&addr).expect("client connects");
    wait_for_workers(&client, 2);
    // A job that spans the pause: 40 tasks of about 200 ms on two threads
    // (distinct arguments, so distinct keys).
    let durations: Vec<u64> = (200..240).collect();
    let job = client.map(sleep_ms, durations.clone()).expect("submit");
    wait_until("the job is under way", || {
        client
            .scheduler_info()
            .expect("info")
            .workers
            .iter()
            .any(|w| w.processing > 0)
    });
    sched.signal("STOP");
    std::thread::sleep(PAUSE);
    sched.signal("CONT");
    // Bounded: a scheduler that lost its workers leaves the job waiting.
    if let Err(e) = client.wait(&job, ReturnWhen::AllCompleted, Some(STARTUP)) {
        panic!(
            "the job stalled after the pause: {e}; workers {:?}; scheduler log:\n{}",
            worker_names(&client),
            log_text(&log)
        );
    }
    assert_eq!(client.gather(&job).expect("results"), durations);
    // The same two workers, never removed, and both still running.
    assert_eq!(worker_names(&client), ["a", "b"]);
    for w in &mut workers {
        assert!(w.0.try_wait().expect("try_wait").is_none(), "worker {} exited", w.pid());
    }
    let text = log_text(&log);
    assert!(!text.contains("removing worker"), "scheduler log:\n{text}");
    assert!(text.contains("the scheduler did not run for"), "scheduler log:\n{text}");
}
