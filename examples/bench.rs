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

use std::io::{BufRead, BufReader, Write};
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context as _, Result};
use rdask::builtins::{add, blob_len, count_letters, inc, make_blob, noop, sum};
use rdask::delayed::{delayed, ComputeOptions, Delayed};
use rdask::{Blob, Client, Future, LocalCluster, ReturnWhen, SubmitOptions};

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

// ---------------------------------------------------------------- JSON

/// A JSON value, enough for flat records.
#[derive(Clone, Debug)]
enum J {
    Int(i64),
    Num(f64),
    Str(String),
    Bool(bool),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl J {
    fn write(&self, out: &mut String) {
        match self {
            J::Int(i) => out.push_str(&i.to_string()),
            J::Num(x) if !x.is_finite() => out.push_str("null"),
            J::Num(x) => {
                let s = x.to_string();
                out.push_str(&s);
                // Like Python's json: a float always shows as one.
                if !s.contains(['.', 'e', 'E']) {
                    out.push_str(".0");
                }
            }
            J::Str(s) => json_str(s, out),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    json_str(k, out);
                    out.push_str(": ");
                    x.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Python's `round(x, digits)` (to the nearest double, ties away from zero).
fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// One output line: `{"case": ..., fields...}`.
struct Rec(Vec<(String, J)>);

impl Rec {
    fn new(case: &str) -> Rec {
        Rec(vec![("case".into(), J::Str(case.into()))])
    }
    fn val(mut self, k: &str, v: J) -> Rec {
        self.0.push((k.into(), v));
        self
    }
    fn int(self, k: &str, v: impl TryInto<i64>) -> Rec {
        let v = v.try_into().unwrap_or(i64::MAX);
        self.val(k, J::Int(v))
    }
    /// A float rounded to `digits` decimals.
    fn num(self, k: &str, v: f64, digits: i32) -> Rec {
        self.val(k, J::Num(round(v, digits)))
    }
    fn str(self, k: &str, v: impl Into<String>) -> Rec {
        self.val(k, J::Str(v.into()))
    }
    fn bool(self, k: &str, v: bool) -> Rec {
        self.val(k, J::Bool(v))
    }
    fn extend(mut self, more: Vec<(String, J)>) -> Rec {
        self.0.extend(more);
        self
    }
    fn to_json(&self) -> String {
        let mut s = String::new();
        J::Obj(self.0.clone()).write(&mut s);
        s
    }
}

fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

// ---------------------------------------------------------------- /proc

fn clk_tck() -> f64 {
    static TCK: std::sync::OnceLock<f64> = std::sync::OnceLock::new();
    *TCK.get_or_init(|| {
        Command::new("getconf")
            .arg("CLK_TCK")
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).trim().parse().ok())
            .filter(|t: &f64| *t > 0.0)
            .unwrap_or(100.0)
    })
}

/// utime + stime in seconds from a `/proc/.../stat` file (0 if unreadable).
fn stat_cpu_s(path: &str) -> f64 {
    let Ok(s) = std::fs::read_to_string(path) else {
        return 0.0;
    };
    // Fields after "pid (comm)": state is [0], utime [11], stime [12].
    let Some(rest) = s.rfind(')').map(|i| &s[i + 1..]) else {
        return 0.0;
    };
    let f: Vec<&str> = rest.split_whitespace().collect();
    let tick = |i: usize| f.get(i).and_then(|x| x.parse::<f64>().ok()).unwrap_or(0.0);
    (tick(11) + tick(12)) / clk_tck()
}

fn pid_cpu_s(pid: u32) -> f64 {
    stat_cpu_s(&format!("/proc/{pid}/stat"))
}

/// CPU seconds of this process's threads whose name marks a worker's task
/// thread (`<worker>-task-<i>`, truncated to 15 bytes by the kernel).
fn task_threads_cpu_s() -> f64 {
    let Ok(dir) = std::fs::read_dir("/proc/self/task") else {
        return 0.0;
    };
    let mut total = 0.0;
    for e in dir.flatten() {
        let p = e.path();
        let comm = std::fs::read_to_string(p.join("comm")).unwrap_or_default();
        if comm.starts_with("local-worker") || comm.contains("-task-") {
            total += stat_cpu_s(&p.join("stat").to_string_lossy());
        }
    }
    total
}

/// Busy CPU seconds of the whole machine, from `/proc/stat`.
fn sys_busy_s() -> f64 {
    let s = std::fs::read_to_string("/proc/stat").unwrap_or_default();
    let f: Vec<f64> = s
        .lines()
        .next()
        .unwrap_or("")
        .split_whitespace()
        .skip(1)
        .filter_map(|x| x.parse().ok())
        .collect();
    if f.len() < 8 {
        return 0.0;
    }
    let idle = f[3] + f[4];
    (f[..8].iter().sum::<f64>() - idle) / clk_tck()
}

/// A `kB` field of `/proc/<pid>/status` (pid may be `self`), in bytes.
fn status_kb(pid: &str, field: &str) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line[field.len()..]
        .trim_start_matches(':')
        .split_whitespace()
        .next()?
        .parse()
        .ok()?;
    Some(kb * 1024)
}

fn loadavg1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|x| x.parse().ok()))
        .unwrap_or(0.0)
}

fn mem_gib() -> f64 {
    status_meminfo_total()
        .map(|b| b as f64 / (1u64 << 30) as f64)
        .unwrap_or(0.0)
}

fn status_meminfo_total() -> Option<u64> {
    let s = std::fs::read_to_string("/proc/meminfo").ok()?;
    let line = s.lines().find(|l| l.starts_with("MemTotal:"))?;
    let kb: u64 = line["MemTotal:".len()..].split_whitespace().next()?.parse().ok()?;
    Some(kb * 1024)
}

const MIB: f64 = 1048576.0;

// ---------------------------------------------------------------- child processes

/// The cluster's child processes; killed by [`kill_children`].
static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

fn kill_children() {
    let mut kids = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    for c in kids.iter_mut() {
        let _ = c.kill();
    }
    for c in kids.iter_mut() {
        let _ = c.wait();
    }
    kids.clear();
}

/// Kills the children when dropped (normal exit or panic).
struct ChildGuard;

impl Drop for ChildGuard {
    fn drop(&mut self) {
        kill_children();
    }
}

/// Kills the children and exits on SIGINT / SIGTERM.
fn install_signal_handler() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
        });
        eprintln!("bench: interrupted, stopping the cluster");
        kill_children();
        std::process::exit(130);
    });
}

/// Finds (building it first) the `rdask` binary next to this example.
fn rdask_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    // target/<profile>/examples/bench -> target/<profile>/rdask
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("cannot place {}", exe.display()))?
        .to_path_buf();
    let bin = profile_dir.join("rdask");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--bin", "rdask"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cmd.arg("--release");
    }
    // Build output goes to stderr, stdout stays JSON only.
    cmd.stdout(Stdio::null());
    eprintln!(
        "bench: building the rdask binary ({})",
        if release { "release" } else { "debug" }
    );
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("bench: `cargo build --bin rdask` failed ({s}); trying the existing binary"),
        Err(e) => eprintln!("bench: cannot run cargo ({e}); trying the existing binary"),
    }
    ensure!(
        bin.exists(),
        "{} is missing: run `cargo build --release` first",
        bin.display()
    );
    Ok(bin)
}

/// Starts a child and returns it with the first stdout line containing
/// `listening on ` (its address is the last word); later stdout is drained.
fn spawn_listening(bin: &Path, args: &[&str]) -> Result<(u32, String)> {
    let mut cmd = Command::new(bin);
    if std::env::var_os("RUST_LOG").is_none() {
        // keep the children's info logs out of the benchmark's stderr
        cmd.env("RUST_LOG", "warn");
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {} {}", bin.display(), args.join(" ")))?;
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| anyhow!("`rdask {}` did not say where it listens within 30 s", args.join(" ")))?;
    let addr = line.split_whitespace().last().unwrap_or("").to_string();
    Ok((pid, addr))
}

// ---------------------------------------------------------------- context

#[derive(Clone, Copy, Default)]
struct AcctStart {
    sys: f64,
    own: f64,
    sched: f64,
    workers: f64,
    load: f64,
}

struct Ctx {
    client: Client,
    processes: bool,
    /// `--scheduler`: the cluster's processes are not ours to account.
    external: bool,
    /// Scheduler child pid (`--processes`).
    sched_pid: Option<u32>,
    worker_pids: Vec<u32>,
    acct: Option<AcctStart>,
}

impl Ctx {
    /// (this process [less task threads in-process], scheduler, workers).
    fn cpu_now(&self) -> (f64, f64, f64) {
        let own = stat_cpu_s("/proc/self/stat");
        if self.processes {
            let sched = self.sched_pid.map(pid_cpu_s).unwrap_or(0.0);
            let workers = self.worker_pids.iter().map(|p| pid_cpu_s(*p)).sum();
            (own, sched, workers)
        } else {
            let tasks = task_threads_cpu_s();
            (own - tasks, 0.0, tasks)
        }
    }

    fn acct_start(&mut self) {
        let (own, sched, workers) = self.cpu_now();
        self.acct = Some(AcctStart {
            sys: sys_busy_s(),
            own,
            sched,
            workers,
            load: loadavg1(),
        });
    }

    fn acct_fields(&self) -> Vec<(String, J)> {
        let Some(a) = self.acct else {
            return Vec::new();
        };
        let (own, sched, workers) = self.cpu_now();
        let (d_own, d_sched, d_workers) = (own - a.own, sched - a.sched, workers - a.workers);
        let d_sys = sys_busy_s() - a.sys;
        let mut out = Vec::new();
        let mut put = |k: &str, v: f64, d: i32| out.push((k.to_string(), J::Num(round(v, d))));
        if self.external {
            put("cpu_client_s", d_own, 3);
            put("cpu_others_s", (d_sys - d_own).max(0.0), 3);
            put("loadavg1_at_start", a.load, 2);
            return out;
        }
        if self.processes {
            put("cpu_client_s", d_own, 3);
            put("cpu_sched_s", d_sched, 3);
        } else {
            put("cpu_client_sched_s", d_own, 3);
        }
        put("cpu_workers_s", d_workers, 3);
        put("cpu_foreign_s", (d_sys - d_own - d_sched - d_workers).max(0.0), 3);
        put("loadavg1_at_start", a.load, 2);
        out
    }

    fn emit(&self, rec: Rec, acct: bool) {
        let rec = if acct { rec.extend(self.acct_fields()) } else { rec };
        print_line(&rec.to_json());
    }

    fn settle(&self, timeout: Duration) -> Result<()> {
        let t0 = Instant::now();
        loop {
            let n = self.client.scheduler_info()?.ntasks;
            if n == 0 {
                return Ok(());
            }
            if t0.elapsed() > timeout {
                bail!("scheduler did not settle: {n} tasks left after {timeout:?}");
            }
            std::thread::sleep(Duration::from_millis(5));
        }
    }

    /// Scheduler RSS as the scheduler reports it, or from `/proc` where it
    /// reports 0; the second value says which.
    fn sched_rss(&self) -> Result<(u64, &'static str)> {
        let rss = self.client.scheduler_info()?.rss_bytes;
        if rss > 0 {
            return Ok((rss, "scheduler_info"));
        }
        let rss = status_kb(&self.sched_proc(), "VmRSS").ok_or_else(|| anyhow!("no scheduler RSS"))?;
        Ok((rss, "proc_status"))
    }

    /// `/proc/<pid>` name of the scheduler's process.
    fn sched_proc(&self) -> String {
        self.sched_pid.map(|p| p.to_string()).unwrap_or_else(|| "self".into())
    }
}

fn wait_all<T>(client: &Client, futures: &[Future<T>], secs: u64) -> Result<()> {
    client
        .wait(futures, ReturnWhen::AllCompleted, Some(Duration::from_secs(secs)))
        .map_err(|e| anyhow!("{e} (after {secs} s)"))?;
    Ok(())
}

fn median(sorted: &[f64]) -> f64 {
    let n = sorted.len();
    if n == 0 {
        return f64::NAN;
    }
    if n % 2 == 1 {
        sorted[n / 2]
    } else {
        (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
    }
}

fn secs(t: Instant) -> f64 {
    t.elapsed().as_secs_f64()
}

// ---------------------------------------------------------------- cases

fn case_noop_throughput(ctx: &mut Ctx) -> Result<()> {
    for n in [10_000usize, 50_000] {
        ctx.acct_start();
        let c = &ctx.client;
        let t0 = Instant::now();
        let futs = c.map(noop, 0..n as i64)?;
        let map_s = secs(t0);
        wait_all(c, &futs, 120)?;
        let res: Vec<()> = c.gather(&futs)?;
        let wall = secs(t0);
        ensure!(res.len() == n, "gathered {} results of {n}", res.len());
        ctx.emit(
            Rec::new("noop_throughput")
                .int("n", n)
                .num("wall_s", wall, 4)
                .num("map_s", map_s, 4)
                .num("wait_gather_s", wall - map_s, 4)
                .num("tasks_per_s", n as f64 / wall, 1)
                .num("us_per_task", wall / n as f64 * 1e6, 2),
            true,
        );
        drop(futs);
        drop(res);
        ctx.settle(Duration::from_secs(60))?;
        if n == 10_000 && wall * 5.0 >= 60.0 {
            ctx.emit(
                Rec::new("noop_throughput")
                    .int("n", 50_000)
                    .str("skipped", "10k run extrapolates to >= 60 s"),
                false,
            );
            break;
        }
    }
    Ok(())
}

fn case_roundtrip_latency(ctx: &mut Ctx) -> Result<()> {
    let c = &ctx.client;
    let n = 200usize;
    let opts = SubmitOptions::impure();
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n as i64 {
        let s = Instant::now();
        let r: i64 = c
            .submit_with(inc, (i,), &opts)?
            .result_timeout(Some(Duration::from_secs(30)))?;
        lat.push(secs(s));
        ensure!(r == i + 1, "inc({i}) = {r}");
    }
    let wall = secs(t0);
    let mut ms: Vec<f64> = lat.iter().map(|x| x * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let p99 = ms[(n - 1).min(((0.99 * n as f64).round() as usize).saturating_sub(1))];
    ctx.emit(
        Rec::new("roundtrip_latency")
            .int("n", n)
            .num("wall_s", wall, 4)
            .num("median_ms", median(&ms), 3)
            .num("p99_ms", p99, 3)
            .num("min_ms", ms[0], 3)
            .num("max_ms", ms[n - 1], 3)
            .num("mean_ms", ms.iter().sum::<f64>() / n as f64, 3),
        true,
    );
    Ok(())
}

fn case_chain(ctx: &mut Ctx) -> Result<()> {
    let c = &ctx.client;
    let n = 2000usize;
    let t0 = Instant::now();
    let mut f = c.submit(inc, (0i64,))?;
    for _ in 0..n - 1 {
        f = c.submit(inc, (&f,))?;
    }
    let submit_s = secs(t0);
    let r = f.result_timeout(Some(Duration::from_secs(120)))?;
    let wall = secs(t0);
    ensure!(r == n as i64, "chain result {r}, expected {n}");
    ctx.emit(
        Rec::new("chain")
            .int("n", n)
            .num("wall_s", wall, 4)
            .num("submit_s", submit_s, 4)
            .num("tasks_per_s", n as f64 / wall, 1)
            .num("us_per_task", wall / n as f64 * 1e6, 2),
        true,
    );
    Ok(())
}

fn case_tree_reduce(ctx: &mut Ctx) -> Result<()> {
    let c = &ctx.client;
    let leaves = 8192usize;
    let t0 = Instant::now();
    let mut level = c.map(inc, 0..leaves as i64)?;
    let mut ntasks = leaves;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 2 + 1);
        for pair in level.chunks_exact(2) {
            next.push(c.submit(add, (&pair[0], &pair[1]))?);
        }
        if level.len() % 2 == 1 {
            next.push(level[level.len() - 1].clone());
        }
        ntasks += level.len() / 2;
        level = next;
    }
    let submit_s = secs(t0);
    let r = level[0].result_timeout(Some(Duration::from_secs(120)))?;
    let wall = secs(t0);
    let expect = (leaves * (leaves + 1) / 2) as i64;
    ensure!(r == expect, "tree sum {r}, expected {expect}");
    ctx.emit(
        Rec::new("tree_reduce")
            .int("leaves", leaves)
            .int("total_tasks", ntasks)
            .num("wall_s", wall, 4)
            .num("submit_s", submit_s, 4)
            .num("tasks_per_s", ntasks as f64 / wall, 1)
            .num("us_per_task", wall / ntasks as f64 * 1e6, 2),
        true,
    );
    Ok(())
}

fn case_p2p_transfer(ctx: &mut Ctx) -> Result<()> {
    let mut workers = ctx.client.scheduler_info()?.workers;
    workers.sort_by(|x, y| x.address.cmp(&y.address));
    ensure!(workers.len() >= 2, "need 2 workers, have {}", workers.len());
    let (a, b) = (workers[0].clone(), workers[1].clone());
    let on_a = SubmitOptions::impure().workers([a.address.clone()]);
    let on_b = SubmitOptions::impure().workers([b.address.clone()]);
    // noop baseline: submit -> result of a trivial task on B with a tiny argument
    let mut base = Vec::new();
    for _ in 0..20 {
        let s = Instant::now();
        let n: u64 = ctx
            .client
            .submit_with(blob_len, (Blob(b"x".to_vec()),), &on_b)?
            .result_timeout(Some(Duration::from_secs(30)))?;
        base.push(secs(s));
        ensure!(n == 1);
    }
    base.sort_by(f64::total_cmp);
    let base_s = median(&base);
    // (all bytes fetched, of which through shared memory)
    let fetched0 = ctx
        .client
        .worker_info(&b.address)
        .map(|i| (i.bytes_fetched_from_peers, i.bytes_fetched_shared_memory))
        .ok();
    let mut reps = Vec::new();
    for rep in 0..5u64 {
        let blob = ctx.client.submit_with(make_blob, (P2P_BYTES, rep), &on_a)?;
        wait_all(&ctx.client, std::slice::from_ref(&blob), 60)?;
        if let Some(f) = blob.exception() {
            bail!("make_blob failed: {}", f.message);
        }
        let s = Instant::now();
        let n: u64 = ctx
            .client
            .submit_with(blob_len, (&blob,), &on_b)?
            .result_timeout(Some(Duration::from_secs(120)))?;
        let dt = secs(s);
        ensure!(n == P2P_BYTES, "blob_len = {n}");
        reps.push(dt);
        drop(blob);
        ctx.settle(Duration::from_secs(60))?;
    }
    let fetched1 = ctx
        .client
        .worker_info(&b.address)
        .map(|i| (i.bytes_fetched_from_peers, i.bytes_fetched_shared_memory))
        .ok();
    let mut sorted = reps.clone();
    sorted.sort_by(f64::total_cmp);
    let best = sorted[0];
    let med = median(&sorted);
    let mb = P2P_BYTES as f64 / 1e6;
    let mut rec = Rec::new("p2p_transfer")
        .int("bytes", P2P_BYTES)
        .str("worker_a", a.address.clone())
        .str("worker_b", b.address.clone())
        .num("noop_baseline_ms", base_s * 1e3, 3)
        .val("reps_s", J::Arr(reps.iter().map(|x| J::Num(round(*x, 4))).collect()))
        .num("median_s", med, 4)
        .num("mb_per_s_median", mb / (med - base_s).max(1e-9), 1)
        .num("mb_per_s_best", mb / (best - base_s).max(1e-9), 1)
        .str("worker_a_name", a.name.clone())
        .str("worker_b_name", b.name.clone());
    // The fetches alone, as B timed them (its transfer reports, in the
    // scheduler's task stream): the reps above also hold the task's decode
    // of its 200 MB argument and the submit round trip.
    let mut fetches: Vec<f64> = ctx
        .client
        .get_task_stream()?
        .into_iter()
        .filter(|r| r.kind == rdask::wire::messages::StreamKind::Transfer && r.worker == b.name)
        .map(|r| r.stop_us.saturating_sub(r.start_us) as f64 / 1e6)
        .collect();
    let fetches = fetches.split_off(fetches.len().saturating_sub(reps.len()));
    if fetches.len() == reps.len() {
        let mut sorted = fetches.clone();
        sorted.sort_by(f64::total_cmp);
        rec = rec
            .val(
                "fetch_s",
                J::Arr(fetches.iter().map(|x| J::Num(round(*x, 4))).collect()),
            )
            .num("fetch_mb_per_s_median", mb / median(&sorted).max(1e-9), 1)
            .num("fetch_mb_per_s_best", mb / sorted[0].max(1e-9), 1);
    }
    if let (Some(f0), Some(f1)) = (fetched0, fetched1) {
        rec = rec
            .int("b_fetched_from_peers_bytes", f1.0.saturating_sub(f0.0))
            // Nonzero when the workers moved the blob through shared memory
            // (off with RDASK_WORKER__SHARED_MEMORY_TRANSFERS=false).
            .int("b_fetched_shared_memory_bytes", f1.1.saturating_sub(f0.1));
    }
    ctx.emit(rec, true);
    Ok(())
}

fn letter_dir() -> PathBuf {
    std::env::var_os("LETTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rdask-letters"))
}

/// The letter files (the Dask baseline's names and sizes; made if missing).
fn ensure_letter_files() -> Result<(Vec<String>, bool, f64)> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let dir = letter_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let t0 = Instant::now();
    let mut generated = false;
    let mut paths = Vec::new();
    let mut state = 12345u64 ^ 0x9E37_79B9_7F4A_7C15;
    for i in 0..N_LETTER_FILES {
        let p = dir.join(format!("letters_{i:02}.txt"));
        let ok = std::fs::metadata(&p).is_ok_and(|m| m.len() == LETTERS_PER_FILE as u64);
        if !ok {
            let data: Vec<u8> = (0..LETTERS_PER_FILE)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ALPHABET[((state >> 32) % ALPHABET.len() as u64) as usize]
                })
                .collect();
            std::fs::write(&p, data).with_context(|| format!("write {}", p.display()))?;
            generated = true;
        }
        paths.push(p.to_string_lossy().into_owned());
    }
    Ok((paths, generated, secs(t0)))
}

fn case_count_letters(ctx: &mut Ctx) -> Result<()> {
    let (paths, generated, gen_s) = ensure_letter_files()?;
    for p in &paths {
        // warm the page cache for both variants alike
        std::hint::black_box(std::fs::read(p)?);
    }
    ctx.acct_start();
    let t0 = Instant::now();
    let seq = paths
        .iter()
        .map(|p| count_letters(p.clone()))
        .collect::<std::io::Result<Vec<u64>>>()?;
    let seq_s = secs(t0);
    let c = &ctx.client;
    let t0 = Instant::now();
    let futs = c.map(count_letters, &paths)?;
    wait_all(c, &futs, 300)?;
    let par: Vec<u64> = c.gather(&futs)?;
    let par_s = secs(t0);
    let expect = vec![LETTERS_PER_FILE as u64; N_LETTER_FILES];
    ensure!(seq == par && par == expect, "sequential {seq:?} vs rdask {par:?}");
    ctx.emit(
        Rec::new("count_letters")
            .int("files", N_LETTER_FILES)
            .int("letters_per_file", LETTERS_PER_FILE)
            .bool("generated_now", generated)
            .num("gen_s", gen_s, 3)
            .num("sequential_s", seq_s, 4)
            .num("rdask_s", par_s, 4)
            .num("speedup", seq_s / par_s, 3)
            .num("seq_per_file_s", seq_s / N_LETTER_FILES as f64, 4),
        true,
    );
    Ok(())
}

fn case_scheduler_memory(ctx: &mut Ctx) -> Result<()> {
    let n = 100_000usize;
    let (rss0, rss_source) = ctx.sched_rss()?;
    let t0 = Instant::now();
    let futs = ctx.client.map(noop, 0..n as i64)?;
    let map_s = secs(t0);
    // map may return before the scheduler has the whole graph: poll until it does
    let mut registered = 0;
    while secs(t0) < 120.0 {
        registered = ctx.client.scheduler_info()?.ntasks;
        if registered >= n as u64 || futs.iter().all(|f| f.done()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let registered_s = secs(t0);
    let rss_submitted = ctx.sched_rss()?.0;
    ctx.emit(
        Rec::new("scheduler_memory_submitted")
            .int("n", n)
            .num("map_s", map_s, 4)
            .num("registered_s", registered_s, 4)
            .int("sched_tasks", registered)
            .num("sched_rss_before_mb", rss0 as f64 / MIB, 1)
            .num("sched_rss_submitted_mb", rss_submitted as f64 / MIB, 1)
            .num(
                "sched_bytes_per_task_submitted",
                (rss_submitted as f64 - rss0 as f64) / n as f64,
                1,
            ),
        false,
    );
    let t1 = t0 + Duration::from_secs_f64(map_s);
    if let Err(e) = wait_all(&ctx.client, &futs, MEM_CASE_WAIT_S) {
        let done = futs.iter().filter(|f| f.status() == "finished").count();
        bail!(
            "not finished within {MEM_CASE_WAIT_S}s ({e}): finished={done}, tasks_per_s_so_far={:.1}",
            done as f64 / secs(t0)
        );
    }
    let t2 = Instant::now();
    let res: Vec<()> = ctx.client.gather(&futs)?;
    let t3 = Instant::now();
    ensure!(res.len() == n);
    let rss_held = ctx.sched_rss()?.0;
    let ntasks = ctx.client.scheduler_info()?.ntasks;
    let client_rss = status_kb("self", "VmRSS").unwrap_or(0);
    let worker_rss: Vec<(String, J)> = ctx
        .worker_pids
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mb = status_kb(&p.to_string(), "VmRSS").unwrap_or(0) as f64 / MIB;
            (format!("w{}", i + 1), J::Num(round(mb, 1)))
        })
        .collect();
    drop(futs);
    drop(res);
    ctx.settle(Duration::from_secs(120))?;
    let t4 = Instant::now();
    let rss_after = ctx.sched_rss()?.0;
    let mut rec = Rec::new("scheduler_memory")
        .int("n", n)
        .bool("sched_in_client_process", !ctx.processes)
        .num("map_s", map_s, 4)
        .num("wait_s", (t2 - t1).as_secs_f64(), 4)
        .num("gather_s", (t3 - t2).as_secs_f64(), 4)
        .num("total_s", (t3 - t0).as_secs_f64(), 4)
        .num("release_s", (t4 - t3).as_secs_f64(), 4)
        .num("tasks_per_s", n as f64 / (t3 - t0).as_secs_f64(), 1)
        .int("sched_tasks_held", ntasks)
        .num("sched_rss_before_mb", rss0 as f64 / MIB, 1)
        .num("sched_rss_held_mb", rss_held as f64 / MIB, 1)
        .num("sched_rss_delta_mb", (rss_held as f64 - rss0 as f64) / MIB, 1)
        .num("sched_bytes_per_task", (rss_held as f64 - rss0 as f64) / n as f64, 1)
        .num("sched_rss_after_release_mb", rss_after as f64 / MIB, 1)
        .num("client_rss_held_mb", client_rss as f64 / MIB, 1)
        .str("sched_rss_source", rss_source);
    if !worker_rss.is_empty() {
        rec = rec.val("worker_rss_held_mb", J::Obj(worker_rss));
    }
    ctx.emit(rec, true);
    Ok(())
}

fn case_million_tasks(ctx: &mut Ctx) -> Result<()> {
    let n = MILLION;
    let proc_name = ctx.sched_proc();
    // Reset the scheduler process's VmHWM so it is this case's peak.
    let hwm_reset = std::fs::write(format!("/proc/{proc_name}/clear_refs"), "5").is_ok();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let poller = {
        let (stop, peak, proc_name) = (stop.clone(), peak.clone(), proc_name.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = status_kb(&proc_name, "VmRSS") {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let run = || -> Result<(f64, f64, f64, f64, f64)> {
        let c = &ctx.client;
        let t0 = Instant::now();
        let futs = c.map(noop, 0..n as i64)?;
        let map_s = secs(t0);
        wait_all(c, &futs, 300)?;
        let wait_s = secs(t0) - map_s;
        let res: Vec<()> = c.gather(&futs)?;
        let wall = secs(t0);
        ensure!(res.len() == n, "gathered {} of {n}", res.len());
        let t1 = Instant::now();
        drop(futs);
        // The client's side of the release (dropping the futures and
        // queueing their `ReleaseKeys`); the rest is the scheduler's.
        let drop_s = secs(t1);
        ctx.settle(Duration::from_secs(120))?;
        Ok((wall, map_s, wait_s, secs(t1), drop_s))
    };
    let r = run();
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    let (wall, map_s, wait_s, release_s, release_drop_s) = r?;
    let polled = peak.load(Ordering::Relaxed);
    let hwm = status_kb(&proc_name, "VmHWM").filter(|_| hwm_reset);
    let (peak_b, source) = match hwm {
        Some(h) => (h.max(polled), "VmHWM"),
        None => (polled, "polled"),
    };
    ctx.emit(
        Rec::new("million_tasks")
            .int("n", n)
            .num("wall_s", wall, 4)
            .num("map_s", map_s, 4)
            .num("wait_s", wait_s, 4)
            .num("gather_s", wall - map_s - wait_s, 4)
            .num("release_s", release_s, 4)
            .num("release_drop_s", release_drop_s, 4)
            .num("tasks_per_s", n as f64 / wall, 1)
            .num("sched_peak_rss_mb", peak_b as f64 / MIB, 1)
            .num("sched_peak_rss_polled_mb", polled as f64 / MIB, 1)
            .str("sched_peak_source", source)
            .bool("sched_in_client_process", !ctx.processes),
        true,
    );
    Ok(())
}

/// The lazy graph of `delayed_graph`: `leaves` chains `inc(inc(i))`, then
/// a sum tree of fan-in 8 (`benches/dask_delayed.py` builds the same).
fn delayed_tree(leaves: usize) -> (Delayed<i64>, usize) {
    let mut nodes = 2 * leaves;
    let mut level: Vec<Delayed<i64>> = (0..leaves as i64)
        .map(|i| delayed(inc, (delayed(inc, (i,)),)))
        .collect();
    while level.len() > 1 {
        level = level.chunks(8).map(|c| delayed(sum, c.to_vec())).collect();
        nodes += level.len();
    }
    (level.pop().unwrap_or_else(|| delayed(inc, (0i64,))), nodes)
}

fn case_delayed_graph(ctx: &mut Ctx) -> Result<()> {
    let c = &ctx.client;
    let leaves = 46_000usize;
    let expect: i64 = (0..leaves as i64).map(|i| i + 2).sum();
    let mut rec = Rec::new("delayed_graph").int("leaves", leaves);
    for (label, fuse) in [("fused", true), ("unfused", false)] {
        let opts = ComputeOptions::default().fuse(fuse);
        let t0 = Instant::now();
        let (root, nodes) = delayed_tree(leaves);
        let build_s = secs(t0);
        let fut = root.persist_with(c, &opts)?;
        let submit_s = secs(t0) - build_s;
        let r = fut.result_timeout(Some(Duration::from_secs(120)))?;
        let wall = secs(t0);
        // Counted after the clock stops: it plans the graph once more, which
        // neither a user's compute nor Dask's side does.
        let tasks = root.task_count(&opts)?;
        ensure!(r == expect, "delayed sum {r}, expected {expect}");
        // RDASK_CAPTURE_GRAPH=FILE keeps the fused graph with its measured
        // durations, for `rdask simulate --shape replay --graph FILE`.
        if let (true, Some(path)) = (fuse, std::env::var_os("RDASK_CAPTURE_GRAPH")) {
            let graph = rdask::simulate::shapes::capture(&root.task_specs(&opts)?, &c.get_task_stream()?, 8);
            rdask::simulate::shapes::write_graph(Path::new(&path), &graph)?;
        }
        drop(fut);
        ctx.settle(Duration::from_secs(60))?;
        rec = rec
            .int("nodes", nodes)
            .int(&format!("{label}_tasks"), tasks)
            .num(&format!("{label}_build_s"), build_s, 4)
            .num(&format!("{label}_submit_s"), submit_s, 4)
            .num(&format!("{label}_wall_s"), wall, 4)
            .num(&format!("{label}_nodes_per_s"), nodes as f64 / wall, 1);
    }
    // A million lazy calls: building, optimizing and submitting them.
    let t0 = Instant::now();
    let (root, nodes) = delayed_tree(MILLION / 2);
    let build_s = secs(t0);
    let fut = root.persist(c)?;
    let submit_s = secs(t0) - build_s;
    let expect: i64 = (0..(MILLION / 2) as i64).map(|i| i + 2).sum();
    let r = fut.result_timeout(Some(Duration::from_secs(200)))?;
    ensure!(r == expect, "delayed sum {r}, expected {expect}");
    ctx.emit(
        rec.int("million_nodes", nodes)
            .num("million_build_s", build_s, 4)
            .num("million_submit_s", submit_s, 4)
            .num("million_wall_s", secs(t0), 4),
        true,
    );
    Ok(())
}

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
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(child);
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
