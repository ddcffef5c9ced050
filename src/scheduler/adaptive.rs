//! Dask's `adaptive_target` and `workers_to_close`: how many workers the
//! work in hand needs, and which workers could leave. Plain functions over
//! the state; the `Adaptive` loop (`crate::launch::adaptive`) asks for them
//! with `AdaptiveTarget` and acts on the answer.

use super::ids::WIdx;
use super::state::SchedulerState;

/// At most this many queued tasks have their expected durations summed; the
/// sum is scaled up by the number queued (Dask samples 100 the same way).
pub const ADAPTIVE_QUEUED_SAMPLE: usize = 100;
/// Memory use past this fraction of the workers' total limit asks for
/// twice as many workers (Dask's rule).
pub const ADAPTIVE_MEMORY_FRACTION: f64 = 0.6;

/// What [`SchedulerState::adaptive_target`] answers.
#[derive(Clone, Debug, PartialEq)]
pub struct AdaptiveAnswer {
    /// Workers wanted, within `[minimum, maximum]`.
    pub target: u32,
    /// When `target` is below the number of workers: idle workers that may
    /// leave (least data first), at most as many as are above `target`.
    pub to_close: Vec<String>,
    /// Names of the workers connected now (retiring ones excluded).
    pub workers: Vec<String>,
}

impl SchedulerState {
    fn live_workers(&self) -> Vec<WIdx> {
        let mut ws: Vec<WIdx> = self
            .worker_ids
            .values()
            .copied()
            .filter(|&w| self.worker(w).retiring.is_none())
            .collect();
        ws.sort();
        ws
    }

    /// Dask's `adaptive_target`: the workers needed to finish the work in
    /// hand (running and queued, at their functions' measured average
    /// durations) in `target_duration_s`, but no more than there are tasks
    /// to run; twice the current count when memory use is past
    /// [`ADAPTIVE_MEMORY_FRACTION`] of the limits; and below the current
    /// count only by the workers [`SchedulerState::workers_to_close`] finds.
    /// Clamped to `[minimum, maximum]`.
    pub fn adaptive_target(&self, target_duration_s: f64, minimum: u32, maximum: u32) -> AdaptiveAnswer {
        let live = self.live_workers();
        // Tasks waiting at the scheduler: queued root tasks and no-worker ones.
        let queued_keys = self
            .queued_fns
            .iter()
            .flat_map(|&f| self.fns[f as usize].queue.iter())
            .chain(self.no_worker.iter());
        let nqueued: usize = self
            .queued_fns
            .iter()
            .map(|&f| self.fns[f as usize].queue.len())
            .sum::<usize>()
            + self.no_worker.len();
        let mut queued_ns: f64 = queued_keys
            .take(ADAPTIVE_QUEUED_SAMPLE)
            .map(|&(_, _, t)| self.expected_ns(self.slot(t).func) as f64)
            .sum();
        if nqueued > ADAPTIVE_QUEUED_SAMPLE {
            queued_ns *= nqueued as f64 / ADAPTIVE_QUEUED_SAMPLE as f64;
        }
        let occupancy_ns: f64 = live.iter().map(|&w| self.worker(w).occupancy_ns as f64).sum();
        let duration = target_duration_s.max(1e-3);
        let mut cpu = ((occupancy_ns + queued_ns) / 1e9 / duration).ceil() as u64;
        // A few long tasks do not ask for more workers than there are tasks.
        let processing: usize = live.iter().map(|&w| self.worker(w).processing.len()).sum();
        let tasks = (nqueued + processing) as u64;
        cpu = cpu.min(tasks);
        if !self.no_worker.is_empty() && live.is_empty() {
            cpu = cpu.max(1);
        }
        let limit: u64 = live.iter().map(|&w| self.worker(w).memory_limit).sum();
        let used: u64 = live
            .iter()
            .map(|&w| {
                let ws = self.worker(w);
                ws.heartbeat.map_or(ws.known_nbytes, |(_, b)| b)
            })
            .sum();
        let memory = if limit > 0 && used as f64 > ADAPTIVE_MEMORY_FRACTION * limit as f64 {
            2 * live.len() as u64
        } else {
            0
        };
        let wanted = cpu.max(memory);
        let clamp = |n: u64| n.clamp(minimum as u64, maximum.max(minimum) as u64) as u32;
        let workers: Vec<String> = live.iter().map(|&w| self.worker(w).name.clone()).collect();
        let mut target = clamp(wanted);
        let mut to_close = Vec::new();
        if (target as usize) < live.len() {
            to_close = self.workers_to_close(target as usize);
            target = clamp((live.len() - to_close.len()) as u64);
        }
        AdaptiveAnswer {
            target,
            to_close,
            workers,
        }
    }

    /// Dask's `workers_to_close`: idle workers (nothing processing), least
    /// data first, such that `target` workers remain and the data held
    /// still fits in the memory limits of those that remain.
    pub fn workers_to_close(&self, target: usize) -> Vec<String> {
        let live = self.live_workers();
        let nbytes = |w: WIdx| {
            let ws = self.worker(w);
            ws.heartbeat.map_or(ws.known_nbytes, |(_, b)| b)
        };
        let total: u64 = live.iter().map(|&w| nbytes(w)).sum();
        let mut limit: u64 = live.iter().map(|&w| self.worker(w).memory_limit).sum();
        let unlimited = live.iter().any(|&w| self.worker(w).memory_limit == 0);
        let mut idle: Vec<WIdx> = live
            .iter()
            .copied()
            .filter(|&w| self.worker(w).processing.is_empty())
            .collect();
        idle.sort_by_key(|&w| (nbytes(w), w));
        let mut remaining = live.len();
        let mut out = Vec::new();
        for w in idle {
            if remaining <= target {
                break;
            }
            let after = limit.saturating_sub(self.worker(w).memory_limit);
            // Keep room for the data: it moves to the workers that stay.
            if !unlimited && after < total {
                break;
            }
            limit = after;
            remaining -= 1;
            out.push(self.worker(w).name.clone());
        }
        out
    }
}
