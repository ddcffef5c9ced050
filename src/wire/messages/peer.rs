//! A worker's peer port: requests from other workers and clients
//! ([`ToPeer`]) and its replies ([`FromPeer`]), documented in
//! `docs/protocol.md` §7.

use serde::{Deserialize, Serialize};

use super::*;

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
    /// Store these values (a client's direct scatter,
    /// [`FromClient::ScatterDirect`]): the worker keeps them as it keeps a
    /// scheduler's `StoreData` and confirms them to the scheduler with
    /// `AddKeys` (which frees them again if it does not expect them).
    /// Answered with [`FromPeer::PutAck`] once stored. Since version 9.
    PutData {
        /// Echoed in the reply.
        request_id: u64,
        /// Keys and their msgpack-encoded values.
        data: Vec<(Key, Payload)>,
    },
    /// [`ToPeer::PutData`] on a worker's shared-memory socket, with the
    /// large values passed as sealed memory files (`SCM_RIGHTS`, attached
    /// to the frame's first bytes) which the worker maps and keeps without
    /// a copy. Answered with [`FromPeer::PutAck`]. Since version 9.
    ShmPutData {
        /// Echoed in the reply.
        request_id: u64,
        /// Values sent in the frame (small ones).
        data: Vec<(Key, Payload)>,
        /// `(key, length)` of values passed as memory files: the i-th
        /// entry's bytes are the whole of the i-th descriptor.
        shared: Vec<(Key, u64)>,
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
    /// Bytes clients pushed to this worker (direct scatters,
    /// [`ToPeer::PutData`] and [`ToPeer::ShmPutData`]). Since version 9.
    #[serde(default)]
    pub bytes_pushed: u64,
    /// Of `bytes_pushed`, the bytes that came as memory files. Since
    /// version 9.
    #[serde(default)]
    pub bytes_pushed_shared_memory: u64,
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
    /// Answer to [`ToPeer::PutData`] and [`ToPeer::ShmPutData`]. Since
    /// version 9.
    PutAck {
        /// From the request.
        request_id: u64,
        /// Why the values were not stored (a descriptor that is not a
        /// sealed memory file of the announced length, the worker closing);
        /// absent when stored.
        error: Option<String>,
    },
}
