//! More than one host (issue 15): a scheduler on host 1 and a worker on
//! each of hosts 2 and 3, network namespaces whose only links are a delay
//! line (1 ms each way, standing in for `tc netem`, which this kernel
//! lacks) with 1 Gbit/s `tbf` on each sender (`tests/support/`). The client
//! is this process, a fourth machine behind the same delay line. The
//! count-letters example and a tree reduction run across them with exact
//! results, and every worker-to-worker transfer crosses the delay line.
//!
//! Needs root, `ip` and `tc` (iproute2) and `/dev/net/tun`; where the
//! hosts cannot be made the test says so and skips, except under CI, where
//! it fails.

use std::process::Command;
use std::time::Duration;

use rdask::builtins::{add, inc};
use rdask::Client;

mod common;
mod support;
use common::*;
use support::hosts::{Hosts, DELAY};

/// Round trips measured per link.
const PROBES: usize = 20;
/// Leaves of the tree reduction.
const LEAVES: i64 = 512;
/// Letter files and their size for the count-letters example.
const FILES: usize = 8;
const FILE_BYTES: usize = 200_000;

/// The measured round trips between two endpoints; none may be shorter
/// than twice the one-way delay, or the delay is not real.
fn check_rtt(hosts: &Hosts, from: usize, to: usize) {
    let mut rtts = hosts.tcp_rtt(from, to, PROBES).expect("RTT probe");
    rtts.sort();
    eprintln!(
        "RTT {from}->{to}: min {:?}, median {:?}, max {:?}",
        rtts[0],
        rtts[PROBES / 2],
        rtts[PROBES - 1]
    );
    assert!(rtts[0] >= 2 * DELAY, "RTT {from}->{to} {:?} < 2 x {DELAY:?}", rtts[0]);
}

/// Sums inc(0..LEAVES) pairwise, level by level, from this client.
fn tree_sum(client: &Client) -> i64 {
    let mut level = client.map(inc, 0..LEAVES).expect("map");
    while level.len() > 1 {
        let mut next: Vec<_> = level
            .chunks_exact(2)
            .map(|p| client.submit(add, (&p[0], &p[1])).expect("submit"))
            .collect();
        if level.len() % 2 == 1 {
            next.push(level[level.len() - 1].clone());
        }
        level = next;
    }
    level[0]
        .result_timeout(Some(Duration::from_secs(60)))
        .expect("tree result")
}

#[test]
fn count_letters_and_a_tree_reduction_run_across_three_hosts_with_a_real_delay() {
    let hosts = match Hosts::new(std::process::id()) {
        Ok(h) => h,
        Err(e) => {
            cannot_run(&format!("cannot make the three hosts here ({e})"));
            return;
        }
    };
    let Some(letters) = example_bin("count_letters") else {
        return;
    };
    // The delay is real: client to scheduler, worker to worker.
    check_rtt(&hosts, 0, 1);
    check_rtt(&hosts, 2, 3);

    let sched_ip = hosts.addr(1).to_string();
    let (_scheduler, listen) = start(
        hosts
            .command(1, rdask_bin())
            .args(["scheduler", "--host", &sched_ip, "--port", "0"]),
        "rdask scheduler listening on",
    );
    let addr = format!("tcp://{sched_ip}:{}", listen.rsplit(':').next().expect("port"));
    // The example's binary as the workers, so they serve its own task.
    // Shared memory off: these "hosts" share a kernel, so the workers
    // would otherwise find each other's memory and skip the network.
    let worker = |i: usize| {
        let ip = hosts.addr(i).to_string();
        start(
            hosts
                .command(i, &letters)
                .args(["worker", &addr, "--name", &format!("host{i}"), "--nthreads", "1"])
                .args(["--listen-host", &ip])
                .env("RDASK_WORKER__SHARED_MEMORY_TRANSFERS", "false"),
            "rdask worker",
        )
    };
    let (_w2, _) = worker(2);
    let (_w3, _) = worker(3);
    let client = Client::connect(&addr).expect("the client reaches host 1");
    wait_for_workers(&client, 2);
    let mut on: Vec<String> = client
        .scheduler_info()
        .expect("info")
        .workers
        .iter()
        .map(|w| w.address.clone())
        .collect();
    on.sort();
    let expect: Vec<String> = [2, 3].iter().map(|i| format!("tcp://{}:", hosts.addr(*i))).collect();
    assert!(
        on.iter().zip(&expect).all(|(a, e)| a.starts_with(e.as_str())),
        "workers at {on:?}, expected on {expect:?}"
    );

    // The count-letters example, a client of its own, from this machine.
    let dir = TempDir::new("letters");
    let out = Command::new(&letters)
        .args(["--scheduler", &addr, "--files", &FILES.to_string()])
        .args(["--size", &FILE_BYTES.to_string(), "--dir"])
        .arg(&dir.0)
        .output()
        .expect("count_letters runs");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "count_letters failed: {}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    let agree = format!("results agree: {FILES} files, {} letters", FILES * FILE_BYTES);
    assert!(stdout.contains(&agree), "count_letters said:\n{stdout}");

    // The tree reduction: exact, and its partial sums moved between hosts
    // 2 and 3 through the delay line.
    let (before_23, before_32) = (hosts.line().forwarded(2, 3), hosts.line().forwarded(3, 2));
    assert_eq!(tree_sum(&client), LEAVES * (LEAVES + 1) / 2);
    let crossed = hosts.line().forwarded(2, 3) - before_23 + hosts.line().forwarded(3, 2) - before_32;
    assert!(crossed > 0, "no packet went between the workers' hosts");
    eprintln!(
        "packets: client->host1 {}, host2<->host3 {crossed} during the tree, dropped {}",
        hosts.line().forwarded(0, 1),
        hosts.line().dropped()
    );
}
