//! `rdask simulate`: flags for [`crate::simulate`], one run per
//! combination of the listed task counts and worker counts, a JSON line
//! per run on stdout.

use std::path::PathBuf;

use clap::Args;

use crate::scheduler::SchedulerConfig;
use crate::simulate::{self, Costs, Shape, SimConfig};

/// Flags of `rdask simulate`.
#[derive(Args, Debug)]
pub struct SimulateArgs {
    /// Graph shape: map, tree, shuffle, random, pipeline, or replay (with --graph).
    #[arg(long, default_value = "tree")]
    shape: String,
    /// Task counts, comma-separated (one run per count and worker count).
    #[arg(long, value_delimiter = ',', default_value = "10000")]
    tasks: Vec<usize>,
    /// Worker counts, comma-separated.
    #[arg(long, value_delimiter = ',', default_value = "2")]
    workers: Vec<u32>,
    /// Task threads per worker.
    #[arg(long, default_value_t = 1)]
    threads: u32,
    /// Mean task duration, seconds.
    #[arg(long, default_value_t = 0.001)]
    duration: f64,
    /// Draw durations from an exponential distribution around the mean.
    #[arg(long)]
    exponential: bool,
    /// Result size of every task, bytes.
    #[arg(long, default_value_t = 8)]
    nbytes: u64,
    /// Results each reduce takes (tree; shuffle past the all-to-all size).
    #[arg(long, default_value_t = 8)]
    fanin: u32,
    /// Most dependencies of a task of the random DAG.
    #[arg(long, default_value_t = 4)]
    max_deps: u32,
    /// How far back a random DAG's dependency may reach, in tasks.
    #[arg(long, default_value_t = 1000)]
    window: u32,
    /// Tasks per chain of the pipeline shape (stage 0 maps, each later
    /// stage maps over the previous one's results).
    #[arg(long, default_value_t = 2)]
    stages: u32,
    /// Each stage of the shape calls its own function, so its first tasks
    /// are placed before any of them is measured.
    #[arg(long)]
    stage_functions: bool,
    /// Turn off placement on first sight (`scheduler.first_sight_locality`):
    /// a guessed duration counts as a measured one, as in Dask.
    #[arg(long)]
    no_first_sight_locality: bool,
    /// A graph to replay (JSON lines of {"deps":[..],"duration_s":..,"nbytes":..}).
    #[arg(long)]
    graph: Option<PathBuf>,
    /// One-way message latency, milliseconds.
    #[arg(long, default_value_t = 0.1)]
    latency_ms: f64,
    /// Each worker's link bandwidth, bytes per second.
    #[arg(long, default_value_t = 1e9)]
    bandwidth: f64,
    /// Virtual seconds per real second of scheduler work (0: a free scheduler).
    #[arg(long, default_value_t = 1.0)]
    scheduler_time_scale: f64,
    /// Work-stealing interval, milliseconds (0: off).
    #[arg(long, default_value_t = 100.0)]
    stealing_interval_ms: f64,
    /// Keep every result until the end instead of releasing each as it arrives.
    #[arg(long)]
    keep_results: bool,
    /// Kill a worker: SECONDS@WORKER_INDEX (virtual time), repeatable.
    #[arg(long)]
    kill: Vec<String>,
    /// Seed of durations and of the random DAG.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

fn shape(a: &SimulateArgs) -> Result<Shape, String> {
    Ok(match a.shape.as_str() {
        "map" => Shape::Map,
        "tree" => Shape::Tree { fanin: a.fanin },
        "shuffle" => Shape::Shuffle { fanin: a.fanin },
        "random" => Shape::Random {
            max_deps: a.max_deps,
            window: a.window,
        },
        "pipeline" => Shape::Pipeline { stages: a.stages },
        "replay" => Shape::Replay(a.graph.clone().ok_or("--shape replay needs --graph FILE")?),
        other => {
            return Err(format!(
                "unknown shape {other:?}: map, tree, shuffle, random, pipeline or replay"
            ))
        }
    })
}

fn kills(a: &SimulateArgs) -> Result<Vec<(f64, u32)>, String> {
    a.kill
        .iter()
        .map(|k| {
            let (t, w) = k
                .split_once('@')
                .ok_or_else(|| format!("--kill {k:?}: expected SECONDS@WORKER"))?;
            let t: f64 = t.parse().map_err(|e| format!("--kill {k:?}: {e}"))?;
            let w: u32 = w.parse().map_err(|e| format!("--kill {k:?}: {e}"))?;
            Ok((t, w))
        })
        .collect()
}

/// Runs every combination with the scheduler tuned by `scheduler` (the
/// config file's `[scheduler]` section); returns the exit code (0, or 2
/// when a run failed).
pub fn run_simulate(a: &SimulateArgs, scheduler: &SchedulerConfig) -> i32 {
    let (shape, kills) = match (shape(a), kills(a)) {
        (Ok(s), Ok(k)) => (s, k),
        (Err(e), _) | (_, Err(e)) => {
            eprintln!("error: {e}");
            return 2;
        }
    };
    let mut code = 0;
    for &ntasks in &a.tasks {
        for &workers in &a.workers {
            let cfg = SimConfig {
                shape: shape.clone(),
                ntasks,
                costs: Costs {
                    mean_duration_s: a.duration,
                    exponential: a.exponential,
                    nbytes: a.nbytes,
                    seed: a.seed,
                    stage_functions: a.stage_functions,
                },
                workers,
                threads_per_worker: a.threads,
                latency_s: a.latency_ms / 1e3,
                bandwidth_bytes_per_s: a.bandwidth,
                scheduler_time_scale: a.scheduler_time_scale,
                stealing_interval_s: a.stealing_interval_ms / 1e3,
                release_results: !a.keep_results,
                kills: kills.clone(),
                scheduler: SchedulerConfig {
                    first_sight_locality: scheduler.first_sight_locality && !a.no_first_sight_locality,
                    ..scheduler.clone()
                },
                ..SimConfig::default()
            };
            match simulate::run(&cfg) {
                Ok(report) => {
                    let mut line = serde_json::json!({ "shape": a.shape, "requested_tasks": ntasks });
                    if let (Some(obj), Ok(serde_json::Value::Object(r))) =
                        (line.as_object_mut(), serde_json::to_value(&report))
                    {
                        obj.extend(r);
                    }
                    println!("{line}");
                }
                Err(e) => {
                    eprintln!("error: {} tasks on {workers} workers: {e}", ntasks);
                    code = 2;
                }
            }
        }
    }
    code
}
