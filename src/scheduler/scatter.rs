//! Scatters: `Scatter` (the client sends the values through the
//! scheduler, which stores them on workers with `StoreData`) and
//! `ScatterDirect` (the scheduler only places them; the client pushes the
//! bytes to the workers itself, Dask's `direct=True`). Both are answered
//! once the holders confirm (`scatter_acks.rs`).

use std::collections::HashSet;

use super::ids::{TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing, TaskState, WorkerId};
use crate::wire::messages::{Key, Payload, ScatterTarget, TaskSpec, ToClient, ToWorker};

/// Where a scatter's values go: the allowed workers (sorted by id), and
/// per value to store, `(index into the request's keys, index into the
/// allowed workers)`.
struct Placement {
    allowed: Vec<(WorkerId, WIdx)>,
    copies: Vec<(usize, usize)>,
}

impl SchedulerState {
    /// Places the values of a scatter. Keys repeated in one request count
    /// once; a key already computed, waiting or running is left alone; one
    /// in memory gets copies only with `broadcast`, on each allowed worker
    /// still without one (as Dask's broadcast does). Err: why nothing can
    /// be placed.
    fn place_scatter(&self, keys: &[&Key], restrictions: &[String], broadcast: bool) -> Result<Placement, String> {
        let mut allowed: Vec<(WorkerId, WIdx)> = self
            .worker_ids
            .iter()
            .filter(|(_, &w)| restrictions.is_empty() || restrictions.iter().any(|r| self.worker(w).matches(r)))
            .map(|(&id, &w)| (id, w))
            .collect();
        allowed.sort();
        if allowed.is_empty() {
            return Err(if self.worker_ids.is_empty() {
                "no workers connected".to_string()
            } else {
                format!("none of the workers {restrictions:?} is connected")
            });
        }
        let mut copies = Vec::new();
        let mut seen: HashSet<&str> = HashSet::new();
        let mut rr = self.scatter_rr;
        for (k, key) in keys.iter().enumerate() {
            if !seen.insert(key.as_str()) {
                continue;
            }
            let (store, held_by) = match self.task_id(key) {
                None => (true, None),
                Some(t) => {
                    let s = self.slot(t);
                    (
                        s.state == TaskState::Released,
                        (s.state == TaskState::Memory).then_some(&s.who_has),
                    )
                }
            };
            if broadcast && (store || held_by.is_some()) {
                for (i, &(_, w)) in allowed.iter().enumerate() {
                    if !held_by.is_some_and(|h| h.contains(&w)) {
                        copies.push((k, i));
                    }
                }
            } else if store {
                copies.push((k, rr % allowed.len()));
                rr = rr.wrapping_add(1);
            }
        }
        Ok(Placement { allowed, copies })
    }

    /// The task of a scattered key, made (released, no function) if new.
    fn scattered_task(&mut self, key: &Key) -> TaskId {
        if let Some(t) = self.task_id(key) {
            return t;
        }
        let f = self.intern_fn("");
        let spec = TaskSpec {
            key: key.clone(),
            function: String::new(),
            args: Vec::new(),
            priority: 0,
            workers: Vec::new(),
            allow_other_workers: false,
            retries: 0,
            resources: Vec::new(),
        };
        self.alloc_task(spec, true, f)
    }

    pub(super) fn scatter(
        &mut self,
        c: ClientId,
        request_id: u64,
        data: Vec<(Key, Payload)>,
        (restrictions, broadcast): (&[String], bool),
        out: &mut Outbox,
    ) {
        let keys: Vec<&Key> = data.iter().map(|(k, _)| k).collect();
        let Placement { allowed, copies } = match self.place_scatter(&keys, restrictions, broadcast) {
            Ok(p) => p,
            Err(error) => {
                out.messages.push(Outgoing::Client(
                    c,
                    ToClient::ScatterDone {
                        request_id,
                        error: Some(error),
                    },
                ));
                return;
            }
        };
        self.scatter_rr = self.scatter_rr.wrapping_add(if broadcast { 0 } else { copies.len() });
        // Send the data, then record it: the StoreData must precede any
        // ComputeTask that could name the new holder.
        let mut per_worker: Vec<Vec<(Key, Payload)>> = vec![Vec::new(); allowed.len()];
        for &(k, i) in &copies {
            per_worker[i].push(data[k].clone());
        }
        for (i, batch) in per_worker.into_iter().enumerate() {
            if !batch.is_empty() {
                self.send_worker(out, allowed[i].1, ToWorker::StoreData { data: batch });
            }
        }
        let mut waiting = Vec::new();
        for (k, i) in copies {
            let (key, payload) = &data[k];
            let w = allowed[i].1;
            let t = self.scattered_task(key);
            if self.slot(t).state == TaskState::Memory {
                // A further copy of a broadcast value, as a replica. The
                // StoreData follows any earlier FreeKeys of it on the
                // connection, so the holder's confirming AddKeys is for
                // this copy.
                if let Some(x) = self.slot_mut(t).extra.as_mut() {
                    x.freed_on.retain(|&x| x != w);
                }
                self.add_holder(t, w);
            } else {
                self.enter_memory(t, w, payload.len() as u64, None, out);
            }
            waiting.push((w, t));
        }
        for (key, _) in data {
            if let Some(t) = self.task_id(&key) {
                self.want(c, t, out);
            }
        }
        self.await_scatter(c, request_id, waiting, Vec::new(), out);
    }

    /// A direct scatter: places the values, tells the client where to push
    /// them (`ScatterTargets`), and answers `done_id` once each holder
    /// confirmed its values with `AddKeys`; the keys become the client's
    /// then. New keys wait released until their first holder confirms
    /// ([`Self::direct_store`]): until then no worker has the bytes, so no
    /// task may be sent to read them.
    pub(super) fn scatter_direct(
        &mut self,
        c: ClientId,
        (request_id, done_id): (u64, u64),
        keys: Vec<(Key, u64)>,
        (restrictions, broadcast): (&[String], bool),
        out: &mut Outbox,
    ) {
        let refs: Vec<&Key> = keys.iter().map(|(k, _)| k).collect();
        let Placement { allowed, copies } = match self.place_scatter(&refs, restrictions, broadcast) {
            Ok(p) => p,
            Err(error) => {
                out.messages.push(Outgoing::Client(
                    c,
                    ToClient::ScatterTargets {
                        request_id,
                        targets: Vec::new(),
                        error: Some(error),
                    },
                ));
                return;
            }
        };
        self.scatter_rr = self.scatter_rr.wrapping_add(if broadcast { 0 } else { copies.len() });
        let mut per_worker: Vec<Vec<Key>> = vec![Vec::new(); allowed.len()];
        let mut waiting = Vec::new();
        for (k, i) in copies {
            let key = &keys[k].0;
            let w = allowed[i].1;
            let t = self.scattered_task(key);
            // A worker just told to free its copy may get that FreeKeys
            // after the client's push (they travel on different
            // connections), so it is given no copy now.
            if self.slot(t).state == TaskState::Memory && self.slot(t).freed_on().contains(&w) {
                continue;
            }
            per_worker[i].push(key.clone());
            waiting.push((w, t));
        }
        let targets = per_worker
            .into_iter()
            .enumerate()
            .filter(|(_, keys)| !keys.is_empty())
            .map(|(i, keys)| ScatterTarget {
                address: self.worker(allowed[i].1).address.clone(),
                keys,
            })
            .collect();
        out.messages.push(Outgoing::Client(
            c,
            ToClient::ScatterTargets {
                request_id,
                targets,
                error: None,
            },
        ));
        let mut seen = HashSet::new();
        let wanted = keys
            .iter()
            .filter_map(|(k, _)| self.task_id(k))
            .filter(|t| seen.insert(*t))
            .collect();
        self.await_scatter(c, done_id, waiting, wanted, out);
    }
}
