//! The diagnostics the scheduler records for the dashboard and for
//! `Client::get_task_stream`: task-stream records, per-function progress
//! and the event log (`docs/dashboard.md`, `docs/protocol.md` §6.10, §6.11).
//! Plain serde structs, as on the wire.

use serde::{Deserialize, Serialize};

use super::Key;

/// What a bar of the task stream stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum StreamKind {
    /// A task's function ran on a worker thread.
    Compute,
    /// A worker fetched data from a peer (only fetches large enough for the
    /// worker to report, `FromWorker::TransferStats`; `key` is empty).
    Transfer,
    /// A worker wrote results to disk to free memory (`key` is empty;
    /// reported in `Heartbeat.spills`; since version 6).
    Spill,
    /// A worker read spilled results back from disk (`key` is empty; since
    /// version 6).
    Unspill,
}

/// A spill-directory write or read a worker reports in its heartbeat.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SpillEvent {
    /// Whether values were read back (`true`) or written out (`false`).
    pub unspill: bool,
    /// Bytes written or read.
    pub bytes: u64,
    /// How long it took, µs.
    pub duration_us: u64,
    /// How long before the heartbeat was sent it ended, µs (the scheduler
    /// places it on its own clock with this, so no clock skew matters).
    pub ago_us: u64,
}

/// One bar of the task stream: a task run, or a transfer, on a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskStreamRecord {
    /// Position in the scheduler's stream, counting from 0 since it
    /// started; the next request asks for records from the last one's + 1.
    pub seq: u64,
    /// The task (empty for a transfer).
    pub key: Key,
    /// The task's function (`transfer` for a transfer).
    pub function: String,
    /// The worker's name.
    pub worker: String,
    /// The worker's task thread that ran it, from 0 (0 for a transfer).
    pub thread: u32,
    /// Start, µs since the Unix epoch by the scheduler's clock: the
    /// scheduler's receipt time less the duration the worker reported.
    pub start_us: u64,
    /// Stop, µs since the Unix epoch: when the scheduler received the report.
    pub stop_us: u64,
    /// What the bar stands for.
    pub kind: StreamKind,
}

/// How many tasks of one function are in each scheduler state now (Dask's
/// progress bars). Forgotten tasks are not counted.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FunctionProgress {
    /// The function's registered name.
    pub function: String,
    /// Released tasks.
    pub released: u64,
    /// Waiting for dependencies.
    pub waiting: u64,
    /// Waiting for a worker that can run them (no-worker).
    pub no_worker: u64,
    /// Queued at the scheduler (root-task queuing).
    pub queued: u64,
    /// Assigned to a worker.
    pub processing: u64,
    /// Results in memory.
    pub memory: u64,
    /// Failed.
    pub erred: u64,
}

/// One line of the scheduler's event log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SchedulerEvent {
    /// Position in the log, from 0 since the scheduler started.
    pub seq: u64,
    /// When, µs since the Unix epoch.
    pub time_us: u64,
    /// `worker-joined`, `worker-left`, `worker-paused`, `worker-resumed`,
    /// `killed-worker`, `retry` or `task-erred`.
    pub kind: String,
    /// What happened, for a person.
    pub text: String,
}
