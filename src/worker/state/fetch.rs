//! Dependencies fetched from peers: the per-peer fetch queue, batched
//! requests (one outstanding per peer), their answers, and replicas the
//! scheduler asks this worker to hold.

use std::collections::BTreeMap;

use bytes::Bytes;

use super::{TaskEntry, WorkerEffect, WorkerState, WorkerTaskState};
use crate::wire::messages::{DependencyLocation, FromWorker, Key, Payload};

/// Byte budget of one `Fetch` request (Dask's `transfer_message_bytes_limit`),
/// so one huge batch does not hold a connection for minutes. A request always
/// carries at least one key, however large.
pub const FETCH_BATCH_BYTES: u64 = 50 * 1024 * 1024;

/// Keys in `fetch` state, listed under every peer that holds them, so that
/// the peer with the most wanted keys can be found and asked for all of them
/// in one request.
#[derive(Debug, Default)]
pub(super) struct FetchQueue {
    pub(super) by_worker: BTreeMap<String, BTreeMap<u64, Key>>,
}

impl FetchQueue {
    pub(super) fn add(&mut self, worker: &str, seq: u64, key: &Key) {
        match self.by_worker.get_mut(worker) {
            Some(q) => {
                q.insert(seq, key.clone());
            }
            None => {
                self.by_worker
                    .insert(worker.to_owned(), BTreeMap::from([(seq, key.clone())]));
            }
        }
    }

    pub(super) fn add_all(&mut self, workers: &[String], seq: u64, key: &Key) {
        for w in workers {
            self.add(w, seq, key);
        }
    }

    pub(super) fn remove_all(&mut self, workers: &[String], seq: u64) {
        for w in workers {
            if let Some(q) = self.by_worker.get_mut(w) {
                q.remove(&seq);
                if q.is_empty() {
                    self.by_worker.remove(w);
                }
            }
        }
    }
}

#[derive(Debug)]
pub(super) struct InFlight {
    pub(super) id: u64,
    pub(super) keys: Vec<Key>,
}

impl WorkerState {
    /// A fetch from `worker` returned: Some(bytes) for keys it had, None for
    /// keys it did not. Requested keys missing from `data` count as None.
    pub fn fetch_finished(&mut self, worker: &str, data: Vec<(Key, Option<Bytes>)>, out: &mut Vec<WorkerEffect>) {
        let Some(InFlight { id, keys: requested }) = self.in_flight.remove(worker) else {
            return;
        };
        for (key, value) in data {
            if !self.tasks.get(&key).is_some_and(|e| e.in_flight_as(id)) {
                continue;
            }
            match value {
                Some(bytes) => self.fetched(&key, bytes, out),
                None => self.missing(worker, &key, out),
            }
        }
        self.fail_requested(worker, id, requested, out);
        self.ensure_executing(out);
        self.ensure_fetching(out);
        self.flush(out);
    }

    /// A fetch from `worker` failed entirely (connection refused/closed/bad
    /// reply). `_keys` is ignored: the keys requested from `worker` are
    /// known here, and are the ones that count.
    pub fn fetch_failed(&mut self, worker: &str, _keys: Vec<Key>, out: &mut Vec<WorkerEffect>) {
        let Some(InFlight { id, keys: requested }) = self.in_flight.remove(worker) else {
            return;
        };
        self.fail_requested(worker, id, requested, out);
        self.ensure_executing(out);
        self.ensure_fetching(out);
        self.flush(out);
    }

    pub(super) fn fetched(&mut self, key: &Key, bytes: Bytes, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        if e.state == WorkerTaskState::Cancelled {
            self.tasks.remove(key);
            return;
        }
        let deferred = e.deferred.take();
        e.held = true;
        let nbytes = bytes.len() as u64;
        let inline = (deferred.is_some() && nbytes <= self.config.inline_limit).then(|| Payload(bytes.clone()));
        self.put_in_memory(key, bytes, out);
        if deferred.is_some() {
            // The scheduler asked us to compute it: answer as a compute.
            out.push(WorkerEffect::Send(FromWorker::TaskFinished {
                key: key.clone(),
                nbytes,
                inline,
                duration_us: 0,
                thread: 0,
                run_id: deferred.map_or(0, |d| d.run_id),
            }));
        } else {
            self.add_keys.push((key.clone(), nbytes));
        }
    }

    pub(super) fn missing(&mut self, worker: &str, key: &Key, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        e.flight_id = 0;
        e.who_has.retain(|w| w != worker);
        out.push(WorkerEffect::Send(FromWorker::MissingData {
            key: key.clone(),
            errant_worker: worker.to_owned(),
        }));
        if e.state == WorkerTaskState::Cancelled {
            self.tasks.remove(key);
            return;
        }
        if let Some(req) = e.deferred.take() {
            self.start_compute(key.clone(), *req);
            return;
        }
        // With no holder left it stays in fetch, queued nowhere, until the
        // scheduler names new holders or frees its dependents.
        e.state = WorkerTaskState::Fetch;
        e.fetch_seq = self.next_fetch_seq;
        self.next_fetch_seq += 1;
        self.fetch_queue.add_all(&e.who_has, e.fetch_seq, key);
    }

    /// Every key still in flight under fetch `id` from `worker` is missing.
    pub(super) fn fail_requested(&mut self, worker: &str, id: u64, requested: Vec<Key>, out: &mut Vec<WorkerEffect>) {
        for key in requested {
            if self.tasks.get(&key).is_some_and(|e| e.in_flight_as(id)) {
                self.missing(worker, &key, out);
            }
        }
    }

    pub(super) fn ensure_fetching(&mut self, out: &mut Vec<WorkerEffect>) {
        while self.in_flight.len() < self.config.max_concurrent_fetches as usize {
            // The idle peer with the most wanted keys: one request, many keys.
            let mut best: Option<(&String, usize)> = None;
            for (w, q) in &self.fetch_queue.by_worker {
                if !self.in_flight.contains_key(w) && best.is_none_or(|(_, n)| q.len() > n) {
                    best = Some((w, q.len()));
                }
            }
            let Some((worker, _)) = best else {
                break;
            };
            let worker = worker.clone();
            let mut keys = Vec::new();
            let mut bytes = 0u64;
            if let Some(q) = self.fetch_queue.by_worker.get(&worker) {
                for key in q.values() {
                    let nbytes = self.tasks.get(key).map_or(0, |e| e.nbytes);
                    if !keys.is_empty() && bytes.saturating_add(nbytes) > FETCH_BATCH_BYTES {
                        break;
                    }
                    bytes = bytes.saturating_add(nbytes);
                    keys.push(key.clone());
                }
            }
            self.next_fetch_id += 1;
            let id = self.next_fetch_id;
            for key in &keys {
                if let Some(e) = self.tasks.get_mut(key) {
                    self.fetch_queue.remove_all(&e.who_has, e.fetch_seq);
                    e.state = WorkerTaskState::Flight;
                    e.flight_id = id;
                }
            }
            self.in_flight
                .insert(worker.clone(), InFlight { id, keys: keys.clone() });
            out.push(WorkerEffect::Fetch { worker, keys });
        }
    }

    /// The scheduler asks this worker to keep a copy of `loc.key` (another
    /// worker retires): fetch it unless it is here or coming, and hold it.
    /// Once in memory it is announced in `AddKeys`.
    pub(super) fn acquire_replica(&mut self, loc: DependencyLocation) {
        let DependencyLocation { key, who_has, nbytes } = loc;
        match self.tasks.get_mut(&key) {
            None => {
                let seq = self.next_fetch_seq;
                self.next_fetch_seq += 1;
                let mut e = TaskEntry::new(WorkerTaskState::Fetch);
                e.held = true;
                e.nbytes = nbytes;
                e.fetch_seq = seq;
                for w in who_has {
                    if !e.who_has.contains(&w) {
                        e.who_has.push(w);
                    }
                }
                self.fetch_queue.add_all(&e.who_has, seq, &key);
                self.tasks.insert(key, e);
            }
            Some(e) => match e.state {
                WorkerTaskState::Memory => {
                    e.held = true;
                    self.add_keys.push((key, e.nbytes));
                }
                WorkerTaskState::Fetch => {
                    e.held = true;
                    for w in who_has {
                        if !e.who_has.contains(&w) {
                            self.fetch_queue.add(&w, e.fetch_seq, &key);
                            e.who_has.push(w);
                        }
                    }
                }
                WorkerTaskState::Cancelled if e.cancelled_from == WorkerTaskState::Flight => {
                    e.held = true;
                    e.state = WorkerTaskState::Flight;
                }
                WorkerTaskState::Error => {
                    e.held = true;
                    e.state = WorkerTaskState::Fetch;
                    e.nbytes = nbytes;
                    e.who_has = who_has;
                    e.fetch_seq = self.next_fetch_seq;
                    self.next_fetch_seq += 1;
                    self.fetch_queue.add_all(&e.who_has, e.fetch_seq, &key);
                }
                // Coming anyway (`fetched` announces it), or being computed
                // here: the scheduler learns of it when that ends.
                _ => e.held = true,
            },
        }
    }
}
