//! Tests of the HTTP endpoint of a scheduler and a worker run as real
//! processes: `/health`, `/metrics` (checked with `promtool check metrics`,
//! Prometheus's own parser, where it is installed) and `/api/v1/info`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdask::builtins::inc;
use rdask::Client;

mod common;

/// A child process killed when the test ends, pass or fail.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rdask args` and returns the last words of its first stdout lines
/// starting with each of `prefixes`, in order.
fn start(args: &[&str], prefixes: &[&str]) -> (Proc, Vec<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdask"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("rdask starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            let _ = tx.send(line);
        }
    });
    let mut found = Vec::new();
    for prefix in prefixes {
        loop {
            let line = rx
                .recv_timeout(Duration::from_secs(30))
                .expect("process printed its addresses");
            if line.starts_with(prefix) {
                found.push(line.rsplit(' ').next().unwrap_or_default().to_string());
                break;
            }
        }
    }
    (Proc(child), found)
}

/// A GET over a plain TCP stream; returns (status, content type, body).
fn get(http: &str, path: &str) -> (u16, String, String) {
    request(http, &format!("GET {path} HTTP/1.1\r\nHost: test\r\n\r\n"))
}

fn request(http: &str, raw: &str) -> (u16, String, String) {
    let addr = http.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    s.set_read_timeout(Some(Duration::from_secs(10))).expect("timeout");
    s.write_all(raw.as_bytes()).expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    let status = head.split(' ').nth(1).and_then(|c| c.parse().ok()).expect("status");
    let ctype = header(head, "content-type").unwrap_or_default().to_string();
    let length: usize = header(head, "content-length")
        .and_then(|v| v.parse().ok())
        .expect("content length");
    assert_eq!(length, body.len(), "Content-Length matches the body");
    (status, ctype, body.to_string())
}

/// The value of a response header; names are case-insensitive in HTTP.
fn header<'a>(head: &'a str, name: &str) -> Option<&'a str> {
    head.lines().find_map(|l| {
        let (n, v) = l.split_once(':')?;
        n.trim().eq_ignore_ascii_case(name).then(|| v.trim())
    })
}

/// Runs `promtool check metrics` on the text; false (with a message) where
/// promtool is not installed.
fn promtool_check(text: &str) -> bool {
    let child = Command::new("promtool")
        .args(["check", "metrics"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn();
    let Ok(mut child) = child else {
        common::cannot_run("promtool check: promtool not installed (Debian package `prometheus`; .ci/run installs it)");
        return false;
    };
    child
        .stdin
        .take()
        .expect("stdin")
        .write_all(text.as_bytes())
        .expect("feed promtool");
    let out = child.wait_with_output().expect("promtool runs");
    // promtool exits 1 for lint findings and 3 for parse errors; lint
    // findings are style advice, so only a parse error fails the test.
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_ne!(
        out.status.code(),
        Some(3),
        "promtool cannot parse /metrics: {stderr}\n{text}"
    );
    assert!(
        out.status.success() || !stderr.contains("error while linting"),
        "promtool: {stderr}\n{text}"
    );
    true
}

fn value(metrics: &str, series: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(series).and_then(|rest| rest.strip_prefix(' ')))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or_else(|| panic!("no series {series} in:\n{metrics}"))
}

#[test]
fn scheduler_and_worker_serve_health_metrics_and_info() {
    let (_s, addrs) = start(
        &["scheduler", "--host", "127.0.0.1", "--port", "0", "--http-port", "0"],
        &["rdask scheduler listening on", "rdask http endpoint on"],
    );
    let (sched, sched_http) = (addrs[0].clone(), addrs[1].clone());
    let (_w, waddrs) = start(
        &["worker", &sched, "--name", "hw", "--http-port", "0"],
        &["rdask worker", "rdask http endpoint on"],
    );
    let worker_http = waddrs[1].clone();

    let client = Client::connect(&sched).expect("client");
    let deadline = Instant::now() + Duration::from_secs(20);
    while client.scheduler_info().expect("info").workers.is_empty() {
        assert!(Instant::now() < deadline, "worker did not register");
        std::thread::sleep(Duration::from_millis(20));
    }
    let futures = client.map(inc, 0..50i64).expect("map");
    let total: i64 = client.gather(&futures).expect("gather").iter().sum();
    assert_eq!(total, (1..=50).sum::<i64>());

    // Scheduler.
    assert_eq!(
        get(&sched_http, "/health"),
        (200, "text/plain; charset=utf-8".into(), "ok\n".into())
    );
    let (status, ctype, metrics) = get(&sched_http, "/metrics");
    assert_eq!(status, 200);
    assert!(ctype.starts_with("text/plain; version=0.0.4"), "{ctype}");
    assert_eq!(value(&metrics, "rdask_workers"), 1.0);
    assert_eq!(value(&metrics, "rdask_clients"), 1.0);
    assert_eq!(value(&metrics, "rdask_tasks{state=\"memory\"}"), 50.0);
    assert!(value(&metrics, "rdask_tasks_finished_total") >= 50.0);
    assert!(value(&metrics, "rdask_scheduler_rss_bytes") > 0.0);
    assert!(value(&metrics, "rdask_scheduler_mailbox_latency_seconds") >= 0.0);
    assert_eq!(value(&metrics, "rdask_worker_processing{worker=\"hw\"}"), 0.0);
    promtool_check(&metrics);
    let (status, ctype, info) = get(&sched_http, "/api/v1/info");
    assert_eq!((status, ctype.as_str()), (200, "application/json"));
    let info: serde_json::Value = serde_json::from_str(&info).expect("JSON");
    assert_eq!(info["kind"], "scheduler");
    assert_eq!(info["workers"][0]["name"], "hw");
    assert_eq!(info["tasks_by_state"]["memory"], 50);

    // Worker.
    assert_eq!(get(&worker_http, "/health").0, 200);
    let (status, _, metrics) = get(&worker_http, "/metrics");
    assert_eq!(status, 200);
    assert_eq!(value(&metrics, "rdask_worker_tasks_executed_total"), 50.0);
    // One worker: nothing moved between workers, through shared memory or not.
    assert_eq!(value(&metrics, "rdask_worker_fetched_shared_memory_bytes_total"), 0.0);
    assert_eq!(value(&metrics, "rdask_worker_served_shared_memory_bytes_total"), 0.0);
    assert_eq!(value(&metrics, "rdask_worker_pushed_bytes_total"), 0.0);
    assert_eq!(value(&metrics, "rdask_worker_pushed_shared_memory_bytes_total"), 0.0);
    assert_eq!(value(&metrics, "rdask_worker_store_keys"), 50.0);
    assert!(value(&metrics, "rdask_worker_store_bytes") > 0.0);
    assert!(value(&metrics, "rdask_worker_rss_bytes") > 0.0);
    // No memory limit: nothing spilled, never paused.
    assert_eq!(value(&metrics, "rdask_worker_spilled_bytes"), 0.0);
    assert_eq!(value(&metrics, "rdask_worker_memory_limit_bytes"), 0.0);
    assert_eq!(value(&metrics, "rdask_worker_paused"), 0.0);
    promtool_check(&metrics);
    let info: serde_json::Value = serde_json::from_str(&get(&worker_http, "/api/v1/info").2).expect("JSON");
    assert_eq!(info["kind"], "worker");
    assert_eq!(info["name"], "hw");
    assert_eq!(info["tasks_executed"], 50);

    // What the endpoint refuses.
    assert_eq!(get(&sched_http, "/nope").0, 404);
    assert_eq!(
        request(
            &sched_http,
            "POST /metrics HTTP/1.1\r\nHost: test\r\nContent-Length: 0\r\n\r\n"
        )
        .0,
        405
    );
    assert_eq!(request(&sched_http, "garbage\r\n\r\n").0, 400);
    let huge = format!(
        "GET / HTTP/1.1\r\nX: {}\r\n\r\n",
        "a".repeat(rdask::http::MAX_REQUEST_HEAD_BYTES)
    );
    let addr = sched_http.trim_start_matches("http://");
    let mut s = TcpStream::connect(addr).expect("connect");
    let _ = s.write_all(huge.as_bytes());
    let mut text = String::new();
    let _ = s.read_to_string(&mut text);
    assert!(text.starts_with("HTTP/1.1 431"), "{text}");
    // HEAD: the GET answer's head, no body.
    let mut s = TcpStream::connect(addr).expect("connect");
    s.write_all(b"HEAD /health HTTP/1.1\r\nHost: test\r\n\r\n")
        .expect("write");
    let mut text = String::new();
    s.read_to_string(&mut text).expect("read");
    let (head, body) = text.split_once("\r\n\r\n").expect("response head");
    assert!(head.starts_with("HTTP/1.1 200"), "{text}");
    assert_eq!((header(head, "content-length"), body), (Some("3"), ""));
    // And it still serves afterwards.
    assert_eq!(get(&sched_http, "/health").0, 200);
}
