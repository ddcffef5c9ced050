//! Outgoing messages: batched `FreeKeys` to workers and task news to the
//! clients that want them.

use super::ids::{TaskId, WIdx};
use super::state::SchedulerState;
use super::tasks::TaskSlot;
use super::types::{ClientId, Outbox, Outgoing, TaskState};
use crate::wire::messages::{ErrorKind, Key, TaskFailure, ToClient, ToWorker};

impl SchedulerState {
    pub(super) fn send_worker(&mut self, out: &mut Outbox, w: WIdx, msg: ToWorker) {
        let ws = self.worker_mut(w);
        ws.open_free = None;
        out.messages.push(Outgoing::Worker(ws.id, msg));
    }

    /// Queues a key for `FreeKeys` to a worker, appending to the worker's
    /// `FreeKeys` message of this event if no other message to it followed.
    pub(super) fn free_key(&mut self, out: &mut Outbox, w: WIdx, key: Key) {
        let epoch = self.epoch;
        let ws = self.worker_mut(w);
        if let Some((e, idx)) = ws.open_free {
            if e == epoch {
                if let Some(Outgoing::Worker(id, ToWorker::FreeKeys { keys })) = out.messages.get_mut(idx) {
                    if *id == ws.id {
                        keys.push(key);
                        return;
                    }
                }
            }
        }
        ws.open_free = Some((epoch, out.messages.len()));
        out.messages
            .push(Outgoing::Worker(ws.id, ToWorker::FreeKeys { keys: vec![key] }));
    }

    /// `FreeKeys` of a known task to `w`, remembered in `freed_on` unless the
    /// task is about to be forgotten (then any later message about the key
    /// from `w` meets an unknown key and gets a `FreeKeys` anyway).
    pub(super) fn free_task_on(&mut self, t: TaskId, w: WIdx, out: &mut Outbox) {
        let s = self.slot(t);
        let key = s.key.clone();
        if (self.needed(t) || s.live_dependents > 0) && !s.freed_on().contains(&w) {
            self.slot_mut(t).extra_mut().freed_on.push(w);
        }
        self.free_key(out, w, key);
    }

    pub(super) fn notify(&self, t: TaskId, out: &mut Outbox, msg: impl Fn(&TaskSlot) -> ToClient) {
        let s = self.slot(t);
        for &c in &s.wanted_by {
            out.client(c, msg(s));
        }
    }

    pub(super) fn key_in_memory(&self, s: &TaskSlot) -> ToClient {
        ToClient::KeyInMemory {
            key: s.key.clone(),
            nbytes: s.nbytes,
            who_has: self.addresses(&s.who_has),
            inline: s.inline.clone(),
        }
    }

    /// `NoWorker` for task `t`, with the scheduler's reason.
    pub(super) fn no_worker_message(&self, t: TaskId) -> ToClient {
        let s = self.slot(t);
        ToClient::NoWorker {
            key: s.key.clone(),
            function: self.fns[s.func as usize].name.clone(),
            reason: self.no_worker_reason(t),
        }
    }

    pub(super) fn send_state_to(&self, c: ClientId, t: TaskId, out: &mut Outbox) {
        let s = self.slot(t);
        let msg = match s.state {
            TaskState::Memory => self.key_in_memory(s),
            TaskState::Erred => ToClient::TaskErred {
                key: s.key.clone(),
                failure: s.failure().map(|f| (**f).clone()).unwrap_or(TaskFailure {
                    kind: ErrorKind::Failed,
                    message: String::new(),
                }),
            },
            TaskState::NoWorker => self.no_worker_message(t),
            _ => return,
        };
        out.client(c, msg);
    }
}
