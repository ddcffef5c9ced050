//! The large shuffle: `set_index` on a random column of a frame of
//! `--mb` MB (default 4,000: 4 GB in memory, 125,000,000 rows of
//! `dd::datasets::random_rows`, made on the workers) in `--partitions`
//! partitions, on a scheduler and 2 worker processes × 1 thread whose
//! `memory_limit` is `--limit-mb` MB each (default 1,000), so most of the
//! data must go through their spill directories. Every output partition
//! is checked on its worker (rows, a checksum of the ids, each row's
//! columns consistent, sorted) and set against the same figures computed
//! here in a stream over the row numbers: exact, not sampled. Prints one
//! JSON line with the time, the workers' peak RSS (`VmHWM`) and the most
//! disk their directories held, all and shards only (sampled every
//! `DISK_EVERY`).
//!
//! Not in CI (too big); a scaled-down run is
//! `tests/shuffle_memory.rs`. `cargo run --release -p rdask-dataframe
//! --example dataframe_shuffle_limited [-- --mb 4000 --partitions 100 --limit-mb 1000]`

mod common;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::{arg, loadavg1, round, Children, STARTUP};
use rdask::delayed::{compute_all, delayed, ComputeOptions};
use rdask_dataframe::datasets::{mix, random_a, random_key, random_rows, RANDOM_ROW_BYTES};
use rdask_dataframe::Partition;
use rdask_devkit::du;
use serde_json::json;

/// How often the workers' directories are measured.
const DISK_EVERY: Duration = Duration::from_millis(500);

/// The frame's seed.
const SEED: u64 = 2015;

/// What one output partition holds: rows, the wrapping sum of `mix(id)`,
/// rows whose `a` is not `random_a(id)`, whether `key` never decreases,
/// and the smallest and largest key.
type Stats = (u64, u64, u64, bool, f64, f64);

/// [`Stats`] of one output partition, computed on its worker.
#[rdask::task]
fn check_partition(p: Partition) -> Result<Stats, String> {
    let id = p
        .column("id")
        .and_then(|c| c.u64().cloned())
        .map_err(|e| e.to_string())?;
    let key = p
        .column("key")
        .and_then(|c| c.f64().cloned())
        .map_err(|e| e.to_string())?;
    let a = p
        .column("a")
        .and_then(|c| c.i64().cloned())
        .map_err(|e| e.to_string())?;
    let (mut sum, mut bad, mut sorted) = (0u64, 0u64, true);
    let (mut lo, mut hi, mut prev) = (f64::INFINITY, f64::NEG_INFINITY, f64::NEG_INFINITY);
    for ((i, k), a) in id.iter().zip(key.iter()).zip(a.iter()) {
        let (Some(i), Some(k), Some(a)) = (i, k, a) else {
            bad += 1;
            continue;
        };
        sum = sum.wrapping_add(mix(i));
        bad += u64::from(a != random_a(i, SEED) || k != random_key(i, SEED));
        sorted &= k >= prev;
        prev = k;
        lo = lo.min(k);
        hi = hi.max(k);
    }
    Ok((id.len() as u64, sum, bad, sorted, lo, hi))
}

/// A process's `VmHWM` (peak RSS) in bytes.
fn peak_rss(pid: u32) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = s.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb * 1024)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| !a.starts_with("--")) {
        std::process::exit(rdask::cli::main());
    }
    let (mb, nparts, limit_mb) = (
        arg(&args, "--mb", 4000) as u64,
        arg(&args, "--partitions", 100),
        arg(&args, "--limit-mb", 1000),
    );
    let rows = mb * 1_000_000 / RANDOM_ROW_BYTES;
    let base = tempfile_dir()?;
    let mut children = Children::default();
    let addr = children.spawn(&["scheduler", "--host", "127.0.0.1", "--port", "0"])?;
    let mut dirs = Vec::new();
    for name in ["w1", "w2"] {
        let dir = base.join(name);
        std::fs::create_dir_all(&dir)?;
        let (limit, local) = (format!("{limit_mb}MB"), dir.display().to_string());
        let args = [
            "worker",
            addr.as_str(),
            "--name",
            name,
            "--nthreads",
            "1",
            "--memory-limit",
            limit.as_str(),
            "--local-directory",
            local.as_str(),
        ];
        children.spawn(&args)?;
        dirs.push(dir);
    }
    let pids: Vec<u32> = children.0[1..].iter().map(|p| p.0.id()).collect();
    let client = rdask::Client::connect(&addr)?;
    client.wait_for_workers(2, STARTUP)?;

    let (peak_disk, peak_shards) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicU64::new(0)));
    let stop = Arc::new(AtomicBool::new(false));
    let watcher = {
        let (peak_disk, peak_shards, stop, dirs) = (peak_disk.clone(), peak_shards.clone(), stop.clone(), dirs.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                let used: u64 = dirs.iter().map(|d| du(d)).sum();
                peak_disk.fetch_max(used, Ordering::Relaxed);
                // Each worker's directory holds its shards under `shuffle/`.
                let shards: u64 = dirs
                    .iter()
                    .filter_map(|d| std::fs::read_dir(d).ok())
                    .map(|d| d.flatten().map(|e| du(&e.path().join("shuffle"))).sum::<u64>())
                    .sum();
                peak_shards.fetch_max(shards, Ordering::Relaxed);
                std::thread::sleep(DISK_EVERY);
            }
        })
    };

    let load = loadavg1();
    let t0 = Instant::now();
    let (sorted, divisions) = random_rows(rows, nparts, SEED)?.set_index(&client, "key")?;
    let checks: Vec<_> = sorted
        .to_delayed()
        .iter()
        .map(|p| delayed(check_partition, (p,)))
        .collect();
    let stats = compute_all(&client, &checks.iter().collect::<Vec<_>>(), &ComputeOptions::default())?;
    let wall = t0.elapsed().as_secs_f64();
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let rss: Vec<Option<u64>> = pids.iter().map(|&p| peak_rss(p)).collect();

    // The same figures by construction, in a stream over the row numbers.
    let cuts: Vec<f64> = divisions.f64()?.into_no_null_iter().collect();
    let mut want = vec![(0u64, 0u64); stats.len()];
    for id in 0..rows {
        let j = cuts.partition_point(|c| *c < random_key(id, SEED)).min(want.len() - 1);
        want[j].0 += 1;
        want[j].1 = want[j].1.wrapping_add(mix(id));
    }
    let mut problems = Vec::new();
    for (j, ((n, sum, bad, ordered, lo, _), w)) in stats.iter().zip(&want).enumerate() {
        if (*n, *sum) != *w || *bad != 0 || !ordered {
            problems.push(format!(
                "partition {j}: {n} rows (want {}), checksum ok {}, bad rows {bad}, sorted {ordered}",
                w.0,
                *sum == w.1
            ));
        }
        if j > 0 && *n > 0 && stats[..j].iter().any(|s| s.0 > 0 && s.5 > *lo) {
            problems.push(format!("partition {j} starts below an earlier partition's end"));
        }
    }
    println!(
        "{}",
        json!({"case": "dataframe_set_index_limited", "mb": mb, "rows": rows, "partitions": nparts,
               "workers": 2, "threads_per_worker": 1, "memory_limit_mb": limit_mb,
               "wall_s": round(wall), "loadavg1_at_start": load, "loadavg1_at_end": loadavg1(),
               "worker_peak_rss_mb": rss.iter().map(|r| r.map(|b| b / 1_000_000)).collect::<Vec<_>>(),
               "peak_disk_mb": peak_disk.load(Ordering::Relaxed) / 1_000_000,
               "peak_shard_disk_mb": peak_shards.load(Ordering::Relaxed) / 1_000_000,
               "exact": problems.is_empty()})
    );
    drop(children);
    let _ = std::fs::remove_dir_all(&base);
    if !problems.is_empty() {
        return Err(problems.join("\n").into());
    }
    Ok(())
}

/// A fresh directory for the workers' files (their spill directories).
fn tempfile_dir() -> std::io::Result<PathBuf> {
    let dir = std::env::temp_dir().join(format!("rdask-shuffle-limited-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    Ok(dir)
}
