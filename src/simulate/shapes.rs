//! The graphs the simulator runs: map, tree reduction, map-reduce through
//! a shuffle, a random DAG, a pipeline of element-wise stages, and a replay
//! of a graph written to a file. Each is a list of tasks in dependency
//! order (a task names only earlier ones).

use std::path::Path;

use serde::{Deserialize, Serialize};

use super::SimError;

/// One task of a simulated graph.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SimTask {
    /// Indices of the tasks whose results it takes (all smaller than its own).
    pub deps: Vec<u32>,
    /// How long it runs on a thread, in virtual seconds.
    pub duration_s: f64,
    /// Size of its result in bytes.
    pub nbytes: u64,
    /// Which of the graph's functions it calls (0, 1, …): the scheduler
    /// measures durations per function, so the first tasks of a function
    /// other than the first are placed on a guess ([`Costs::stage_functions`]).
    #[serde(default, skip_serializing_if = "is_zero")]
    pub func: u32,
}

fn is_zero(f: &u32) -> bool {
    *f == 0
}

/// The shape of a simulated graph.
#[derive(Clone, Debug, PartialEq)]
pub enum Shape {
    /// Independent tasks.
    Map,
    /// A tree reduction: leaves, then sums of `fanin` results, level by
    /// level, to one root.
    Tree {
        /// Results each sum takes.
        fanin: u32,
    },
    /// Half the tasks map, the other half reduce through a shuffle: with up
    /// to [`FULL_SHUFFLE_MAX_PARTITIONS`] partitions every reduce takes every
    /// map's output (all-to-all, `p²` edges); past that, each reduce takes
    /// `fanin` map outputs spread over the whole input (a strided
    /// all-to-many that keeps the edges linear and defeats locality as a
    /// shuffle does).
    Shuffle {
        /// Inputs per reduce past the all-to-all size.
        fanin: u32,
    },
    /// Each task takes up to `max_deps` results of the `window` tasks before it.
    Random {
        /// Most dependencies of one task.
        max_deps: u32,
        /// How far back a dependency may be.
        window: u32,
    },
    /// `stages` element-wise stages over independent chains: stage 0 are
    /// root tasks, each task of stage k takes the result of its chain's
    /// task of stage k-1 (a map, then maps over its results).
    Pipeline {
        /// Tasks per chain.
        stages: u32,
    },
    /// A graph read from a JSON-lines file of [`SimTask`]s (see
    /// [`write_graph`]), e.g. captured from a real run.
    Replay(std::path::PathBuf),
}

/// Partitions up to which [`Shape::Shuffle`] is a full all-to-all.
pub const FULL_SHUFFLE_MAX_PARTITIONS: usize = 1_000;

/// How task durations and result sizes are drawn.
#[derive(Clone, Debug, PartialEq)]
pub struct Costs {
    /// Mean task duration, virtual seconds.
    pub mean_duration_s: f64,
    /// Durations exponentially distributed around the mean (else all equal).
    pub exponential: bool,
    /// Result size in bytes.
    pub nbytes: u64,
    /// Seed of the draws (and of the random DAG).
    pub seed: u64,
    /// Each stage of the shape calls its own function (tree: leaves, then
    /// one per level of sums; shuffle: maps, then reduces; random: root
    /// tasks, then the others; pipeline: one per stage), as a real graph
    /// of several functions does; else every task calls one function.
    pub stage_functions: bool,
}

/// A small deterministic generator (splitmix64): the simulator must give the
/// same graph for the same seed on every platform, and needs nothing more.
#[derive(Clone, Debug)]
pub struct Rng(u64);

impl Rng {
    /// Seeded.
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }
    /// Uniform in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
    /// Uniform in `0..n` (`n` > 0).
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n.max(1)
    }
}

impl Costs {
    fn duration(&self, rng: &mut Rng) -> f64 {
        if self.exponential {
            -self.mean_duration_s * (1.0 - rng.unit()).ln()
        } else {
            self.mean_duration_s
        }
    }
}

/// Builds about `ntasks` tasks of `shape` (a tree or shuffle rounds to whole
/// levels or partitions; the exact count is the returned list's length).
pub fn build(shape: &Shape, ntasks: usize, costs: &Costs) -> Result<Vec<SimTask>, SimError> {
    let mut rng = Rng::new(costs.seed);
    let mut tasks: Vec<SimTask> = Vec::with_capacity(ntasks);
    let push = |deps: Vec<u32>, stage: u32, rng: &mut Rng, tasks: &mut Vec<SimTask>| {
        let duration_s = costs.duration(rng);
        tasks.push(SimTask {
            deps,
            duration_s,
            nbytes: costs.nbytes,
            func: if costs.stage_functions { stage } else { 0 },
        });
    };
    match shape {
        Shape::Map => {
            for _ in 0..ntasks.max(1) {
                push(Vec::new(), 0, &mut rng, &mut tasks);
            }
        }
        Shape::Pipeline { stages } => {
            let stages = (*stages).max(1) as usize;
            let chains = (ntasks / stages).max(1);
            for stage in 0..stages {
                for c in 0..chains {
                    let deps = if stage == 0 {
                        Vec::new()
                    } else {
                        vec![((stage - 1) * chains + c) as u32]
                    };
                    push(deps, stage as u32, &mut rng, &mut tasks);
                }
            }
        }
        Shape::Tree { fanin } => {
            let fanin = (*fanin).max(2) as usize;
            // n leaves make about n·f/(f-1) tasks in all.
            let leaves = (ntasks * (fanin - 1) / fanin).max(1);
            let mut level: Vec<u32> = Vec::with_capacity(leaves);
            for _ in 0..leaves {
                level.push(tasks.len() as u32);
                push(Vec::new(), 0, &mut rng, &mut tasks);
            }
            let mut depth = 0;
            while level.len() > 1 {
                depth += 1;
                let mut next = Vec::with_capacity(level.len() / fanin + 1);
                for group in level.chunks(fanin) {
                    next.push(tasks.len() as u32);
                    push(group.to_vec(), depth, &mut rng, &mut tasks);
                }
                level = next;
            }
        }
        Shape::Shuffle { fanin } => {
            let p = (ntasks / 2).max(1);
            for _ in 0..p {
                push(Vec::new(), 0, &mut rng, &mut tasks);
            }
            let full = p <= FULL_SHUFFLE_MAX_PARTITIONS;
            let k = if full { p } else { (*fanin).max(1) as usize };
            let stride = (p / k).max(1);
            for j in 0..p {
                let deps = (0..k).map(|i| ((j + i * stride) % p) as u32).collect();
                push(deps, 1, &mut rng, &mut tasks);
            }
        }
        Shape::Random { max_deps, window } => {
            for i in 0..ntasks.max(1) {
                let back = (*window as usize).min(i);
                let mut deps: Vec<u32> = if back == 0 {
                    Vec::new()
                } else {
                    let n = rng.below(u64::from(*max_deps) + 1);
                    (0..n)
                        .map(|_| (i - 1 - rng.below(back as u64) as usize) as u32)
                        .collect()
                };
                deps.sort_unstable();
                deps.dedup();
                let stage = u32::from(!deps.is_empty());
                push(deps, stage, &mut rng, &mut tasks);
            }
        }
        Shape::Replay(path) => return read_graph(path),
    }
    Ok(tasks)
}

/// Reads a graph written by [`write_graph`]: one JSON [`SimTask`] per line.
pub fn read_graph(path: &Path) -> Result<Vec<SimTask>, SimError> {
    let text = std::fs::read_to_string(path).map_err(|e| SimError::Graph(format!("{}: {e}", path.display())))?;
    let mut tasks = Vec::new();
    for (n, line) in text.lines().enumerate().filter(|(_, l)| !l.trim().is_empty()) {
        let t: SimTask = serde_json::from_str(line)
            .map_err(|e| SimError::Graph(format!("{} line {}: {e}", path.display(), n + 1)))?;
        if let Some(d) = t.deps.iter().find(|&&d| d as usize >= tasks.len()) {
            return Err(SimError::Graph(format!(
                "{} line {}: task {} depends on task {d}, which is not before it",
                path.display(),
                n + 1,
                tasks.len()
            )));
        }
        if !(t.duration_s.is_finite() && t.duration_s >= 0.0) {
            return Err(SimError::Graph(format!(
                "{} line {}: duration_s must be a finite number of seconds, not {}",
                path.display(),
                n + 1,
                t.duration_s
            )));
        }
        tasks.push(t);
    }
    if tasks.is_empty() {
        return Err(SimError::Graph(format!("{}: no tasks", path.display())));
    }
    Ok(tasks)
}

/// Writes `tasks` as JSON lines, the format [`Shape::Replay`] reads.
pub fn write_graph(path: &Path, tasks: &[SimTask]) -> Result<(), SimError> {
    let mut out = String::new();
    for t in tasks {
        out.push_str(&serde_json::to_string(t).map_err(|e| SimError::Graph(e.to_string()))?);
        out.push('\n');
    }
    std::fs::write(path, out).map_err(|e| SimError::Graph(format!("{}: {e}", path.display())))
}

/// The two lower bounds of a makespan on `threads` threads: the critical
/// path (longest chain of durations) and the total work spread evenly.
pub fn lower_bounds(tasks: &[SimTask], threads: u64) -> (f64, f64) {
    let mut finish = vec![0.0f64; tasks.len()];
    let mut critical = 0.0f64;
    let mut total = 0.0f64;
    for (i, t) in tasks.iter().enumerate() {
        let start = t.deps.iter().map(|&d| finish[d as usize]).fold(0.0, f64::max);
        finish[i] = start + t.duration_s;
        critical = critical.max(finish[i]);
        total += t.duration_s;
    }
    (critical, total / threads.max(1) as f64)
}

/// A graph captured from a real run: the tasks as submitted (in dependency
/// order, as [`crate::delayed::Delayed::task_specs`] gives them) with each
/// one's measured duration from the scheduler's task stream
/// ([`crate::Client::get_task_stream`]). A task the stream does not show
/// (it fell out of the bounded stream, or never ran) counts the mean of
/// those it shows; `nbytes` is every result's size (the stream does not
/// carry sizes). Dependencies on keys outside the list (a future's) are
/// dropped: they were in memory before the graph started.
pub fn capture(
    specs: &[crate::wire::messages::TaskSpec],
    stream: &[crate::wire::messages::TaskStreamRecord],
    nbytes: u64,
) -> Vec<SimTask> {
    use crate::util::FxMap;
    let index: FxMap<&str, u32> = specs
        .iter()
        .enumerate()
        .map(|(i, s)| (s.key.as_str(), i as u32))
        .collect();
    let mut took: FxMap<&str, f64> = FxMap::default();
    for r in stream.iter().filter(|r| !r.key.is_empty()) {
        took.insert(r.key.as_str(), r.stop_us.saturating_sub(r.start_us) as f64 / 1e6);
    }
    // Functions numbered in order of first use, so the replay measures
    // them apart as the real scheduler did.
    let mut funcs: FxMap<&str, u32> = FxMap::default();
    for s in specs {
        let n = funcs.len() as u32;
        funcs.entry(s.function.as_str()).or_insert(n);
    }
    let shown: Vec<f64> = specs.iter().filter_map(|s| took.get(s.key.as_str()).copied()).collect();
    let mean = if shown.is_empty() {
        0.0
    } else {
        shown.iter().sum::<f64>() / shown.len() as f64
    };
    specs
        .iter()
        .enumerate()
        .map(|(i, s)| {
            let mut deps: Vec<u32> = s
                .args
                .iter()
                .flat_map(|a| a.keys())
                .filter_map(|k| index.get(k.as_str()).copied())
                .filter(|&d| (d as usize) < i)
                .collect();
            deps.sort_unstable();
            deps.dedup();
            SimTask {
                deps,
                duration_s: took.get(s.key.as_str()).copied().unwrap_or(mean),
                nbytes,
                func: funcs.get(s.function.as_str()).copied().unwrap_or(0),
            }
        })
        .collect()
}
