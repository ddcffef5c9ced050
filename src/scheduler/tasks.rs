//! The task table's records: one slot per key in an arena, and the
//! per-function statistics placement uses.

use std::cmp::Reverse;
use std::collections::BTreeSet;
use std::sync::Arc;

use super::ids::{FnId, QueueKey, TaskId, TaskRef, WIdx};
use super::types::{ClientId, TaskState};
use crate::wire::messages::{Arg, Key, Payload, TaskFailure};

/// Rarely used per-task fields, boxed so that the common slot stays small.
#[derive(Debug, Default)]
pub(super) struct Extra {
    pub(super) restrictions: Vec<String>,
    pub(super) allow_other_workers: bool,
    /// Resources one run holds (`TaskSpec::resources`).
    pub(super) resources: Vec<(String, f64)>,
    /// Names of the workers that died while this task was processing on them.
    pub(super) killed_on: Vec<String>,
    /// Workers sent a `FreeKeys` of this key that may still be in flight
    /// (a cancel, or a stale result refused) since they were last sent its
    /// `ComputeTask`: an `AddKeys` from them may predate that free (they
    /// fetched it, then drop it), so it is not trusted. (Completions need
    /// no such care: they carry the run id, see `TaskSlot::run`.)
    pub(super) freed_on: Vec<WIdx>,
    /// Why it erred, while `erred` (here, not in the slot: few tasks err,
    /// and every slot pays for its fields).
    pub(super) failure: Option<Arc<TaskFailure>>,
}

/// Workers holding a task's data: inline up to four (most tasks have one),
/// so that a million tasks in memory cost no allocation each for it.
pub(super) type Holders = smallvec::SmallVec<[WIdx; 4]>;

/// A task's arguments: inline when there is one (a `map` over one
/// argument list), saving the list's allocation per task.
pub(super) type Args = smallvec::SmallVec<[Arg; 1]>;

/// Clients wanting a task: inline up to two (most tasks have one).
pub(super) type Wanters = smallvec::SmallVec<[ClientId; 2]>;

#[derive(Debug)]
pub(super) struct TaskSlot {
    pub(super) key: Key,
    pub(super) gen: u32,
    pub(super) state: TaskState,
    /// Created by `Scatter`: cannot be recomputed.
    pub(super) scattered: bool,
    pub(super) func: FnId,
    pub(super) priority: i32,
    pub(super) retries: u32,
    pub(super) sequence: u64,
    /// Dependencies not in memory; meaningful in `waiting` only.
    pub(super) waiting_on: u32,
    /// Dependents in an active state (they need this task's data).
    pub(super) active_dependents: u32,
    /// Dependents not forgotten (`dependents` may also hold stale refs).
    pub(super) live_dependents: u32,
    pub(super) args: Args,
    pub(super) dependencies: Vec<TaskId>,
    pub(super) dependents: Vec<TaskRef>,
    pub(super) wanted_by: Wanters,
    pub(super) processing_on: Option<WIdx>,
    /// Run id of the latest `ComputeTask` of this task (0 = never sent):
    /// only a `TaskFinished` / `TaskErred` echoing it, from
    /// `processing_on`, is the current run's.
    pub(super) run: u64,
    pub(super) who_has: Holders,
    pub(super) nbytes: u64,
    /// The small result the worker sent along, kept while in memory.
    pub(super) inline: Option<Payload>,
    pub(super) extra: Option<Box<Extra>>,
}

impl TaskSlot {
    pub(super) fn restrictions(&self) -> Option<&Extra> {
        self.extra.as_deref().filter(|e| !e.restrictions.is_empty())
    }
    pub(super) fn resources(&self) -> &[(String, f64)] {
        self.extra.as_deref().map_or(&[], |e| &e.resources)
    }
    pub(super) fn freed_on(&self) -> &[WIdx] {
        self.extra.as_deref().map_or(&[], |e| &e.freed_on)
    }
    /// Why it erred (kept in `Extra`).
    pub(super) fn failure(&self) -> Option<&Arc<TaskFailure>> {
        self.extra.as_deref().and_then(|e| e.failure.as_ref())
    }
    /// Sets or clears why it erred; clearing allocates nothing.
    pub(super) fn set_failure(&mut self, failure: Option<Arc<TaskFailure>>) {
        match failure {
            Some(f) => self.extra_mut().failure = Some(f),
            None => {
                if let Some(e) = self.extra.as_mut() {
                    e.failure = None;
                }
            }
        }
    }
    pub(super) fn extra_mut(&mut self) -> &mut Extra {
        self.extra.get_or_insert_with(Default::default)
    }
    pub(super) fn queue_key(&self, id: TaskId) -> QueueKey {
        (Reverse(self.priority), self.sequence, id)
    }
}

#[derive(Debug)]
pub(super) struct FnInfo {
    pub(super) name: String,
    /// Exponentially weighted average duration, ns.
    pub(super) avg_ns: Option<f64>,
    /// Exponentially weighted average result size, bytes.
    pub(super) avg_nbytes: Option<f64>,
    /// Connected workers that have it.
    pub(super) nworkers: u32,
    /// Queued root tasks of this function.
    pub(super) queue: BTreeSet<QueueKey>,
    /// It creates actors (its name starts with `ACTOR_FUNCTION_PREFIX`):
    /// a result of it stands for state on its worker, never moved or
    /// recomputed.
    pub(super) actor: bool,
    /// Live tasks of this function by state (`TaskState::index`), for the
    /// dashboard's progress: two increments per transition, no scan.
    pub(super) counts: [u64; 8],
    /// Root tasks of this function placed since it last had none queued
    /// or processing: runs (`SchedulerConfig::root_run_length`) end at
    /// multiples of the run length in this count, so a run boundary falls
    /// between the sibling groups of any fan-in dividing it.
    pub(super) roots_taken: u64,
    /// The worker that took this function's last root task.
    pub(super) run_worker: Option<WIdx>,
}
