//! A data-parallel `LinearRegression` fit timed on a scheduler and W
//! workers × 1 thread started as processes (this binary re-run with a
//! subcommand, so the workers link the kernels): N × 10 uniform random
//! features in blocks of CHUNK rows, `y` the sum of each row's features,
//! both persisted and waited for before the clock starts; REPS fits, one
//! JSON line each (`{"case": "linear_fit", ..., "rdask_s": ...}`). No Dask
//! side: it measures rdask-ml's own kernels (docs/ml.md, "Linear models").
//!
//! `cargo run --release -p rdask-ml --example linear_bench [-- --n 4000000 --chunk 500000 --workers 2 --reps 3]`

use std::time::{Duration, Instant};

use rdask_array as da;
use rdask_devkit::{arg, loadavg1, Children, STARTUP};
use rdask_ml::linear::LinearRegression;
use serde_json::json;

/// Longest wait for the data to be made before timing.
const DATA_TIMEOUT: Duration = Duration::from_secs(600);

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| !a.starts_with("--")) {
        std::process::exit(rdask::cli::main());
    }
    let n = arg(&args, "--n", 4_000_000);
    let chunk = arg(&args, "--chunk", 500_000);
    let workers = arg(&args, "--workers", 2);
    let reps = arg(&args, "--reps", 3);
    let mut children = Children::default();
    let names: Vec<String> = (0..workers).map(|i| format!("w{i}")).collect();
    let addr = children.spawn_cluster(&names)?;
    let client = rdask::Client::connect(&addr)?;
    client.wait_for_workers(workers, STARTUP)?;
    let x = da::random(&[n, 10], &[chunk, 10], 0)?.persist(&client)?;
    let y = x.sum_axes(&[1], false)?.persist(&client)?;
    for a in [&x, &y] {
        let blocks = a.persisted_blocks().unwrap_or_default();
        client.wait(blocks, rdask::ReturnWhen::AllCompleted, Some(DATA_TIMEOUT))?;
    }
    for rep in 0..reps {
        let load = loadavg1();
        let t0 = Instant::now();
        let mut model = LinearRegression::new();
        model.fit(&client, &x, &y)?;
        let secs = t0.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({"case": "linear_fit", "n": n, "d": 10, "chunk": chunk, "workers": workers, "rep": rep,
                   "n_iter": model.n_iter_()?, "rdask_s": (secs * 1000.0).round() / 1000.0, "load": load})
        );
    }
    Ok(())
}
