//! Tasks that no connected worker can run: why (sent to clients with
//! `NoWorker`), and erring them once they have waited too long (Dask's
//! `scheduler.no-workers-timeout`).
//!
//! Two bounds, because the two situations differ: while some workers are
//! connected and none serves the task (its function is not linked into any
//! worker binary, or its restrictions match no worker), waiting rarely ends
//! well, so `no_worker_timeout_s` is short; while no worker is connected at
//! all, workers are usually on their way (a cluster starting, a batch job
//! queued), so `empty_cluster_timeout_s` is long. Either is 0 for "never".
//!
//! The state machine has no clock: the actor calls
//! [`SchedulerState::expire_no_worker`] with the time every
//! `NO_WORKER_CHECK_INTERVAL`; a task's wait is counted from the first check
//! that sees it in `no-worker` (so it errs between the timeout and the
//! timeout plus one interval after it entered).

use std::sync::Arc;
use std::time::{Duration, Instant};

use super::ids::{FnId, QueueKey, TaskId};
use super::state::SchedulerState;
use super::types::Outbox;
use crate::util::FxMap;
use crate::wire::messages::{ErrorKind, TaskFailure};

impl SchedulerState {
    /// Why task `t` cannot be placed, for `NoWorker` and its final error.
    pub(super) fn no_worker_reason(&self, t: TaskId) -> String {
        let s = self.slot(t);
        let function = &self.fns[s.func as usize].name;
        let nworkers = self.worker_ids.len();
        if nworkers == 0 {
            return "no worker is connected to the scheduler".to_string();
        }
        if self.fns[s.func as usize].nworkers == 0 {
            let paused = self.paused_workers_with(s.func);
            if !paused.is_empty() {
                return format!(
                    "every worker that can run `{function}` is paused (its memory is past its pause threshold): {}",
                    paused.join(", ")
                );
            }
            return format!(
                "none of the {nworkers} connected worker(s) has the function `{function}`; start a worker from a \
                 binary that links it (a `#[rdask::task]` in that binary or a crate it uses)"
            );
        }
        let mut why = format!("no connected worker that has `{function}` satisfies the task's restrictions");
        if let Some(extra) = s.restrictions() {
            if !extra.restrictions.is_empty() {
                why.push_str(&format!(" (workers: {:?})", extra.restrictions));
            }
        }
        let resources = s.resources();
        if !resources.is_empty() {
            why.push_str(&format!(" (resources: {resources:?})"));
        }
        why
    }

    /// The bound that applies now to tasks of function `f` waiting in
    /// `no-worker` (if any), and the setting it comes from.
    fn no_worker_bound(&self, f: FnId) -> (Option<Duration>, &'static str) {
        let (secs, setting) = if self.worker_ids.is_empty() {
            (self.config.empty_cluster_timeout_s, "scheduler.empty_cluster_timeout_s")
        } else if self.only_paused_workers_have(f) {
            (
                self.config.paused_cluster_timeout_s,
                "scheduler.paused_cluster_timeout_s",
            )
        } else {
            (self.config.no_worker_timeout_s, "scheduler.no_worker_timeout_s")
        };
        (
            (secs > 0.0 && secs.is_finite()).then(|| Duration::from_secs_f64(secs)),
            setting,
        )
    }

    /// Errs (`ErrorKind::NoWorker`, with the reason and the setting that
    /// bounds the wait) every task that has waited in `no-worker` longer
    /// than the bound that applies; its waiting dependents err with it.
    pub fn expire_no_worker(&mut self, now: Instant, out: &mut Outbox) {
        // (A task leaving no-worker drops its entry: `detach`.)
        if self.no_worker.is_empty() {
            return;
        }
        for &qk in &self.no_worker {
            self.no_worker_since.entry(qk).or_insert(now);
        }
        // One bound per function, not per task: finding paused workers
        // scans the workers.
        let mut bounds: FxMap<FnId, (Option<Duration>, &'static str)> = FxMap::default();
        let mut expired: Vec<(QueueKey, Duration, &'static str)> = Vec::new();
        for (&qk, &since) in &self.no_worker_since {
            let waited = now.saturating_duration_since(since);
            let f = self.slot(qk.2).func;
            let (bound, setting) = *bounds.entry(f).or_insert_with(|| self.no_worker_bound(f));
            if bound.is_some_and(|b| waited > b) {
                expired.push((qk, waited, setting));
            }
        }
        if expired.is_empty() {
            return;
        }
        self.begin();
        for (qk, waited, setting) in expired {
            let t = qk.2;
            // An earlier expiry in this loop may have erred it as a dependent.
            if !self.no_worker.contains(&qk) {
                continue;
            }
            let message = format!(
                "no worker could run this task for {:.1} s: {} (the wait is bounded by {setting})",
                waited.as_secs_f64(),
                self.no_worker_reason(t)
            );
            self.detach(t, false, out);
            let failure = TaskFailure {
                kind: ErrorKind::NoWorker,
                message,
            };
            self.mark_erred(t, Arc::new(failure), out);
        }
        self.finish(out);
    }
}
