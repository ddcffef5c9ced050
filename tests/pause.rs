//! Pauses with real processes (issue 16 cases 1 and 2): a scheduler
//! SIGSTOPped for longer than the worker timeout keeps its workers when it
//! wakes; a worker paused by its memory gets no tasks, and a client whose
//! task only paused workers could run is told so. Waits poll with generous deadlines; the only timing in the test is
//! the length of the pause, which must exceed the worker timeout for the
//! test to mean anything.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdask::builtins::{inc, sleep_ms};
use rdask::client::ReturnWhen;
use rdask::wire::messages::{FromWorker, Role, ToWorker, WorkerStatus};
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

/// Issue 16 case 2, scheduler side: a worker tells the scheduler when it
/// pauses; a paused worker gets no task, a task only paused workers could
/// run waits in `no-worker` with the reason, and runs once a running worker
/// joins.
#[test]
fn a_paused_worker_gets_no_tasks_and_the_client_is_told_why_its_task_waits() {
    let dir = TempDir::new("paused-worker");
    let cfg = config(&dir, "[scheduler]\npaused_worker_timeout_s = 2\n");
    let log = dir.0.join("scheduler.log");
    let (_sched, addrs) = start_logged(
        Command::new(rdask_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        &["rdask scheduler listening on"],
        &log,
    );
    let addr = addrs[0].clone();
    // 1 MB: any process is past 0.8 of that, so it pauses at once.
    let (_p, p_addr) = start(
        Command::new(rdask_bin()).arg("--config").arg(&cfg).args([
            "worker",
            &addr,
            "--name",
            "p",
            "--nthreads",
            "1",
            "--memory-limit",
            "1MB",
        ]),
        "rdask worker",
    );
    let client = Client::connect(&addr).expect("client connects");
    wait_until("the scheduler knows the worker is paused", || {
        client
            .scheduler_info()
            .expect("info")
            .workers
            .iter()
            .any(|w| w.name == "p" && w.status == WorkerStatus::Paused)
    });
    let f = client.submit(inc, (1i64,)).expect("submit");
    wait_until("the task waits in no-worker", || f.status() == "no-worker");
    let why = f.no_worker_reason().expect("a reason");
    assert!(why.contains("is paused") && why.ends_with(": p"), "{why}");
    // A running worker joins: the task, and a job after it, run there.
    let _ok = worker(&cfg, &addr, "ok");
    assert_eq!(f.result_timeout(Some(STARTUP)).expect("runs on the running worker"), 2);
    let durations: Vec<u64> = (1..21).collect();
    let job = client.map(sleep_ms, durations.clone()).expect("submit");
    assert_eq!(client.gather(&job).expect("results"), durations);
    assert_eq!(client.worker_info(&p_addr).expect("p answers").tasks_executed, 0);
    let text = log_text(&log);
    assert!(text.contains("worker paused"), "scheduler log:\n{text}");
}

/// Reads frames from a hand-made worker connection until a batch holds
/// messages `pick` accepts, and returns those; keep-alives and other
/// messages are skipped.
fn read_until<T>(s: &mut std::net::TcpStream, what: &str, mut pick: impl FnMut(ToWorker) -> Option<T>) -> Vec<T> {
    loop {
        let header = raw::read_frame(s).unwrap_or_else(|e| panic!("reading until {what}: {e}"));
        let batch: Vec<ToWorker> = rmp_serde::from_slice(&header).expect("a batch of ToWorker");
        let found: Vec<T> = batch.into_iter().filter_map(&mut pick).collect();
        if !found.is_empty() {
            return found;
        }
    }
}

/// Issue 16 case 2, the paused-worker timeout: a worker (spoken by hand, so
/// that it pauses exactly when told) holding tasks it has not started
/// reports a pause; after `paused_worker_timeout_s` the scheduler asks for
/// them back, and the ones given up run on a running worker.
#[test]
fn tasks_waiting_on_a_worker_paused_past_the_timeout_run_elsewhere() {
    use std::io::Write;
    let dir = TempDir::new("paused-timeout");
    let cfg = config(&dir, "[scheduler]\npaused_worker_timeout_s = 2\n");
    let log = dir.0.join("scheduler.log");
    let (_sched, addrs) = start_logged(
        Command::new(rdask_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        &["rdask scheduler listening on"],
        &log,
    );
    let addr = addrs[0].clone();
    let mut w = raw::connect(&addr);
    w.write_all(&raw::handshake(Role::Worker)).expect("handshake");
    raw::read_frame(&mut w).expect("handshake reply");
    let register = [FromWorker::RegisterWorker {
        name: "hand".into(),
        address: "tcp://127.0.0.1:1".into(),
        nthreads: 1,
        memory_limit: 0,
        functions: vec!["rdask::builtins::sleep_ms".into()],
        resources: Vec::new(),
        restarted: None,
        nanny: false,
        keys: Vec::new(),
    }];
    w.write_all(&raw::frame(&raw::encode(&register))).expect("register");
    read_until(&mut w, "Registered", |m| {
        matches!(m, ToWorker::Registered { .. }).then_some(())
    });
    let client = Client::connect(&addr).expect("client connects");
    let durations: Vec<u64> = (1..9).collect();
    let job = client.map(sleep_ms, durations.clone()).expect("submit");
    // The hand-made worker gets its share (one frame: the graph arrived in
    // one message) and starts none of it.
    let mut given = read_until(&mut w, "a ComputeTask", |m| match m {
        ToWorker::ComputeTask { key, .. } => Some(key),
        _ => None,
    });
    let paused = [FromWorker::WorkerStatus {
        status: WorkerStatus::Paused,
        reason: None,
    }];
    w.write_all(&raw::frame(&raw::encode(&paused))).expect("pause");
    let _ok = worker(&cfg, &addr, "ok");
    // After the timeout the scheduler asks for every one of them back; the
    // worker gives each up.
    let mut asked = Vec::new();
    while asked.len() < given.len() {
        for key in read_until(&mut w, "a StealRequest", |m| match m {
            ToWorker::StealRequest { key } => Some(key),
            _ => None,
        }) {
            let answer = [FromWorker::StealResponse {
                key: key.clone(),
                stolen: true,
            }];
            w.write_all(&raw::frame(&raw::encode(&answer))).expect("answer");
            asked.push(key);
        }
    }
    given.sort();
    asked.sort();
    assert_eq!(asked, given);
    if let Err(e) = client.wait(&job, ReturnWhen::AllCompleted, Some(STARTUP)) {
        panic!("tasks stayed on the paused worker: {e}; log:\n{}", log_text(&log));
    }
    assert_eq!(client.gather(&job).expect("results"), durations);
    // Work stealing may take one back first (the running worker is idle);
    // the timer asks for the rest, at least one.
    let text = log_text(&log);
    let marker = "worker paused for 2s: asked it to give up ";
    let by_timer: usize = text
        .find(marker)
        .and_then(|i| text[i + marker.len()..].split(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no move after the timeout in the log:\n{text}"));
    assert!(by_timer >= 1 && by_timer <= given.len(), "{text}");
}
