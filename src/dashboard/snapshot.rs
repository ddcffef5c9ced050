//! What one dashboard update carries, read from the scheduler actor in one
//! message: the records of the task stream and the event log that the page
//! has not seen yet (it says from which sequence numbers), progress per
//! function, and a row per worker. Built at the dashboard's pace, never on
//! the scheduler's per-task path.

use std::collections::BTreeMap;

use actix::prelude::*;
use serde::Serialize;

use crate::actors::scheduler::SchedulerActor;
use crate::scheduler::task_graph::{TaskGraphView, MAX_GRAPH_TASKS};
use crate::scheduler::worker_load::{LoadFigures, WorkerLogs};
use crate::wire::messages::{FunctionProgress, SchedulerEvent, TaskStreamRecord, WorkerStatus};

/// Most task-stream records one update carries: the newest, when more
/// finished since the last (a page draws at most a few thousand bars a
/// second anyway, and the scheduler copies no more than it sends).
pub const MAX_STREAM_RECORDS_PER_UPDATE: usize = 2_000;

/// Asks the scheduler for a [`Snapshot`].
#[derive(Message, Clone, Copy, Debug, Default)]
#[rtype(result = "Snapshot")]
pub struct GetSnapshot {
    /// First task-stream sequence number wanted.
    pub stream_since: u64,
    /// First event-log sequence number wanted.
    pub events_since: u64,
}

/// One worker as the dashboard shows it.
#[derive(Clone, Debug, Serialize)]
pub struct WorkerRow {
    /// Its name.
    pub name: String,
    /// Its peer address.
    pub address: String,
    /// Task threads.
    pub nthreads: u32,
    /// Memory limit, bytes (0: none).
    pub memory_limit: u64,
    /// Bytes of results it holds (its last heartbeat's figure).
    pub nbytes: u64,
    /// Results it holds.
    pub nkeys: u64,
    /// Tasks assigned to it and not finished.
    pub processing: u64,
    /// `running` or `paused`.
    pub status: &'static str,
    /// Milliseconds since the scheduler last heard from it.
    pub last_seen_ms: u64,
    /// Spilled bytes, process memory, CPU and bandwidth from its
    /// heartbeats.
    #[serde(flatten)]
    pub load: LoadFigures,
}

/// One dashboard update.
#[derive(Clone, Debug, Serialize)]
pub struct Snapshot {
    /// The scheduler's clock now, µs since the Unix epoch (the time axis
    /// of the task stream).
    pub now_us: u64,
    /// Tasks by scheduler state.
    pub tasks_by_state: BTreeMap<String, u64>,
    /// Connected clients.
    pub nclients: u64,
    /// Tasks workers reported finished since the scheduler started.
    pub tasks_finished: u64,
    /// Workers, by name.
    pub workers: Vec<WorkerRow>,
    /// Live tasks by function and state.
    pub progress: Vec<FunctionProgress>,
    /// New task-stream records.
    pub stream: Vec<TaskStreamRecord>,
    /// New event-log lines.
    pub events: Vec<SchedulerEvent>,
    /// The scheduler's resident memory, bytes (filled in by the HTTP side).
    pub rss_bytes: u64,
    /// The scheduler process's CPU use since the last update of this page,
    /// percent of one core (filled in by the HTTP side).
    pub cpu_percent: Option<f64>,
    /// Round trip of a no-op message through the scheduler's mailbox, s
    /// (filled in by the HTTP side).
    pub mailbox_latency_seconds: Option<f64>,
}

/// Asks the scheduler for workers' last log lines (the events page; read
/// at the page's pace): the one named, or the first ones by name.
#[derive(Message, Clone, Debug, Default)]
#[rtype(result = "WorkerLogs")]
pub struct GetWorkerLogs {
    /// Only this worker (by name).
    pub worker: Option<String>,
}

impl Handler<GetWorkerLogs> for SchedulerActor {
    type Result = MessageResult<GetWorkerLogs>;
    fn handle(&mut self, msg: GetWorkerLogs, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state().worker_logs(msg.worker.as_deref()))
    }
}

/// Asks the scheduler for its task graph (at most `MAX_GRAPH_TASKS`
/// tasks; beyond, only the count), for the graph page.
#[derive(Message, Clone, Copy, Debug, Default)]
#[rtype(result = "TaskGraphView")]
pub struct GetTaskGraph;

impl Handler<GetTaskGraph> for SchedulerActor {
    type Result = MessageResult<GetTaskGraph>;
    fn handle(&mut self, _: GetTaskGraph, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state().task_graph(MAX_GRAPH_TASKS))
    }
}

impl Handler<GetSnapshot> for SchedulerActor {
    type Result = MessageResult<GetSnapshot>;
    fn handle(&mut self, msg: GetSnapshot, _: &mut Self::Context) -> Self::Result {
        let state = self.state();
        let info = state.info();
        let seen: BTreeMap<String, u64> = self
            .last_seen()
            .into_iter()
            .map(|(n, d)| (n, d.as_millis() as u64))
            .collect();
        let loads: BTreeMap<String, LoadFigures> = state.worker_loads().into_iter().collect();
        let workers = info
            .workers
            .into_iter()
            .map(|w| WorkerRow {
                load: loads.get(&w.address).copied().unwrap_or_default(),
                last_seen_ms: seen.get(&w.name).copied().unwrap_or(0),
                name: w.name,
                address: w.address,
                nthreads: w.nthreads,
                memory_limit: w.memory_limit,
                nbytes: w.nbytes,
                nkeys: w.nkeys,
                processing: w.processing,
                status: match w.status {
                    WorkerStatus::Running => "running",
                    WorkerStatus::Paused => "paused",
                },
            })
            .collect();
        MessageResult(Snapshot {
            now_us: state.diagnostics_clock().now_us(),
            tasks_by_state: info.tasks_by_state.into_iter().collect(),
            nclients: info.nclients,
            tasks_finished: self.tasks_finished,
            workers,
            progress: state.function_progress(),
            stream: state.task_stream_newest(msg.stream_since, MAX_STREAM_RECORDS_PER_UPDATE),
            events: state.events(msg.events_since),
            rss_bytes: 0,
            cpu_percent: None,
            mailbox_latency_seconds: None,
        })
    }
}
