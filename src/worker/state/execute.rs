//! Tasks to run here: `ComputeTask` and its dependencies, the ready queue,
//! handing tasks to threads (within declared resources), and their results.

use std::cmp::Reverse;
use std::collections::HashSet;

use bytes::Bytes;

use super::{ComputeRequest, TaskEntry, WorkerEffect, WorkerState, WorkerTaskState};
use crate::wire::messages::{Arg, DependencyLocation, FromWorker, Key, Payload, TaskFailure};

/// Slack when comparing resource amounts, so that amounts given back in
/// another order than taken (float sums) still cover a request.
const RESOURCE_EPSILON: f64 = 1e-9;

impl WorkerState {
    /// A task run finished on the pool: Ok(serialized result) or
    /// Err(failure). duration_us = measured run time; `thread` = the pool
    /// thread's lane that ran it.
    pub fn task_finished(
        &mut self,
        key: Key,
        result: Result<Bytes, TaskFailure>,
        duration_us: u64,
        thread: u32,
        out: &mut Vec<WorkerEffect>,
    ) {
        let Some(e) = self.tasks.get_mut(&key) else {
            return;
        };
        if !e.on_thread {
            return;
        }
        e.on_thread = false;
        // A long-running task gave its count back when it seceded.
        if !std::mem::take(&mut e.long_running) {
            self.running -= 1;
        }
        if !e.resources.is_empty() {
            for (name, amount) in &e.resources {
                if let Some(a) = self.available.iter_mut().find(|(n, _)| n == name) {
                    a.1 += amount;
                }
            }
        }
        let deps = std::mem::take(&mut e.dependencies);
        let run_id = e.run_id;
        match e.state {
            WorkerTaskState::Executing => {
                let held = e.held;
                match result {
                    Ok(bytes) => {
                        let nbytes = bytes.len() as u64;
                        let inline = (held && nbytes <= self.config.inline_limit).then(|| Payload(bytes.clone()));
                        self.put_in_memory(&key, bytes, out);
                        if held {
                            out.push(WorkerEffect::Send(FromWorker::TaskFinished {
                                key: key.clone(),
                                nbytes,
                                inline,
                                duration_us,
                                thread,
                                run_id,
                            }));
                        }
                    }
                    Err(failure) => {
                        // Kept even when not held: local dependents still
                        // point at it until the scheduler frees them.
                        e.state = WorkerTaskState::Error;
                        if held {
                            out.push(WorkerEffect::Send(FromWorker::TaskErred {
                                key: key.clone(),
                                failure,
                                run_id,
                            }));
                        }
                    }
                }
            }
            WorkerTaskState::Cancelled => {
                self.tasks.remove(&key);
            }
            // StoreData overtook the run: the stored value wins.
            _ => {}
        }
        self.release_dependencies(&key, deps);
        if self.tasks.get(&key).is_some_and(|e| !e.held && e.dependents.is_empty()) {
            self.release_unneeded(vec![key]);
        }
        self.ensure_executing(out);
        self.flush(out);
    }

    pub(super) fn compute_task(&mut self, key: Key, req: ComputeRequest, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(&key) else {
            self.start_compute(key, req);
            return;
        };
        e.held = true;
        // The latest assignment's run is the one to report, whichever run
        // of the key is under way here.
        e.run_id = req.run_id;
        match e.state {
            WorkerTaskState::Memory => {
                out.push(WorkerEffect::Send(FromWorker::TaskFinished {
                    nbytes: e.nbytes,
                    key,
                    inline: None,
                    duration_us: 0,
                    thread: 0,
                    run_id: req.run_id,
                }));
            }
            WorkerTaskState::Waiting | WorkerTaskState::Ready | WorkerTaskState::Executing => {}
            WorkerTaskState::Cancelled => {
                e.state = e.cancelled_from;
                if e.state == WorkerTaskState::Flight {
                    e.deferred = Some(Box::new(req));
                }
            }
            WorkerTaskState::Flight => e.deferred = Some(Box::new(req)),
            WorkerTaskState::Fetch => {
                self.fetch_queue.remove_all(&e.who_has, e.fetch_seq);
                e.who_has.clear();
                self.start_compute(key, req);
            }
            WorkerTaskState::Error => self.start_compute(key, req),
        }
    }

    /// Makes `key` a task to run here (new, or replacing a fetch/error entry
    /// that is in no queue), linked to its dependencies.
    pub(super) fn start_compute(&mut self, key: Key, req: ComputeRequest) {
        let ComputeRequest {
            function,
            args,
            mut dependencies,
            priority,
            sequence,
            resources,
            run_id,
        } = req;
        // Guards Execute's promise that every key of the args is in the
        // store, even if a scheduler forgets to list one. A set, since a
        // list argument may name thousands of keys.
        if args.iter().any(|a| a.key_count() > 0) {
            let mut seen: HashSet<&str> = dependencies.iter().map(|d| d.key.as_str()).collect();
            let unlisted: Vec<DependencyLocation> = args
                .iter()
                .flat_map(Arg::keys)
                .filter(|k| seen.insert(k.as_str()))
                .map(|k| DependencyLocation {
                    key: k.clone(),
                    who_has: Vec::new(),
                    nbytes: 0,
                })
                .collect();
            dependencies.extend(unlisted);
        }
        let mut dep_keys = Vec::with_capacity(dependencies.len());
        let mut waiting_on = 0u32;
        for loc in dependencies {
            if loc.key == key {
                // Malformed self-dependency: never ready, freed as usual.
                waiting_on += 1;
                continue;
            }
            if let Some((k, in_memory)) = self.link_dependency(&key, loc) {
                waiting_on += u32::from(!in_memory);
                dep_keys.push(k);
            }
        }
        let state = if waiting_on == 0 {
            self.ready.push((priority, Reverse(sequence), key.clone()));
            self.ready_count += 1;
            WorkerTaskState::Ready
        } else {
            WorkerTaskState::Waiting
        };
        let e = self.tasks.entry(key).or_insert_with(|| TaskEntry::new(state));
        e.state = state;
        e.held = true;
        e.priority = priority;
        e.sequence = sequence;
        e.run = Some((function, args));
        e.resources = resources;
        e.deferred = None;
        e.dependencies = dep_keys;
        e.waiting_on = waiting_on;
        e.who_has = Vec::new();
        e.flight_id = 0;
        e.run_id = run_id;
    }

    /// Records that `dependent` reads `loc.key`. Returns the key and whether
    /// it is in memory, or None if `dependent` already reads it.
    pub(super) fn link_dependency(&mut self, dependent: &Key, loc: DependencyLocation) -> Option<(Key, bool)> {
        let DependencyLocation { key, who_has, nbytes } = loc;
        let Some(e) = self.tasks.get_mut(&key) else {
            let seq = self.next_fetch_seq;
            self.next_fetch_seq += 1;
            let mut e = TaskEntry::new(WorkerTaskState::Fetch);
            e.nbytes = nbytes;
            e.fetch_seq = seq;
            e.dependents.insert(dependent.clone());
            for w in who_has {
                if !e.who_has.contains(&w) {
                    e.who_has.push(w);
                }
            }
            self.fetch_queue.add_all(&e.who_has, seq, &key);
            self.tasks.insert(key.clone(), e);
            return Some((key, false));
        };
        if !e.dependents.insert(dependent.clone()) {
            return None;
        }
        let queued = match e.state {
            WorkerTaskState::Memory => return Some((key, true)),
            WorkerTaskState::Waiting | WorkerTaskState::Ready | WorkerTaskState::Executing => {
                return Some((key, false))
            }
            WorkerTaskState::Fetch => true,
            WorkerTaskState::Flight => false,
            WorkerTaskState::Cancelled => {
                e.state = e.cancelled_from;
                if e.state == WorkerTaskState::Executing {
                    return Some((key, false));
                }
                false
            }
            WorkerTaskState::Error => {
                // Erred here, yet the scheduler says a peer has it.
                e.state = WorkerTaskState::Fetch;
                e.nbytes = nbytes;
                e.who_has.clear();
                e.fetch_seq = self.next_fetch_seq;
                self.next_fetch_seq += 1;
                true
            }
        };
        for w in who_has {
            if !e.who_has.contains(&w) {
                if queued {
                    self.fetch_queue.add(&w, e.fetch_seq, &key);
                }
                e.who_has.push(w);
            }
        }
        Some((key, false))
    }

    /// A task's thread seceded from the pool to wait for tasks it
    /// submitted (Dask's `long-running`): it stops counting against
    /// `nthreads`, so the next ready task starts, and the scheduler is told
    /// so that it stops counting it too. Its resources stay taken until it
    /// finishes.
    pub fn task_seceded(&mut self, key: &str, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        if !e.on_thread || e.long_running {
            return;
        }
        e.long_running = true;
        self.running -= 1;
        if e.held && e.state == WorkerTaskState::Executing {
            out.push(WorkerEffect::Send(FromWorker::LongRunning { key: key.to_owned() }));
        }
        self.ensure_executing(out);
    }

    pub(super) fn ensure_executing(&mut self, out: &mut Vec<WorkerEffect>) {
        // Ready tasks waiting for resources, put back after the loop.
        let mut blocked = Vec::new();
        while !self.paused && self.running < self.config.nthreads as usize {
            let Some(item) = self.ready.pop() else {
                break;
            };
            let Some(e) = self.tasks.get_mut(&item.2) else {
                continue;
            };
            if e.state != WorkerTaskState::Ready {
                continue;
            }
            if !e.resources.is_empty() {
                let free = e.resources.iter().all(|(name, amount)| {
                    self.available
                        .iter()
                        .any(|(n, a)| n == name && *a >= *amount - RESOURCE_EPSILON)
                });
                if !free {
                    blocked.push(item);
                    continue;
                }
                for (name, amount) in &e.resources {
                    if let Some(a) = self.available.iter_mut().find(|(n, _)| n == name) {
                        a.1 -= amount;
                    }
                }
            }
            let key = item.2;
            e.state = WorkerTaskState::Executing;
            e.on_thread = true;
            self.ready_count -= 1;
            self.running += 1;
            let (function, args) = e.run.take().unwrap_or_default();
            if e.run_id != 0 {
                self.started.push(e.run_id);
            } else {
                self.started_keys.push(key.clone());
            }
            out.push(WorkerEffect::Execute { key, function, args });
        }
        self.ready.extend(blocked);
        if self.ready_count == 0 {
            self.ready.clear();
        } else if self.ready.len() > 2 * self.ready_count + 1024 {
            let tasks = &self.tasks;
            self.ready
                .retain(|(_, _, k)| tasks.get(k).is_some_and(|e| e.state == WorkerTaskState::Ready));
        }
    }
}
