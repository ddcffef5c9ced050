//! A scheduler that restarts (issue 14), with real processes: SIGKILLed in
//! the middle of a tree reduction and started again on the same port with
//! the same journal, it resumes the client's future, and the results the
//! workers held are not computed again (counted by the workers). Without a
//! journal the client's futures err clearly instead. Also a torn journal
//! tail, dropped with a log line; a worker and a client that cannot
//! reconnect giving up after their bound; and a client cut off by a
//! scheduler that lives on, resuming its future on a new session.

use std::io::Write as _;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use rdask::actors::worker::EXECUTE_AHEAD_PER_THREAD;
use rdask::builtins::sleep_ms;
use rdask::task::encode_value;
use rdask::wire::messages::Arg;
use rdask::{Client, Error, SubmitOptions};

mod common;
use common::*;

/// Leaves of the reduction: with the pairwise sums, 2 × LEAVES − 1 tasks.
const LEAVES: u64 = 5000;
/// Threads per worker.
const NTHREADS: u32 = 2;
/// Workers.
const WORKERS: usize = 2;

fn value(v: i64) -> Arg {
    Arg::Value(encode_value(&v).expect("encodes"))
}

/// `add(a, b)` by name, its arguments keys of other futures (or a value).
fn add(client: &Client, a: &str, b: Option<&str>) -> rdask::Future<i64> {
    let second = match b {
        Some(k) => Arg::Key(k.to_string()),
        None => value(0),
    };
    client
        .submit_raw(
            "rdask::builtins::add",
            vec![Arg::Key(a.to_string()), second],
            &SubmitOptions::default(),
        )
        .expect("submit")
}

/// A pairwise tree reduction over sleeping leaves (1 to 3 ms each, so the
/// whole takes seconds on 2 × 2 threads); the future of its sum and the
/// exact answer.
fn tree(client: &Client) -> (rdask::Future<i64>, i64) {
    let ms: Vec<u64> = (0..LEAVES).map(|i| 1 + i % 3).collect();
    let expected = ms.iter().sum::<u64>() as i64;
    let leaves = client
        .map_with(sleep_ms, ms, &SubmitOptions::impure())
        .expect("submit leaves");
    let mut level: Vec<String> = leaves.iter().map(|f| f.key().to_string()).collect();
    let mut held: Vec<rdask::Future<i64>> = Vec::new();
    let _leaves = leaves;
    while level.len() > 1 {
        let next: Vec<rdask::Future<i64>> = level
            .chunks(2)
            .map(|pair| add(client, &pair[0], pair.get(1).map(String::as_str)))
            .collect();
        level = next.iter().map(|f| f.key().to_string()).collect();
        held = next;
    }
    (held.swap_remove(0), expected)
}

fn scheduler_on(port: u16, journal: Option<&Path>, log: &Path) -> Proc {
    let mut cmd = Command::new(rdask_bin());
    cmd.args(["scheduler", "--host", "127.0.0.1", "--port", &port.to_string()]);
    if let Some(j) = journal {
        cmd.arg("--journal").arg(j);
    }
    start_logged(&mut cmd, &["rdask scheduler listening on"], log).0
}

fn executed(client: &Client, workers: &[String]) -> u64 {
    workers
        .iter()
        .map(|w| client.worker_info(w).expect("worker info").tasks_executed)
        .sum()
}

#[test]
fn a_sigkilled_scheduler_restarted_on_its_journal_resumes_the_reduction_without_recomputing() {
    let dir = TempDir::new("journal");
    let journal = dir.0.join("scheduler.journal");
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let s = scheduler_on(port, Some(&journal), &dir.0.join("scheduler-1.log"));
    let workers: Vec<(Proc, String)> = (0..WORKERS)
        .map(|i| worker_with(&addr, &format!("w{i}"), &["--nthreads", &NTHREADS.to_string()]))
        .collect();
    let addrs: Vec<String> = workers.iter().map(|(_, a)| a.clone()).collect();
    let client = Client::connect(&addr).expect("client connects");
    wait_for_workers(&client, WORKERS);
    let (root, expected) = tree(&client);
    let total = 2 * LEAVES - 1;
    // Kill it in the middle: once a good part has run, long before the end.
    wait_until("a third of the tasks ran", || executed(&client, &addrs) >= total / 3);
    s.signal("KILL");
    drop(s);
    let before = executed(&client, &addrs);
    assert!(
        before < total,
        "the reduction finished before the kill ({before} of {total})"
    );
    // The process died in the middle of a write: a torn entry at the end.
    std::fs::OpenOptions::new()
        .append(true)
        .open(&journal)
        .expect("journal exists")
        .write_all(&[0x40, 0, 0, 0, 1, 2])
        .expect("append");
    let log = dir.0.join("scheduler-2.log");
    let _s = scheduler_on(port, Some(&journal), &log);
    let t0 = Instant::now();
    let sum = root.result().expect("the future resumes after the restart");
    eprintln!(
        "restart: {before} of {total} tasks had run at the kill; the result came {:?} after the restart",
        t0.elapsed()
    );
    assert_eq!(sum, expected);
    // Each task ran once, except those on or queued for the workers'
    // threads when the scheduler died (their outcome was discarded).
    let in_pools = WORKERS as u64 * u64::from(NTHREADS) * (1 + u64::from(EXECUTE_AHEAD_PER_THREAD));
    let after = executed(&client, &addrs);
    eprintln!("executions: {after} for {total} tasks (at most {in_pools} run twice)");
    assert!(
        after <= total + in_pools,
        "{after} executions for {total} tasks: results held by the workers were computed again"
    );
    assert!(before > in_pools, "the kill came too early to tell ({before})");
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    assert!(text.contains("dropping the journal's last 6 bytes"), "{text}");
    assert!(text.contains("results kept on the workers that came back"), "{text}");
    // Both workers are still there (they re-registered), and still work.
    assert_eq!(client.scheduler_info().expect("info").workers.len(), WORKERS);
    let again = client.submit(rdask::builtins::inc, (1i64,)).expect("submit");
    assert_eq!(again.result().expect("result"), 2);
}

#[test]
fn without_a_journal_a_restart_errs_the_clients_futures_clearly() {
    let dir = TempDir::new("no-journal");
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let s = scheduler_on(port, None, &dir.0.join("scheduler-1.log"));
    let (_w, waddr) = worker_with(&addr, "w0", &["--nthreads", "2"]);
    let client = Client::connect(&addr).expect("client connects");
    wait_for_workers(&client, 1);
    let done = client.submit(rdask::builtins::inc, (41i64,)).expect("submit");
    assert_eq!(done.result().expect("result"), 42);
    // Still running when the scheduler dies (on one of the two threads).
    let long = client.submit(sleep_ms, (10_000u64,)).expect("submit");
    s.signal("KILL");
    drop(s);
    let _s = scheduler_on(port, None, &dir.0.join("scheduler-2.log"));
    let t0 = Instant::now();
    match long.result() {
        Err(Error::Task { failure, .. }) => {
            assert!(
                failure.message.contains(rdask::scheduler::LOST_WITHOUT_JOURNAL),
                "{}",
                failure.message
            )
        }
        other => panic!("expected the work-lost error, got {other:?}"),
    }
    assert!(t0.elapsed() < Duration::from_secs(20), "{:?}", t0.elapsed());
    // The worker came back (told to drop what the new scheduler did not
    // know) and the client carries on.
    wait_for_workers(&client, 1);
    let again = client.submit(rdask::builtins::inc, (1i64,)).expect("submit");
    assert_eq!(again.result().expect("result"), 2);
    let info = client.worker_info(&waddr).expect("worker info");
    eprintln!("the worker holds {} keys after the restart", info.nkeys);
}

#[test]
fn a_worker_and_a_client_that_cannot_reconnect_give_up_after_their_bound_saying_why() {
    let dir = TempDir::new("give-up");
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let s = scheduler_on(port, None, &dir.0.join("scheduler.log"));
    let wlog = dir.0.join("worker.log");
    let (mut w, _) = start_logging_to(
        Command::new(rdask_bin())
            .args(["worker", &addr, "--name", "w0", "--nthreads", "1"])
            .env("RDASK_WORKER__RECONNECT_TIMEOUT_S", "2"),
        "rdask worker",
        &wlog,
    );
    let options = rdask::ClientOptions {
        reconnect_timeout: Duration::from_secs(2),
        ..Default::default()
    };
    let client = Client::connect_with(&addr, options).expect("client connects");
    wait_for_workers(&client, 1);
    let long = client.submit(sleep_ms, (60_000u64,)).expect("submit");
    s.signal("KILL");
    drop(s);
    let t0 = Instant::now();
    match long.result() {
        Err(Error::Disconnected(why)) => assert!(why.contains("could not reconnect within 2s"), "{why}"),
        other => panic!("expected Disconnected, got {other:?}"),
    }
    eprintln!("the client gave up {:?} after the kill", t0.elapsed());
    assert_eq!(w.wait_exit(), Some(1), "a worker that gives up exits with status 1");
    let text = std::fs::read_to_string(&wlog).unwrap_or_default();
    assert!(
        text.contains("could not register with the scheduler again within 2s"),
        "the worker logged:\n{text}"
    );
}

#[test]
fn a_client_cut_off_by_the_same_scheduler_reconnects_and_its_futures_resume() {
    // The scheduler closes a client silent for 1 s (its keep-alive comes
    // every 5 s), so a client waiting for a 4 s task is cut off several
    // times; each time it reconnects within the grace period and its new
    // session takes over the old one's keys.
    let dir = TempDir::new("cut-client");
    let cfg = dir.0.join("rdask.toml");
    std::fs::write(&cfg, "[scheduler]\nclient_silence_timeout_s = 1\n").expect("config");
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let log = dir.0.join("scheduler.log");
    let _s = start_logged(
        Command::new(rdask_bin()).arg("--config").arg(&cfg).args([
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            &port.to_string(),
        ]),
        &["rdask scheduler listening on"],
        &log,
    )
    .0;
    let (_w, _) = worker_with(&addr, "w0", &["--nthreads", "1"]);
    let client = Client::connect(&addr).expect("client connects");
    wait_for_workers(&client, 1);
    let slow = client.submit(sleep_ms, (4_000u64,)).expect("submit");
    let value = slow
        .result_timeout(Some(STARTUP))
        .expect("the future resumes on the new session");
    assert_eq!(value, 4_000);
    let text = std::fs::read_to_string(&log).unwrap_or_default();
    let cuts = text.matches("client connection closed").count();
    eprintln!("the client was cut off {cuts} times while it waited");
    assert!(cuts >= 1, "the scheduler never cut the client off:\n{text}");
    // Its key is wanted by the live session only: released, it is forgotten.
    drop(slow);
    wait_until("the scheduler forgets the released key", || {
        client.scheduler_info().expect("info").ntasks == 0
    });
}
