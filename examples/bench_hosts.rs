//! The benchmark across three "hosts" (issue 15): sets up the test cluster
//! of `tests/support/` (network namespaces behind a 1 ms delay line with
//! 1 Gbit/s per sender: the stand-in for `tc netem`, which this kernel
//! lacks), measures the network's round trip with a TCP echo, starts
//! `rdask scheduler` on host 1 and one `rdask worker --nthreads 1` on each
//! of hosts 2 and 3 (shared memory off: they share a kernel), then runs
//! `bench --scheduler ADDR CASES` from this (the client's) namespace, so
//! every message crosses the delay line. JSON lines on stdout: the
//! network's (`hosts_network`), bench's own, and the packets each link
//! carried (`hosts_packets`). Needs root, `ip`, `tc`, `/dev/net/tun`.
//!
//! ```text
//! cargo build --release --bin rdask --example bench --example bench_hosts
//! sudo target/release/examples/bench_hosts                      # noop_throughput roundtrip_latency tree_reduce p2p_transfer
//! sudo target/release/examples/bench_hosts roundtrip_latency    # only these cases
//! ```

use std::path::Path;
use std::process::{Command, Stdio};

use rdask_devkit::{start_command, Proc};

#[path = "../tests/support/mod.rs"]
mod support;
use support::hosts::{Hosts, DELAY, HOSTS, MTU, RATE};

/// The cases run when none is named: throughput, round trip, a tree,
/// and worker-to-worker bandwidth.
const DEFAULT_CASES: &[&str] = &["noop_throughput", "roundtrip_latency", "tree_reduce", "p2p_transfer"];
/// Round trips of the network's own probe, per link.
const PROBES: usize = 50;

/// The cluster's processes, killed when dropped (before the hosts go).
struct Kids(Vec<Proc>);

impl Drop for Kids {
    fn drop(&mut self) {
        // Workers first, so none logs its scheduler's going.
        while let Some(p) = self.0.pop() {
            drop(p);
        }
    }
}

fn main() {
    let cases: Vec<String> = std::env::args().skip(1).collect();
    if cases.iter().any(|a| a == "-h" || a == "--help") {
        println!(
            "usage: bench_hosts [case ...]   (bench's case names; default: {})",
            DEFAULT_CASES.join(" ")
        );
        return;
    }
    if let Err(e) = run(&cases) {
        println!("{{\"case\": \"hosts\", \"error\": {:?}}}", e);
        std::process::exit(1);
    }
}

fn run(cases: &[String]) -> Result<(), String> {
    let exe = std::env::current_exe().map_err(|e| format!("current_exe: {e}"))?;
    let examples = exe.parent().ok_or("no examples directory")?;
    let rdask = examples.parent().ok_or("no profile directory")?.join("rdask");
    let bench = examples.join("bench");
    for bin in [&rdask, &bench] {
        if !bin.exists() {
            return Err(format!(
                "{} is missing: cargo build --release --bin rdask --example bench",
                bin.display()
            ));
        }
    }
    let hosts = Hosts::new(std::process::id())?;
    let probe = |from, to| -> Result<(f64, f64), String> {
        let mut ms: Vec<f64> = hosts
            .tcp_rtt(from, to, PROBES)?
            .iter()
            .map(|d| d.as_secs_f64() * 1e3)
            .collect();
        ms.sort_by(f64::total_cmp);
        Ok((ms[0], ms[PROBES / 2]))
    };
    let (cs_min, cs_med) = probe(0, 1)?;
    let (ww_min, ww_med) = probe(2, 3)?;
    println!(
        "{{\"case\": \"hosts_network\", \"hosts\": {HOSTS}, \"one_way_delay_ms\": {:.1}, \"rate_per_sender\": \"{RATE}\", \"mtu\": {MTU}, \
         \"delay\": \"delay line between TUN devices (this kernel has no sch_netem)\", \
         \"rtt_client_sched_min_ms\": {cs_min:.3}, \"rtt_client_sched_median_ms\": {cs_med:.3}, \
         \"rtt_worker_worker_min_ms\": {ww_min:.3}, \"rtt_worker_worker_median_ms\": {ww_med:.3}, \"loadavg1\": {}}}",
        DELAY.as_secs_f64() * 1e3,
        std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| s.split_whitespace().next().map(str::to_string))
            .unwrap_or_else(|| "null".into()),
    );

    let mut kids = Kids(Vec::new());
    let sched_ip = hosts.addr(1).to_string();
    let listen = spawn(
        &mut kids,
        hosts
            .command(1, path_str(&rdask)?)
            .args(["scheduler", "--host", &sched_ip, "--port", "0"]),
    )?;
    let port = listen.rsplit(':').next().ok_or("no port")?;
    let addr = format!("tcp://{sched_ip}:{port}");
    for i in 2..=HOSTS {
        let ip = hosts.addr(i).to_string();
        spawn(
            &mut kids,
            hosts
                .command(i, path_str(&rdask)?)
                .args(["worker", &addr, "--name", &format!("w{}", i - 1), "--nthreads", "1"])
                .args(["--listen-host", &ip])
                .env("RDASK_WORKER__SHARED_MEMORY_TRANSFERS", "false"),
        )?;
    }
    let cases: Vec<String> = if cases.is_empty() {
        DEFAULT_CASES.iter().map(|c| c.to_string()).collect()
    } else {
        cases.to_vec()
    };
    let status = Command::new(&bench)
        .args(["--scheduler", &addr])
        .args(&cases)
        .status()
        .map_err(|e| format!("cannot run {}: {e}", bench.display()))?;
    let line = hosts.line();
    println!(
        "{{\"case\": \"hosts_packets\", \"client_to_host1\": {}, \"host1_to_client\": {}, \"host2_to_host3\": {}, \"host3_to_host2\": {}, \"dropped\": {}}}",
        line.forwarded(0, 1),
        line.forwarded(1, 0),
        line.forwarded(2, 3),
        line.forwarded(3, 2),
        line.dropped()
    );
    drop(kids);
    if !status.success() {
        return Err(format!("bench exited with {status}"));
    }
    Ok(())
}

fn path_str(p: &Path) -> Result<&str, String> {
    p.to_str().ok_or_else(|| format!("{} is not UTF-8", p.display()))
}

/// Starts `cmd` (the devkit's bounded wait for where it listens), keeps it
/// in `kids`, and returns its address.
fn spawn(kids: &mut Kids, cmd: &mut Command) -> Result<String, String> {
    let (child, address) = start_command(cmd, Stdio::inherit()).map_err(|e| e.to_string())?;
    kids.0.push(child);
    Ok(address)
}
