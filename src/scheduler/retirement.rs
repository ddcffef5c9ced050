//! Graceful retirement (`RetireWorkers`, `RetireMe`): no new tasks, unique
//! data copied to staying workers, then `Close`.

use super::ids::{TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing};
use super::workers::RetireRequest;
use crate::wire::messages::{DependencyLocation, ToClient, ToWorker};

impl SchedulerState {
    /// Starts retiring the named workers: they get no new tasks, finish the
    /// ones they have, their results that no staying worker holds are
    /// copied to staying workers (`AcquireReplicas`), then they are sent
    /// `Close` and removed. `RetireWorkersDone` answers the client.
    pub(super) fn retire_workers(
        &mut self,
        client: Option<ClientId>,
        request_id: u64,
        names: &[String],
        out: &mut Outbox,
    ) {
        let mut errors = Vec::new();
        let mut targets: Vec<WIdx> = Vec::new();
        for n in names {
            match self.worker_names.get(n).or_else(|| self.worker_addrs.get(n)) {
                Some(&w) if !targets.contains(&w) => targets.push(w),
                Some(_) => {}
                None => errors.push(format!("{n}: no such worker")),
            }
        }
        let staying = self
            .worker_ids
            .values()
            .filter(|&&w| self.worker(w).retiring.is_none() && !targets.contains(&w))
            .count();
        if staying == 0 {
            // Nowhere to move data to: only workers holding none may leave.
            targets.retain(|&w| {
                let ws = self.worker(w);
                let empty = ws.has_what.is_empty();
                if !empty {
                    errors.push(format!(
                        "{}: no other worker would remain to take its {} keys",
                        ws.name,
                        ws.has_what.len()
                    ));
                }
                empty
            });
        }
        for &w in &targets {
            if self.worker(w).retiring.is_none() {
                // A paused worker's functions were dropped when it paused.
                self.worker_mut(w).paused = None;
                let mask = std::mem::take(&mut self.worker_mut(w).fn_mask);
                let gone = self.drop_functions(&mask);
                self.functions_gone(gone, out);
                self.worker_mut(w).retiring = Some(Box::default());
            }
        }
        let r = RetireRequest {
            client,
            request_id,
            waiting: targets,
            retired: Vec::new(),
            errors,
        };
        if r.waiting.is_empty() {
            self.answer_retirement(r, out);
        } else {
            self.retire_requests.push(r);
        }
    }

    pub(super) fn answer_retirement(&mut self, r: RetireRequest, out: &mut Outbox) {
        let Some(c) = r.client else {
            return;
        };
        if !self.clients.contains_key(&c) {
            return;
        }
        let error = (!r.errors.is_empty()).then(|| r.errors.join("; "));
        out.messages.push(Outgoing::Client(
            c,
            ToClient::RetireWorkersDone {
                request_id: r.request_id,
                retired: r.retired,
                error,
            },
        ));
    }

    /// Moves each retiring worker on: asks for replicas of the keys only
    /// retiring workers hold, and closes it once it runs nothing and holds
    /// nothing unique. Returns whether a worker was removed.
    pub(super) fn advance_retirements(&mut self, out: &mut Outbox) -> bool {
        let mut retiring: Vec<WIdx> = self
            .retire_requests
            .iter()
            .flat_map(|r| r.waiting.iter().copied())
            .collect();
        retiring.sort();
        retiring.dedup();
        let mut staying: Vec<WIdx> = self
            .worker_ids
            .values()
            .copied()
            .filter(|&w| self.worker(w).retiring.is_none())
            .collect();
        staying.sort_by_key(|&w| (self.worker(w).known_nbytes, w));
        let mut removed = false;
        for w in retiring {
            if self.workers[w.0 as usize].is_none() {
                continue;
            }
            let ws = self.worker(w);
            if !ws.processing.is_empty() {
                continue;
            }
            let mut unique: Vec<TaskId> = ws
                .has_what
                .iter()
                .copied()
                .filter(|&t| self.slot(t).who_has.iter().all(|&x| self.worker(x).retiring.is_some()))
                // Actors cannot move: they are lost with the worker.
                .filter(|&t| !self.is_actor(t))
                .collect();
            if unique.is_empty() || staying.is_empty() {
                // With no staying worker left (they died meanwhile), the
                // unique keys are lost with it and recomputed as usual.
                let id = ws.id;
                out.messages.push(Outgoing::Worker(
                    id,
                    ToWorker::Close {
                        reason: "retired".into(),
                    },
                ));
                self.remove_worker_idx(w, out);
                removed = true;
                continue;
            }
            unique.sort();
            let mut batches: Vec<Vec<DependencyLocation>> = vec![Vec::new(); staying.len()];
            for (i, t) in unique.into_iter().enumerate() {
                let asked = self.worker(w).retiring.as_ref().and_then(|m| m.get(&t).copied());
                if asked.is_some_and(|x| self.workers[x.0 as usize].is_some()) {
                    continue; // still pending with a live worker
                }
                let target = i % staying.len();
                let s = self.slot(t);
                batches[target].push(DependencyLocation {
                    key: s.key.clone(),
                    who_has: self.addresses(&s.who_has),
                    nbytes: s.nbytes,
                });
                if let Some(m) = self.worker_mut(w).retiring.as_mut() {
                    m.insert(t, staying[target]);
                }
                // The `AcquireReplicas` follows any earlier `FreeKeys` of `t`
                // on the target's connection, so its `AddKeys` of `t` is
                // news, not a copy about to be freed (see `freed_on`): a
                // rebalance's source asked to take its key back is heard.
                let to = staying[target];
                if let Some(e) = self.slot_mut(t).extra.as_mut() {
                    e.freed_on.retain(|&x| x != to);
                }
            }
            for (i, keys) in batches.into_iter().enumerate() {
                if !keys.is_empty() {
                    self.send_worker(out, staying[i], ToWorker::AcquireReplicas { keys });
                }
            }
        }
        removed
    }
}
