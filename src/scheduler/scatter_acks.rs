//! Scatters answered only once stored: `ScatterDone` waits for each
//! receiving worker's `AddKeys` for the keys sent to it in `StoreData`.
//!
//! The scheduler lists a scattered key's holder as soon as it sends the
//! data, so that a `ComputeTask` following on the same connection may name
//! it. But another worker told to fetch the key (a task of the client's,
//! `replicate`) could reach the holder before the `StoreData` did, be told
//! the key is missing, and report it lost. Dask's client waits for the
//! workers to confirm before it tells the scheduler; here the scheduler
//! holds the client's answer until the holders confirm, so nothing the
//! client does next can overtake the data.

use super::ids::{TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing, TaskState};
use crate::wire::messages::ToClient;

/// One scatter whose data is not all confirmed stored yet.
#[derive(Debug)]
pub(super) struct PendingScatter {
    pub(super) client: ClientId,
    pub(super) request_id: u64,
    /// (holder, key) pairs still to be confirmed by the holder's `AddKeys`.
    pub(super) waiting: Vec<(WIdx, TaskId)>,
    /// A direct scatter's keys, wanted by the client once it is answered
    /// (empty for `Scatter`, whose keys are wanted at once).
    pub(super) wanted: Vec<TaskId>,
}

impl SchedulerState {
    /// Answers the scatter now if nothing is to be confirmed, else once
    /// every pair in `waiting` is; `wanted` become the client's then.
    pub(super) fn await_scatter(
        &mut self,
        client: ClientId,
        request_id: u64,
        waiting: Vec<(WIdx, TaskId)>,
        wanted: Vec<TaskId>,
        out: &mut Outbox,
    ) {
        let p = PendingScatter {
            client,
            request_id,
            waiting,
            wanted,
        };
        if p.waiting.is_empty() {
            self.scatter_answered(p, out);
        } else {
            self.pending_scatters.push(p);
        }
    }

    /// `w` confirmed holding `t` (its `AddKeys` of `nbytes`): if a direct
    /// scatter expects that and `t` is not in memory yet, it enters memory
    /// there. True when taken so; otherwise the `AddKeys` is judged as any
    /// other (`add_key`).
    pub(super) fn direct_store(&mut self, w: WIdx, t: TaskId, nbytes: u64, out: &mut Outbox) -> bool {
        if self.slot(t).state != TaskState::Released || !self.slot(t).scattered {
            return false;
        }
        let expected = self
            .pending_scatters
            .iter()
            .any(|p| p.wanted.contains(&t) && p.waiting.contains(&(w, t)));
        if expected {
            self.enter_memory(t, w, nbytes, None, out);
        }
        expected
    }

    /// `w` confirmed holding `t` (its `AddKeys`).
    pub(super) fn scatter_stored(&mut self, w: WIdx, t: TaskId, out: &mut Outbox) {
        if self.pending_scatters.is_empty() {
            return;
        }
        for p in &mut self.pending_scatters {
            p.waiting.retain(|&pair| pair != (w, t));
        }
        self.answer_confirmed(out);
    }

    /// `w` left: what it was to confirm never will be (the keys it held
    /// are reported lost the usual way), so its scatters are answered.
    pub(super) fn scatter_worker_gone(&mut self, w: WIdx, out: &mut Outbox) {
        if self.pending_scatters.is_empty() {
            return;
        }
        for p in &mut self.pending_scatters {
            p.waiting.retain(|&(x, _)| x != w);
        }
        self.answer_confirmed(out);
    }

    /// The client left: nobody waits for its scatters. Keys of its direct
    /// scatters that no holder confirmed go to the release check.
    pub(super) fn scatter_client_gone(&mut self, c: ClientId) {
        let mut i = 0;
        while i < self.pending_scatters.len() {
            if self.pending_scatters[i].client == c {
                let p = self.pending_scatters.swap_remove(i);
                self.candidates.extend(p.wanted);
            } else {
                i += 1;
            }
        }
    }

    fn answer_confirmed(&mut self, out: &mut Outbox) {
        let mut i = 0;
        while i < self.pending_scatters.len() {
            if self.pending_scatters[i].waiting.is_empty() {
                let p = self.pending_scatters.swap_remove(i);
                self.scatter_answered(p, out);
            } else {
                i += 1;
            }
        }
    }

    /// Answers `p`: a direct scatter's keys become the client's first (a
    /// key whose holders all died before confirming errs then, as
    /// scattered data lost), so the answer follows their states.
    fn scatter_answered(&mut self, p: PendingScatter, out: &mut Outbox) {
        for t in p.wanted {
            self.want(p.client, t, out);
        }
        out.messages.push(Outgoing::Client(
            p.client,
            ToClient::ScatterDone {
                request_id: p.request_id,
                error: None,
            },
        ));
    }
}
