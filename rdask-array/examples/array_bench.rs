//! Benchmark (b) of issue 11: a seeded random `n × n` f64 array in
//! `chunk × chunk` blocks → `(x - x.mean(axis=1, keepdims=True)).std()`,
//! on a cluster of real processes (`scheduler` and 2 workers × 1 thread,
//! this binary re-run with a subcommand, so the workers link the kernels),
//! and the same computation in plain ndarray in this one process (one
//! thread, block by block so the input is never whole in memory, and whole
//! with `--whole`), whose result must equal the cluster's up to rounding.
//! Dask's side: `benches/dask_array.py`. Prints one JSON line per
//! measurement, as `examples/bench.rs` does.
//!
//! `cargo run --release -p rdask-array --example array_bench [-- --n 20000 --chunk 1000]`

use std::time::{Duration, Instant};

use rdask_array as da;
use rdask_devkit::{arg, loadavg1, Children, STARTUP};
use serde_json::json;

/// Longest the computation may take.
const COMPUTE_TIMEOUT: Duration = Duration::from_secs(1800);

/// The same computation in plain ndarray, one thread, with the same
/// kernels the workers run (called as plain functions, no encoding): the
/// blocks made by the same generator, row means from a first pass, then
/// each block centred and reduced to its (count, mean, M2) partial in a
/// second, partials merged as the cluster's tree does (the blocks made
/// again, as a streaming single-process program would; `whole` keeps them
/// instead, copying each for the second pass as a worker decodes it).
fn plain(n: usize, chunk: usize, whole: bool) -> Result<f64, String> {
    use da::kernels::BinOp;
    use da::partial::{self, Reduction};
    let lens = da::grid::regular(&[n, n], &[chunk, chunk]).map_err(|e| e.to_string())?;
    let block = |i: usize, j: usize| da::kernels::random(vec![lens[0][i], lens[1][j]], 2015, vec![i, j]);
    let nb = lens[0].len();
    let mut kept = Vec::new();
    let mut means = Vec::with_capacity(nb);
    for i in 0..nb {
        let mut parts = Vec::with_capacity(nb);
        for j in 0..nb {
            let b = block(i, j);
            parts.push(partial::partial_of(
                Reduction::Mean,
                &b,
                &[1],
                &[i * chunk, j * chunk],
                &[n, n],
            )?);
            if whole {
                kept.push(b);
            }
        }
        let p = partial::reduce_combine(Reduction::Mean, parts)?;
        means.push(partial::reduce_finalize(Reduction::Mean, p, vec![1], true)?);
    }
    let kind = Reduction::Std(0.0);
    let mut parts = Vec::with_capacity(nb * nb);
    for i in 0..nb {
        for j in 0..nb {
            let b = if whole { kept[i * nb + j].clone() } else { block(i, j) };
            parts.push(partial::reduce_binary(
                (kind, BinOp::Sub),
                b,
                means[i].clone(),
                vec![0, 1],
                vec![i * chunk, j * chunk],
                vec![n, n],
            )?);
        }
    }
    let p = partial::reduce_combine(kind, parts)?;
    Ok(partial::reduce_finalize(kind, p, vec![0, 1], false)?.sum())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| !a.starts_with("--")) {
        std::process::exit(rdask::cli::main());
    }
    let (n, chunk) = (arg(&args, "--n", 20_000), arg(&args, "--chunk", 1_000));
    let mut children = Children::default();
    let addr = children.spawn_cluster(&["w1", "w2"])?;
    let client = rdask::Client::connect(&addr)?;
    client.wait_for_workers(2, STARTUP)?;
    let load = loadavg1();
    let t0 = Instant::now();
    let x = da::random(&[n, n], &[chunk, chunk], 2015)?;
    let y = (&x - &x.mean_axes(&[1], true)?)?.std(0.0);
    let tasks = y.task_count(&da::ComputeOptions::default())?;
    let fut = rdask::delayed::persist_all(
        &client,
        &y.to_delayed().iter().collect::<Vec<_>>(),
        &da::ComputeOptions::default(),
    )?;
    let std = fut
        .first()
        .ok_or("no result")?
        .result_timeout(Some(COMPUTE_TIMEOUT))?
        .0
        .sum();
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"case": "array_center_std", "n": n, "chunk": chunk, "tasks": tasks, "workers": 2, "threads_per_worker": 1,
               "wall_s": (wall * 1000.0).round() / 1000.0, "std": std, "loadavg1_at_start": load})
    );
    drop(fut);
    drop(children);
    if !args.iter().any(|a| a == "--skip-plain") {
        for whole in [false, true] {
            if whole && !args.iter().any(|a| a == "--whole") {
                continue;
            }
            let load = loadavg1();
            let t0 = Instant::now();
            let s = plain(n, chunk, whole)?;
            let wall = t0.elapsed().as_secs_f64();
            // The same blocks and kernels, merged in another order: equal
            // up to rounding.
            if (s - std).abs() > 1e-9 * std.abs() {
                return Err(format!("the cluster's std {std} differs from plain ndarray's {s}").into());
            }
            println!(
                "{}",
                json!({"case": "array_center_std_ndarray", "n": n, "chunk": chunk, "whole": whole, "threads": 1,
                       "wall_s": (wall * 1000.0).round() / 1000.0, "std": s, "loadavg1_at_start": load})
            );
        }
    }
    Ok(())
}
