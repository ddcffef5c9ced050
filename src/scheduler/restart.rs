//! `Client::restart` (Dask's `client.restart()`, `FromClient::RestartCluster`):
//! forget every task of the cluster, restart every worker through its
//! nanny, and answer once as many workers as were restartable have
//! registered again, or at the timeout.
//!
//! Every task wanted by a client errs for that client with
//! [`RESTART_MESSAGE`] (kind `Cancelled`, as Dask cancels every future on
//! restart), then nothing is wanted any more and the release rule forgets
//! every task. Keys held by coordination primitives (queue items,
//! variables, datasets, fire-and-forget) are let go too; a future handed
//! out of a primitive later names a key the scheduler no longer knows, and
//! fails at once (see `coordinated`).
//!
//! Workers that registered with `nanny` are sent `RestartWorker`; the
//! others cannot be restarted and are sent `Close` (Dask does the same),
//! and the answer names them. Both are forgotten at once, as a retired
//! worker is after its `Close`. A scheduler whose workers live in its own
//! process (`SchedulerConfig::in_process_workers`, a `LocalCluster`)
//! refuses instead, forgetting nothing: closing them would leave it with
//! no workers and no way to get them back.

use std::time::{Duration, Instant};

use super::coordination::HOLDER;
use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing, WorkerId};
use crate::util::FxSet;
use crate::wire::messages::{ErrorKind, TaskFailure, ToClient, ToWorker};

/// The error every future of the cluster gets when a client restarts it.
pub const RESTART_MESSAGE: &str =
    "the cluster was restarted by a client (Client::restart): every task was forgotten and every worker restarted; submit it again";

/// Why a worker is restarted or closed, for the logs (the worker's and,
/// through its nanny's restart reason, the scheduler's).
pub const RESTART_REASON: &str = "restart requested by a client";

/// A restart waiting for its workers to register again.
#[derive(Debug)]
pub(super) struct RestartRequest {
    client: ClientId,
    request_id: u64,
    /// The workers connected when the restart began: a worker counts as
    /// back only if it is not one of these.
    old: FxSet<WorkerId>,
    /// How many new workers make the restart done (the restartable ones).
    expected: usize,
    /// Names of the workers that had no nanny and were told to close.
    closed: Vec<String>,
    deadline: Instant,
    timeout: Duration,
}

impl SchedulerState {
    /// `FromClient::RestartCluster` from client `c` at `now`.
    pub(super) fn restart_cluster(
        &mut self,
        c: ClientId,
        request_id: u64,
        timeout: Duration,
        now: Instant,
        out: &mut Outbox,
    ) {
        if self.config.in_process_workers {
            let error = "this cluster's workers run inside the process of its LocalCluster, without a nanny, \
                         so they cannot be restarted (a restart would only close them); nothing was forgotten. \
                         Drop the LocalCluster and start a new one, or run `rdask scheduler` with \
                         `rdask worker --nanny` processes"
                .to_string();
            out.messages.push(Outgoing::Client(
                c,
                ToClient::RestartDone {
                    request_id,
                    workers: Vec::new(),
                    closed: Vec::new(),
                    error: Some(error),
                },
            ));
            return;
        }
        self.forget_all_tasks(out);
        // Released now rather than at the end of the event, so that the
        // workers closed below leave nothing to reschedule.
        self.release_candidates(out);
        let mut old = FxSet::default();
        let mut expected = 0;
        let mut closed = Vec::new();
        let mut live: Vec<_> = self.worker_ids.values().copied().collect();
        live.sort();
        for w in live {
            let ws = self.worker(w);
            old.insert(ws.id);
            if ws.nanny {
                expected += 1;
                let reason = RESTART_REASON.to_string();
                self.send_worker(out, w, ToWorker::RestartWorker { reason });
            } else {
                closed.push(ws.name.clone());
                let reason = format!("{RESTART_REASON}, and this worker has no nanny to restart it");
                self.send_worker(out, w, ToWorker::Close { reason });
            }
            // Forgotten at once, as after a `Close` (the actor then drops
            // its connection): its name is free for the fresh process even
            // if the old one's connection has not ended yet.
            self.remove_worker_idx(w, out);
        }
        self.diag.event(
            "restart",
            format!(
                "a client restarted the cluster: {expected} worker(s) restarting, {} closed (no nanny)",
                closed.len()
            ),
        );
        self.restarts.push(RestartRequest {
            client: c,
            request_id,
            old,
            expected,
            closed,
            deadline: now + timeout,
            timeout,
        });
        self.check_restarts(now, out);
    }

    /// Errs every wanted task for the clients that want it and lets go of
    /// every want; the release rule (at the end of the event) then forgets
    /// every task and frees its data on the workers.
    fn forget_all_tasks(&mut self, out: &mut Outbox) {
        let mut ids: Vec<ClientId> = self.clients.keys().copied().collect();
        ids.sort();
        for c in ids {
            for t in self.wanted_by_client(c) {
                self.slot_mut(t).wanted_by.retain(|x| *x != c);
                self.candidates.push(t);
                if c != HOLDER {
                    let key = self.slot(t).key.clone();
                    let failure = TaskFailure {
                        kind: ErrorKind::Cancelled,
                        message: RESTART_MESSAGE.to_string(),
                    };
                    out.messages
                        .push(Outgoing::Client(c, ToClient::TaskErred { key, failure }));
                }
            }
        }
        self.coord.forget_futures();
    }

    /// Answers the restarts whose workers are back, and those past their
    /// deadline at `now` (with how many came back).
    pub(super) fn check_restarts(&mut self, now: Instant, out: &mut Outbox) {
        if self.restarts.is_empty() {
            return;
        }
        let pending = std::mem::take(&mut self.restarts);
        for r in pending {
            let mut back: Vec<String> = self
                .worker_ids
                .iter()
                .filter(|(id, _)| !r.old.contains(id))
                .map(|(_, &w)| self.worker(w).name.clone())
                .collect();
            back.sort();
            let done = back.len() >= r.expected;
            if !done && now < r.deadline {
                self.restarts.push(r);
                continue;
            }
            let mut errors = Vec::new();
            if !done {
                errors.push(format!(
                    "only {} of the {} restarted worker(s) registered again within {:?}",
                    back.len(),
                    r.expected,
                    r.timeout
                ));
            }
            if !r.closed.is_empty() {
                errors.push(format!(
                    "worker(s) {} had no nanny, so they could not be restarted and were closed \
                     (start workers with `rdask worker --nanny` to restart them)",
                    r.closed.join(", ")
                ));
            }
            if !self.clients.contains_key(&r.client) {
                continue;
            }
            out.messages.push(Outgoing::Client(
                r.client,
                ToClient::RestartDone {
                    request_id: r.request_id,
                    workers: back,
                    closed: r.closed,
                    error: (!errors.is_empty()).then(|| errors.join("; ")),
                },
            ));
        }
    }

    /// Whether a restart waits for its workers (the actor then checks
    /// [`SchedulerState::expire_restarts`] on its timer).
    pub fn restart_pending(&self) -> bool {
        !self.restarts.is_empty()
    }

    /// Answers the restarts past their deadline at `now`.
    pub fn expire_restarts(&mut self, now: Instant, out: &mut Outbox) {
        self.check_restarts(now, out);
    }
}
