//! Peer-to-peer shuffles glued to the task state (Dask's
//! `ShuffleSchedulerPlugin`): a transfer task's `ShuffleGetOrCreate`
//! answered from `crate::shuffle::runs`, the shuffle's unpack tasks
//! restricted to their owners, and on the loss of an owner the shuffle's
//! transfer and barrier tasks (and unpack tasks running) reset so they run
//! again under a new run.

use super::ids::TaskId;
use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing, TaskState, WorkerId};
use crate::shuffle::{barrier_key, transfer_key, unpack_key};
use crate::wire::messages::{CoordResult, ShuffleRunSpec, ToClient};

impl SchedulerState {
    /// `CoordOp::ShuffleGetOrCreate` from client `c`.
    pub(super) fn shuffle_get_or_create(
        &mut self,
        c: ClientId,
        request_id: u64,
        (shuffle_id, ninputs, npartitions): (String, u32, u32),
        out: &mut Outbox,
    ) {
        // Paused workers own outputs too (as in Dask, which spreads outputs
        // over all workers): their peer ports still take shards, which
        // spill, and their unpacks run once they resume. Leaving them out
        // made a shuffle fail outright when the workers' memory passed
        // their pause thresholds while the first transfer asked (issue 11's
        // shuffle on memory-limited workers), or piled every output on the
        // one worker not paused at that moment. Retiring workers are
        // leaving, so they own nothing.
        let workers: Vec<(WorkerId, String)> = self
            .worker_ids
            .iter()
            .filter(|(_, &w)| self.worker(w).retiring.is_none())
            .map(|(&id, &w)| (id, self.worker(w).address.clone()))
            .collect();
        let result = match self.shuffles.get_or_create(&shuffle_id, ninputs, npartitions, &workers) {
            Ok((spec, created)) => {
                let spec = spec.clone();
                if created {
                    self.diag.event(
                        "shuffle-run",
                        format!(
                            "shuffle {shuffle_id}: run {} of {ninputs} inputs and {npartitions} outputs over {} workers",
                            spec.run_id,
                            workers.len()
                        ),
                    );
                }
                // Every time, not only at creation: the same shuffle
                // submitted again brings new unpack tasks.
                self.pin_unpacks(&spec);
                CoordResult::ShuffleRun(spec)
            }
            Err(e) => CoordResult::Error(e.to_string()),
        };
        out.messages
            .push(Outgoing::Client(c, ToClient::CoordReply { request_id, result }));
    }

    /// Restricts each unpack task of the run to its owner.
    fn pin_unpacks(&mut self, spec: &ShuffleRunSpec) {
        for (j, owner) in (0u32..).zip(&spec.owners) {
            let Some(t) = self.task_id(&unpack_key(&spec.shuffle_id, j)) else {
                continue;
            };
            let extra = self.slot_mut(t).extra_mut();
            extra.restrictions = vec![owner.clone()];
            extra.allow_other_workers = false;
        }
    }

    /// Worker `id` left (called by `remove_worker_idx` after its tasks and
    /// data were handled, before the tasks released are woken): every
    /// shuffle it owned outputs of restarts. The tasks reset are pushed on
    /// `affected`, for the caller to wake.
    pub(super) fn shuffle_worker_removed(&mut self, id: WorkerId, affected: &mut Vec<TaskId>, out: &mut Outbox) {
        if self.shuffles.is_empty() {
            return;
        }
        for spec in self.shuffles.worker_removed(&id) {
            self.diag.event(
                "shuffle-restart",
                format!(
                    "shuffle {}: an owner left during run {}; restarting",
                    spec.shuffle_id, spec.run_id
                ),
            );
            // Unpack tasks in memory are complete (their run's barrier
            // passed); running ones are reset with the barrier. Their
            // restrictions are renewed when the new run is created.
            let keys = std::iter::once(barrier_key(&spec.shuffle_id))
                .chain((0..spec.ninputs).map(|i| transfer_key(&spec.shuffle_id, i)));
            for key in keys {
                if let Some(t) = self.task_id(&key) {
                    self.shuffle_reset(t, affected, out);
                }
            }
        }
    }

    /// Forgets a transfer's or barrier's result (or stops it running) so
    /// that it runs again if still needed.
    fn shuffle_reset(&mut self, t: TaskId, affected: &mut Vec<TaskId>, out: &mut Outbox) {
        match self.slot(t).state {
            TaskState::Memory => {
                let holders = std::mem::take(&mut self.slot_mut(t).who_has);
                let nbytes = self.slot(t).nbytes;
                for w in holders {
                    let ws = self.worker_mut(w);
                    if ws.has_what.remove(&t) {
                        ws.known_nbytes = ws.known_nbytes.saturating_sub(nbytes);
                    }
                    self.free_task_on(t, w, out);
                }
                self.lose_data(t, "a shuffle restart", affected, out);
            }
            TaskState::Processing | TaskState::Queued => {
                self.detach(t, true, out);
                self.set_state(t, TaskState::Released);
                affected.push(t);
            }
            _ => {}
        }
    }
}
