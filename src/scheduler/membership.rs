//! Workers joining and leaving: registration, removal (rescheduling its
//! tasks, recomputing the data only it held) and the functions they offer.

use std::sync::Arc;

use super::ids::{FnId, QueueKey, TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{Outbox, Outgoing, SchedulerError, TaskState, WorkerId, WorkerRegistration};
use super::workers::WorkerSlot;
use crate::util::{FxMap, FxSet};
use crate::wire::messages::{ErrorKind, TaskFailure, ToWorker};

impl SchedulerState {
    /// A worker registered: pushes `Registered`, then gives it queued and
    /// no-worker tasks it can run.
    pub fn add_worker(
        &mut self,
        id: WorkerId,
        mut reg: WorkerRegistration,
        out: &mut Outbox,
    ) -> Result<(), SchedulerError> {
        if self.worker_names.contains_key(&reg.name) {
            return Err(SchedulerError::DuplicateWorkerName(reg.name));
        }
        if self.worker_ids.contains_key(&id) {
            // The actor layer hands out fresh ids; a reused one replaces the
            // old registration rather than leaving two slots for one id.
            self.remove_worker(id, out);
        }
        self.begin();
        let held = std::mem::take(&mut reg.keys);
        let mut fn_mask = Vec::new();
        for f in &reg.functions {
            let f = self.intern_fn(f);
            if fn_mask.len() <= f as usize {
                fn_mask.resize(f as usize + 1, false);
            }
            if !fn_mask[f as usize] {
                fn_mask[f as usize] = true;
                self.fns[f as usize].nworkers += 1;
            }
        }
        let w = WIdx(self.workers.len() as u32);
        let rank = (0, 0, id, w);
        self.workers.push(Some(Box::new(WorkerSlot {
            id,
            name: reg.name.clone(),
            address: reg.address.clone(),
            nthreads: reg.nthreads.max(1),
            memory_limit: reg.memory_limit,
            functions: reg.functions,
            fn_mask,
            resources: reg.resources,
            processing: FxMap::default(),
            has_what: FxSet::default(),
            occupancy_ns: 0,
            guessed_ns: 0,
            fetch_ns: 0,
            known_nbytes: 0,
            heartbeat: None,
            rank,
            roomy: false,
            open_free: None,
            executing: FxSet::default(),
            long_running: FxSet::default(),
            reports_started: false,
            retiring: None,
            paused: None,
            nanny: reg.nanny,
            load: Default::default(),
        })));
        self.ranked.insert(rank);
        self.update_rank(w);
        self.worker_ids.insert(id, w);
        self.diag.name_worker(w, &reg.name);
        self.diag.event(
            "worker-joined",
            format!(
                "worker {} joined from {} ({} threads)",
                reg.name, reg.address, reg.nthreads
            ),
        );
        self.worker_names.insert(reg.name, w);
        self.worker_addrs.insert(reg.address, w);
        out.messages.push(Outgoing::Worker(
            id,
            ToWorker::Registered {
                worker_id: id.0,
                heartbeat_ms: self.config.heartbeat_ms,
            },
        ));

        self.worker_holds(w, held, out);
        self.place_no_worker_tasks_on(w, out);
        self.dirty_workers.push(w);
        self.check_restarts(std::time::Instant::now(), out);
        self.finish(out);
        Ok(())
    }

    /// Places the no-worker tasks worker `w` (just joined or resumed) may
    /// be able to run.
    pub(super) fn place_no_worker_tasks_on(&mut self, w: WIdx, out: &mut Outbox) {
        let retry: Vec<TaskId> = {
            let ws = self.worker(w);
            self.no_worker
                .iter()
                .map(|&(_, _, t)| t)
                .filter(|&t| {
                    let s = &self.tasks[t.0 as usize];
                    ws.has_fn(s.func)
                        && ws.satisfies(s.resources())
                        && match s.restrictions() {
                            None => true,
                            Some(e) => e.allow_other_workers || e.restrictions.iter().any(|r| ws.matches(r)),
                        }
                })
                .collect()
        };
        for t in retry {
            self.detach(t, false, out);
            self.place(t, out);
        }
    }

    /// A worker died or left: its tasks are rescheduled, the data only it
    /// held is recomputed (or errs, for scattered data).
    pub fn remove_worker(&mut self, id: WorkerId, out: &mut Outbox) {
        let Some(&w) = self.worker_ids.get(&id) else {
            return;
        };
        self.begin();
        self.remove_worker_idx(w, out);
        self.finish(out);
    }

    /// Removes a live worker; the caller ends the event with `finish`.
    pub(super) fn remove_worker_idx(&mut self, w: WIdx, out: &mut Outbox) {
        let ws = self.workers[w.0 as usize]
            .take()
            .expect("worker id maps to a live slot");
        self.worker_ids.remove(&ws.id);
        self.recovery_worker_gone(w);
        self.scatter_worker_gone(w, out);
        self.ranked.remove(&ws.rank);
        if ws.roomy {
            self.nroomy -= 1;
        }
        if self.worker_names.get(&ws.name) == Some(&w) {
            self.worker_names.remove(&ws.name);
        }
        if self.worker_addrs.get(&ws.address) == Some(&w) {
            self.worker_addrs.remove(&ws.address);
        }
        let gone_fns = self.drop_functions(&ws.fn_mask);
        self.diag.event(
            "worker-left",
            format!(
                "worker {} left ({} tasks processing, {} results held)",
                ws.name,
                ws.processing.len(),
                ws.has_what.len()
            ),
        );

        let mut affected = Vec::new();
        // Tasks that were running there.
        let mut processing: Vec<TaskId> = ws.processing.keys().copied().collect();
        processing.sort_by_key(|&t| self.slot(t).sequence);
        for t in processing {
            self.slot_mut(t).processing_on = None;
            if !self.steals.is_empty() {
                self.steals.remove(&t);
            }
            self.set_state(t, TaskState::Released);
            // Only a task that was running when the worker died is suspect;
            // one merely assigned (waiting for a thread or for its
            // dependencies) is not.
            if ws.reports_started && !ws.executing.contains(&t) {
                affected.push(t);
                continue;
            }
            let extra = self.slot_mut(t).extra.get_or_insert_with(Default::default);
            extra.killed_on.push(ws.name.clone());
            if extra.killed_on.len() as u64 > self.config.allowed_failures as u64 {
                let s = self.slot(t);
                let names = s.extra.as_ref().map(|e| e.killed_on.join(", "));
                let message = format!(
                    "attempted to run task {:?} on {} different workers, but all those workers \
                     died while running it; the workers were: {}",
                    s.key,
                    self.config.allowed_failures + 1,
                    names.unwrap_or_default()
                );
                self.diag.event("killed-worker", message.clone());
                self.mark_erred(
                    t,
                    Arc::new(TaskFailure {
                        kind: ErrorKind::KilledWorker,
                        message,
                    }),
                    out,
                );
            } else {
                affected.push(t);
            }
        }
        // Data that was held there.
        let mut held: Vec<TaskId> = ws.has_what.iter().copied().collect();
        held.sort();
        for t in held {
            let s = self.slot_mut(t);
            s.who_has.retain(|x| *x != w);
            if s.state == TaskState::Memory && s.who_has.is_empty() {
                self.lose_data(t, &ws.name, &mut affected, out);
            }
        }
        // Shuffles it owned outputs of restart; their tasks join `affected`
        // (woken once: a transfer re-placed above is not sent twice).
        self.shuffle_worker_removed(ws.id, &mut affected, out);
        self.functions_gone(gone_fns, out);
        self.wake_affected(affected, out);
        // Retirements waiting for this worker (to leave, or to take data).
        let mut done = Vec::new();
        for (i, r) in self.retire_requests.iter_mut().enumerate() {
            if let Some(pos) = r.waiting.iter().position(|&x| x == w) {
                r.waiting.swap_remove(pos);
                r.retired.push(ws.name.clone());
                if r.waiting.is_empty() {
                    done.push(i);
                }
            }
        }
        for i in done.into_iter().rev() {
            let r = self.retire_requests.swap_remove(i);
            self.answer_retirement(r, out);
        }
    }

    /// A worker no longer offers these functions (it left or retires):
    /// returns those that no connected worker offers any more.
    pub(super) fn drop_functions(&mut self, fn_mask: &[bool]) -> Vec<FnId> {
        let mut gone = Vec::new();
        for (f, &has) in fn_mask.iter().enumerate() {
            if has {
                let info = &mut self.fns[f];
                info.nworkers -= 1;
                if info.nworkers == 0 {
                    gone.push(f as FnId);
                }
            }
        }
        gone
    }

    /// Queued tasks whose function no longer has a worker wait in no-worker.
    pub(super) fn functions_gone(&mut self, gone: Vec<FnId>, out: &mut Outbox) {
        for f in gone {
            let queued: Vec<QueueKey> = std::mem::take(&mut self.fns[f as usize].queue).into_iter().collect();
            self.queued_fns.remove(&f);
            for (_, _, t) in queued {
                self.enter_no_worker(t, out);
            }
        }
    }
}
