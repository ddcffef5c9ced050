//! A simulated worker: what a real worker does with the scheduler's
//! messages (queue by priority, fetch missing inputs from the peers named,
//! run on its threads, keep results, free, answer steals), with time taken
//! from the model instead of spent.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use crate::util::FxMap;

/// Where a task stands on a simulated worker.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Slot {
    /// Waiting for inputs from peers.
    Fetching,
    /// Waiting for a thread.
    Ready,
    /// On a thread.
    Running,
}

/// One simulated worker.
#[derive(Debug)]
pub(super) struct SimWorker {
    /// Its peer address, as the scheduler names it in `who_has`.
    pub(super) address: String,
    /// Still alive (a killed worker's pending events are dropped).
    pub(super) alive: bool,
    /// Threads not running a task.
    pub(super) free_threads: u32,
    /// Ready tasks: highest priority, then lowest sequence, first.
    pub(super) ready: BinaryHeap<(i32, Reverse<u64>, u32)>,
    /// Tasks given to it and not finished (absent = cancelled or done).
    pub(super) tasks: FxMap<u32, Slot>,
    /// Results it holds: task index → bytes.
    pub(super) data: FxMap<u32, u64>,
    /// When its network link is next free (incoming transfers queue on it).
    pub(super) link_free_at: f64,
    /// Inputs on their way here: task index → arrival time. A second task
    /// needing one waits for that transfer instead of starting its own, as
    /// a real worker fetches each key once however many tasks want it.
    pub(super) in_flight: FxMap<u32, f64>,
    /// The latest run id it was sent per task (`ComputeTask::run_id`),
    /// echoed in `TaskFinished` as a real worker does.
    pub(super) runs: FxMap<u32, u64>,
}

impl SimWorker {
    /// A worker with `nthreads` threads.
    pub(super) fn new(address: String, nthreads: u32) -> Self {
        SimWorker {
            address,
            alive: true,
            free_threads: nthreads,
            ready: BinaryHeap::new(),
            tasks: FxMap::default(),
            data: FxMap::default(),
            link_free_at: 0.0,
            in_flight: FxMap::default(),
            runs: FxMap::default(),
        }
    }

    /// Queues task `t` for a thread.
    pub(super) fn make_ready(&mut self, t: u32, priority: i32, sequence: u64) {
        self.tasks.insert(t, Slot::Ready);
        self.ready.push((priority, Reverse(sequence), t));
    }

    /// The next ready task for a free thread, marked running.
    pub(super) fn next_to_run(&mut self) -> Option<u32> {
        if self.free_threads == 0 {
            return None;
        }
        while let Some((_, _, t)) = self.ready.pop() {
            // Entries of cancelled or stolen tasks are skipped here.
            if self.tasks.get(&t) == Some(&Slot::Ready) {
                self.tasks.insert(t, Slot::Running);
                self.free_threads -= 1;
                return Some(t);
            }
        }
        None
    }

    /// A steal request: gives up `t` if no thread has it yet.
    pub(super) fn steal(&mut self, t: u32) -> bool {
        match self.tasks.get(&t) {
            Some(Slot::Ready) | Some(Slot::Fetching) => {
                self.tasks.remove(&t);
                self.runs.remove(&t);
                true
            }
            _ => false,
        }
    }

    /// Forgets `t`: its result, and the task if not finished (a running one
    /// finishes unreported, as a real worker drops a cancelled result).
    pub(super) fn free(&mut self, t: u32) {
        self.data.remove(&t);
        self.tasks.remove(&t);
        self.runs.remove(&t);
    }

    /// Task `t` finished on a thread; whether its result is still wanted.
    pub(super) fn finish(&mut self, t: u32, nbytes: u64) -> bool {
        self.free_threads += 1;
        if self.tasks.remove(&t) == Some(Slot::Running) {
            self.data.insert(t, nbytes);
            true
        } else {
            false
        }
    }
}
