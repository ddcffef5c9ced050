//! What workers' heartbeats say beyond task counts (spilled bytes, process
//! memory and CPU, bytes moved, the last lines of their log), kept per
//! worker for the dashboard. Updated once per heartbeat (about once a
//! second per worker), never per task; read only when a page asks.

use std::collections::VecDeque;

use serde::Serialize;

use super::ids::WIdx;
use crate::wire::messages::SpillEvent;

/// Log lines kept per worker (the newest).
pub const WORKER_LOG_CAPACITY: usize = 200;
/// Most workers one read of the logs returns (the first by name), so the
/// logs page of a large cluster stays a modest copy; one worker can be
/// asked for by name.
pub const LOG_PAGE_MAX_WORKERS: usize = 100;
/// Lines per worker one read of all the logs returns (the newest; one
/// worker asked for by name gets all that are kept).
pub const LOG_PAGE_LINES_PER_WORKER: usize = 50;

/// A worker's load as its last heartbeats tell it.
#[derive(Debug, Default)]
pub(super) struct WorkerLoad {
    pub(super) figures: LoadFigures,
    /// (scheduler clock µs, bytes fetched + served) at the previous
    /// heartbeat, for the bandwidth.
    last_moved: Option<(u64, u64)>,
    pub(super) log: VecDeque<String>,
}

/// The figures of one worker's load.
#[derive(Clone, Copy, Debug, Default, PartialEq, Serialize)]
pub struct LoadFigures {
    /// Bytes of results spilled to disk only.
    pub spilled_bytes: u64,
    /// Resident memory of its process, bytes (0: not reported).
    pub rss_bytes: u64,
    /// CPU use of its process, percent of one core.
    pub cpu_percent: f64,
    /// Bytes fetched from and served to peers per second, between its last
    /// two heartbeats.
    pub bandwidth: f64,
}

/// What one heartbeat reports beyond the counts.
pub(super) struct HeartbeatLoad {
    pub(super) spilled_bytes: u64,
    pub(super) rss_bytes: u64,
    pub(super) cpu_percent: f64,
    pub(super) bytes_moved: u64,
    pub(super) log: Vec<String>,
}

impl WorkerLoad {
    /// Takes in a heartbeat received at `now_us`.
    pub(super) fn update(&mut self, now_us: u64, hb: HeartbeatLoad) {
        let f = &mut self.figures;
        f.spilled_bytes = hb.spilled_bytes;
        f.rss_bytes = hb.rss_bytes;
        f.cpu_percent = if hb.cpu_percent.is_finite() {
            hb.cpu_percent.max(0.0)
        } else {
            0.0
        };
        if let Some((then, moved)) = self.last_moved {
            let secs = now_us.saturating_sub(then) as f64 / 1e6;
            if secs > 0.0 {
                f.bandwidth = hb.bytes_moved.saturating_sub(moved) as f64 / secs;
            }
        }
        self.last_moved = Some((now_us, hb.bytes_moved));
        for line in hb.log {
            if self.log.len() == WORKER_LOG_CAPACITY {
                self.log.pop_front();
            }
            self.log.push_back(line);
        }
    }
}

/// Workers' last log lines, as the dashboard's logs page shows them.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerLogs {
    /// Some workers' lines, by name.
    pub workers: Vec<WorkerLog>,
    /// Connected workers left out (past [`LOG_PAGE_MAX_WORKERS`], or not
    /// the one asked for).
    pub more_workers: u64,
}

/// A worker's last log lines.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerLog {
    /// The worker's name.
    pub worker: String,
    /// Its lines, oldest first.
    pub lines: Vec<String>,
}

impl super::SchedulerState {
    /// Takes in the load part of worker `w`'s heartbeat, and puts its spill
    /// events on the task stream.
    pub(super) fn heartbeat_load(&mut self, w: WIdx, hb: HeartbeatLoad, spills: &[SpillEvent]) {
        let now_us = self.diag.clock().now_us();
        for s in spills {
            self.diag.spill(w, s, now_us);
        }
        self.worker_mut(w).load.update(now_us, hb);
    }

    /// Each connected worker's load, by address.
    pub fn worker_loads(&self) -> Vec<(String, LoadFigures)> {
        self.workers
            .iter()
            .flatten()
            .map(|ws| (ws.address.clone(), ws.load.figures))
            .collect()
    }

    /// Workers' last log lines: the one named `only` (all its kept
    /// lines), or the first [`LOG_PAGE_MAX_WORKERS`] by name (their last
    /// [`LOG_PAGE_LINES_PER_WORKER`] lines each).
    pub fn worker_logs(&self, only: Option<&str>) -> WorkerLogs {
        let mut slots: Vec<_> = self
            .workers
            .iter()
            .flatten()
            .filter(|ws| only.is_none_or(|n| ws.name == n))
            .collect();
        slots.sort_by(|a, b| a.name.cmp(&b.name));
        let total = self.workers.iter().flatten().count();
        let lines = if only.is_some() {
            WORKER_LOG_CAPACITY
        } else {
            LOG_PAGE_LINES_PER_WORKER
        };
        let workers: Vec<WorkerLog> = slots
            .into_iter()
            .take(LOG_PAGE_MAX_WORKERS)
            .map(|ws| WorkerLog {
                worker: ws.name.clone(),
                lines: ws
                    .load
                    .log
                    .iter()
                    .skip(ws.load.log.len().saturating_sub(lines))
                    .cloned()
                    .collect(),
            })
            .collect();
        WorkerLogs {
            more_workers: (total - workers.len()) as u64,
            workers,
        }
    }
}
