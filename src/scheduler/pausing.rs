//! Paused workers (`WorkerStatus`, Dask's `paused` status): a worker whose
//! memory is past its pause threshold starts no task, so it gets no new
//! ones, and the tasks waiting on it are moved elsewhere once it stays
//! paused for the actor's `paused_worker_timeout`.
//!
//! A paused worker offers no function while paused (its `fn_mask` is kept
//! aside in [`Pause`]), the way a retiring worker does: placement, queue
//! draining and stealing all go by `has_fn`, so none of them picks it, and
//! a task only paused workers could run waits in `no-worker`, its clients
//! told why.

use super::ids::{QueueKey, TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{Outbox, WorkerId};
use crate::wire::messages::{ToWorker, WorkerStatus};

/// A worker's pause.
#[derive(Debug)]
pub(super) struct Pause {
    /// The event in which it paused: a timer set for an earlier pause of the
    /// same worker must not act on this one.
    pub(super) serial: u64,
    /// The functions it offered (`fn_mask`), given back when it resumes.
    pub(super) fn_mask: Vec<bool>,
    /// Why it cannot free memory, as it said (a failing spill directory).
    pub(super) reason: Option<String>,
}

/// What [`SchedulerState::move_off_paused_worker`] did, for the log.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PausedMoves {
    /// The paused worker's name.
    pub worker: String,
    /// Tasks it was asked to give up (`StealRequest`); each it gives up is
    /// placed on another worker, or waits in `no-worker` if none can run it.
    pub asked: usize,
    /// Tasks left on it: running, or handed to its threads already (it
    /// reported them started), or seceded.
    pub kept: usize,
}

impl SchedulerState {
    /// A `WorkerStatus` message.
    pub(super) fn worker_status(&mut self, w: WIdx, status: WorkerStatus, reason: Option<String>, out: &mut Outbox) {
        match status {
            WorkerStatus::Paused => self.pause_worker(w, reason, out),
            WorkerStatus::Running => self.resume_worker(w, out),
        }
    }

    fn pause_worker(&mut self, w: WIdx, reason: Option<String>, out: &mut Outbox) {
        if let Some(p) = self.worker_mut(w).paused.as_mut() {
            // Paused already: only its reason may have changed.
            p.reason = reason;
            return;
        }
        let ws = self.worker(w);
        if ws.retiring.is_some() {
            return; // already offers nothing
        }
        let text = format!(
            "worker {} paused{}",
            ws.name,
            reason.as_deref().map(|r| format!(": {r}")).unwrap_or_default()
        );
        self.diag.event("worker-paused", text);
        let fn_mask = std::mem::take(&mut self.worker_mut(w).fn_mask);
        let gone = self.drop_functions(&fn_mask);
        self.worker_mut(w).paused = Some(Pause {
            serial: self.epoch,
            fn_mask,
            reason,
        });
        // Tasks queued for functions only paused workers have: no-worker.
        self.functions_gone(gone, out);
    }

    fn resume_worker(&mut self, w: WIdx, out: &mut Outbox) {
        let Some(pause) = self.worker_mut(w).paused.take() else {
            return;
        };
        let text = format!("worker {} resumed", self.worker(w).name);
        self.diag.event("worker-resumed", text);
        for (f, &has) in pause.fn_mask.iter().enumerate() {
            if has {
                self.fns[f].nworkers += 1;
            }
        }
        self.worker_mut(w).fn_mask = pause.fn_mask;
        self.place_no_worker_tasks_on(w, out);
        // Queued tasks come to it as to a worker that just joined.
        self.dirty_workers.push(w);
    }

    /// The serial of worker `id`'s pause, if it is paused: the actor passes
    /// it back to [`Self::move_off_paused_worker`] when its timer fires.
    pub fn pause_serial(&self, id: WorkerId) -> Option<u64> {
        let &w = self.worker_ids.get(&id)?;
        self.worker(w).paused.as_ref().map(|p| p.serial)
    }

    /// Worker `id` has stayed paused (pause `serial`) for the paused-worker
    /// timeout: it is asked to give up every task it has not started
    /// (`StealRequest`, the work-stealing hand-over, so a task never runs
    /// twice); each task it gives up is placed on a running worker, or
    /// waits in `no-worker` (its clients told why) if none can run it.
    /// `None` if the worker resumed, paused again since, or left.
    pub fn move_off_paused_worker(&mut self, id: WorkerId, serial: u64, out: &mut Outbox) -> Option<PausedMoves> {
        let &w = self.worker_ids.get(&id)?;
        if self.worker(w).paused.as_ref().map(|p| p.serial) != Some(serial) {
            return None;
        }
        self.begin();
        let ws = self.worker(w);
        let mut movable: Vec<(QueueKey, TaskId)> = ws
            .processing
            .keys()
            .copied()
            .filter(|t| !ws.executing.contains(t) && !ws.long_running.contains(t) && !self.steals.contains_key(t))
            .map(|t| (self.slot(t).queue_key(t), t))
            .collect();
        movable.sort_unstable();
        let moves = PausedMoves {
            worker: ws.name.clone(),
            asked: movable.len(),
            kept: ws.processing.len() - movable.len(),
        };
        for (_, t) in movable {
            // The worker is its own "thief": it offers no function while
            // paused, so `steal_response` places the task afresh.
            self.steals.insert(t, w);
            let key = self.slot(t).key.clone();
            self.send_worker(out, w, ToWorker::StealRequest { key });
        }
        self.finish(out);
        Some(moves)
    }

    /// Whether no running worker has function `f` but a paused one does.
    pub(super) fn only_paused_workers_have(&self, f: super::ids::FnId) -> bool {
        self.fns[f as usize].nworkers == 0
            && self.worker_ids.values().any(|&w| {
                let ws = self.worker(w);
                ws.paused
                    .as_ref()
                    .is_some_and(|p| p.fn_mask.get(f as usize).copied().unwrap_or(false))
            })
    }

    /// The paused workers that offer function `f`, each named with why it
    /// cannot free memory when it said, for the reason told to clients of a
    /// task waiting in `no-worker`.
    pub(super) fn paused_workers_with(&self, f: super::ids::FnId) -> Vec<String> {
        let mut names: Vec<String> = self
            .worker_ids
            .values()
            .filter_map(|&w| {
                let ws = self.worker(w);
                let p = ws.paused.as_ref()?;
                let has = p.fn_mask.get(f as usize).copied().unwrap_or(false);
                has.then(|| match &p.reason {
                    Some(why) => format!("{} ({why})", ws.name),
                    None => ws.name.clone(),
                })
            })
            .collect();
        names.sort_unstable();
        names
    }
}
