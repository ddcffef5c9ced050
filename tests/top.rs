//! `rdask top` against a real scheduler and worker (processes): a few
//! refreshes as plain blocks (stdout is a pipe here), the worker and the
//! task counts in them; Ctrl-C ends it cleanly; a bad interval is refused.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

mod common;

use common::{rdask_bin, scheduler, wait_for_workers, worker_with};
use rdask::Client;

/// How long `rdask top` may take to end after Ctrl-C.
const STOP_BOUND: Duration = Duration::from_secs(10);

#[test]
fn top_prints_refreshes_of_a_real_cluster_and_stops_on_ctrl_c() {
    let (_s, addr) = scheduler();
    let (_w, _) = worker_with(&addr, "topworker", &["--nthreads", "3"]);
    let client = Client::connect(&addr).expect("client");
    wait_for_workers(&client, 1);

    let out = Command::new(rdask_bin())
        .args(["top", &addr, "--interval", "0.2", "--count", "3"])
        .output()
        .expect("rdask top runs");
    let text = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "{text}\n{}", String::from_utf8_lossy(&out.stderr));
    assert_eq!(text.matches("rdask top: ").count(), 3, "three refreshes: {text}");
    assert!(text.contains("1 workers, 3 threads"), "{text}");
    assert!(text.lines().any(|l| l.starts_with("topworker")), "{text}");
    assert!(!text.contains('\x1b'), "no escape codes without a terminal: {text:?}");

    // Until Ctrl-C: it ends at once, with status 0.
    let mut top = Command::new(rdask_bin())
        .args(["top", &addr, "--interval", "0.2"])
        .stdout(Stdio::piped())
        .spawn()
        .expect("rdask top starts");
    let mut lines = BufReader::new(top.stdout.take().expect("stdout"));
    let mut line = String::new();
    lines.read_line(&mut line).expect("a first refresh");
    assert!(line.starts_with("rdask top: "), "{line}");
    // SAFETY: kill with a valid signal on our own child's pid.
    unsafe { libc::kill(top.id() as i32, libc::SIGINT) };
    let started = Instant::now();
    let status = loop {
        if let Some(s) = top.try_wait().expect("wait") {
            break s;
        }
        assert!(started.elapsed() < STOP_BOUND, "rdask top did not stop on Ctrl-C");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert!(status.success(), "{status}");

    let bad = Command::new(rdask_bin())
        .args(["top", &addr, "--interval", "0"])
        .output()
        .expect("runs");
    assert_eq!(bad.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&bad.stderr).contains("--interval must be a positive number"));
}
