//! Benchmarks (a) and (c) of issue 11, on a cluster of real processes
//! (`scheduler` and 2 workers × 1 thread: this binary re-run with a
//! subcommand, so the workers link the kernels), and the same queries in
//! Polars in this one process. Dask's side: `benches/dask_dataframe.py`.
//! Prints one JSON line per measurement, as `examples/bench.rs` does.
//!
//! - (a) `read_csv` of `--files` CSV files of `--mb` MB each (columns
//!   `user_id`, `value`, `key`) → `groupby(user_id).value.mean()`.
//! - (c) a shuffle: the same files → `set_index("key")` (`key` a random
//!   float), then each output partition's length, so every row moves
//!   between workers and nothing comes back but counts.
//!
//! The files are written once into `--dir` (default
//! `$TMPDIR/rdask-df-bench`) and reused while their count and size match.
//!
//! `--cases groupby,set_index,polars` (the default: all three) runs some.
//!
//! `cargo run --release -p rdask-dataframe --example dataframe_bench [-- --files 20 --mb 50]`

mod common;

use std::io::{BufWriter, Write};
use std::time::Instant;

use common::{arg, loadavg1, round, Children, STARTUP};

use polars::prelude::*;
use rdask_dataframe as dd;
use rdask_dataframe::datasets::mix;
use serde_json::json;

/// Distinct `user_id`s.
const USERS: u64 = 100_000;

/// Writes `files` CSV files of about `mb` MB each, unless they are there.
fn write_files(dir: &std::path::Path, files: usize, mb: usize) -> Result<(), Box<dyn std::error::Error>> {
    std::fs::create_dir_all(dir)?;
    let stamp = dir.join(format!("done-{files}x{mb}"));
    if stamp.exists() {
        return Ok(());
    }
    for f in 0..files {
        let path = dir.join(format!("2015-01-{:02}.csv", f + 1));
        let mut w = BufWriter::new(std::fs::File::create(&path)?);
        writeln!(w, "user_id,value,key")?;
        let mut written = 0usize;
        let mut i = (f as u64) << 40;
        while written < mb * 1_000_000 {
            let (a, b, c) = (mix(i), mix(i ^ 0xA5A5), mix(i ^ 0x5A5A));
            let line = format!(
                "{},{:.6},{:.9}\n",
                a % USERS,
                (b % 1_000_000) as f64 / 1000.0,
                (c >> 11) as f64 / (1u64 << 53) as f64
            );
            w.write_all(line.as_bytes())?;
            written += line.len();
            i += 1;
        }
        w.flush()?;
    }
    std::fs::write(stamp, b"")?;
    Ok(())
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| !a.starts_with("--")) {
        std::process::exit(rdask::cli::main());
    }
    let (files, mb) = (arg(&args, "--files", 20), arg(&args, "--mb", 50));
    let dir = args
        .iter()
        .position(|a| a == "--dir")
        .and_then(|i| args.get(i + 1))
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rdask-df-bench"));
    let t0 = Instant::now();
    write_files(&dir, files, mb)?;
    eprintln!("files ready in {:.1} s", t0.elapsed().as_secs_f64());
    let pattern = dir.join("2015-*-*.csv").display().to_string();
    let cases = args
        .iter()
        .position(|a| a == "--cases")
        .and_then(|i| args.get(i + 1))
        .map_or("groupby,set_index,polars", String::as_str)
        .to_string();
    let run = |case: &str| cases.split(',').any(|c| c == case);

    let mut children = Children::default();
    let addr = children.spawn_cluster(&["w1", "w2"])?;
    let client = rdask::Client::connect(&addr)?;
    client.wait_for_workers(2, STARTUP)?;

    // (a) read_csv → groupby(user_id).value.mean()
    if run("groupby") {
        let load = loadavg1();
        let t0 = Instant::now();
        let means = dd::read_csv(&pattern)?
            .groupby(&["user_id"])
            .agg(&[col("value").mean()])?
            .compute(&client)?;
        let wall = t0.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({"case": "dataframe_groupby_mean", "files": files, "mb_per_file": mb, "groups": means.height(),
               "workers": 2, "threads_per_worker": 1, "wall_s": round(wall), "loadavg1_at_start": load})
        );
    }

    // (c) set_index on a random column: a full shuffle.
    if run("set_index") {
        let load = loadavg1();
        let t0 = Instant::now();
        let (sorted, divisions) = dd::read_csv(&pattern)?.set_index(&client, "key")?;
        let rows = sorted.len(&client)?;
        let wall = t0.elapsed().as_secs_f64();
        println!(
            "{}",
            json!({"case": "dataframe_set_index_shuffle", "files": files, "mb_per_file": mb, "rows": rows,
               "partitions": sorted.npartitions(), "divisions": divisions.len(),
               "workers": 2, "threads_per_worker": 1, "wall_s": round(wall), "loadavg1_at_start": load})
        );
    }
    drop(children);
    if !run("polars") {
        return Ok(());
    }

    // The same in Polars, this process (Polars' own thread pool).
    let load = loadavg1();
    let t0 = Instant::now();
    let paths: Vec<PlRefPath> = glob::glob(&pattern)?
        .map(|p| p.map(|p| PlRefPath::new(p.display().to_string())))
        .collect::<Result<_, _>>()?;
    let scan = || {
        LazyCsvReader::new_paths(paths.clone().into())
            .with_has_header(true)
            .finish()
    };
    let want = scan()?
        .group_by([col("user_id")])
        .agg([col("value").mean()])
        .collect()?;
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"case": "dataframe_groupby_mean_polars", "files": files, "mb_per_file": mb, "groups": want.height(),
               "wall_s": round(wall), "loadavg1_at_start": load})
    );
    let load = loadavg1();
    let t0 = Instant::now();
    let sorted = scan()?.sort(["key"], Default::default()).collect()?;
    let wall = t0.elapsed().as_secs_f64();
    println!(
        "{}",
        json!({"case": "dataframe_sort_polars", "files": files, "mb_per_file": mb, "rows": sorted.height(),
               "wall_s": round(wall), "loadavg1_at_start": load})
    );
    Ok(())
}
