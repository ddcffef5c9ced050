//! The coordination requests a client sends inside
//! [`FromClient::Coordinate`](super::FromClient::Coordinate), and the one
//! answer each gets ([`ToClient::CoordReply`](super::ToClient::CoordReply)):
//! Dask's `Lock`, `Semaphore`, `MultiLock`, `Queue`, `Variable`, `Event`,
//! published datasets and Pub/Sub topics, kept by the scheduler.
//!
//! Every wait is bounded by the request's own `timeout_ms` (0: answer at
//! once), enforced by the scheduler, so a request is always answered
//! while the connection lives. `docs/protocol.md` §7.7 documents each
//! field and `docs/coordination.md` the semantics.

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::Key;

/// What a queue or variable holds: a msgpack-encoded value, or a task's
/// key (a future), which the scheduler then keeps alive.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordItem {
    /// A value, msgpack-encoded (a bin on the wire).
    Value(ByteBuf),
    /// A key known to the scheduler; while held its result is kept, and
    /// the client that receives it wants it (holds a future for it).
    Future(Key),
}

/// One coordination request. Names are per kind of primitive: a lock,
/// a semaphore, a queue, a variable, an event and a dataset may share a
/// name without meeting.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum CoordOp {
    /// Take one lease of semaphore `name`, created with `max_leases` if it
    /// does not exist. Answer: `Bool(true)` once granted, `Bool(false)`
    /// after `timeout_ms` without.
    SemaphoreAcquire {
        /// The semaphore.
        name: String,
        /// Most leases held at once; must match the semaphore's if it exists.
        max_leases: u32,
        /// The caller's id for this lease (unique, e.g. a UUID), given
        /// again to release it.
        lease_id: String,
        /// Longest wait, milliseconds; 0: only if a lease is free now.
        timeout_ms: u64,
    },
    /// Give back a lease. Answer: `Bool(true)`, or `Bool(false)` if the
    /// lease was not held (released already, or expired: its holder's
    /// connection was silent past the lease timeout).
    SemaphoreRelease {
        /// The semaphore.
        name: String,
        /// The lease.
        lease_id: String,
    },
    /// Take lock `name` (a semaphore of one lease, in its own namespace).
    /// Answer as `SemaphoreAcquire`.
    LockAcquire {
        /// The lock.
        name: String,
        /// The caller's id for this hold.
        lease_id: String,
        /// Longest wait, milliseconds; 0: only if free now.
        timeout_ms: u64,
    },
    /// Release lock `name`. Answer as `SemaphoreRelease`.
    LockRelease {
        /// The lock.
        name: String,
        /// The hold.
        lease_id: String,
    },
    /// Take every lock of `names` at once, or none (Dask's `MultiLock`).
    /// Answer as `LockAcquire`.
    MultiLockAcquire {
        /// The locks (the namespace of `LockAcquire`).
        names: Vec<String>,
        /// The caller's id for this hold (one for all the locks).
        lease_id: String,
        /// Longest wait, milliseconds.
        timeout_ms: u64,
    },
    /// Release every lock `lease_id` holds. Answer: `Bool(true)` if it held
    /// any.
    MultiLockRelease {
        /// The locks.
        names: Vec<String>,
        /// The hold.
        lease_id: String,
    },
    /// Append an item to queue `name` (created on first use). Answer:
    /// `Done`.
    QueuePut {
        /// The queue.
        name: String,
        /// The item.
        item: CoordItem,
    },
    /// Take the oldest item of queue `name`. Answer: `Item`, or `TimedOut`
    /// after `timeout_ms` with the queue empty.
    QueueGet {
        /// The queue.
        name: String,
        /// Longest wait, milliseconds; 0: only if an item is there now.
        timeout_ms: u64,
    },
    /// Items in queue `name`. Answer: `Count`.
    QueueSize {
        /// The queue.
        name: String,
    },
    /// Set variable `name`. Answer: `Done`.
    VariableSet {
        /// The variable.
        name: String,
        /// Its new value (the old one is dropped).
        item: CoordItem,
    },
    /// Read variable `name`, waiting until it is set. Answer: `Item`, or
    /// `TimedOut`.
    VariableGet {
        /// The variable.
        name: String,
        /// Longest wait, milliseconds; 0: only if set now.
        timeout_ms: u64,
    },
    /// Unset variable `name`. Answer: `Done`.
    VariableDelete {
        /// The variable.
        name: String,
    },
    /// Set event `name`: every waiter is answered `Bool(true)`. Answer:
    /// `Done`.
    EventSet {
        /// The event.
        name: String,
    },
    /// Clear event `name`. Answer: `Done`.
    EventClear {
        /// The event.
        name: String,
    },
    /// Whether event `name` is set. Answer: `Bool`.
    EventIsSet {
        /// The event.
        name: String,
    },
    /// Wait until event `name` is set. Answer: `Bool(true)` once set,
    /// `Bool(false)` after `timeout_ms`.
    EventWait {
        /// The event.
        name: String,
        /// Longest wait, milliseconds.
        timeout_ms: u64,
    },
    /// Publish `keys` under `name`: the scheduler keeps them (and their
    /// results) until `UnpublishDataset`, whoever disconnects. Answer:
    /// `Done`, or `Error` if the name is taken and `overwrite` is false.
    PublishDataset {
        /// The dataset's name.
        name: String,
        /// Keys known to the scheduler.
        keys: Vec<Key>,
        /// Replace a dataset of that name.
        overwrite: bool,
    },
    /// The keys of dataset `name`, which become wanted by this client.
    /// Answer: `Keys`, or `Error` if there is none.
    GetDataset {
        /// The dataset.
        name: String,
    },
    /// The names of the published datasets. Answer: `Names`, sorted.
    ListDatasets,
    /// Drop dataset `name` (its keys are released unless wanted
    /// otherwise). Answer: `Done`, or `Error` if there is none.
    UnpublishDataset {
        /// The dataset.
        name: String,
    },
    /// Send `value` to every client subscribed to `topic` (best effort:
    /// not stored, not resent). Answer: `Count` (subscribers reached).
    TopicPublish {
        /// The topic.
        topic: String,
        /// A msgpack-encoded value.
        value: ByteBuf,
    },
    /// Receive `TopicMessage`s of `topic` from now on. Answer: `Done`.
    TopicSubscribe {
        /// The topic.
        topic: String,
    },
    /// Stop receiving `topic`. Answer: `Done`.
    TopicUnsubscribe {
        /// The topic.
        topic: String,
    },
    /// The current run of peer-to-peer shuffle `shuffle_id`, created if it
    /// has none (its output partitions' owners chosen from the running
    /// workers, and each output task `shuffle-unpack-<shuffle_id>-<j>`
    /// restricted to its owner). Sent by the shuffle's transfer tasks.
    /// Answer: `ShuffleRun`, or `Error` (no worker, or counts that differ
    /// from the run's). Since version 6.
    ShuffleGetOrCreate {
        /// The shuffle's id (hex digits, no `-`).
        shuffle_id: String,
        /// Number of input partitions (transfer tasks).
        ninputs: u32,
        /// Number of output partitions (unpack tasks), at least 1.
        npartitions: u32,
    },
}

/// One run of a peer-to-peer shuffle: the answer to
/// [`CoordOp::ShuffleGetOrCreate`]. Since version 6.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShuffleRunSpec {
    /// The shuffle.
    pub shuffle_id: String,
    /// Scheduler-wide increasing; a restarted shuffle gets a new one, and
    /// receivers refuse shards of older runs.
    pub run_id: u64,
    /// Number of input partitions.
    pub ninputs: u32,
    /// Owner (peer address) of each output partition, by index.
    pub owners: Vec<String>,
}

/// The answer to one [`CoordOp`].
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum CoordResult {
    /// Done (unit variant: the string `"Done"`).
    Done,
    /// A yes or no: acquired, released, set.
    Bool(bool),
    /// A number: queue size, subscribers reached.
    Count(u64),
    /// An item taken from a queue or read from a variable. A `Future` item
    /// is wanted by this client from this answer on (as if it had sent
    /// `UpdateGraph{wanted: [key]}`), and the key's state follows.
    Item(CoordItem),
    /// A dataset's keys, wanted by this client from this answer on.
    Keys(Vec<Key>),
    /// Dataset names.
    Names(Vec<String>),
    /// The wait's `timeout_ms` passed (unit variant: `"TimedOut"`).
    TimedOut,
    /// The request is refused, and why.
    Error(String),
    /// The answer to `ShuffleGetOrCreate`. Since version 6.
    ShuffleRun(ShuffleRunSpec),
}
