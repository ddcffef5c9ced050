//! Data moves asked by clients: `Replicate` and `Rebalance`.

use std::cmp::Reverse;

use super::ids::{TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{Outbox, TaskState};
use crate::util::{FxMap, FxSet};
use crate::wire::messages::{DependencyLocation, Key, ToWorker};

impl SchedulerState {
    /// Live workers that are not retiring, by bytes held then id.
    pub(super) fn staying_workers(&self) -> Vec<WIdx> {
        let mut ws: Vec<WIdx> = self
            .worker_ids
            .values()
            .copied()
            .filter(|&w| self.worker(w).retiring.is_none())
            .collect();
        ws.sort_by_key(|&w| (self.worker(w).known_nbytes, self.worker(w).id));
        ws
    }

    /// Asks workers to copy each key in memory until `n` workers (at most
    /// all of them) hold it, choosing those holding the fewest bytes.
    pub(super) fn replicate(&mut self, keys: &[Key], n: u32, out: &mut Outbox) -> Vec<crate::wire::messages::DataMove> {
        let workers = self.staying_workers();
        let mut tally: FxMap<WIdx, u64> = workers.iter().map(|&w| (w, self.worker(w).known_nbytes)).collect();
        let mut batches: FxMap<WIdx, Vec<DependencyLocation>> = FxMap::default();
        let mut moves = Vec::new();
        let mut seen = FxSet::default();
        for key in keys {
            let Some(t) = self.task_id(key) else {
                continue;
            };
            // An actor is its worker's state: a copy elsewhere would be a lie.
            if self.is_actor(t) {
                continue;
            }
            let s = self.slot(t);
            if s.state != TaskState::Memory || !seen.insert(t) {
                continue;
            }
            let need = (n as usize).min(workers.len()).saturating_sub(s.who_has.len());
            let mut targets: Vec<WIdx> = workers
                .iter()
                .copied()
                .filter(|w| !s.who_has.contains(w) && !s.freed_on().contains(w))
                .collect();
            targets.sort_by_key(|w| (tally[w], *w));
            for &w in targets.iter().take(need) {
                *tally.entry(w).or_default() += s.nbytes;
                batches.entry(w).or_default().push(DependencyLocation {
                    key: s.key.clone(),
                    who_has: self.addresses(&s.who_has),
                    nbytes: s.nbytes,
                });
                moves.push(crate::wire::messages::DataMove {
                    key: s.key.clone(),
                    to: self.worker(w).address.clone(),
                    from: String::new(),
                });
            }
        }
        let mut batches: Vec<(WIdx, Vec<DependencyLocation>)> = batches.into_iter().collect();
        batches.sort_by_key(|(w, _)| *w);
        for (w, keys) in batches {
            self.send_worker(out, w, ToWorker::AcquireReplicas { keys });
        }
        moves
    }

    /// Moves data of `keys` (every key in memory if empty) from workers
    /// holding more bytes than the average to workers holding less: the
    /// target fetches a copy (`AcquireReplicas`), and once it announces it
    /// (`AddKeys`) the source is told to free its copy. A move overshoots
    /// the average by at most half the key's size.
    pub(super) fn rebalance(&mut self, keys: &[Key], out: &mut Outbox) -> Vec<crate::wire::messages::DataMove> {
        // Moves of an earlier rebalance that never completed (a failed
        // fetch) would only leave an extra copy: forget them.
        self.moving.clear();
        let workers = self.staying_workers();
        if workers.len() < 2 {
            return Vec::new();
        }
        let selected: Option<FxSet<TaskId>> =
            (!keys.is_empty()).then(|| keys.iter().filter_map(|k| self.task_id(k)).collect());
        let mut tally: FxMap<WIdx, u64> = workers.iter().map(|&w| (w, self.worker(w).known_nbytes)).collect();
        let mean = tally.values().sum::<u64>() as f64 / workers.len() as f64;
        let mut batches: FxMap<WIdx, Vec<DependencyLocation>> = FxMap::default();
        let mut moves = Vec::new();
        // Senders: most loaded first.
        for &from in workers.iter().rev() {
            if tally[&from] as f64 <= mean {
                break;
            }
            let mut held: Vec<(u64, TaskId)> = self
                .worker(from)
                .has_what
                .iter()
                .copied()
                .filter(|t| selected.as_ref().is_none_or(|s| s.contains(t)))
                .filter(|&t| self.slot(t).state == TaskState::Memory && !self.moving.contains_key(&t))
                .filter(|&t| !self.is_actor(t))
                .map(|t| (self.slot(t).nbytes, t))
                .collect();
            held.sort_unstable_by_key(|&(nb, t)| (Reverse(nb), t));
            for (nb, t) in held {
                if tally[&from] as f64 <= mean {
                    break;
                }
                let s = self.slot(t);
                let to = workers
                    .iter()
                    .copied()
                    .filter(|w| *w != from && !s.who_has.contains(w) && !s.freed_on().contains(w))
                    .min_by_key(|w| (tally[w], *w));
                let Some(to) = to else {
                    continue;
                };
                if tally[&to] as f64 + nb as f64 / 2.0 > mean {
                    continue; // would overshoot: a smaller key may fit
                }
                *tally.entry(to).or_default() += nb;
                *tally.entry(from).or_default() -= nb;
                batches.entry(to).or_default().push(DependencyLocation {
                    key: s.key.clone(),
                    who_has: self.addresses(&s.who_has),
                    nbytes: nb,
                });
                moves.push(crate::wire::messages::DataMove {
                    key: s.key.clone(),
                    to: self.worker(to).address.clone(),
                    from: self.worker(from).address.clone(),
                });
                self.moving.insert(t, (from, to));
            }
        }
        let mut batches: Vec<(WIdx, Vec<DependencyLocation>)> = batches.into_iter().collect();
        batches.sort_by_key(|(w, _)| *w);
        for (w, keys) in batches {
            self.send_worker(out, w, ToWorker::AcquireReplicas { keys });
        }
        moves
    }

    /// A rebalance's target holds `t`: the source `from` drops its copy,
    /// if another copy remains.
    pub(super) fn drop_replica(&mut self, t: TaskId, from: WIdx, out: &mut Outbox) {
        if self.workers[from.0 as usize].is_none() || self.slot(t).who_has.len() < 2 {
            return;
        }
        let s = self.slot_mut(t);
        let Some(i) = s.who_has.iter().position(|&x| x == from) else {
            return;
        };
        s.who_has.swap_remove(i);
        let nbytes = s.nbytes;
        let ws = self.worker_mut(from);
        if ws.has_what.remove(&t) {
            ws.known_nbytes = ws.known_nbytes.saturating_sub(nbytes);
        }
        self.free_task_on(t, from, out);
    }
}
