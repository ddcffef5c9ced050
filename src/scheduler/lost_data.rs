//! Lost data: a worker missing a dependency, and the last copy of a result
//! going away (its dependents reset, the task recomputed).

use std::sync::Arc;

use super::ids::{TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{Outbox, TaskState};
use crate::wire::messages::{ErrorKind, TaskFailure, ToClient, ACTOR_FUNCTION_PREFIX};

impl SchedulerState {
    pub(super) fn missing_data(&mut self, reporter: WIdx, key: &str, errant: &str, out: &mut Outbox) {
        let Some(t) = self.task_id(key) else {
            return;
        };
        let mut lost_with = errant.to_string();
        if let Some(&e) = self.worker_addrs.get(errant) {
            lost_with = self.worker(e).name.clone();
            let s = self.slot_mut(t);
            if let Some(i) = s.who_has.iter().position(|&x| x == e) {
                s.who_has.swap_remove(i);
                let nbytes = s.nbytes;
                let ews = self.worker_mut(e);
                ews.has_what.remove(&t);
                ews.known_nbytes = ews.known_nbytes.saturating_sub(nbytes);
            }
        }
        let mut affected = Vec::new();
        if self.slot(t).state != TaskState::Memory {
            // Its dependents were reset when it left memory.
        } else if self.slot(t).who_has.is_empty() {
            self.lose_data(t, &lost_with, &mut affected, out);
        } else {
            // Still held elsewhere: resend the reporter's tasks that needed
            // it with fresh locations (it may only have known the errant one).
            for d in self.live_dependents(t) {
                let ds = self.slot(d);
                if ds.state == TaskState::Processing && ds.processing_on == Some(reporter) {
                    self.detach(d, true, out);
                    self.set_state(d, TaskState::Released);
                    affected.push(d);
                }
            }
        }
        self.wake_affected(affected, out);
    }

    /// A task in memory lost its last copy. Its dependents that relied on
    /// it are reset; it is pushed on `affected` for recompute (or errs if
    /// it was scattered, or created an actor: `ActorLost`).
    pub(super) fn lose_data(&mut self, t: TaskId, lost_with: &str, affected: &mut Vec<TaskId>, out: &mut Outbox) {
        self.detach(t, false, out);
        self.set_state(t, TaskState::Released);
        let scattered = self.slot(t).scattered;
        let actor = self.is_actor(t);
        if !scattered && !actor {
            self.notify(t, out, |s| ToClient::KeyLost { key: s.key.clone() });
        }
        for d in self.live_dependents(t) {
            match self.slot(d).state {
                TaskState::Waiting => self.slot_mut(d).waiting_on += 1,
                TaskState::Processing | TaskState::Queued | TaskState::NoWorker => {
                    self.detach(d, true, out);
                    self.set_state(d, TaskState::Released);
                    affected.push(d);
                }
                _ => {}
            }
        }
        if actor {
            let s = self.slot(t);
            let type_name = self.fns[s.func as usize].name.trim_start_matches(ACTOR_FUNCTION_PREFIX);
            let message = format!(
                "actor {:?} ({type_name}) lived on worker {lost_with}, which died or left: its state is gone \
                 and actors are not recreated (create a new one)",
                s.key
            );
            let failure = TaskFailure {
                kind: ErrorKind::ActorLost,
                message,
            };
            self.mark_erred(t, Arc::new(failure), out);
        } else if scattered {
            let s = self.slot(t);
            if !s.wanted_by.is_empty() || s.live_dependents > 0 {
                let message = format!("data of {:?} lost with worker {}", s.key, lost_with);
                self.mark_data_lost(t, message, out);
            } else {
                self.candidates.push(t);
            }
        } else {
            affected.push(t);
        }
    }

    /// Recomputes the `released` tasks of an event that are still needed;
    /// the others go to the release check.
    pub(super) fn wake_affected(&mut self, affected: Vec<TaskId>, out: &mut Outbox) {
        for t in affected {
            if self.slot(t).state != TaskState::Released {
                continue;
            }
            if self.needed(t) {
                self.wake(t, out);
            } else {
                // A needed dependent woken later wakes it through `wake`.
                self.candidates.push(t);
            }
        }
    }
}
