//! A worker cut off from the network, not killed (issue 4, item 6): the
//! worker runs in a network namespace of its own, joined to this host by a
//! veth pair, and the test drops the link mid-computation. The scheduler
//! must treat it as lost after the heartbeat timeout, finish the graph on
//! the other workers, and, when the link comes back, the stale worker must
//! not corrupt anything: it is told to leave (or finds its connection gone)
//! and exits, and the cluster carries on.
//!
//! Needs root and `ip` (iproute2); where a namespace cannot be made the test
//! says so and skips, except under CI, where it fails. The addresses (10.250.N.0/30) exist only on the veth
//! pair this test creates and removes.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdask::builtins::sleep_ms;
use rdask::{Client, SubmitOptions};

mod common;
use common::*;

const DEADLINE: Duration = Duration::from_secs(30);

/// The namespace and veth pair; removed when dropped, pass or fail.
struct Netns {
    ns: String,
    host_if: String,
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = Command::new("ip").args(["link", "del", &self.host_if]).status();
        let _ = Command::new("ip").args(["netns", "del", &self.ns]).status();
    }
}

fn ip(args: &[&str]) -> Result<(), String> {
    let out = Command::new("ip")
        .args(args)
        .output()
        .map_err(|e| format!("ip {}: {e}", args.join(" ")))?;
    if out.status.success() {
        Ok(())
    } else {
        Err(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        ))
    }
}

/// Creates namespace `ns` with `ns_ip` on its end of a veth pair whose host
/// end has `host_ip`.
fn make_netns(tag: u32) -> Result<(Netns, String, String), String> {
    let ns = format!("rdask-{tag}");
    let host_if = format!("rdh{tag}");
    let ns_if = format!("rdn{tag}");
    let subnet = tag % 250;
    let host_ip = format!("10.250.{subnet}.1");
    let ns_ip = format!("10.250.{subnet}.2");
    ip(&["netns", "add", &ns])?;
    let guard = Netns {
        ns: ns.clone(),
        host_if: host_if.clone(),
    };
    ip(&["link", "add", &host_if, "type", "veth", "peer", "name", &ns_if])?;
    ip(&["link", "set", &ns_if, "netns", &ns])?;
    ip(&["addr", "add", &format!("{host_ip}/30"), "dev", &host_if])?;
    ip(&["link", "set", &host_if, "up"])?;
    ip(&[
        "netns",
        "exec",
        &ns,
        "ip",
        "addr",
        "add",
        &format!("{ns_ip}/30"),
        "dev",
        &ns_if,
    ])?;
    ip(&["netns", "exec", &ns, "ip", "link", "set", &ns_if, "up"])?;
    ip(&["netns", "exec", &ns, "ip", "link", "set", "lo", "up"])?;
    Ok((guard, host_ip, ns_ip))
}

fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
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

#[test]
fn a_worker_cut_off_from_the_network_is_lost_and_cannot_corrupt_state_when_it_returns() {
    let tag = std::process::id() % 10_000;
    let (netns, host_ip, ns_ip) = match make_netns(tag) {
        Ok(x) => x,
        Err(e) => {
            cannot_run(&format!("cannot make a network namespace here ({e})"));
            return;
        }
    };
    let rdask = env!("CARGO_BIN_EXE_rdask");
    let dir = TempDir::new("netns");
    let cfg: PathBuf = dir.0.join("rdask.toml");
    std::fs::write(&cfg, "[scheduler]\nheartbeat_ms = 200\nworker_timeout_s = 2\n").expect("config");

    let (_scheduler, listen) = start(
        Command::new(rdask)
            .arg("--config")
            .arg(&cfg)
            .args(["scheduler", "--host", &host_ip, "--port", "0"]),
        "rdask scheduler listening on",
    );
    let port = listen.rsplit(':').next().expect("port").to_string();
    let addr = format!("tcp://{host_ip}:{port}");
    let (_w1, _) = start(
        Command::new(rdask).args(["worker", &addr, "--name", "w1", "--listen-host", &host_ip]),
        "rdask worker",
    );
    let (_w2, _) = start(
        Command::new(rdask).args(["worker", &addr, "--name", "w2", "--listen-host", &host_ip]),
        "rdask worker",
    );
    // Without reconnection: this test checks that a removed worker does
    // not carry on with state the scheduler dropped. (With it, the default,
    // the worker registers again, announcing what it holds, and the
    // scheduler keeps or frees each key: tests/scheduler_restart.rs.)
    let (mut cut, _) = start(
        Command::new("ip")
            .args(["netns", "exec", &netns.ns, rdask, "worker", &addr, "--name", "cut"])
            .args(["--listen-host", &ns_ip])
            .env("RDASK_WORKER__RECONNECT_TIMEOUT_S", "0"),
        "rdask worker",
    );
    let client = Client::connect(&addr).expect("client connects");
    wait_until("three workers registered", || worker_names(&client).len() == 3);

    // Enough 50 ms tasks that the cut-off worker is busy when its link drops.
    let parts = client
        .map_with(sleep_ms, vec![50u64; 90], &SubmitOptions::impure())
        .expect("map");
    wait_until("the namespaced worker runs tasks", || {
        client
            .scheduler_info()
            .expect("info")
            .workers
            .iter()
            .any(|w| w.name == "cut" && w.processing > 0)
    });
    ip(&["link", "set", &netns.host_if, "down"]).expect("link down");

    // The graph finishes on w1 and w2, with the right answer.
    let results = client.gather(&parts).expect("gather");
    assert_eq!(results.iter().sum::<u64>(), 90 * 50);
    wait_until("the cut-off worker is removed", || {
        worker_names(&client) == ["w1", "w2"]
    });

    // The link comes back: the stale worker must leave, not rejoin silently
    // with state the scheduler no longer has.
    ip(&["link", "set", &netns.host_if, "up"]).expect("link up");
    let deadline = Instant::now() + Duration::from_secs(60);
    let status = loop {
        if let Some(s) = cut.0.try_wait().expect("try_wait") {
            break s;
        }
        assert!(Instant::now() < deadline, "the stale worker did not leave");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert!(!status.success(), "a worker that was removed exits non-zero: {status}");
    assert_eq!(worker_names(&client), ["w1", "w2"]);

    // The cluster carries on, and releases everything.
    let again = client
        .map_with(sleep_ms, vec![1u64; 10], &SubmitOptions::impure())
        .expect("map");
    assert_eq!(client.gather(&again).expect("gather").iter().sum::<u64>(), 10);
    drop((parts, again));
    wait_until("the scheduler holds no tasks", || {
        client.scheduler_info().expect("info").ntasks == 0
    });
}
