//! Connection handling with real processes (issues 9 §5 and 16): errors
//! that name the address, retries while nothing listens, peers of another
//! kind, a silent scheduler, a client that never reads, too many
//! connections, and frames that stall. Waits poll with generous deadlines;
//! no assertion depends on timing.

use std::io::Write;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use rdask::builtins::{inc, sleep_ms};
use rdask::wire::messages::{Arg, FromClient, FromWorker, TaskSpec};
use rdask::{Client, ClientOptions, Error};

mod common;
use common::*;

/// Writes `text` as a config file in a fresh directory.
fn config(dir: &TempDir, text: &str) -> PathBuf {
    let path = dir.0.join("rdask.toml");
    std::fs::write(&path, text).expect("config written");
    path
}

/// A scheduler with `config`, its log in `dir`; extra flags after the
/// command. Returns the process, its address and its log file.
fn scheduler_logged(dir: &TempDir, config: &Path, extra: &[&str]) -> (Proc, String, PathBuf) {
    let log = dir.0.join("scheduler.log");
    let (p, addrs) = start_logged(
        Command::new(rdask_bin())
            .arg("--config")
            .arg(config)
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"])
            .args(extra),
        &["rdask scheduler listening on"],
        &log,
    );
    (p, addrs[0].clone(), log)
}

fn log_text(log: &Path) -> String {
    std::fs::read_to_string(log).unwrap_or_default()
}

/// Runs `rdask ARGS` to completion; (exit code, stderr).
fn run(args: &[&str]) -> (Option<i32>, String) {
    let out = Command::new(rdask_bin()).args(args).output().expect("rdask runs");
    (out.status.code(), String::from_utf8_lossy(&out.stderr).into_owned())
}

fn task(key: &str, function: &str, args: Vec<Arg>) -> TaskSpec {
    TaskSpec {
        key: key.into(),
        function: function.into(),
        args,
        priority: 0,
        workers: Vec::new(),
        allow_other_workers: false,
        retries: 0,
        resources: Vec::new(),
    }
}

fn value<T: serde::Serialize>(v: T) -> Arg {
    Arg::Value(rmp_serde::to_vec(&v).expect("encodes"))
}

#[test]
fn a_malformed_address_is_named_as_such() {
    let (code, err) = run(&["info", "tcp:/127.0.0.1:8786"]);
    assert_eq!(code, Some(1));
    assert!(
        err.contains("malformed address \"tcp:/127.0.0.1:8786\": expected tcp://HOST:PORT or tls://HOST:PORT"),
        "{err}"
    );
}

#[test]
fn nothing_listening_is_retried_then_reported_with_the_address() {
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let (code, err) = run(&["info", &addr, "--connect-timeout", "1"]);
    assert_eq!(code, Some(1));
    let expected = format!("no rdask scheduler at {addr}: connection refused (");
    assert!(err.contains(&expected), "{err}");
    assert!(err.contains(" tries over "), "it must have tried more than once: {err}");
}

#[test]
fn a_worker_started_before_its_scheduler_waits_and_joins() {
    let dir = TempDir::new("early-worker");
    let port = free_port();
    let addr = format!("tcp://127.0.0.1:{port}");
    let log = dir.0.join("worker.log");
    let worker = Command::new(rdask_bin())
        .args(["worker", &addr, "--name", "early"])
        .stdout(std::process::Stdio::null())
        .stderr(std::fs::File::create(&log).expect("log"))
        .spawn()
        .expect("worker starts");
    let _worker = Proc(worker);
    std::thread::sleep(Duration::from_secs(2));
    let (_s, addr) = start(
        Command::new(rdask_bin()).args(["scheduler", "--host", "127.0.0.1", "--port", &port.to_string()]),
        "rdask scheduler listening on",
    );
    let client = Client::connect(&addr).expect("client connects");
    wait_for_workers(&client, 1);
    assert_eq!(
        client.submit(inc, (1i64,)).expect("submit").result().expect("result"),
        2
    );
}

#[test]
fn the_http_port_is_named_when_a_client_connects_to_it() {
    let dir = TempDir::new("http-port");
    let cfg = config(&dir, "");
    let log = dir.0.join("scheduler.log");
    let (_s, addrs) = start_logged(
        Command::new(rdask_bin()).arg("--config").arg(&cfg).args([
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
            "--http-port",
            "0",
        ]),
        &["rdask scheduler listening on", "rdask http endpoint on"],
        &log,
    );
    let (addr, http) = (&addrs[0], &addrs[1]);
    let http_addr = format!("tcp://{}", http.trim_start_matches("http://").trim_end_matches('/'));
    let err = Client::connect(&http_addr)
        .err()
        .expect("the HTTP port is not a scheduler")
        .to_string();
    assert!(
        err.contains(&format!("{http_addr} is not an rdask scheduler (it answered with HTTP")),
        "{err}"
    );
    // And an HTTP request on the rdask port is answered in HTTP.
    let mut s = raw::connect(addr);
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut reply = Vec::new();
    let _ = std::io::Read::read_to_end(&mut s, &mut reply);
    let reply = String::from_utf8_lossy(&reply);
    assert!(reply.starts_with("HTTP/1.1 400"), "{reply}");
    wait_until("the log names the HTTP client", || {
        log_text(&log).contains("an HTTP client connected to this rdask port")
    });
    let client = Client::connect(addr).expect("the scheduler still serves clients");
    assert_eq!(client.scheduler_info().expect("info").nclients, 1);
}

#[test]
fn a_stopped_scheduler_fails_waiting_calls_and_stops_workers() {
    let dir = TempDir::new("silent");
    let cfg = config(
        &dir,
        // Reconnection off: this is about telling a silent scheduler (with
        // it on, they would then try to reconnect; tests/scheduler_restart.rs).
        "[scheduler]\nkeepalive_interval_s = 0.2\n[worker]\nscheduler_silence_timeout_s = 2\nreconnect_timeout_s = 0\n",
    );
    let (sched, addr, _log) = scheduler_logged(&dir, &cfg, &[]);
    let wlog = dir.0.join("worker.log");
    let (mut w, _) = start_logged(
        Command::new(rdask_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["worker", &addr, "--name", "w"]),
        &["rdask worker"],
        &wlog,
    );
    let options = ClientOptions {
        scheduler_silence_timeout: Some(Duration::from_secs(2)),
        reconnect_timeout: Duration::ZERO,
        ..ClientOptions::default()
    };
    let client = Client::connect_with(&addr, options).expect("client connects");
    wait_for_workers(&client, 1);
    // Quiet for longer than the silence timeout, but not silent: the
    // keep-alive holds the connection.
    let slow = client.submit(sleep_ms, (3_000u64,)).expect("submit");
    assert_eq!(slow.result().expect("a quiet scheduler is not a silent one"), 3_000);
    let long = client.submit(sleep_ms, (600_000u64,)).expect("submit");
    sched.signal("STOP");
    match long.result_timeout(Some(STARTUP)) {
        Err(Error::Disconnected(why)) => {
            assert!(why.contains(&format!("scheduler at {addr} silent for 2 s")), "{why}")
        }
        other => panic!("expected the silence error, got {other:?}"),
    }
    let code = w.wait_exit();
    assert!(code.is_some_and(|c| c != 0), "worker exit code {code:?}");
    assert!(log_text(&wlog).contains(&format!("scheduler at {addr} silent for 2 s")));
    sched.signal("CONT");
}

#[test]
fn a_client_that_never_reads_is_cut_off_and_the_memory_returns() {
    let dir = TempDir::new("never-reads");
    let cfg = config(
        &dir,
        "[scheduler]\nmax_unsent_bytes_per_connection = \"8MiB\"\nclient_grace_s = 0.2\n",
    );
    let (sched, addr, log) = scheduler_logged(&dir, &cfg, &[]);
    let (_w, _) = worker_with(&addr, "w", &["--nthreads", "2"]);
    let client = Client::connect(&addr).expect("client connects");
    wait_for_workers(&client, 1);
    let baseline = proc_memory(sched.pid(), "VmRSS");
    // Results that travel inline (60 kB each), 1,500 of them: about 90 MB
    // the scheduler would queue for a client that never reads.
    let mut s = raw::client(&addr);
    let tasks: Vec<TaskSpec> = (0..1500u64)
        .map(|i| {
            task(
                &format!("blob-{i}"),
                "rdask::builtins::make_blob",
                vec![value(60_000u64), value(i)],
            )
        })
        .collect();
    let wanted = tasks.iter().map(|t| t.key.clone()).collect();
    raw::send(&mut s, &[FromClient::UpdateGraph { tasks, wanted }]).expect("submitted");
    let mut peak = 0;
    wait_until("the scheduler cuts the client that does not read", || {
        peak = peak.max(proc_memory(sched.pid(), "VmRSS"));
        log_text(&log).contains("the peer is not reading")
    });
    let text = log_text(&log);
    let line = text
        .lines()
        .find(|l| l.contains("the peer is not reading"))
        .expect("line");
    assert!(line.contains("client connection closed"), "{line}");
    assert!(
        raw::closed_by_peer(&mut s, STARTUP),
        "the scheduler closed the connection"
    );
    drop(s);
    // Its keys go after the grace period, and the memory with them.
    wait_until("the cut client's tasks are released", || {
        client.scheduler_info().expect("info").ntasks == 0
    });
    let mut after = u64::MAX;
    wait_until("the scheduler's memory returns near its baseline", || {
        after = proc_memory(sched.pid(), "VmRSS");
        after < baseline + 32 * 1024 * 1024
    });
    eprintln!("scheduler RSS: baseline {baseline}, peak {peak}, after {after} bytes");
    assert_eq!(
        client.submit(inc, (1i64,)).expect("submit").result().expect("result"),
        2
    );
}

#[test]
fn a_silent_client_is_taken_as_lost_while_an_idle_one_keeps_its_session() {
    // Keep-alive in both directions: the scheduler tells an idle client
    // (which sends a keep-alive every 5 s) from a vanished one (nothing).
    let dir = TempDir::new("silent-client");
    let cfg = config(&dir, "[scheduler]\nclient_silence_timeout_s = 8\n");
    let (_sched, addr, log) = scheduler_logged(&dir, &cfg, &[]);
    let (_w, _) = worker_with(&addr, "w", &["--nthreads", "1"]);
    let client = Client::connect(&addr).expect("client connects");
    wait_for_workers(&client, 1);
    assert_eq!(client.submit(inc, (1i64,)).and_then(|f| f.result()).ok(), Some(2));

    let started = std::time::Instant::now();
    let mut silent = raw::client(&addr);
    assert!(
        raw::closed_by_peer(&mut silent, Duration::from_secs(30)),
        "a client that sent nothing for 30 s is still connected"
    );
    let after = started.elapsed();
    assert!(
        after >= Duration::from_secs(7),
        "closed after {after:?}, before its 8 s"
    );
    let text = wait_for_file(&log, "the scheduler logs why", |t| t.contains("peer silent for 8 s"));
    assert!(text.contains("client connection closed"), "{text}");
    // The Rust client was idle as long and is still served.
    assert_eq!(client.submit(inc, (2i64,)).and_then(|f| f.result()).ok(), Some(3));
}

#[test]
fn past_max_connections_the_newest_client_is_refused_clearly() {
    let dir = TempDir::new("max-conns");
    let cfg = config(&dir, "[scheduler]\nmax_connections = 40\n");
    let (_s, addr, log) = scheduler_logged(&dir, &cfg, &[]);
    let (_w, _) = worker_with(&addr, "w", &[]);
    let client = Client::connect(&addr).expect("client connects");
    wait_for_workers(&client, 1);
    // Idle clients up to the cap (the worker and `client` hold two).
    let idle: Vec<_> = (0..38).map(|_| raw::client(&addr)).collect();
    // Past it, many more: each is refused with a reason.
    for _ in 0..200 {
        let err = Client::connect(&addr).err().expect("refused").to_string();
        assert!(
            err.contains("too many connections: 40 are open (max_connections)"),
            "{err}"
        );
    }
    // Existing clients still work, and the log did not fill up.
    assert_eq!(
        client.submit(inc, (1i64,)).expect("submit").result().expect("result"),
        2
    );
    let refusals = log_text(&log)
        .lines()
        .filter(|l| l.contains("refusing a connection"))
        .count();
    assert!((1..=3).contains(&refusals), "{refusals} refusal lines");
    drop(idle);
    wait_until("a new client is accepted once idle ones left", || {
        Client::connect(&addr).is_ok()
    });
}

#[test]
fn under_a_small_open_files_limit_the_scheduler_refuses_instead_of_failing_accepts() {
    let dir = TempDir::new("nofile");
    let cfg = config(&dir, "");
    let log = dir.0.join("scheduler.log");
    let (_s, addrs) = start_logged(
        Command::new("prlimit")
            .args(["--nofile=256:256", rdask_bin()])
            .arg("--config")
            .arg(&cfg)
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        &["rdask scheduler listening on"],
        &log,
    );
    let addr = &addrs[0];
    let client = Client::connect(addr).expect("client connects");
    let idle: Vec<_> = (0..300)
        .filter_map(|_| std::net::TcpStream::connect(addr.trim_start_matches("tcp://")).ok())
        .collect();
    let err = Client::connect(addr).err().expect("refused past the cap").to_string();
    assert!(err.contains("too many connections"), "{err}");
    assert!(client.scheduler_info().is_ok(), "the existing client still works");
    let text = log_text(&log);
    let accept_errors = text.lines().filter(|l| l.contains("accept failed")).count();
    assert!(accept_errors <= 2, "{accept_errors} accept-failure lines");
    drop(idle);
}

/// Sends a valid client handshake and the start of a frame.
fn half_a_frame(addr: &str, claimed_header: u32, claimed_payload: u64) -> std::net::TcpStream {
    let mut s = raw::client(addr);
    let mut head = Vec::new();
    head.extend_from_slice(&claimed_header.to_be_bytes());
    head.extend_from_slice(&1u32.to_be_bytes());
    head.extend_from_slice(&claimed_payload.to_be_bytes());
    s.write_all(&head).expect("frame start");
    s
}

#[test]
fn a_frame_dribbled_a_byte_at_a_time_is_cut_off() {
    let dir = TempDir::new("dribble");
    let cfg = config(
        &dir,
        "[scheduler]\nclient_grace_s = 0\n[wire]\nframe_stall_timeout_s = 1\n",
    );
    let (_s, addr, log) = scheduler_logged(&dir, &cfg, &[]);
    let mut s = half_a_frame(&addr, 100_000, 10);
    // One byte every 100 ms: progress, but never 64 KiB per second.
    let mut cut = false;
    for _ in 0..300 {
        if s.write_all(b"\x90").is_err() {
            cut = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(
        cut || raw::closed_by_peer(&mut s, Duration::from_secs(1)),
        "the dribbling client was not cut"
    );
    wait_until("the log says why", || {
        log_text(&log).contains("incomplete frame stalled")
    });
    let client = Client::connect(&addr).expect("others still connect");
    assert_eq!(client.scheduler_info().expect("info").nclients, 1);
}

#[test]
fn a_claimed_huge_frame_reserves_only_what_arrived_and_stalls_out() {
    let dir = TempDir::new("claim");
    let cfg = config(&dir, "[wire]\nframe_stall_timeout_s = 2\n");
    let (sched, addr, log) = scheduler_logged(&dir, &cfg, &[]);
    let before = proc_memory(sched.pid(), "VmSize");
    // Four connections each claim a payload of almost 2 GiB, send the
    // header and a little data, and stall.
    let mut claims: Vec<_> = (0..4)
        .map(|_| {
            let mut s = half_a_frame(&addr, 1, (2u64 << 30) - 64);
            s.write_all(&[0x90; 1 + 1000]).expect("a little data");
            s
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let during = proc_memory(sched.pid(), "VmSize");
    eprintln!("scheduler VmSize {before} -> {during} bytes with four 2 GiB claims");
    assert!(
        during < before + (1 << 30),
        "claimed lengths were reserved: {before} -> {during}"
    );
    for s in &mut claims {
        assert!(raw::closed_by_peer(s, STARTUP), "a stalled claim was not cut");
    }
    assert!(log_text(&log).contains("incomplete frame stalled"));
}

#[test]
fn messages_after_close_client_are_ignored_with_a_log_line() {
    let dir = TempDir::new("after-close");
    let cfg = config(&dir, "");
    let (_s, addr, log) = scheduler_logged(&dir, &cfg, &[]);
    let mut s = raw::client(&addr);
    raw::send(&mut s, &[FromClient::CloseClient, FromClient::Info { request_id: 1 }]).expect("sent");
    assert!(raw::closed_by_peer(&mut s, STARTUP));
    wait_until("the ignored message is logged", || {
        log_text(&log).contains("ignoring 1 messages after CloseClient in the same frame")
    });
    assert!(!log_text(&log).contains("unknown client"));
}

#[test]
fn a_client_closed_for_a_protocol_error_releases_its_keys_at_once() {
    let dir = TempDir::new("protocol-error");
    // A grace period far longer than the test waits.
    let cfg = config(&dir, "[scheduler]\nclient_grace_s = 3600\n");
    let (_s, addr, log) = scheduler_logged(&dir, &cfg, &[]);
    let (_w, _) = worker_with(&addr, "w", &[]);
    let observer = Client::connect(&addr).expect("client connects");
    wait_for_workers(&observer, 1);
    let mut s = raw::client(&addr);
    raw::send(
        &mut s,
        &[FromClient::UpdateGraph {
            tasks: vec![task("k", "rdask::builtins::inc", vec![value(1i64)])],
            wanted: vec!["k".into()],
        }],
    )
    .expect("sent");
    wait_until("the task is in memory", || {
        observer
            .scheduler_info()
            .expect("info")
            .tasks_by_state
            .iter()
            .any(|(s, n)| s == "memory" && *n == 1)
    });
    // A worker's message from a client connection is a protocol error.
    raw::send(&mut s, &[FromWorker::RetireMe]).expect("sent");
    assert!(raw::closed_by_peer(&mut s, STARTUP));
    wait_until("the refusal is logged as docs/protocol.md §8.4 says", || {
        log_text(&log)
            .contains("client connection closed: malformed message: message RetireMe is not valid from a client")
    });
    wait_until("its keys are released without waiting for the grace period", || {
        let info = observer.scheduler_info().expect("info");
        info.ntasks == 0 && info.nclients == 1
    });
}
