//! The release rule: which client wants what, and releasing or forgetting
//! tasks nobody needs (see the `state` module documentation).

use super::ids::TaskId;
use super::state::SchedulerState;
use super::types::{ClientId, Outbox, TaskState};

impl SchedulerState {
    pub(super) fn want(&mut self, c: ClientId, t: TaskId, out: &mut Outbox) {
        if !self.clients.contains_key(&c) || self.slot(t).wanted_by.contains(&c) {
            return;
        }
        self.slot_mut(t).wanted_by.push(c);
        self.journal_want(c, t, true);
        if self.slot(t).state == TaskState::Released {
            // Its data was released earlier (e.g. an intermediate result):
            // compute it again.
            self.wake(t, out);
        } else {
            self.send_state_to(c, t, out);
        }
    }

    pub(super) fn unwant(&mut self, c: ClientId, t: TaskId) {
        let wanted_by = &mut self.slot_mut(t).wanted_by;
        if let Some(i) = wanted_by.iter().position(|x| *x == c) {
            wanted_by.remove(i);
            self.journal_want(c, t, false);
            self.candidates.push(t);
        }
    }

    pub(super) fn drop_client(&mut self, c: ClientId) {
        if self.clients.remove(&c).is_some() {
            if c != super::coordination::HOLDER {
                self.journal_push(|| super::journal::JournalRecord::ClientGone { client: c.0 });
            }
            for t in self.wanted_by_client(c) {
                self.slot_mut(t).wanted_by.retain(|x| *x != c);
                self.candidates.push(t);
            }
        }
    }

    /// The live tasks `c` wants, in slot order (a scan of every slot: for
    /// a client leaving, a restart, a journal image).
    pub(super) fn wanted_by_client(&self, c: ClientId) -> Vec<TaskId> {
        (self.tasks.iter().enumerate())
            .filter(|(_, s)| s.state != TaskState::Forgotten && s.wanted_by.contains(&c))
            .map(|(i, _)| TaskId(i as u32))
            .collect()
    }

    /// Applies the release rule to every candidate now, rather than at the
    /// end of the event (`finish` does the same between its other steps).
    pub(super) fn release_candidates(&mut self, out: &mut Outbox) {
        while let Some(t) = self.candidates.pop() {
            self.maybe_release(t, out);
        }
    }

    /// The release rule (see the module documentation).
    pub(super) fn maybe_release(&mut self, t: TaskId, out: &mut Outbox) {
        let s = self.slot(t);
        if s.state == TaskState::Forgotten || self.needed(t) {
            return;
        }
        match s.state {
            TaskState::Erred | TaskState::Released => {
                if s.live_dependents == 0 {
                    self.forget(t);
                }
            }
            _ => {
                self.detach(t, true, out);
                self.slot_mut(t).waiting_on = 0;
                self.set_state(t, TaskState::Released);
                if self.slot(t).live_dependents == 0 {
                    self.forget(t);
                }
            }
        }
    }

    pub(super) fn forget(&mut self, t: TaskId) {
        let s = self.slot_mut(t);
        debug_assert!(!s.state.is_active() && s.live_dependents == 0 && s.wanted_by.is_empty());
        let key = std::mem::take(&mut s.key);
        let old = s.state;
        if let Some(j) = self.journal.as_mut() {
            j.push(super::journal::JournalRecord::Forgotten { key: key.clone() });
        }
        let s = self.slot_mut(t);
        let f = s.func as usize;
        s.state = TaskState::Forgotten;
        s.gen = s.gen.wrapping_add(1);
        let deps = std::mem::take(&mut s.dependencies);
        s.args = Default::default();
        s.dependents = Vec::new();
        s.wanted_by = Default::default();
        s.who_has = Default::default();
        s.inline = None;
        s.extra = None;
        self.counts[old.index()] -= 1;
        self.fns[f].counts[old.index()] -= 1;
        self.keys.remove(&key, t.0);
        self.free_tasks.push(t);
        for d in deps {
            let live = {
                let ds = self.slot_mut(d);
                ds.live_dependents -= 1;
                ds.live_dependents
            };
            // Compact stale references once they dominate, amortized O(1).
            if self.slot(d).dependents.len() > 2 * live as usize + 16 {
                let mut deps_of_d = std::mem::take(&mut self.slot_mut(d).dependents);
                deps_of_d.retain(|&r| self.is_live(r));
                self.slot_mut(d).dependents = deps_of_d;
            }
            self.candidates.push(d);
        }
    }
}
