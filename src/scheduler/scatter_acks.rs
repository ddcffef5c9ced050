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
use super::types::{ClientId, Outbox, Outgoing};
use crate::wire::messages::ToClient;

/// One scatter whose data is not all confirmed stored yet.
#[derive(Debug)]
pub(super) struct PendingScatter {
    pub(super) client: ClientId,
    pub(super) request_id: u64,
    /// (holder, key) pairs still to be confirmed by the holder's `AddKeys`.
    pub(super) waiting: Vec<(WIdx, TaskId)>,
}

impl SchedulerState {
    /// Answers the scatter now if nothing is to be confirmed, else once
    /// every pair in `waiting` is.
    pub(super) fn await_scatter(
        &mut self,
        client: ClientId,
        request_id: u64,
        waiting: Vec<(WIdx, TaskId)>,
        out: &mut Outbox,
    ) {
        if waiting.is_empty() {
            scatter_done(client, request_id, out);
        } else {
            self.pending_scatters.push(PendingScatter {
                client,
                request_id,
                waiting,
            });
        }
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

    /// The client left: nobody waits for its scatters.
    pub(super) fn scatter_client_gone(&mut self, c: ClientId) {
        self.pending_scatters.retain(|p| p.client != c);
    }

    fn answer_confirmed(&mut self, out: &mut Outbox) {
        let mut i = 0;
        while i < self.pending_scatters.len() {
            if self.pending_scatters[i].waiting.is_empty() {
                let p = self.pending_scatters.swap_remove(i);
                scatter_done(p.client, p.request_id, out);
            } else {
                i += 1;
            }
        }
    }
}

fn scatter_done(client: ClientId, request_id: u64, out: &mut Outbox) {
    out.messages.push(Outgoing::Client(
        client,
        ToClient::ScatterDone {
            request_id,
            error: None,
        },
    ));
}
