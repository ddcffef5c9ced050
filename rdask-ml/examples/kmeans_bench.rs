//! rdask's side of the k-means benchmark of issue 17 (Dask's side:
//! `benches/dask_ml_kmeans.py`, the same sizes): `KMeans(n_clusters=8)` on
//! N × 10 uniform random points in blocks of CHUNK rows, persisted and
//! waited for before timing (as the Dask side's `wait(x)`), on a scheduler
//! and W workers × 1 thread started as processes (this binary re-run with
//! a subcommand, so the workers link the kernels). Prints one JSON line per measurement, as `examples/bench.rs`:
//! `kmeans` (k-means|| with 5 rounds + ITERS Lloyd iterations, tol 0) and
//! `kmeans_lloyd` (ITERS Lloyd iterations from given centres, and the time
//! per iteration).
//!
//! `cargo run --release -p rdask-ml --example kmeans_bench [-- --n 10000000 --chunk 500000 --iters 10 --workers 2]`

use std::time::Instant;

use rdask_array as da;
use rdask_devkit::{arg, loadavg1, Children, STARTUP};
use rdask_ml::cluster::{Init, KMeans};
use serde_json::json;

/// k-means|| rounds, fixed on both sides (dask-ml's `init_max_iter`).
const INIT_ROUNDS: usize = 5;

/// CPU seconds (user + system) process `pid` has used so far, from
/// `/proc/PID/stat` (fields 14 and 15, in clock ticks of 1/100 s).
fn cpu_seconds(pid: u32) -> Option<f64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) may hold spaces: count after its ')'.
    let rest = stat.rsplit_once(')')?.1;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    Some(ticks / 100.0)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| !a.starts_with("--")) {
        std::process::exit(rdask::cli::main());
    }
    let n = arg(&args, "--n", 10_000_000);
    let chunk = arg(&args, "--chunk", 500_000);
    let iters = arg(&args, "--iters", 10);
    let workers = arg(&args, "--workers", 2);
    let (k, d) = (8, 10);
    let mut children = Children::default();
    let names: Vec<String> = (0..workers).map(|i| format!("w{i}")).collect();
    let addr = children.spawn_cluster(&names)?;
    let client = rdask::Client::connect(&addr)?;
    client.wait_for_workers(workers, STARTUP)?;
    let x = da::random(&[n, d], &[chunk, d], 0)?.persist(&client)?;
    // Made before the clock starts, as the Dask side's `wait(x)`: the fit
    // is timed, not the making of 800 MB of random numbers.
    let blocks = x.persisted_blocks().unwrap_or_default();
    client.wait(
        blocks,
        rdask::ReturnWhen::AllCompleted,
        Some(std::time::Duration::from_secs(600)),
    )?;

    let load = loadavg1();
    let t0 = Instant::now();
    let mut km = KMeans::new(k);
    km.init_max_iter = Some(INIT_ROUNDS);
    km.max_iter = iters;
    km.tol = 0.0;
    km.fit(&client, &x)?;
    let full = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"case": "kmeans", "n": n, "d": d, "k": k, "chunk": chunk, "iters": iters,
               "init_rounds": INIT_ROUNDS, "workers": workers, "n_iter": km.n_iter_()?,
               "inertia": km.inertia_()?, "rdask_s": (full * 1000.0).round() / 1000.0, "load": load})
    );

    let load = loadavg1();
    let t0 = Instant::now();
    let mut lloyd = KMeans::new(k);
    lloyd.init = Init::Centers(km.cluster_centers_()?.clone());
    lloyd.max_iter = iters;
    lloyd.tol = 0.0;
    lloyd.fit(&client, &x)?;
    let secs = t0.elapsed().as_secs_f64();
    let per_iter = secs / lloyd.n_iter_()? as f64;
    println!(
        "{}",
        json!({"case": "kmeans_lloyd", "n": n, "iters": lloyd.n_iter_()?, "workers": workers,
               "rdask_s": (secs * 1000.0).round() / 1000.0,
               "rdask_per_iter_s": (per_iter * 10000.0).round() / 10000.0, "load": load})
    );
    // The scheduler's task stream, for a look at where each pass went.
    if let Some(path) = args.iter().position(|a| a == "--stream").and_then(|i| args.get(i + 1)) {
        let lines: Vec<String> = client
            .get_task_stream()?
            .iter()
            .map(serde_json::to_string)
            .collect::<Result<_, _>>()?;
        std::fs::write(path, lines.join("\n"))?;
    }
    // Where the time may go: bytes the workers fetched from each other
    // (per-block tasks should run where their block is).
    for w in client.scheduler_info()?.workers {
        let info = client.worker_info(&w.address)?;
        println!(
            "{}",
            json!({"worker": info.name, "tasks_executed": info.tasks_executed,
                   "bytes_fetched_from_peers": info.bytes_fetched_from_peers, "nbytes": info.nbytes})
        );
    }
    // CPU seconds per process (the scheduler first, then the workers): on
    // a shared machine a second worker may get no second core, which the
    // wall times alone do not show.
    for (i, c) in children.0.iter().enumerate() {
        let name = if i == 0 {
            "scheduler".to_string()
        } else {
            format!("w{}", i - 1)
        };
        println!("{}", json!({"process": name, "cpu_s": cpu_seconds(c.0.id())}));
    }
    Ok(())
}
