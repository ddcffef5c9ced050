//! Messages from the scheduler to a worker ([`ToWorker`]) and the structs
//! only they carry, documented in `docs/protocol.md` §7.

use serde::{Deserialize, Serialize};

use super::*;

/// One copy planned by a replicate or rebalance.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DataMove {
    /// The key.
    pub key: Key,
    /// Address of the worker that copies it.
    pub to: String,
    /// For a rebalance: address of the worker that drops it once `to` has
    /// it. Empty for a replicate.
    pub from: String,
}

/// What a worker must know about one dependency of a task.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct DependencyLocation {
    /// The dependency's key.
    pub key: Key,
    /// Peer addresses of workers holding it.
    pub who_has: Vec<String>,
    /// Size of its value in bytes.
    pub nbytes: u64,
}

/// Messages from the scheduler to a worker.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToWorker {
    /// Sent once, first, in answer to `RegisterWorker`.
    Registered {
        /// The scheduler's id for this worker.
        worker_id: u64,
        /// Heartbeat interval the worker must keep, in milliseconds.
        heartbeat_ms: u64,
    },
    /// Run a task.
    ComputeTask {
        /// The task's key.
        key: Key,
        /// Function name.
        function: String,
        /// Arguments; `Arg::Key` ones are among `dependencies`.
        args: Vec<Arg>,
        /// Where each dependency lives (the worker may already hold some).
        dependencies: Vec<DependencyLocation>,
        /// Higher runs first.
        priority: i32,
        /// Scheduler-wide submission sequence number; lower runs first among
        /// equal priorities.
        sequence: u64,
        /// Resources one run holds (from the task's spec); the worker runs
        /// it only while that much of its declared resources is free.
        /// Absent = none.
        #[serde(default)]
        resources: Vec<(String, f64)>,
        /// This assignment's run id: unique per scheduler, never 0. The
        /// worker echoes the latest run id it was sent for the key in
        /// `TaskFinished` / `TaskErred`, so the scheduler tells a stale
        /// completion (of a run since stolen, released or rescheduled)
        /// from the current one. Since version 7.
        run_id: u64,
    },
    /// Give up this task if it has not started (work stealing): answered
    /// with [`FromWorker::StealResponse`].
    StealRequest {
        /// The task.
        key: Key,
    },
    /// Forget these keys: delete their data and cancel them if not done.
    FreeKeys {
        /// The keys.
        keys: Vec<Key>,
    },
    /// Store scattered data.
    StoreData {
        /// Keys and msgpack-encoded values.
        data: Vec<(Key, Payload)>,
    },
    /// Fetch these keys from the listed peers and keep them (a graceful
    /// retirement moving data off a leaving worker); each key fetched is
    /// announced with [`FromWorker::AddKeys`], each one not found with
    /// [`FromWorker::MissingData`].
    AcquireReplicas {
        /// The keys and where they are.
        keys: Vec<DependencyLocation>,
    },
    /// Shut down.
    Close {
        /// Why, for the log.
        reason: String,
    },
    /// Exit so that the nanny starts this worker again at once (a client's
    /// `restart`); sent only to a worker that registered with `nanny`.
    /// Since version 5.
    RestartWorker {
        /// Why, for the log.
        reason: String,
    },
}
