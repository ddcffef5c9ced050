//! Internal indices: tasks, workers and functions by position in their
//! arenas, and the orderings of the placement queues.

use std::cmp::Reverse;

use super::types::WorkerId;

/// Index of a task slot in the arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct TaskId(pub(super) u32);

/// Index of a worker slot in the worker arena.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(super) struct WIdx(pub(super) u32);

/// Index of an interned function name.
pub(super) type FnId = u32;

/// A reference to a dependent that may outlive it: valid while the slot's
/// generation matches.
#[derive(Clone, Copy, Debug)]
pub(super) struct TaskRef {
    pub(super) id: TaskId,
    pub(super) gen: u32,
}

/// Ordering of queued / no-worker tasks: higher priority first, then earlier
/// submission.
pub(super) type QueueKey = (Reverse<i32>, u64, TaskId);

/// Ordering of workers for placement: occupancy per thread (ns), then number
/// of processing tasks, then id.
pub(super) type RankKey = (u64, u32, WorkerId, WIdx);
