//! `rdask simulate`: the real scheduler ([`SchedulerState`], the same code
//! the `rdask scheduler` process runs, not a model of it) driven by
//! simulated workers and a simulated client on a virtual clock, without
//! sockets, to see how it behaves at sizes one machine cannot run for real
//! (10,000 workers, 10 million tasks).
//!
//! What is simulated: task durations and result sizes ([`Costs`]), a
//! network of one latency for every message and one bandwidth per worker
//! link (a worker's incoming transfers queue on its link), worker deaths
//! at given times, and the scheduler's own time: it handles one message at
//! a time, each taking the virtual time the call really took (scaled by
//! [`SimConfig::scheduler_time_scale`]), so a scheduler that cannot keep up
//! with its workers lengthens the makespan. What is not: memory limits and
//! spilling, pauses, heartbeats, retirement, data moves, and the worker's
//! own costs (a task takes exactly its duration).
//!
//! The report ([`SimReport`]) gives the scheduler's time per task and per
//! event, the process's peak memory, the makespan, and the makespan's
//! ratio to a lower bound (the larger of the critical path and the total
//! work over all threads). `docs/scale.md` has the figures.
//!
//! [`SchedulerState`]: crate::scheduler::SchedulerState

mod engine;
pub mod shapes;
mod worker;

use std::time::Instant;

use crate::scheduler::SchedulerConfig;
use serde::Serialize;

pub use engine::{function_name, SIM_FUNCTION};
pub use shapes::{Costs, Shape, SimTask};

/// Why a simulation could not run or finish.
#[derive(Debug, thiserror::Error)]
pub enum SimError {
    /// The graph could not be built or read.
    #[error("graph: {0}")]
    Graph(String),
    /// The scheduler refused an event it should have taken.
    #[error("scheduler: {0}")]
    Scheduler(String),
    /// The run stopped before the client had every result, or ran past its
    /// event bound.
    #[error("stuck: {0}")]
    Stuck(String),
}

/// Default bound on events of one run ([`SimConfig::max_events`]).
pub const DEFAULT_MAX_EVENTS: u64 = 2_000_000_000;

/// One simulation's settings.
#[derive(Clone, Debug)]
pub struct SimConfig {
    /// The graph's shape.
    pub shape: Shape,
    /// About how many tasks (see [`shapes::build`]).
    pub ntasks: usize,
    /// Durations and sizes.
    pub costs: Costs,
    /// Workers.
    pub workers: u32,
    /// Task threads per worker.
    pub threads_per_worker: u32,
    /// One-way latency of every message, seconds.
    pub latency_s: f64,
    /// Bandwidth of each worker's link, bytes per second (also the
    /// scheduler's starting estimate).
    pub bandwidth_bytes_per_s: f64,
    /// Virtual seconds per real second the scheduler spends handling a
    /// message: 1 counts its time as it is; 0 makes it free (the makespan
    /// then shows only placement).
    pub scheduler_time_scale: f64,
    /// How often the scheduler's work-stealing pass runs, virtual seconds
    /// (0 = never), as `scheduler.work_stealing_interval_ms` does for real.
    pub stealing_interval_s: f64,
    /// The client releases each result as it arrives (as a client dropping
    /// its futures after `as_completed`), so memory stays bounded; off, it
    /// keeps them all to the end.
    pub release_results: bool,
    /// Workers killed: (virtual time, worker index).
    pub kills: Vec<(f64, u32)>,
    /// A run handling more events than this stops with [`SimError::Stuck`].
    pub max_events: u64,
    /// The scheduler's tuning (its `default_bandwidth` is replaced by
    /// `bandwidth_bytes_per_s`).
    pub scheduler: SchedulerConfig,
}

impl Default for SimConfig {
    fn default() -> Self {
        SimConfig {
            shape: Shape::Map,
            ntasks: 10_000,
            costs: Costs {
                mean_duration_s: 0.001,
                exponential: false,
                nbytes: 8,
                seed: 1,
                stage_functions: false,
            },
            workers: 2,
            threads_per_worker: 1,
            latency_s: 100e-6,
            bandwidth_bytes_per_s: 1e9,
            scheduler_time_scale: 1.0,
            stealing_interval_s: 0.1,
            release_results: true,
            kills: Vec::new(),
            max_events: DEFAULT_MAX_EVENTS,
            scheduler: SchedulerConfig::default(),
        }
    }
}

/// What one simulation measured. Times are virtual unless named `scheduler_…`
/// or `wall_s` (real).
#[derive(Clone, Debug, Default, Serialize)]
pub struct SimReport {
    /// Tasks in the graph.
    pub tasks: u64,
    /// Workers.
    pub workers: u32,
    /// Threads in all.
    pub threads: u64,
    /// Results the client wanted (the graph's sinks).
    pub wanted: u64,
    /// Task runs (more than `tasks` when a death made some run again).
    pub executed: u64,
    /// Wanted results that erred.
    pub errors: u64,
    /// Workers killed.
    pub workers_killed: u64,
    /// When the client had every wanted result.
    pub makespan_s: f64,
    /// Longest chain of task durations.
    pub critical_path_s: f64,
    /// Total task time over all threads.
    pub work_bound_s: f64,
    /// The larger of the two.
    pub lower_bound_s: f64,
    /// `makespan_s / lower_bound_s`.
    pub makespan_ratio: f64,
    /// Thread time spent running tasks (re-runs included).
    pub busy_s: f64,
    /// Inputs fetched from peers, and their bytes.
    pub transfers: u64,
    /// Bytes fetched from peers.
    pub transfer_bytes: u64,
    /// Scheduler messages and timer events handled.
    pub events: u64,
    /// Real time spent inside the scheduler's handlers, seconds.
    pub scheduler_s: f64,
    /// Per task of the graph, microseconds.
    pub scheduler_us_per_task: f64,
    /// Per event, microseconds.
    pub scheduler_us_per_event: f64,
    /// The slowest single event, seconds.
    pub scheduler_max_event_s: f64,
    /// Peak resident memory of the process during the run, above what it
    /// was once the graph was built: the scheduler's state plus the
    /// simulated workers' bookkeeping (an upper bound on the scheduler's).
    pub peak_rss_growth_bytes: u64,
    /// Tasks the scheduler still held at the end (0 when results were
    /// released).
    pub tasks_left: u64,
    /// Real time of the whole run, seconds.
    pub wall_s: f64,
}

/// Builds the graph and runs it.
pub fn run(cfg: &SimConfig) -> Result<SimReport, SimError> {
    let tasks = shapes::build(&cfg.shape, cfg.ntasks, &cfg.costs)?;
    run_graph(cfg, &tasks)
}

/// Runs `tasks` (in dependency order) as `cfg` says.
pub fn run_graph(cfg: &SimConfig, tasks: &[SimTask]) -> Result<SimReport, SimError> {
    if cfg.workers == 0 || cfg.threads_per_worker == 0 {
        return Err(SimError::Graph(
            "a simulation needs at least one worker with one thread".into(),
        ));
    }
    if tasks.len() >= u32::MAX as usize {
        return Err(SimError::Graph(format!(
            "{} tasks: at most {} are simulated",
            tasks.len(),
            u32::MAX - 1
        )));
    }
    let threads = u64::from(cfg.workers) * u64::from(cfg.threads_per_worker);
    let (critical, work) = shapes::lower_bounds(tasks, threads);
    // What an earlier run in this process freed goes back to the system
    // first, or it would sit in the peak this run measures.
    crate::util::release_free_memory();
    reset_peak_rss();
    let rss_before = peak_rss_bytes();
    let started = Instant::now();
    let mut report = engine::Engine::new(cfg, tasks)?.run()?;
    report.wall_s = started.elapsed().as_secs_f64();
    report.peak_rss_growth_bytes = peak_rss_bytes().saturating_sub(rss_before);
    report.tasks = tasks.len() as u64;
    report.workers = cfg.workers;
    report.threads = threads;
    report.critical_path_s = critical;
    report.work_bound_s = work;
    report.lower_bound_s = critical.max(work);
    report.makespan_ratio = if report.lower_bound_s > 0.0 {
        report.makespan_s / report.lower_bound_s
    } else {
        0.0
    };
    report.scheduler_us_per_task = report.scheduler_s * 1e6 / tasks.len().max(1) as f64;
    report.scheduler_us_per_event = report.scheduler_s * 1e6 / report.events.max(1) as f64;
    Ok(report)
}

/// Resets the process's peak resident memory to its current size (Linux:
/// writing 5 to `/proc/self/clear_refs`), so that a run measures its own
/// peak and not an earlier run's; elsewhere a no-op.
fn reset_peak_rss() {
    // Failing leaves the older peak in place: the figure is then an upper bound.
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// The process's peak resident memory so far (Linux `VmHWM`; else the
/// current resident memory).
fn peak_rss_bytes() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        })
        .map_or_else(crate::util::rss_bytes, |kb| kb * 1024)
}

#[cfg(test)]
mod tests;
