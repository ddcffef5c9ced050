//! Results: tasks finishing or failing on workers, keys workers announce,
//! and client-requested retries.

use std::collections::VecDeque;
use std::sync::Arc;

use super::ids::{TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{Outbox, TaskState};
use crate::wire::messages::{ErrorKind, Key, Payload, TaskFailure};

/// Weight of a new sample in the running averages of task durations and
/// result sizes per function (exponentially weighted).
pub(super) const DURATION_SAMPLE_WEIGHT: f64 = 0.5;

impl SchedulerState {
    pub(super) fn task_finished(
        &mut self,
        w: WIdx,
        (key, run_id): (Key, u64),
        nbytes: u64,
        inline: Option<Payload>,
        (duration_us, thread): (u64, u32),
        out: &mut Outbox,
    ) {
        let Some(t) = self.task_of_run(&key, run_id) else {
            self.free_key(out, w, key);
            return;
        };
        let s = self.slot(t);
        let on_w = s.state == TaskState::Processing && s.processing_on == Some(w);
        if on_w && s.run == run_id {
            let f = s.func;
            self.diag.task_ran(&key, f, w, thread, duration_us);
            self.detach(t, false, out);
            let d = duration_us as f64 * 1e3;
            let info = &mut self.fns[f as usize];
            info.avg_ns = Some(match info.avg_ns {
                None => d,
                Some(a) => a + DURATION_SAMPLE_WEIGHT * (d - a),
            });
            let b = nbytes as f64;
            info.avg_nbytes = Some(match info.avg_nbytes {
                None => b,
                Some(a) => a + DURATION_SAMPLE_WEIGHT * (b - a),
            });
            self.enter_memory(t, w, nbytes, inline, out);
        } else if on_w || (s.state == TaskState::Memory && s.who_has.contains(&w)) {
            // An earlier run on the worker it is processing on again: that
            // worker was sent `FreeKeys` of the old run before the new
            // `ComputeTask` and reports the new run later. Or a holder we
            // know of: nothing to do.
        } else {
            // Stale (stolen, released, rescheduled, or computed elsewhere
            // meanwhile): `w` holds a copy nobody tracks.
            self.free_task_on(t, w, out);
        }
    }

    /// A detached task's result is on `w`.
    pub(super) fn enter_memory(&mut self, t: TaskId, w: WIdx, nbytes: u64, inline: Option<Payload>, out: &mut Outbox) {
        self.set_state(t, TaskState::Memory);
        let s = self.slot_mut(t);
        s.who_has.push(w);
        s.nbytes = nbytes;
        s.inline = inline;
        let ws = self.worker_mut(w);
        ws.has_what.insert(t);
        ws.known_nbytes += nbytes;
        if self.journal.is_some() {
            let (key, worker) = (self.slot(t).key.clone(), self.worker(w).name.clone());
            self.journal_push(|| super::journal::JournalRecord::Finished { key, worker, nbytes });
        }
        let s = self.slot(t);
        if let Some((&last, rest)) = s.wanted_by.split_last() {
            let msg = self.key_in_memory(s);
            for &c in rest {
                out.client(c, msg.clone());
            }
            out.client(last, msg);
        }
        let mut ready = std::mem::take(&mut self.scratch);
        for i in 0..self.slot(t).dependents.len() {
            let r = self.slot(t).dependents[i];
            if self.is_live(r) && self.slot(r.id).state == TaskState::Waiting {
                let ds = self.slot_mut(r.id);
                ds.waiting_on -= 1;
                if ds.waiting_on == 0 {
                    ready.push(r.id);
                }
            }
        }
        if ready.len() > 1 {
            ready.sort_by_key(|&d| self.slot(d).queue_key(d));
        }
        for &d in &ready {
            self.place(d, out);
        }
        ready.clear();
        self.scratch = ready;
        self.candidates.push(t);
    }

    pub(super) fn task_erred(&mut self, w: WIdx, key: &str, run_id: u64, failure: TaskFailure, out: &mut Outbox) {
        let Some(t) = self.task_of_run(key, run_id) else {
            return;
        };
        let s = self.slot(t);
        if s.state != TaskState::Processing || s.processing_on != Some(w) || s.run != run_id {
            return; // stale: a run since stolen, released or rescheduled
        }
        self.detach(t, false, out);
        if self.slot(t).retries > 0 {
            self.slot_mut(t).retries -= 1;
            let left = self.slot(t).retries;
            self.diag.event(
                "retry",
                format!(
                    "task {key} failed on {} ({left} retries left): {}",
                    self.worker(w).name,
                    failure.message
                ),
            );
            self.set_state(t, TaskState::Released);
            self.wake(t, out);
        } else {
            self.diag.event(
                "task-erred",
                format!("task {key} failed on {}: {}", self.worker(w).name, failure.message),
            );
            self.mark_erred(t, Arc::new(failure), out);
        }
    }

    /// `w` holds a copy of `t`, which is in memory.
    pub(super) fn add_holder(&mut self, t: TaskId, w: WIdx) {
        if !self.slot(t).who_has.contains(&w) {
            let nbytes = self.slot(t).nbytes;
            self.slot_mut(t).who_has.push(w);
            let ws = self.worker_mut(w);
            ws.has_what.insert(t);
            ws.known_nbytes += nbytes;
        }
    }

    pub(super) fn add_key(&mut self, w: WIdx, key: Key, out: &mut Outbox) {
        let Some(t) = self.task_id(&key) else {
            self.free_key(out, w, key);
            return;
        };
        match self.slot(t).state {
            // A `FreeKeys` of it may still be on its way to `w`: do not list
            // `w` as a holder, make sure it drops its copy.
            TaskState::Memory if self.slot(t).freed_on().contains(&w) => self.free_key(out, w, key),
            TaskState::Memory => {
                self.add_holder(t, w);
                if self.moving.get(&t).is_some_and(|&(_, to)| to == w) {
                    if let Some((from, _)) = self.moving.remove(&t) {
                        self.drop_replica(t, from, out);
                    }
                }
            }
            // Running on this very worker: leave it alone.
            TaskState::Processing if self.slot(t).processing_on == Some(w) => {}
            // Not in memory as far as we know: this copy is not tracked, and
            // `w` runs nothing of that key, so dropping it is safe (a task of
            // `w` that needed it was reset when the key left memory).
            _ => self.free_task_on(t, w, out),
        }
    }

    pub(super) fn retry(&mut self, t: TaskId, out: &mut Outbox) {
        // Up: the task and its erred dependencies become released again.
        let mut stack = vec![t];
        while let Some(x) = stack.pop() {
            if self.slot(x).state != TaskState::Erred {
                continue;
            }
            self.set_state(x, TaskState::Released);
            let s = self.slot_mut(x);
            s.set_failure(None);
            if let Some(e) = s.extra.as_mut() {
                e.killed_on.clear();
            }
            stack.extend(self.slot(x).dependencies.iter().copied());
        }
        self.wake(t, out);
        // Down: dependents that erred because of it, unless another of their
        // dependencies is still erred.
        let mut down = Vec::new();
        let mut queue: VecDeque<TaskId> = self.live_dependents(t).into();
        while let Some(d) = queue.pop_front() {
            let s = self.slot(d);
            let dep_failed = s.state == TaskState::Erred
                && s.failure().map(|f| f.kind) == Some(ErrorKind::DependencyFailed)
                && !s.dependencies.iter().any(|&x| self.slot(x).state == TaskState::Erred);
            if dep_failed {
                self.set_state(d, TaskState::Released);
                self.slot_mut(d).set_failure(None);
                down.push(d);
                queue.extend(self.live_dependents(d));
            }
        }
        self.wake_affected(down, out);
    }
}
