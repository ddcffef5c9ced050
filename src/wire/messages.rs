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

use bytes::Bytes;
use serde::{Deserialize, Serialize};

mod coordination;
mod stream;
mod to_scheduler;
pub use coordination::{CoordItem, CoordOp, CoordResult, ShuffleRunSpec};
pub use stream::{FunctionProgress, SchedulerEvent, SpillEvent, StreamKind, TaskStreamRecord};
pub use to_scheduler::{decode_inbound, variant_names, FromClient, FromWorker, Inbound};

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
pub const PROTOCOL_VERSION: u32 = 7;

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

/// Messages from the scheduler to a client.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToClient {
    /// Sent once, first, after the handshake.
    Welcome {
        /// The scheduler's id for this client session.
        client_id: u64,
    },
    /// A wanted key's result is in memory.
    KeyInMemory {
        /// The key.
        key: Key,
        /// Size of its serialized value.
        nbytes: u64,
        /// Peer addresses of workers holding it.
        who_has: Vec<String>,
        /// The value itself when small, saving the client a fetch.
        inline: Option<Payload>,
    },
    /// A wanted key erred.
    TaskErred {
        /// The key.
        key: Key,
        /// Why.
        failure: TaskFailure,
    },
    /// A wanted key waits because no connected worker can run its function
    /// (or satisfy its restrictions). It runs when such a worker joins.
    NoWorker {
        /// The key.
        key: Key,
        /// The function no worker has.
        function: String,
        /// Why no worker can run it, and what would help (the scheduler's
        /// words: no worker connected, none has the function, every worker
        /// that has it is paused, or none satisfies the restrictions).
        reason: String,
    },
    /// Answer to [`FromClient::WhoHas`]. A key not in memory anywhere has
    /// an empty `workers` list.
    WhoHasReply {
        /// From the request.
        request_id: u64,
        /// One entry per requested key, in order.
        who_has: Vec<WhoHas>,
    },
    /// Answer to [`FromClient::Scatter`]: the data is on workers.
    ScatterDone {
        /// From the request.
        request_id: u64,
        /// `None` on success, else why it failed (e.g. no workers).
        error: Option<String>,
    },
    /// Answer to [`FromClient::Info`].
    InfoReply {
        /// From the request.
        request_id: u64,
        /// The figures.
        info: SchedulerInfo,
    },
    /// The key is back to waiting (its data was lost and will be recomputed).
    KeyLost {
        /// The key.
        key: Key,
    },
    /// Answer to [`FromClient::Replicate`] and [`FromClient::Rebalance`]:
    /// the copies the scheduler asked workers to make. They happen after
    /// this answer; a move's source is freed once its target has the data.
    DataMoves {
        /// From the request.
        request_id: u64,
        /// The planned copies.
        moves: Vec<DataMove>,
    },
    /// Answer to [`FromClient::Coordinate`]: exactly one per request.
    /// Since version 4.
    CoordReply {
        /// From the request.
        request_id: u64,
        /// The outcome.
        result: CoordResult,
    },
    /// A value published on a topic this client subscribed to (best
    /// effort). Since version 4.
    TopicMessage {
        /// The topic.
        topic: String,
        /// The msgpack-encoded value.
        value: serde_bytes::ByteBuf,
    },
    /// Answer to [`FromClient::RetireWorkers`], sent once every named
    /// worker has left (or at once if none could be retired).
    RetireWorkersDone {
        /// From the request.
        request_id: u64,
        /// Names of the workers retired.
        retired: Vec<String>,
        /// `None` on success, else why not every worker could be retired
        /// (unknown name, no other worker to take its data).
        error: Option<String>,
    },
    /// Answer to [`FromClient::StreamTasks`]. Since version 5.
    StreamTasksReply {
        /// From the request.
        request_id: u64,
        /// The records from the asked sequence number on, oldest first.
        records: Vec<TaskStreamRecord>,
        /// The sequence number the next record will get (where a reader
        /// that wants only what happens from now on starts).
        next: u64,
    },
    /// Answer to [`FromClient::RestartCluster`]: every task was forgotten
    /// and as many workers as were restartable registered again, or the
    /// timeout passed first. Since version 5.
    RestartDone {
        /// From the request.
        request_id: u64,
        /// Names of the workers registered after the restart.
        workers: Vec<String>,
        /// Names of the workers that had no nanny: told to close, not
        /// restarted (Dask does the same).
        closed: Vec<String>,
        /// `None` on success, else why not (timeout, workers without a
        /// nanny, a cluster whose workers live in the scheduler's process).
        error: Option<String>,
    },
    /// Answer to [`FromClient::AdaptiveTarget`]. Since version 6.
    AdaptiveTargetReply {
        /// From the request.
        request_id: u64,
        /// Workers wanted, within the request's `[minimum, maximum]`.
        target: u32,
        /// When `target` is below the number of workers: names of idle
        /// workers that may leave (least data first; the data they hold
        /// fits in the memory limits of those that stay).
        to_close: Vec<String>,
        /// Names of the workers connected now (retiring ones excluded).
        workers: Vec<String>,
    },
}

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

/// Requests to a worker's peer port (from other workers and clients).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum ToPeer {
    /// Send these keys' data.
    GetData {
        /// Echoed in the reply.
        request_id: u64,
        /// The keys.
        keys: Vec<Key>,
    },
    /// Report the worker's store and transfer counters.
    Info {
        /// Echoed in the reply.
        request_id: u64,
    },
    /// Call a method of an actor this worker holds. Calls on one actor run
    /// one at a time, in the order they arrive. Answered with
    /// [`FromPeer::ActorReply`]. Since version 5.
    ActorCall {
        /// Echoed in the reply.
        request_id: u64,
        /// The actor's key (the key of the task that created it).
        actor: Key,
        /// The method's name.
        method: String,
        /// The method's arguments, each msgpack-encoded on its own.
        args: Vec<serde_bytes::ByteBuf>,
    },
    /// Run a registered function on this worker, outside its task pool
    /// (Dask's `Client.run`). Answered with [`FromPeer::RunResult`].
    /// Since version 5.
    RunFunction {
        /// Echoed in the reply.
        request_id: u64,
        /// The registered function's name.
        function: String,
        /// Its arguments, each msgpack-encoded on its own.
        args: Vec<serde_bytes::ByteBuf>,
    },
    /// Shards of one input partition of a peer-to-peer shuffle, for the
    /// output partitions this worker owns (`docs/protocol.md` §7.5; §10, "Peer-to-peer shuffles").
    /// Answered with [`FromPeer::ShuffleAck`] once stored (in memory or in
    /// the spill directory). Since version 6.
    ShuffleSend {
        /// Echoed in the reply.
        request_id: u64,
        /// The shuffle.
        shuffle_id: String,
        /// The run the sender was given; shards of a run older than one this
        /// worker has seen are refused.
        run_id: u64,
        /// Index of the input partition they come from (a shard sent again
        /// for the same input and output replaces the first).
        input: u32,
        /// `(output partition, shard bytes)`, each shard its own payload.
        shards: Vec<(u32, Payload)>,
    },
    /// Where this worker serves shared-memory fetches, if it does.
    /// Answered with [`FromPeer::ShmLocation`]. Since version 7.
    ShmLocate {
        /// Echoed in the reply.
        request_id: u64,
    },
    /// [`ToPeer::GetData`] on a worker's shared-memory socket (a Unix
    /// socket, never its TCP peer port): answered with [`FromPeer::ShmData`],
    /// large values passed as file descriptors. Since version 7.
    ShmGetData {
        /// Echoed in the reply.
        request_id: u64,
        /// The keys.
        keys: Vec<Key>,
    },
}

/// A worker's store, memory and transfer counters.
///
/// The memory fields were added after the first release of this message;
/// a reader fills them with zeros if absent (`#[serde(default)]`).
#[derive(Clone, Debug, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct WorkerStoreInfo {
    /// Worker name.
    pub name: String,
    /// Keys in the store (in memory or spilled).
    pub nkeys: u64,
    /// Bytes of results held in memory (Dask's "managed in memory").
    pub nbytes: u64,
    /// Bytes this worker received from peers.
    pub bytes_fetched_from_peers: u64,
    /// Bytes this worker served to peers (workers and clients).
    pub bytes_served_to_peers: u64,
    /// Tasks this worker ran.
    pub tasks_executed: u64,
    /// Keys whose results are spilled to disk only.
    #[serde(default)]
    pub spilled_keys: u64,
    /// Bytes of results spilled to disk only.
    #[serde(default)]
    pub spilled_bytes: u64,
    /// Resident memory of the worker process in bytes (0 if unknown).
    #[serde(default)]
    pub rss_bytes: u64,
    /// The worker's memory limit in bytes; 0 for none.
    #[serde(default)]
    pub memory_limit: u64,
    /// Whether the worker is paused (process memory past its pause
    /// threshold: it starts no new task).
    #[serde(default)]
    pub paused: bool,
    /// The worker's spill directory (created at its first spill).
    #[serde(default)]
    pub spill_directory: String,
    /// Why spilling does not work now (the directory and the OS error),
    /// while the last write failed; absent when it works.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub spill_error: Option<String>,
    /// Actors living on this worker. Since version 5.
    #[serde(default)]
    pub actors: u64,
    /// Of `bytes_fetched_from_peers`, the bytes that came through shared
    /// memory (peers on the same host). Since version 7.
    #[serde(default)]
    pub bytes_fetched_shared_memory: u64,
    /// Of `bytes_served_to_peers`, the bytes served through shared memory.
    /// Since version 7.
    #[serde(default)]
    pub bytes_served_shared_memory: u64,
}

/// Replies on a worker's peer port.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum FromPeer {
    /// Answer to [`ToPeer::GetData`]: one entry per requested key; `None`
    /// where the worker does not hold it.
    Data {
        /// From the request.
        request_id: u64,
        /// The data.
        data: Vec<(Key, Option<Payload>)>,
    },
    /// Answer to [`ToPeer::Info`].
    Info {
        /// From the request.
        request_id: u64,
        /// The figures.
        info: WorkerStoreInfo,
    },
    /// Answer to [`ToPeer::ActorCall`]: exactly one of `value` and
    /// `failure` is set. Since version 5.
    ActorReply {
        /// From the request.
        request_id: u64,
        /// The method's msgpack-encoded result.
        value: Option<Payload>,
        /// Why the call failed: `UnknownFunction` (no such method),
        /// `BadArguments`, `Failed` (it returned an `Err`), `Panicked`, or
        /// `ActorLost` (this worker holds no actor of that key).
        failure: Option<TaskFailure>,
    },
    /// Answer to [`ToPeer::RunFunction`]: exactly one of `value` and
    /// `failure` is set. Since version 5.
    RunResult {
        /// From the request.
        request_id: u64,
        /// The function's msgpack-encoded result.
        value: Option<Payload>,
        /// Why it failed (`UnknownFunction`, `BadArguments`, `Failed`,
        /// `Panicked`).
        failure: Option<TaskFailure>,
    },
    /// Answer to [`ToPeer::ShuffleSend`]. Since version 6.
    ShuffleAck {
        /// From the request.
        request_id: u64,
        /// Why the shards were refused (a stale run, a full disk); absent
        /// when stored.
        error: Option<String>,
    },
    /// Answer to [`ToPeer::ShmLocate`]. Since version 7.
    ShmLocation {
        /// From the request.
        request_id: u64,
        /// The worker's host: `<hostname>/<boot id>`; empty if unknown. A
        /// fetcher uses the socket only when this equals its own.
        host: String,
        /// Path of the worker's shared-memory socket; absent when the
        /// worker does not serve shared-memory fetches.
        socket: Option<String>,
    },
    /// Answer to [`ToPeer::ShmGetData`], sent on the shared-memory socket
    /// with file descriptors attached (`SCM_RIGHTS`) to the frame's first
    /// bytes. Each requested key is in exactly one of `data` and `shared`.
    /// Since version 7.
    ShmData {
        /// From the request.
        request_id: u64,
        /// Values sent in the frame, as on the TCP peer port (small ones);
        /// `None` where the worker does not hold the key.
        data: Vec<(Key, Option<Payload>)>,
        /// `(key, length)` of values passed as sealed memory files: the
        /// i-th entry's bytes are the whole of the i-th descriptor.
        shared: Vec<(Key, u64)>,
    },
}

#[cfg(test)]
#[path = "messages_tests.rs"]
mod tests;
