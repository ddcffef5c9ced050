//! Messages from the scheduler to a client ([`ToClient`]), documented for
//! implementers in `docs/protocol.md` §6.

use serde::{Deserialize, Serialize};

use super::*;

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
    /// Answer to [`FromClient::ScatterDirect`]: which worker gets which
    /// values. Keys in no target need no push (already held where they
    /// should be). Since version 9.
    ScatterTargets {
        /// From the request.
        request_id: u64,
        /// Per receiving worker, its peer address and the keys to push to it.
        targets: Vec<ScatterTarget>,
        /// Why nothing can be placed (no worker connected, none of those
        /// named); `targets` is then empty and no `ScatterDone` follows.
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

/// One receiving worker of a direct scatter ([`ToClient::ScatterTargets`]).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ScatterTarget {
    /// The worker's peer address (`tcp://host:port`).
    pub address: String,
    /// The keys whose values to push to it.
    pub keys: Vec<Key>,
}
