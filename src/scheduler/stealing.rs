//! Work stealing: moving ready tasks from loaded workers to idle ones by
//! confirmed hand-over (`StealRequest` / `StealResponse`).

use std::cmp::Reverse;

use super::ids::{QueueKey, TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{Outbox, TaskState};
use crate::util::FxMap;
use crate::wire::messages::ToWorker;

/// A ready task is stolen only if its expected compute time is at least
/// this many times the time to move its inputs to the thief.
pub(super) const STEAL_COMPUTE_OVER_TRANSFER: f64 = 2.0;
/// Most steal requests one `balance` call sends, so that one call stays
/// cheap however unbalanced the cluster.
pub(super) const MAX_STEALS_PER_BALANCE: usize = 1024;

/// The work-stealing pass's lists, kept between passes (see
/// `balance_inner`): thieves with their free slots, victims with their
/// occupancy per thread.
#[derive(Debug, Default)]
pub(super) struct StealScratch {
    thieves: Vec<(WIdx, usize)>,
    victims: Vec<(u64, WIdx)>,
}

impl SchedulerState {
    /// Work stealing, called periodically by the actor: for each worker
    /// with an idle thread (the thief), asks a worker with tasks waiting
    /// beyond its threads (the victim) to give up some of them
    /// (`StealRequest`), when a task's expected compute time is at least
    /// `STEAL_COMPUTE_OVER_TRANSFER` times the time to move its inputs to
    /// the thief. Only the victim's `StealResponse { stolen: true }` moves
    /// the task (see `steal_response`), so a task never runs twice.
    pub fn balance(&mut self, out: &mut Outbox) {
        self.begin();
        self.balance_inner(out);
        self.finish(out);
    }

    pub(super) fn balance_inner(&mut self, out: &mut Outbox) {
        if self.worker_ids.len() < 2 {
            return;
        }
        // The pass runs every 100 ms over every worker: its two lists are
        // kept between passes, as growing them anew each time was a fifth of
        // the scheduler's time at 1,000 workers (`rdask simulate`: glibc
        // consolidating its free lists on every large allocation).
        let StealScratch {
            mut thieves,
            mut victims,
        } = std::mem::take(&mut self.steal_scratch);
        thieves.clear();
        victims.clear();
        self.balance_with(&mut thieves, &mut victims, out);
        self.steal_scratch = StealScratch { thieves, victims };
    }

    fn balance_with(&mut self, thieves: &mut Vec<(WIdx, usize)>, victims: &mut Vec<(u64, WIdx)>, out: &mut Outbox) {
        let mut incoming: FxMap<WIdx, usize> = FxMap::default();
        for &thief in self.steals.values() {
            *incoming.entry(thief).or_default() += 1;
        }
        // Thieves and their idle threads.
        for &w in self.worker_ids.values() {
            let ws = self.worker(w);
            if ws.retiring.is_some() {
                continue;
            }
            let threads = ws.nthreads.max(1) as usize;
            let busy = ws.busy() + incoming.get(&w).copied().unwrap_or(0);
            if busy < threads {
                // Up to the saturation cap (at most twice its threads), so
                // a thread finds its next task there when one ends.
                let cap = (self.saturation_cap(ws) as usize).clamp(threads, 2 * threads);
                thieves.push((w, cap - busy));
            } else if ws.processing.len() > threads && ws.processing.len() > ws.executing.len() {
                victims.push((ws.occupancy_ns / threads as u64, w));
            }
        }
        if thieves.is_empty() || victims.is_empty() {
            return;
        }
        thieves.sort_by_key(|&(w, _)| w);
        // Most loaded first.
        victims.sort_by_key(|&(occ, w)| (Reverse(occ), w));
        let mut sent = 0;
        for &(_, v) in victims.iter() {
            let vs = self.worker(v);
            let threads = vs.nthreads.max(1) as usize;
            // Tasks not reported started, the ones it would run last first.
            let mut cands: Vec<(QueueKey, TaskId)> = vs
                .processing
                .keys()
                .copied()
                .filter(|t| !vs.executing.contains(t) && !self.steals.contains_key(t))
                .map(|t| (self.slot(t).queue_key(t), t))
                .collect();
            cands.sort_unstable_by_key(|c| Reverse(c.0));
            // Leave the victim as many tasks as it has threads.
            let mut spare = vs.processing.len().saturating_sub(threads);
            for (_, t) in cands {
                if spare == 0 || sent >= MAX_STEALS_PER_BALANCE {
                    break;
                }
                let s = self.slot(t);
                if s.extra.is_some() && (s.restrictions().is_some() || !s.resources().is_empty()) {
                    continue; // pinned: restrictions and resources are not re-checked on a thief
                }
                let compute_s = self.expected_ns(s.func) as f64 / 1e9;
                let mut best: Option<(f64, usize)> = None;
                for (i, &(w, free)) in thieves.iter().enumerate() {
                    if free == 0 || w == v || !self.worker(w).has_fn(s.func) {
                        continue;
                    }
                    let transfer_s = self.transfer_time(t, w);
                    if compute_s < STEAL_COMPUTE_OVER_TRANSFER * transfer_s {
                        continue;
                    }
                    if best.is_none_or(|(b, _)| transfer_s < b) {
                        best = Some((transfer_s, i));
                    }
                }
                let Some((_, i)) = best else {
                    continue;
                };
                thieves[i].1 -= 1;
                spare -= 1;
                sent += 1;
                self.steals.insert(t, thieves[i].0);
                let key = self.slot(t).key.clone();
                self.send_worker(out, v, ToWorker::StealRequest { key });
            }
        }
    }

    /// The victim's answer to a `StealRequest`.
    pub(super) fn steal_response(&mut self, w: WIdx, key: &str, stolen: bool, out: &mut Outbox) {
        let Some(t) = self.task_id(key) else {
            return;
        };
        let s = self.slot(t);
        if s.state != TaskState::Processing || s.processing_on != Some(w) {
            return; // moved on meanwhile; `steals` was cleared then
        }
        let Some(thief) = self.steals.remove(&t) else {
            return; // an answer about an earlier assignment
        };
        if !stolen {
            return; // it started (or is about to): it stays
        }
        // The victim forgot the task: no FreeKeys.
        self.detach(t, false, out);
        let ok = self.workers[thief.0 as usize]
            .as_ref()
            .is_some_and(|ts| ts.retiring.is_none() && ts.has_fn(self.slot(t).func));
        if ok {
            self.assign(t, thief, out);
        } else {
            self.place(t, out);
        }
    }
}
