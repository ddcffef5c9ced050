//! Task state changes: the state label and its counters, taking a task out
//! of its container, and entering waiting, erred, no-worker or queued.

use std::sync::Arc;

use super::ids::TaskId;
use super::state::SchedulerState;
use super::types::{Outbox, TaskState};
use crate::wire::messages::{ErrorKind, TaskFailure, ToClient};

impl SchedulerState {
    /// Changes the label, keeping the per-state counts and the dependencies'
    /// `active_dependents` right. Containers are handled by `detach` and the
    /// `enter_*` functions.
    pub(super) fn set_state(&mut self, t: TaskId, new: TaskState) {
        let old = self.slot(t).state;
        if old == new {
            return;
        }
        self.counts[old.index()] -= 1;
        self.counts[new.index()] += 1;
        let f = self.slot(t).func as usize;
        self.fns[f].counts[old.index()] -= 1;
        self.fns[f].counts[new.index()] += 1;
        self.slot_mut(t).state = new;
        if old == TaskState::Memory && self.journal.is_some() {
            let key = self.slot(t).key.clone();
            self.journal_push(|| super::journal::JournalRecord::Released { key });
        }
        if old.is_active() != new.is_active() {
            for i in 0..self.slot(t).dependencies.len() {
                let d = self.slot(t).dependencies[i];
                if new.is_active() {
                    self.slot_mut(d).active_dependents += 1;
                } else {
                    self.slot_mut(d).active_dependents -= 1;
                    self.candidates.push(d);
                }
            }
        }
    }

    /// Takes a task out of its state's container (worker processing, queue,
    /// no-worker set, holders). With `cancel`, tells the worker(s) to drop it.
    pub(super) fn detach(&mut self, t: TaskId, cancel: bool, out: &mut Outbox) {
        match self.slot(t).state {
            TaskState::Processing => {
                if let Some(w) = self.slot_mut(t).processing_on.take() {
                    if self.workers[w.0 as usize].is_some() {
                        let ws = self.worker_mut(w);
                        if let Some(e) = ws.processing.remove(&t) {
                            ws.unload(e);
                        }
                        if !ws.executing.is_empty() {
                            ws.executing.remove(&t);
                        }
                        if !ws.long_running.is_empty() {
                            ws.long_running.remove(&t);
                        }
                        if !self.steals.is_empty() {
                            self.steals.remove(&t);
                        }
                        self.update_rank(w);
                        self.dirty_workers.push(w);
                        if cancel {
                            self.free_task_on(t, w, out);
                        }
                    }
                }
            }
            TaskState::Queued => {
                let s = self.slot(t);
                let (f, qk) = (s.func, s.queue_key(t));
                let q = &mut self.fns[f as usize].queue;
                q.remove(&qk);
                if q.is_empty() {
                    self.queued_fns.remove(&f);
                }
            }
            TaskState::NoWorker => {
                let qk = self.slot(t).queue_key(t);
                self.no_worker.remove(&qk);
                // Its wait ends; a later one is counted afresh.
                self.no_worker_since.remove(&qk);
            }
            TaskState::Memory => {
                if !self.moving.is_empty() {
                    self.moving.remove(&t);
                }
                let holders = std::mem::take(&mut self.slot_mut(t).who_has);
                let nbytes = self.slot(t).nbytes;
                self.slot_mut(t).inline = None;
                for w in holders {
                    let ws = self.worker_mut(w);
                    if ws.has_what.remove(&t) {
                        ws.known_nbytes = ws.known_nbytes.saturating_sub(nbytes);
                    }
                    if cancel {
                        // No record in `freed_on`: data nobody needs is
                        // freed; `w` never fetches a key it holds.
                        let key = self.slot(t).key.clone();
                        self.free_key(out, w, key);
                    }
                }
            }
            _ => {}
        }
    }

    /// Brings a `released` task (and its `released` dependencies, first) to
    /// waiting / ready. Iterative post-order DFS: graphs may be deep chains.
    pub(super) fn wake(&mut self, root: TaskId, out: &mut Outbox) {
        let s = self.slot(root);
        if s.state != TaskState::Released {
            return;
        }
        if !s
            .dependencies
            .iter()
            .any(|&d| self.slot(d).state == TaskState::Released)
        {
            // The common case: nothing to wake on the way.
            self.enter_waiting_or_ready(root, out);
            return;
        }
        let mut stack = vec![(root, false)];
        while let Some((t, expanded)) = stack.pop() {
            if self.slot(t).state != TaskState::Released {
                continue;
            }
            if expanded {
                self.enter_waiting_or_ready(t, out);
                continue;
            }
            stack.push((t, true));
            for &d in &self.slot(t).dependencies {
                if self.slot(d).state == TaskState::Released {
                    stack.push((d, false));
                }
            }
        }
    }

    /// `released` → erred (scattered, or a dependency erred), waiting, or
    /// placed. Dependencies are not `released` (see `wake`).
    pub(super) fn enter_waiting_or_ready(&mut self, t: TaskId, out: &mut Outbox) {
        if self.slot(t).scattered {
            let message = format!(
                "data of {:?} was released and cannot be recomputed (it was scattered)",
                self.slot(t).key
            );
            self.mark_data_lost(t, message, out);
            return;
        }
        let mut missing = 0;
        for &d in &self.slot(t).dependencies {
            match self.slot(d).state {
                TaskState::Memory => {}
                TaskState::Erred => {
                    let f = self.derived_failure(d);
                    self.mark_erred(t, f, out);
                    return;
                }
                _ => missing += 1,
            }
        }
        if missing == 0 {
            self.place(t, out);
        } else {
            self.slot_mut(t).waiting_on = missing;
            self.set_state(t, TaskState::Waiting);
        }
    }

    /// The failure that dependents of erred task `d` get: the original key
    /// and message, shared (not re-formatted) down a cascade.
    pub(super) fn derived_failure(&self, d: TaskId) -> Arc<TaskFailure> {
        let s = self.slot(d);
        match s.failure() {
            Some(f) if f.kind == ErrorKind::DependencyFailed => f.clone(),
            Some(f) => Arc::new(TaskFailure {
                kind: ErrorKind::DependencyFailed,
                message: format!("dependency {:?} failed: {}", s.key, f.message),
            }),
            None => Arc::new(TaskFailure {
                kind: ErrorKind::DependencyFailed,
                message: format!("dependency {:?} failed", s.key),
            }),
        }
    }

    /// Errs `t` (and its dependents) with `DataLost` and `message`.
    pub(super) fn mark_data_lost(&mut self, t: TaskId, message: String, out: &mut Outbox) {
        let failure = TaskFailure {
            kind: ErrorKind::DataLost,
            message,
        };
        self.mark_erred(t, Arc::new(failure), out);
    }

    /// Errs a task (detached, not erred) and, recursively, its waiting
    /// dependents; notifies wanting clients.
    pub(super) fn mark_erred(&mut self, t: TaskId, failure: Arc<TaskFailure>, out: &mut Outbox) {
        let mut stack = vec![(t, failure)];
        while let Some((t, f)) = stack.pop() {
            if self.slot(t).state == TaskState::Erred {
                continue;
            }
            self.set_state(t, TaskState::Erred);
            let s = self.slot_mut(t);
            s.waiting_on = 0;
            s.set_failure(Some(f.clone()));
            self.notify(t, out, |s| ToClient::TaskErred {
                key: s.key.clone(),
                failure: (*f).clone(),
            });
            self.candidates.push(t);
            let derived = self.derived_failure(t);
            for d in self.live_dependents(t) {
                if self.slot(d).state == TaskState::Waiting {
                    stack.push((d, derived.clone()));
                }
            }
        }
    }

    pub(super) fn enter_no_worker(&mut self, t: TaskId, out: &mut Outbox) {
        self.set_state(t, TaskState::NoWorker);
        let qk = self.slot(t).queue_key(t);
        self.no_worker.insert(qk);
        if !self.slot(t).wanted_by.is_empty() {
            let msg = self.no_worker_message(t);
            self.notify(t, out, |_| msg.clone());
        }
    }

    pub(super) fn enter_queued(&mut self, t: TaskId) {
        self.set_state(t, TaskState::Queued);
        let s = self.slot(t);
        let (f, qk) = (s.func, s.queue_key(t));
        self.fns[f as usize].queue.insert(qk);
        self.queued_fns.insert(f);
    }
}
