//! Every message that crosses a connection, one enum per direction and
//! sender (the scheduler reads [`FromClient`] from clients and [`FromWorker`]
//! from workers, in `to_scheduler.rs`).
//!
//! These are plain serde structs; actix message types never go on the wire.
//! Each frame's header is a msgpack array of one direction's messages
//! (encoded with `rmp_serde::to_vec_named`, so structs are maps keyed by field
//! name and enums are `{"VariantName": {...}}`). Task data travels as raw
//! payload frames beside the header: a [`Payload`] field is written in the
//! header as the unsigned index of its payload frame. `docs/protocol.md`
//! documents each message and field for implementers in other languages.
//! The enums to clients, to workers and between peers are in `to_client.rs`,
//! `to_worker.rs` and `peer.rs`.

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod coordination;
mod peer;
mod stream;
mod to_client;
mod to_scheduler;
mod to_worker;
pub use coordination::{CoordItem, CoordOp, CoordResult, ShuffleRunSpec};
pub use peer::{FromPeer, ToPeer, WorkerStoreInfo};
pub use stream::{FunctionProgress, SchedulerEvent, SpillEvent, StreamKind, TaskStreamRecord};
pub use to_client::{ScatterTarget, ToClient};
pub use to_scheduler::{decode_inbound, variant_names, FromClient, FromWorker, Inbound};
pub use to_worker::{DataMove, DependencyLocation, ToWorker};

/// Version of this protocol; a peer whose handshake names another is refused.
///
/// Version 2 added the list and map arguments ([`Arg::Keys`],
/// [`Arg::KeyMap`]) and [`FromWorker::LongRunning`]: a version-1 peer could
/// not decode them, so it is refused at the handshake instead. Version 3
/// added [`FromWorker::WorkerStatus`] and [`ErrorKind::NoWorker`], for the
/// same reason. Version 4 added the coordination messages
/// ([`FromClient::Coordinate`], [`FromClient::FireAndForget`],
/// [`ToClient::CoordReply`], [`ToClient::TopicMessage`]). Version 5 added
/// actors ([`ToPeer::ActorCall`], [`FromPeer::ActorReply`],
/// [`ErrorKind::ActorLost`], [`WorkerStoreInfo::actors`]) and
/// `Client::run` ([`ToPeer::RunFunction`], [`FromPeer::RunResult`]), and
/// `Client::restart` ([`FromClient::RestartCluster`],
/// [`ToClient::RestartDone`], [`ToWorker::RestartWorker`]). Version 6
/// added reconnection after a scheduler restart (`keys` of
/// [`FromWorker::RegisterWorker`], [`FromClient::ReconnectClient`]), the
/// dashboard's load figures (`Heartbeat`'s new fields, spill records in the
/// task stream), adaptive scaling ([`FromClient::AdaptiveTarget`]) and peer-to-peer
/// shuffles ([`CoordOp::ShuffleGetOrCreate`], [`ToPeer::ShuffleSend`]).
/// Version 7 added shared-memory transfers between workers on one host
/// ([`ToPeer::ShmLocate`], [`ToPeer::ShmGetData`], [`FromPeer::ShmLocation`],
/// [`FromPeer::ShmData`]), run ids (`run_id` of [`ToWorker::ComputeTask`],
/// [`FromWorker::TaskFinished`] and [`FromWorker::TaskErred`]), so a stale
/// completion is told from the current one exactly, and the worker's
/// `AddKeys` confirming a `StoreData` (the scheduler answers `Scatter` then).
/// Version 8 added `broadcast` to [`FromClient::Scatter`]. Version 9 added
/// the direct scatter (Dask's `direct=True`): [`FromClient::ScatterDirect`],
/// [`ToClient::ScatterTargets`], and the pushes to workers
/// [`ToPeer::PutData`], [`ToPeer::ShmPutData`] and [`FromPeer::PutAck`].
/// Version 10 added `run_ids` to [`FromWorker::TasksStarted`], which the
/// Rust worker names its started tasks by (a version-9 scheduler would
/// read its reports as naming no task).
pub const PROTOCOL_VERSION: u32 = 10;

/// A task whose function name starts with this creates an actor (Dask's
/// `submit(..., actor=True)`): the rest of the name is the actor's type
/// (`actor:my_crate::Counter`). The scheduler never recomputes such a task
/// once its result is lost: the actor's state lived only on its worker, so
/// the key errs with [`ErrorKind::ActorLost`] instead.
pub const ACTOR_FUNCTION_PREFIX: &str = "actor:";

/// Magic string that opens every handshake, so a stray connection (an HTTP
/// client, a port scanner) is told apart from an old rdask at once.
pub const HANDSHAKE_MAGIC: &str = "rdask";

/// A task's name: unique within a scheduler, chosen by the client.
pub type Key = String;

/// Raw bytes carried in a payload frame rather than inside the msgpack header.
///
/// On the wire this is the index (u32) of the payload frame within the same
/// frame; the codec swaps the bytes in and out, so a large result is never
/// copied into a msgpack value.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Payload(pub Bytes);

impl Payload {
    /// Wraps serialized bytes.
    pub fn new(bytes: impl Into<Bytes>) -> Self {
        Payload(bytes.into())
    }
    /// Length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }
    /// Whether it holds no bytes.
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// Who opens a connection, announced in the handshake.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Role {
    /// A client connecting to the scheduler.
    Client,
    /// A worker connecting to the scheduler.
    Worker,
    /// A worker or client connecting to a worker to fetch data.
    Peer,
}

/// First frame on every connection, sent by the side that connected.
/// Sent as a bare msgpack map (not inside an array).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Handshake {
    /// Always [`HANDSHAKE_MAGIC`].
    pub magic: String,
    /// The sender's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// What the sender is.
    pub role: Role,
    /// Free-form name for logs (client name, worker name).
    pub name: String,
    /// Shared cluster token, when the cluster is token-protected (see
    /// `Security::with_token`). Optional and omitted when unset, so peers
    /// built before the field existed still decode the handshake.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Answer to a [`Handshake`], sent by the side that accepted. Bare msgpack map.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct HandshakeReply {
    /// The accepting side's [`PROTOCOL_VERSION`].
    pub protocol_version: u32,
    /// `None` if the connection is accepted; otherwise why it is refused
    /// (the connection is closed right after).
    pub error: Option<String>,
}

/// One argument of a task call.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Arg {
    /// The argument's value, msgpack-encoded.
    Value(#[serde(with = "serde_bytes")] Vec<u8>),
    /// The result of another task: the argument is that key's value.
    Key(Key),
    /// The results of other tasks as one list: the argument is a msgpack
    /// array of those keys' values, in this order (Dask's list of futures
    /// as one argument).
    Keys(Vec<Key>),
    /// A map whose values are other tasks' results: each entry is the map
    /// key, msgpack-encoded on its own, and the task whose value goes with
    /// it. The argument is a msgpack map of those pairs, in this order.
    KeyMap(Vec<(serde_bytes::ByteBuf, Key)>),
}

impl Arg {
    /// The keys this argument depends on, in the order their values appear
    /// in it (none for a `Value`). Every place that derives dependencies
    /// from arguments goes through this, so a new kind cannot be missed.
    pub fn keys(&self) -> ArgKeys<'_> {
        match self {
            Arg::Value(_) => ArgKeys::Slice([].iter()),
            Arg::Key(k) => ArgKeys::Slice(std::slice::from_ref(k).iter()),
            Arg::Keys(ks) => ArgKeys::Slice(ks.iter()),
            Arg::KeyMap(entries) => ArgKeys::Map(entries.iter()),
        }
    }

    /// This argument's part of a pure key's hash (`docs/protocol.md` §9):
    /// a `Value`'s bytes, a `Key`'s UTF-8 bytes, and for `Keys` and
    /// `KeyMap` the msgpack encoding of the variant's content, so that
    /// `f([a, b], [c])` and `f([a], [b, c])` hash differently.
    pub fn hash_part(&self) -> std::borrow::Cow<'_, [u8]> {
        use std::borrow::Cow;
        match self {
            Arg::Value(v) => Cow::Borrowed(v),
            Arg::Key(k) => Cow::Borrowed(k.as_bytes()),
            // Encoding strings and byte strings into a Vec cannot fail.
            Arg::Keys(ks) => Cow::Owned(rmp_serde::to_vec(ks).unwrap_or_default()),
            Arg::KeyMap(entries) => Cow::Owned(rmp_serde::to_vec(entries).unwrap_or_default()),
        }
    }

    /// How many keys [`Arg::keys`] yields.
    pub fn key_count(&self) -> usize {
        match self {
            Arg::Value(_) => 0,
            Arg::Key(_) => 1,
            Arg::Keys(ks) => ks.len(),
            Arg::KeyMap(entries) => entries.len(),
        }
    }
}

/// Iterator over the keys of an [`Arg`] (see [`Arg::keys`]).
#[derive(Clone, Debug)]
pub enum ArgKeys<'a> {
    /// Keys held as a slice (`Key`, `Keys`, none for `Value`).
    Slice(std::slice::Iter<'a, Key>),
    /// The keys of a `KeyMap`'s entries.
    Map(std::slice::Iter<'a, (serde_bytes::ByteBuf, Key)>),
}

impl<'a> Iterator for ArgKeys<'a> {
    type Item = &'a Key;
    fn next(&mut self) -> Option<&'a Key> {
        match self {
            ArgKeys::Slice(it) => it.next(),
            ArgKeys::Map(it) => it.next().map(|(_, k)| k),
        }
    }
    fn size_hint(&self) -> (usize, Option<usize>) {
        match self {
            ArgKeys::Slice(it) => it.size_hint(),
            ArgKeys::Map(it) => it.size_hint(),
        }
    }
}

impl ExactSizeIterator for ArgKeys<'_> {}

/// A task as the client submits it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct TaskSpec {
    /// The task's key.
    pub key: Key,
    /// Registered name of the function to call.
    pub function: String,
    /// Positional arguments.
    pub args: Vec<Arg>,
    /// User priority: higher runs first. Ties go to earlier submission.
    pub priority: i32,
    /// Names or addresses of the workers allowed to run it; empty = any.
    pub workers: Vec<String>,
    /// With `workers` set: whether other workers may run it when none of
    /// those can.
    pub allow_other_workers: bool,
    /// How many times to rerun the task if it fails.
    pub retries: u32,
    /// Abstract resources one run holds, e.g. `("GPU", 1.0)`: only a worker
    /// that declared at least that much of each runs it, and no more runs
    /// at once than its declared amounts allow. Added after the first
    /// release: absent = none.
    #[serde(default)]
    pub resources: Vec<(String, f64)>,
}

/// Why a task failed.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum ErrorKind {
    /// The function returned an error.
    Failed,
    /// The function panicked.
    Panicked,
    /// The arguments could not be decoded as the function's parameter types.
    BadArguments,
    /// The worker does not have the function.
    UnknownFunction,
    /// A dependency erred, so this task could not run.
    DependencyFailed,
    /// Its data could not be found on any worker.
    DataLost,
    /// It was running on too many workers that died.
    KilledWorker,
    /// The client cancelled it.
    Cancelled,
    /// No connected worker could run it (none has its function, none
    /// satisfies its restrictions, or none is connected) within the
    /// scheduler's `no_worker_timeout_s` / `empty_cluster_timeout_s`.
    NoWorker,
    /// An actor's worker died or left: the actor (its state) is gone and
    /// is not recreated. Also the answer to a call naming an actor its
    /// worker does not hold. Since version 5.
    ActorLost,
}

/// A task failure as reported to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct TaskFailure {
    /// What kind of failure.
    pub kind: ErrorKind,
    /// Human-readable message (the error's Display, the panic message and
    /// location, or the scheduler's explanation).
    pub message: String,
}

/// Where one key's data lives.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WhoHas {
    /// The key.
    pub key: Key,
    /// Peer addresses (`tcp://host:port`) of the workers holding it.
    pub workers: Vec<String>,
    /// Size of its serialized value in bytes.
    pub nbytes: u64,
}

/// Whether a worker starts new tasks (Dask's worker status, the two values
/// a worker reports). Unit variants: a msgpack string on the wire.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub enum WorkerStatus {
    /// It starts tasks.
    #[default]
    Running,
    /// Its memory is past its pause threshold: it starts no new task.
    Paused,
}

/// A worker as the scheduler describes it to clients.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerSummary {
    /// The worker's name (unique in a cluster).
    pub name: String,
    /// Its peer address, `tcp://host:port`.
    pub address: String,
    /// Number of task threads.
    pub nthreads: u32,
    /// Memory limit in bytes (0 = none).
    pub memory_limit: u64,
    /// Keys it holds in memory, as the scheduler knows.
    pub nkeys: u64,
    /// Bytes it holds in memory, as the scheduler knows.
    pub nbytes: u64,
    /// Tasks assigned to it and not finished.
    pub processing: u64,
    /// Functions it can run.
    pub functions: Vec<String>,
    /// Whether it is paused (from its last [`FromWorker::WorkerStatus`]).
    #[serde(default)]
    pub status: WorkerStatus,
    /// Bytes of results spilled to disk, from its last heartbeat (since
    /// version 6, as the fields below; 0 when absent).
    #[serde(default)]
    pub spilled_bytes: u64,
    /// Resident memory of its process, bytes, from its last heartbeat (0:
    /// unknown).
    #[serde(default)]
    pub rss_bytes: u64,
    /// CPU use of its process between its last two heartbeats, whole
    /// percent of one core.
    #[serde(default)]
    pub cpu_percent: u32,
}

/// Scheduler counters, for `Client::scheduler_info` and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SchedulerInfo {
    /// Tasks the scheduler knows of (any state but forgotten).
    pub ntasks: u64,
    /// Tasks by state name.
    pub tasks_by_state: Vec<(String, u64)>,
    /// Connected clients.
    pub nclients: u64,
    /// Connected workers.
    pub workers: Vec<WorkerSummary>,
    /// Resident memory of the scheduler process in bytes (0 if unknown).
    pub rss_bytes: u64,
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
