//! rdask-ml's side of the grid-search benchmark (issue 17; Dask's side is
//! `benches/dask_ml_search.py`): elastic net with a standard scaler, 60
//! candidates (12 `alpha` x 5 `l1_ratio`) x 5 folds on a 1,000,000 x 10
//! table that both sides compute with the same formula (bit-identical), on
//! a scheduler and N 1-thread workers started as processes (this binary
//! re-run with a subcommand, so the workers link the tasks), the shape of
//! the Dask side's `LocalCluster(processes=True)`; `--processes off` uses
//! the embedded in-process cluster instead (the form of every figure
//! before 2026-12-05). Prints one JSON line per run in the form of
//! `examples/bench.rs` (`{"case": ..., "rdask_s": ...}`).
//!
//! ```text
//! cargo run --release -p rdask-ml --example ml_bench -- [--workers N]... [--rows N] [--gram on|off] [--processes on|off]
//! cargo run --release -p rdask-ml --example ml_bench -- --workers 1 --workers 2
//! ```
//!
//! `--gram off` fits every candidate with linfa on the fold's rows (the
//! path before one Gram matrix per fold was shared; `SearchOptions::shared_gram`).
//! With `TRACE` set in the environment, each run's task stream is printed
//! to stderr (worker, function, start and stop in ms from the first task;
//! runs of one worker's fits folded into their first).

use std::time::Instant;

use rdask::LocalCluster;
use rdask_array::ndarray::{Array1, Array2};
use rdask_devkit::{Children, STARTUP};
use rdask_ml::model_selection::{Estimator, GridSearchCV, ParamGrid, Preprocess, SearchOptions};
use rdask_ml::Dataset;

/// Rows of the benchmark table (the issue's 1M).
const DEFAULT_ROWS: usize = 1_000_000;
/// Its features.
const FEATURES: usize = 10;
/// The grid: 12 x 5 = 60 candidates (same literals in the Python script).
const ALPHAS: [f64; 12] = [1e-4, 3e-4, 1e-3, 3e-3, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0];
const L1_RATIOS: [f64; 5] = [0.1, 0.3, 0.5, 0.7, 0.9];

/// `frac(a)`, as NumPy's `a - floor(a)`.
fn frac(a: f64) -> f64 {
    a - a.floor()
}

/// The table of `benches/dask_ml_search.py`: `x[i, j] = frac((i + 1) *
/// PHI[j]) - 0.5`, `y = x . W + 0.1 * (frac((i + 1) * NOISE) - 0.5)`.
fn table(rows: usize) -> (Array2<f64>, Array1<f64>) {
    let phi: Vec<f64> = (0..FEATURES).map(|j| ((j + 2) as f64).sqrt()).collect();
    let w: Vec<f64> = (0..FEATURES)
        .map(|j| if j % 3 == 2 { 0.0 } else { 1.0 + j as f64 })
        .collect();
    let noise = std::f64::consts::E;
    let x = Array2::from_shape_fn((rows, FEATURES), |(i, j)| frac((i + 1) as f64 * phi[j]) - 0.5);
    let y = (0..rows)
        .map(|i| {
            let dot: f64 = (0..FEATURES).map(|j| x[[i, j]] * w[j]).sum();
            dot + 0.1 * (frac((i + 1) as f64 * noise) - 0.5)
        })
        .collect();
    (x, y)
}

fn load1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}

/// `on` or `off`, as a flag's value.
fn on_off(flag: &str, v: &str) -> Result<bool, String> {
    match v {
        "on" => Ok(true),
        "off" => Ok(false),
        _ => Err(format!("{flag} takes on or off, got {v}")),
    }
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    if std::env::args().nth(1).is_some_and(|a| !a.starts_with("--")) {
        // Re-run as `scheduler` or `worker` by the cluster below.
        std::process::exit(rdask::cli::main());
    }
    rdask::init_logging();
    let mut workers = Vec::new();
    let mut rows = DEFAULT_ROWS;
    let mut shared_gram = true;
    let mut processes = true;
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        let v = args.next().ok_or(format!("{a} needs a value"))?;
        match a.as_str() {
            "--workers" => workers.push(v.parse::<usize>()?),
            "--rows" => rows = v.parse()?,
            "--gram" => shared_gram = on_off(&a, &v)?,
            "--processes" => processes = on_off(&a, &v)?,
            _ => {
                return Err(format!(
                    "unknown flag {a}; flags: --workers N (repeatable), --rows N, --gram on|off, --processes on|off"
                )
                .into())
            }
        }
    }
    if workers.is_empty() {
        workers.push(2);
    }
    let (x, y) = table(rows);
    let data = Dataset::new(x, y)?;
    let mut grid = ParamGrid::new().param("alpha", &ALPHAS).param("l1_ratio", &L1_RATIOS);
    grid = grid.param("max_iter", &[1000.0]).param("tol", &[1e-4]);
    for n in workers {
        // Dropped at the end of the iteration: the processes are killed.
        let mut children = Children::default();
        let (_cluster, client) = if processes {
            let names: Vec<String> = (0..n).map(|i| format!("w{i}")).collect();
            let addr = children.spawn_cluster(&names)?;
            let client = rdask::Client::connect(&addr)?;
            client.wait_for_workers(n, STARTUP)?;
            (None, client)
        } else {
            let cluster = LocalCluster::builder().workers(n).threads_per_worker(1).build()?;
            let client = cluster.client()?;
            (Some(cluster), client)
        };
        let before = load1();
        let t0 = Instant::now();
        let found = GridSearchCV::new(Estimator::ElasticNet, grid.clone())
            .options(SearchOptions {
                preprocess: Preprocess::StandardScaler,
                shared_gram,
                ..Default::default()
            })
            .fit(&client, &data)?;
        let secs = t0.elapsed().as_secs_f64();
        // Where the time went, by the scheduler's task stream: each
        // function's summed task time, against the fits' own time.
        let mut per_fn: std::collections::BTreeMap<String, (usize, f64)> = Default::default();
        let stream = client.get_task_stream()?;
        if std::env::var("TRACE").is_ok() {
            let t0 = stream.iter().map(|r| r.start_us).min().unwrap_or(0);
            let mut last = String::new();
            for r in &stream {
                let f = r.function.rsplit("::").next().unwrap_or_default();
                let line = format!("{} {}", r.worker, f);
                if line != last || !f.starts_with("fit_score") {
                    eprintln!(
                        "  {line} {:.2}-{:.2} ms",
                        (r.start_us - t0) as f64 / 1e3,
                        (r.stop_us - t0) as f64 / 1e3
                    );
                }
                last = line;
            }
        }
        for r in stream {
            let name = r.function.rsplit("::").next().unwrap_or_default().to_string();
            let e = per_fn.entry(name).or_default();
            e.0 += 1;
            e.1 += r.stop_us.saturating_sub(r.start_us) as f64 / 1e6;
        }
        let fit_s: f64 = found.cv_results.mean_fit_time.iter().sum::<f64>() * 5.0;
        let tasks: Vec<String> = per_fn
            .iter()
            .map(|(f, (n, s))| format!("\"{f}\": [{n}, {s:.3}]"))
            .collect();
        println!(
            "{{\"case\": \"ml_grid_search_tasks\", \"workers\": {n}, \"fit_s\": {fit_s:.3}, \"tasks_n_s\": {{{}}}}}",
            tasks.join(", ")
        );
        println!(
            "{{\"case\": \"ml_grid_search\", \"workers\": {n}, \"rows\": {rows}, \"candidates\": {}, \"folds\": 5, \"shared_gram\": {shared_gram}, \"processes\": {processes}, \"rdask_s\": {secs:.3}, \"scatter_s\": {:.3}, \"best_alpha\": {}, \"best_l1_ratio\": {}, \"best_score\": {:.6}, \"load1_before\": {before:.2}, \"load1_after\": {:.2}}}",
            found.cv_results.params.len(),
            found.ledger.scatter_time.as_secs_f64(),
            found.best_params["alpha"],
            found.best_params["l1_ratio"],
            found.best_score,
            load1()
        );
    }
    Ok(())
}
