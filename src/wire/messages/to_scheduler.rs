//! The messages clients and workers send the scheduler: one enum per
//! sender, so which side may send what is checked by the type a connection
//! is decoded into, not by the handlers at run time.
//!
//! On the wire nothing distinguishes them from one enum: each message is
//! `{"VariantName": {...}}` (a unit variant may be just its name), and the
//! variant names are unique across both enums. That is what lets a message
//! sent on the wrong kind of connection be refused by name —
//! `message Heartbeat is not valid from a client` — instead of with the
//! decoder's `unknown variant` ([`decode_inbound`], `docs/protocol.md` §8.4).

use std::fmt;

use serde::de::{self, DeserializeOwned, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};

use super::{CoordOp, Key, Payload, SpillEvent, TaskFailure, TaskSpec, WorkerStatus};
#[cfg(doc)]
use super::{ToClient, ToWorker};
use crate::wire::codec::{self, Frame};
use crate::wire::WireError;

/// Messages a client sends the scheduler: Dask's client stream handlers
/// (`update-graph`, `client-releases-keys`, `scatter`, `who_has`,
/// `retire_workers`, `replicate`, `rebalance`, ...).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromClient {
    /// Add tasks and mark keys as wanted by this client.
    UpdateGraph {
        /// New tasks. A key the scheduler already has is not replaced.
        tasks: Vec<TaskSpec>,
        /// Keys this client now holds futures for (each counted once per
        /// client, however many futures it holds).
        wanted: Vec<Key>,
    },
    /// The client holds no more futures for these keys.
    ReleaseKeys {
        /// The keys.
        keys: Vec<Key>,
    },
    /// Store data under keys on workers (the client's `scatter`); the keys
    /// become wanted by this client.
    Scatter {
        /// Echoed in [`ToClient::ScatterDone`].
        request_id: u64,
        /// Keys and their msgpack-encoded values.
        data: Vec<(Key, Payload)>,
        /// Restrict to these workers (names or addresses); empty = any.
        workers: Vec<String>,
        /// A copy of every value on every allowed worker (Dask's
        /// `broadcast=True`); absent = false. Since version 8.
        #[serde(default)]
        broadcast: bool,
    },
    /// Announce values the client stores on workers itself (Dask's
    /// `scatter(direct=True)`): the scheduler picks their holders as for
    /// [`FromClient::Scatter`] and answers [`ToClient::ScatterTargets`]; the
    /// client then pushes each holder its values ([`ToPeer::PutData`](super::ToPeer::PutData) or
    /// [`ToPeer::ShmPutData`](super::ToPeer::ShmPutData)), each holder confirms with `AddKeys`, and
    /// once all have the scheduler answers [`ToClient::ScatterDone`] with
    /// `done_id`; the keys become wanted by this client then. Since version 9.
    ScatterDirect {
        /// Echoed in [`ToClient::ScatterTargets`].
        request_id: u64,
        /// Echoed in [`ToClient::ScatterDone`] (as its `request_id`).
        done_id: u64,
        /// Keys and the length in bytes of each one's encoded value.
        keys: Vec<(Key, u64)>,
        /// Restrict to these workers (names or addresses); empty = any.
        workers: Vec<String>,
        /// A copy of every value on every allowed worker.
        #[serde(default)]
        broadcast: bool,
    },
    /// Ask where keys live, to fetch them from the workers directly.
    WhoHas {
        /// Echoed in [`ToClient::WhoHasReply`].
        request_id: u64,
        /// The keys.
        keys: Vec<Key>,
    },
    /// Ask for the scheduler's counters and workers.
    Info {
        /// Echoed in [`ToClient::InfoReply`].
        request_id: u64,
    },
    /// Rerun an erred task (and its erred dependencies).
    Retry {
        /// The keys.
        keys: Vec<Key>,
    },
    /// The client is leaving; release everything it wanted.
    CloseClient,
    /// Retire workers gracefully: copy the results only they hold to other
    /// workers, then close them. Nothing is recomputed.
    RetireWorkers {
        /// Echoed in [`ToClient::RetireWorkersDone`].
        request_id: u64,
        /// Names or addresses of the workers to retire.
        workers: Vec<String>,
    },
    /// Copy these keys so that each is held by `n` workers (the client's
    /// `replicate`). Answered with [`ToClient::DataMoves`].
    Replicate {
        /// Echoed in the answer.
        request_id: u64,
        /// The keys (those not in memory are skipped).
        keys: Vec<Key>,
        /// Wanted number of holders (capped at the number of workers).
        n: u32,
    },
    /// Move these keys' data from workers holding more bytes than the
    /// average to workers holding less (the client's `rebalance`).
    /// Answered with [`ToClient::DataMoves`].
    Rebalance {
        /// Echoed in the answer.
        request_id: u64,
        /// The keys; empty = every key in memory.
        keys: Vec<Key>,
    },
    /// A coordination request (lock, semaphore, queue, variable, event,
    /// dataset, topic), answered with exactly one [`ToClient::CoordReply`]
    /// of the same `request_id`. Since version 4.
    Coordinate {
        /// Echoed in the answer.
        request_id: u64,
        /// What to do.
        op: CoordOp,
    },
    /// Run these keys even though no client wants them (Dask's
    /// `fire_and_forget`): the scheduler keeps each until it is in memory
    /// or erred, then releases it. No answer. Since version 4.
    FireAndForget {
        /// Keys known to the scheduler.
        keys: Vec<Key>,
    },
    /// Ask for the task stream's records (Dask's `get_task_stream`),
    /// answered with [`ToClient::StreamTasksReply`]. Since version 5.
    StreamTasks {
        /// Echoed in the answer.
        request_id: u64,
        /// The first sequence number wanted (0: the oldest kept); the
        /// answer holds at most `MAX_RECORDS_PER_READ` (20,000) records, so
        /// a reader asks again from the last one's `seq` + 1 until an
        /// answer is empty.
        since: u64,
    },
    /// Restart the cluster (Dask's `client.restart()`): forget every task
    /// of every client and restart every worker through its nanny.
    /// Answered with [`ToClient::RestartDone`]. Since version 5.
    RestartCluster {
        /// Echoed in the answer.
        request_id: u64,
        /// How long to wait for the workers to register again, ms.
        timeout_ms: u64,
    },
    /// Sent first by a client that lost its scheduler connection and
    /// connected again: it still holds futures for `keys`, wanted under
    /// its previous session `previous_client_id` (the `client_id` of that
    /// session's `Welcome`). The scheduler hands that session's wants
    /// over to this one (a scheduler that restarted from its journal knows
    /// them from there) and reports each key's state as it would after
    /// `UpdateGraph`; a key it cannot resume errs with `DataLost` (a
    /// scheduler that restarted without a journal: `the scheduler restarted
    /// without a journal; work lost`). No other answer. Since version 6.
    ReconnectClient {
        /// The `client_id` of the session that was lost.
        previous_client_id: u64,
        /// Every key the client still holds futures for.
        keys: Vec<Key>,
    },
    /// Ask how many workers the work in hand needs (Dask's
    /// `adaptive_target`), and which idle workers could leave. Answered
    /// with [`ToClient::AdaptiveTargetReply`]. Since version 6.
    AdaptiveTarget {
        /// Echoed in the answer.
        request_id: u64,
        /// Seconds the work in hand should take (Dask's `target_duration`).
        target_duration_s: f64,
        /// Fewest workers to ask for.
        minimum: u32,
        /// Most workers to ask for.
        maximum: u32,
    },
}

/// Messages a worker sends the scheduler on its connection: Dask's worker
/// stream handlers (`register-worker`, `task-finished`, `task-erred`,
/// `add-keys`, `missing-data`, `long-running`, `steal-response`, and the
/// heartbeat).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromWorker {
    /// Sent once, first, by a worker after the handshake.
    RegisterWorker {
        /// Unique name.
        name: String,
        /// Address peers and clients connect to for data, `tcp://host:port`.
        address: String,
        /// Task threads.
        nthreads: u32,
        /// Memory limit in bytes (0 = none).
        memory_limit: u64,
        /// Registered function names it can run.
        functions: Vec<String>,
        /// Abstract resources it offers, e.g. `("GPU", 2.0)`.
        resources: Vec<(String, f64)>,
        /// Why its predecessor of the same name was restarted, when its
        /// nanny started it again; absent or nil otherwise (since version 5).
        #[serde(default)]
        restarted: Option<String>,
        /// Whether it runs under a nanny (`rdask worker --nanny`), so that
        /// `RestartWorker` restarts it; absent = false (since version 5).
        #[serde(default)]
        nanny: bool,
        /// Keys and sizes the worker holds in memory when it registers
        /// again after losing its scheduler (empty on a first
        /// registration). The scheduler keeps those it knows in memory
        /// and answers `FreeKeys` for the others. Absent = empty (since
        /// version 6).
        #[serde(default)]
        keys: Vec<(Key, u64)>,
    },
    /// A task finished and its result is in the worker's memory.
    TaskFinished {
        /// The task.
        key: Key,
        /// Size of the serialized result.
        nbytes: u64,
        /// The result itself when small (at most the worker's inline limit),
        /// so the scheduler can pass it on to waiting clients.
        inline: Option<Payload>,
        /// Wall time the function ran, in microseconds.
        duration_us: u64,
        /// The worker's task thread that ran it, numbered from 0 (a lane
        /// of the dashboard's task stream). Absent from a peer of version
        /// 4 or earlier: 0. Since version 5.
        #[serde(default)]
        thread: u32,
        /// The `run_id` of the latest `ComputeTask` of this key the worker
        /// received (0 if none: a result it holds from before a
        /// reconnection). The scheduler accepts the result only if it is
        /// the run it is waiting for on this worker. Since version 7.
        run_id: u64,
    },
    /// A task failed.
    TaskErred {
        /// The task.
        key: Key,
        /// Why.
        failure: TaskFailure,
        /// As in `TaskFinished`. Since version 7.
        run_id: u64,
    },
    /// The worker now also holds these keys (fetched from peers).
    AddKeys {
        /// Keys and sizes.
        keys: Vec<(Key, u64)>,
    },
    /// A dependency could not be fetched from the worker the scheduler named.
    MissingData {
        /// The key.
        key: Key,
        /// The address that did not have it (or could not be reached).
        errant_worker: String,
    },
    /// These tasks have just started executing on one of the worker's
    /// threads (sent batched, once per task run). Only a task the worker
    /// reported started counts against `allowed_failures` when the worker
    /// dies; a worker that never sends this has all its processing tasks
    /// counted, as Dask does.
    TasksStarted {
        /// Tasks named by key.
        #[serde(default)]
        keys: Vec<Key>,
        /// Tasks named by the `run_id` of their `ComputeTask` (what the
        /// Rust worker sends: the scheduler finds a run id's task without
        /// a key lookup); a run id that is not the task's current run is
        /// ignored.
        #[serde(default)]
        run_ids: Vec<u64>,
    },
    /// This task's thread seceded from the worker's pool to wait for tasks
    /// it submitted (Dask's `long-running`): the worker runs another task
    /// meanwhile, so the scheduler stops counting it as occupying a thread
    /// (occupancy and the saturation cap). Sent at most once per task run.
    LongRunning {
        /// The task.
        key: Key,
    },
    /// The worker is shutting down (SIGTERM/SIGINT) and asks to be retired
    /// gracefully, as [`FromClient::RetireWorkers`] would; the scheduler
    /// answers with [`ToWorker::Close`] once its unique results are safe.
    RetireMe,
    /// Answer to [`ToWorker::StealRequest`]. `stolen` is true only if the
    /// task had not been handed to a thread: the worker then forgot it and
    /// will never run it (unless sent a new `ComputeTask`).
    StealResponse {
        /// The key asked for.
        key: Key,
        /// Whether the worker gave the task up.
        stolen: bool,
    },
    /// A fetch from a peer completed: its payload bytes and how long it
    /// took, from request to reply. The scheduler averages these into its
    /// bandwidth estimate. Sent only for fetches large enough to measure
    /// bandwidth rather than latency.
    TransferStats {
        /// Payload bytes received.
        bytes: u64,
        /// Wall time of the fetch, microseconds.
        duration_us: u64,
    },
    /// Periodic liveness and load report.
    Heartbeat {
        /// Keys in the worker's store.
        nkeys: u64,
        /// Bytes in the worker's store.
        nbytes: u64,
        /// Tasks executing now.
        executing: u64,
        /// Tasks ready and waiting for a thread.
        ready: u64,
        /// Bytes of results spilled to disk only (since version 6, as the
        /// fields below; a reader takes 0 or empty when absent).
        #[serde(default)]
        spilled_bytes: u64,
        /// Resident memory of the worker process, bytes (0: unknown).
        #[serde(default)]
        rss_bytes: u64,
        /// CPU use of the worker process since its previous heartbeat,
        /// percent of one core (0 for the first, or unknown).
        #[serde(default)]
        cpu_percent: f64,
        /// Bytes received from peers since the worker started.
        #[serde(default)]
        bytes_fetched: u64,
        /// Bytes served to peers and clients since the worker started.
        #[serde(default)]
        bytes_served: u64,
        /// Spill writes and reads since the previous heartbeat, at most
        /// `MAX_SPILL_EVENTS_PER_HEARTBEAT` (the newest).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        spills: Vec<SpillEvent>,
        /// Log lines of the worker's process since the previous heartbeat,
        /// at most `MAX_LOG_LINES_PER_HEARTBEAT` (the newest).
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        log: Vec<String>,
    },
    /// The worker paused (its memory passed its pause threshold: it starts
    /// no new task) or resumed. Sent on each change; a worker starts
    /// `Running`. The scheduler assigns a paused worker no task, and moves
    /// the tasks it has not started elsewhere once it stays paused for the
    /// paused-worker timeout.
    WorkerStatus {
        /// The new status.
        status: WorkerStatus,
        /// While paused, why the worker cannot free memory when it knows
        /// (`cannot spill to <dir>: <OS error>`); sent again when it
        /// changes. Absent otherwise.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        reason: Option<String>,
    },
}

/// A message type the scheduler reads from one kind of peer.
pub trait Inbound: DeserializeOwned {
    /// The sender as errors name it: `client` or `worker`.
    const SENDER: &'static str;
    /// The wire names of the other kind of peer's messages: a frame naming
    /// one of them is a message on the wrong connection.
    fn others() -> &'static [&'static str];
}

impl Inbound for FromClient {
    const SENDER: &'static str = "client";
    fn others() -> &'static [&'static str] {
        variant_names::<FromWorker>()
    }
}

impl Inbound for FromWorker {
    const SENDER: &'static str = "worker";
    fn others() -> &'static [&'static str] {
        variant_names::<FromClient>()
    }
}

/// Decodes a frame from a client or worker as a batch of `M`. A frame that
/// does not decode and whose first message not of `M` is one the other kind
/// of peer sends fails with `message NAME is not valid from a SENDER`;
/// any other bad frame with the decoder's error.
pub fn decode_inbound<M: Inbound>(frame: Frame) -> Result<Vec<M>, WireError> {
    // `Bytes`: the clone shares the buffer; it is read only on failure.
    let header = frame.header.clone();
    codec::decode(frame).map_err(|e| misdirected::<M>(&header).map_or(e, WireError::Malformed))
}

/// Why `header` is not a batch of `M`, when the reason is a message of the
/// other kind of peer: the first message whose name is not one of `M`'s.
fn misdirected<M: Inbound>(header: &[u8]) -> Option<String> {
    let names: Vec<Name> = rmp_serde::from_slice(header).ok()?;
    let own = variant_names::<M>();
    let first = names
        .into_iter()
        .find_map(|n| n.0.filter(|n| !own.contains(&n.as_str())))?;
    M::others()
        .contains(&first.as_str())
        .then(|| format!("message {first} is not valid from a {}", M::SENDER))
}

/// A message's name with its fields skipped: a unit variant is written as
/// its name, the others as a map of one entry, name to fields.
struct Name(Option<String>);

impl<'de> Deserialize<'de> for Name {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct NameVisitor;
        impl<'de> Visitor<'de> for NameVisitor {
            type Value = Name;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a message")
            }
            fn visit_str<E: de::Error>(self, s: &str) -> Result<Name, E> {
                Ok(Name(Some(s.to_owned())))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Name, A::Error> {
                let name = map.next_key::<String>()?;
                if name.is_some() {
                    map.next_value::<IgnoredAny>()?;
                }
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Name(name))
            }
        }
        d.deserialize_any(NameVisitor)
    }
}

/// The wire names of an enum's variants, as serde's derive lists them (so
/// a variant added to an enum is known here without a list to update).
pub fn variant_names<T: DeserializeOwned>() -> &'static [&'static str] {
    match T::deserialize(NameProbe) {
        Err(ProbeError(Some(names))) => names,
        _ => &[],
    }
}

/// A deserializer that only records the variant names an enum asks for.
struct NameProbe;

/// [`NameProbe`]'s "error": the names, or `None` when asked for anything
/// but an enum.
#[derive(Debug)]
struct ProbeError(Option<&'static [&'static str]>);

impl fmt::Display for ProbeError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("not an enum")
    }
}

impl std::error::Error for ProbeError {}

impl de::Error for ProbeError {
    fn custom<T: fmt::Display>(_: T) -> Self {
        ProbeError(None)
    }
}

impl<'de> de::Deserializer<'de> for NameProbe {
    type Error = ProbeError;

    fn deserialize_any<V: Visitor<'de>>(self, _: V) -> Result<V::Value, ProbeError> {
        Err(ProbeError(None))
    }

    fn deserialize_enum<V: Visitor<'de>>(
        self,
        _name: &'static str,
        variants: &'static [&'static str],
        _: V,
    ) -> Result<V::Value, ProbeError> {
        Err(ProbeError(Some(variants)))
    }

    serde::forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option unit
        unit_struct newtype_struct seq tuple tuple_struct map struct identifier ignored_any
    }
}

#[cfg(test)]
#[path = "to_scheduler_tests.rs"]
mod tests;
