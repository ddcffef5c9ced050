//! rdask's benchmark: the cases of `../shared/bench/dask_baseline.py` with the
//! same sizes, one JSON line per case (same `case` names and fields, with
//! `rdask_s` where Dask says `dask_s`), plus `million_tasks`, and the cases
//! whose Dask side is a script in `benches/`: `delayed_graph`
//! (`dask_delayed.py`) and `bag_names` (`dask_bag.py`, in its own file).
//!
//! ```text
//! cargo run --release --example bench                      # all cases, in-process cluster
//! cargo run --release --example bench -- --processes       # scheduler + 2 workers as `rdask` processes
//! cargo run --release --example bench -- noop_throughput chain   # only these cases
//! python3 ../shared/bench/compare.py --rdask "cargo run --release --example bench -- --processes"
//! cargo run --release --example bench -- --processes --dashboard noop_throughput   # with the dashboard open
//! cargo run --release --example bench -- --scheduler tcp://HOST:PORT noop_throughput   # a cluster already running
//! ```
//!
//! `--scheduler ADDR` runs the cases against a cluster that is already
//! up (at least 2 workers): `examples/bench_hosts.rs` uses it for the
//! three-host cluster behind a delay line. Its processes are not this
//! one's children, so the CPU fields are `cpu_client_s` and
//! `cpu_others_s` (the rest of the machine, the cluster included).
//!
//! `--dashboard` keeps the scheduler's dashboard open during the run: the
//! scheduler serves HTTP and a viewer follows the status page's live update
//! stream (`curl -N .../api/v1/dashboard/live`: the scheduler's side of an
//! open page, without a browser's rendering competing for the CPU);
//! `--dashboard-browser` opens the status page in headless `chromium`
//! instead (the whole cost, the page's drawing included).
//!
//! Cluster: 2 workers with 1 task thread each. By default a `LocalCluster`
//! in this process (scheduler, workers and client share one address space,
//! so the scheduler's RSS is this whole process: `sched_in_client_process`).
//! With `--processes` the example first runs `cargo build --bin rdask` (same
//! profile) and starts `rdask scheduler --host 127.0.0.1 --port 0` and two
//! `rdask worker ADDR --nthreads 1 --name wN` children, which are killed on
//! exit (also on panic, Ctrl-C, SIGTERM and the watchdog).
//!
//! Every wait has a timeout; a watchdog thread aborts the run if a case
//! overruns its budget anyway. A failing case prints `{"case": NAME,
//! "error": ...}` and the run goes on. Between cases all futures are dropped
//! and the scheduler must get back to zero tasks.
//!
//! CPU accounting (seconds since the case started): with `--processes`,
//! `cpu_client_s` (this process), `cpu_sched_s`, `cpu_workers_s` (the child
//! processes); in-process, `cpu_client_sched_s` (this process minus the
//! workers' task threads) and `cpu_workers_s` (the workers' task threads
//! only; their I/O threads count as client/scheduler). `cpu_foreign_s` is
//! the rest of the machine's busy time. `LETTER_DIR` sets where the
//! `count_letters` files live (shared with the Dask baseline).

use std::io::Write;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use rdask::builtins::{add, blob_len, count_letters, inc, make_blob, noop, sum};
use rdask::delayed::{delayed, ComputeOptions, Delayed};
use rdask::{Blob, Client, Future, LocalCluster, ReturnWhen, SubmitOptions};
use rdask_devkit::Proc;

#[path = "bench/bag_names.rs"]
mod bag_names;

const N_LETTER_FILES: usize = 16;
const LETTERS_PER_FILE: usize = 4_000_000;
const P2P_BYTES: u64 = 200_000_000;
const MEM_CASE_WAIT_S: u64 = 330;
const MILLION: usize = 1_000_000;

/// Case name, function, budget in seconds (as in dask_baseline.py).
type CaseFn = fn(&mut Ctx) -> Result<()>;
const CASES: &[(&str, CaseFn, u64)] = &[
    ("noop_throughput", case_noop_throughput, 150),
    ("roundtrip_latency", case_roundtrip_latency, 60),
    ("chain", case_chain, 60),
    ("tree_reduce", case_tree_reduce, 90),
    ("p2p_transfer", case_p2p_transfer, 120),
    ("count_letters", case_count_letters, 180),
    ("scheduler_memory", case_scheduler_memory, 360),
    ("million_tasks", case_million_tasks, 400),
    ("delayed_graph", case_delayed_graph, 300),
    ("bag_names", bag_names::case_bag_names, 900),
];

#[path = "bench/json.rs"]
mod json;
use json::*;
#[path = "bench/procfs.rs"]
mod procfs;
use procfs::*;
#[path = "bench/children.rs"]
mod children;
use children::*;
#[path = "bench/context.rs"]
mod context;
use context::*;
#[path = "bench/cases_core.rs"]
mod cases_core;
use cases_core::*;
#[path = "bench/cases_scale.rs"]
mod cases_scale;
use cases_scale::*;

// ---------------------------------------------------------------- main

/// (case, deadline) the watchdog checks.
static WATCH: Mutex<Option<(String, Instant, u64)>> = Mutex::new(None);

fn start_watchdog() {
    std::thread::spawn(|| loop {
        std::thread::sleep(Duration::from_millis(500));
        let w = WATCH.lock().unwrap_or_else(|e| e.into_inner()).clone();
        if let Some((case, deadline, budget)) = w {
            if Instant::now() > deadline {
                print_line(
                    &Rec::new(&case)
                        .str("error", format!("timeout after {budget}s (watchdog: run aborted)"))
                        .to_json(),
                );
                kill_children();
                std::process::exit(3);
            }
        }
    });
}

fn run_case(ctx: &mut Ctx, name: &str, f: CaseFn, budget: u64) {
    // The case's own waits time out first; the watchdog is the last resort.
    *WATCH.lock().unwrap_or_else(|e| e.into_inner()) = Some((
        name.to_string(),
        Instant::now() + Duration::from_secs(budget + 90),
        budget,
    ));
    ctx.acct_start();
    let r = std::panic::catch_unwind(AssertUnwindSafe(|| f(ctx)));
    let err = match r {
        Ok(Ok(())) => None,
        Ok(Err(e)) => Some(format!("{e:#}")),
        Err(p) => Some(format!(
            "panic: {}",
            p.downcast_ref::<String>()
                .map(String::as_str)
                .or_else(|| p.downcast_ref::<&str>().copied())
                .unwrap_or("?")
        )),
    };
    if let Some(e) = err {
        ctx.emit(Rec::new(name).str("error", e), true);
    }
    if let Err(e) = ctx.settle(Duration::from_secs(60)) {
        ctx.emit(Rec::new(name).str("settle_error", format!("{e:#}")), false);
    }
    *WATCH.lock().unwrap_or_else(|e| e.into_inner()) = None;
}

fn usage() -> String {
    let names: Vec<&str> = CASES.iter().map(|c| c.0).collect();
    format!(
        "usage: bench [--processes | --scheduler tcp://HOST:PORT] [--dashboard | --dashboard-browser] [case ...]\ncases: {}",
        names.join(" ")
    )
}

/// Who watches the dashboard during the run.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Viewer {
    None,
    /// `curl -N` on the live update stream.
    Stream,
    /// Headless chromium on the status page.
    Browser,
}

/// Starts the viewer of the status page at `status` (killed with the
/// cluster), and waits until it is receiving updates.
fn start_viewer(viewer: Viewer, status: &str) -> Result<()> {
    let mut cmd = match viewer {
        Viewer::None => return Ok(()),
        Viewer::Stream => {
            let mut c = Command::new("curl");
            c.args([
                "-sN",
                "-o",
                "/dev/null",
                &status.replace("/status", "/api/v1/dashboard/live"),
            ]);
            c
        }
        Viewer::Browser => {
            let profile = browser_profile();
            let mut c = Command::new("chromium");
            c.args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--disable-dev-shm-usage",
                "--window-size=1400,1000",
                &format!("--user-data-dir={}", profile.display()),
                "--remote-debugging-port=0",
                status,
            ]);
            c
        }
    };
    let child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .context("cannot start the dashboard viewer (curl or chromium)")?;
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(Proc(child));
    // Give it time to connect and receive its first updates.
    std::thread::sleep(Duration::from_secs(2));
    Ok(())
}

/// The headless chromium's profile directory (removed at the end of the run).
fn browser_profile() -> PathBuf {
    std::env::temp_dir().join(format!("rdask-bench-chromium-{}", std::process::id()))
}

/// A TCP port free right now on 127.0.0.1.
fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?.local_addr()?.port())
}

fn main() {
    let mut processes = false;
    let mut viewer = Viewer::None;
    let mut only = Vec::new();
    let mut external = None;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        match a.as_str() {
            "--processes" => processes = true,
            "--scheduler" => match args.next() {
                Some(addr) => external = Some(addr),
                None => {
                    eprintln!("--scheduler needs an address\n{}", usage());
                    std::process::exit(2);
                }
            },
            "--dashboard" => viewer = Viewer::Stream,
            "--dashboard-browser" => viewer = Viewer::Browser,
            "-h" | "--help" => {
                println!("{}", usage());
                return;
            }
            s if s.starts_with('-') => {
                eprintln!("unknown flag {s}\n{}", usage());
                std::process::exit(2);
            }
            s if CASES.iter().any(|c| c.0 == s) => only.push(s.to_string()),
            s => {
                eprintln!("unknown case {s}\n{}", usage());
                std::process::exit(2);
            }
        }
    }
    let _guard = ChildGuard;
    install_signal_handler();
    start_watchdog();
    if external.is_some() && (processes || viewer != Viewer::None) {
        eprintln!(
            "--scheduler runs against a cluster already up: no --processes or --dashboard\n{}",
            usage()
        );
        std::process::exit(2);
    }
    if let Err(e) = run(processes, external.as_deref(), viewer, &only) {
        print_line(&Rec::new("startup").str("error", format!("{e:#}")).to_json());
        kill_children();
        std::process::exit(1);
    }
}

fn run(processes: bool, external: Option<&str>, viewer: Viewer, only: &[String]) -> Result<()> {
    print_line(
        &Rec::new("env")
            .str("rdask", env!("CARGO_PKG_VERSION"))
            .int(
                "cpus",
                std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
            )
            .num("mem_gib", mem_gib(), 1)
            .str(
                "mode",
                match (processes, external) {
                    (_, Some(_)) => "external",
                    (true, None) => "processes",
                    (false, None) => "in-process",
                },
            )
            .str(
                "dashboard",
                match viewer {
                    Viewer::None => "closed",
                    Viewer::Stream => "open (live stream followed)",
                    Viewer::Browser => "open in headless chromium",
                },
            )
            .str("profile", if cfg!(debug_assertions) { "debug" } else { "release" })
            .to_json(),
    );
    let total = Instant::now();
    // Built before the clock starts, as the Dask baseline's venv is.
    let bin = if processes { Some(rdask_binary()?) } else { None };
    let t0 = Instant::now();
    let mut cluster: Option<LocalCluster> = None;
    let (client, sched_pid, worker_pids) = if let Some(addr) = external {
        let client = Client::connect(addr).with_context(|| format!("connect to {addr}"))?;
        (client, None, Vec::new())
    } else if let Some(bin) = &bin {
        let http_port = free_port()?.to_string();
        let mut args = vec!["scheduler", "--host", "127.0.0.1", "--port", "0"];
        if viewer != Viewer::None {
            args.extend(["--http-port", &http_port]);
        }
        let (spid, addr) = spawn_listening(bin, &args)?;
        start_viewer(viewer, &format!("http://127.0.0.1:{http_port}/status"))?;
        let mut wpids = Vec::new();
        for i in 1..=2 {
            let name = format!("w{i}");
            let (wpid, _) = spawn_listening(bin, &["worker", &addr, "--nthreads", "1", "--name", &name])?;
            wpids.push(wpid);
        }
        let client = Client::connect(&addr).with_context(|| format!("connect to {addr}"))?;
        (client, Some(spid), wpids)
    } else {
        let c = LocalCluster::builder().workers(2).threads_per_worker(1).build()?;
        if let Some(link) = c.dashboard_link() {
            start_viewer(viewer, link)?;
        }
        let client = c.client()?;
        cluster = Some(c);
        (client, None, Vec::new())
    };
    // wait for the workers
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let n = client.scheduler_info()?.workers.len();
        if n >= 2 {
            break;
        }
        ensure!(Instant::now() < deadline, "only {n} workers after 60 s");
        std::thread::sleep(Duration::from_millis(10));
    }
    let mut ctx = Ctx {
        client,
        processes,
        external: external.is_some(),
        sched_pid,
        worker_pids,
        acct: None,
    };
    ctx.emit(
        Rec::new("startup")
            .num("cluster_start_s", secs(t0), 3)
            .int("workers", ctx.client.scheduler_info()?.workers.len())
            .str(
                "scheduler",
                match (processes, external) {
                    (_, Some(addr)) => format!("external at {addr}"),
                    (true, None) => "separate process".into(),
                    (false, None) => "LocalCluster (in client process)".into(),
                },
            )
            .bool("sched_pid_is_client_pid", !processes && external.is_none()),
        false,
    );
    // warm-up: open connections, fault in code
    {
        let c = &ctx.client;
        let a = c.map(noop, 0..200i64)?;
        wait_all(c, &a, 60)?;
        c.gather(&a)?;
        let b = c.map(inc, 0..200i64)?;
        wait_all(c, &b, 60)?;
        c.gather(&b)?;
        let s = c
            .submit(add, (1i64, 2i64))?
            .result_timeout(Some(Duration::from_secs(60)))?;
        ensure!(s == 3, "add(1, 2) = {s}");
    }
    ctx.settle(Duration::from_secs(60))?;

    for (name, f, budget) in CASES {
        if !only.is_empty() && !only.iter().any(|o| o == name) {
            continue;
        }
        run_case(&mut ctx, name, *f, *budget);
    }
    ctx.acct = None;
    let Ctx { client, .. } = ctx;
    drop(client);
    drop(cluster);
    kill_children();
    let _ = std::fs::remove_dir_all(browser_profile());
    print_line(&Rec::new("total").num("wall_s", secs(total), 2).to_json());
    Ok(())
}
