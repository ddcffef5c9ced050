//! Placement: which worker runs a ready task (earliest estimated start),
//! root-task queuing by worker saturation, and the worker ranking.

use std::cmp::Ordering;

use super::ids::{FnId, TaskId, WIdx};
use super::state::SchedulerState;
use super::types::{Outbox, TaskState, WorkerId, DEEP_PIPELINE_MAX_RESULT_BYTES};
use super::workers::{Expected, WorkerSlot};
use crate::wire::messages::{DependencyLocation, ToWorker};

impl SchedulerState {
    pub(super) fn has_room(&self, ws: &WorkerSlot) -> bool {
        let threads = ws.nthreads.max(1) as u64;
        let n = ws.busy() as u64;
        if n >= self.config.max_tasks_per_thread as u64 * threads {
            return false;
        }
        if n < self.config.min_tasks_per_thread as u64 * threads {
            return true;
        }
        (ws.occupancy_ns as f64 / threads as f64) < self.config.queue_target_s * 1e9
    }

    /// Whether `f`'s tasks are measured short (at most `queue_target_s`)
    /// with small results: only those pipeline deeper than the
    /// `worker_saturation` cap (see `root_fits`).
    pub(super) fn is_light(&self, f: FnId) -> bool {
        let info = &self.fns[f as usize];
        match (info.avg_ns, info.avg_nbytes) {
            (Some(ns), Some(b)) => ns <= self.config.queue_target_s * 1e9 && b <= DEEP_PIPELINE_MAX_RESULT_BYTES,
            _ => false,
        }
    }

    /// Whether a root task of `f` may go to `ws` (which has room): a
    /// function not known to be light is capped at
    /// `ceil(nthreads × worker_saturation)` processing tasks (Dask's
    /// queuing); a light one only by `has_room`.
    pub(super) fn root_fits(&self, ws: &WorkerSlot, f: FnId) -> bool {
        self.is_light(f) || (ws.busy() as f64) < self.saturation_cap(ws)
    }

    /// `ceil(nthreads × worker_saturation)`, at least 1.
    pub(super) fn saturation_cap(&self, ws: &WorkerSlot) -> f64 {
        (ws.nthreads.max(1) as f64 * self.config.worker_saturation)
            .ceil()
            .max(1.0)
    }

    pub(super) fn update_rank(&mut self, w: WIdx) {
        let ws = self.worker(w);
        let new = (ws.occupancy_ns / ws.nthreads.max(1) as u64, ws.busy() as u32, ws.id, w);
        let old = ws.rank;
        let roomy = self.has_room(ws);
        let was_roomy = ws.roomy;
        if old != new {
            self.ranked.remove(&old);
            self.ranked.insert(new);
        }
        let ws = self.worker_mut(w);
        ws.rank = new;
        ws.roomy = roomy;
        match (was_roomy, roomy) {
            (false, true) => self.nroomy += 1,
            (true, false) => self.nroomy -= 1,
            _ => {}
        }
    }

    /// Seconds to bring `t`'s missing inputs to `w`: a round trip
    /// (`fetch_latency_s`) plus bytes ÷ bandwidth (Dask's steal cost; the
    /// work queued on `w` is not part of it).
    pub(super) fn transfer_time(&self, t: TaskId, w: WIdx) -> f64 {
        self.estimate(t, w).fetch_s()
    }

    /// The parts of `t`'s estimated start on `w`.
    fn estimate(&self, t: TaskId, w: WIdx) -> StartEstimate {
        let ws = self.worker(w);
        let mut bytes = 0u64;
        let mut missing = false;
        for &d in &self.slot(t).dependencies {
            let ds = self.slot(d);
            if !ds.who_has.contains(&w) {
                bytes += ds.nbytes;
                missing = true;
            }
        }
        let threads = ws.nthreads.max(1) as f64;
        StartEstimate {
            latency_s: if missing { self.config.fetch_latency_s } else { 0.0 },
            bytes_s: bytes as f64 / self.bandwidth,
            measured_s: (ws.occupancy_ns - ws.guessed_ns) as f64 / threads / 1e9,
            queued_fetch_s: ws.fetch_ns as f64 / threads / 1e9,
            guessed_s: ws.guessed_ns as f64 / threads / 1e9,
        }
    }

    /// How many consecutive root tasks of light function `f` go to one
    /// worker: `root_run_length`, cut to about `queue_target_s` of work
    /// (a run may overshoot a worker's room by that much), a power of two
    /// so that runs stay aligned with the usual fan-ins.
    fn run_length(&self, f: FnId) -> u64 {
        let cap = self.config.root_run_length.max(1) as u64;
        let by_work = match self.fns[f as usize].avg_ns {
            Some(ns) if ns > 0.0 => (self.config.queue_target_s * 1e9 / ns) as u64,
            _ => 1,
        };
        let n = cap.min(by_work).max(1);
        1 << (63 - n.leading_zeros())
    }

    /// The worker taking `f`'s current run of root tasks, if that run goes
    /// on (only for light functions, whose many short tasks are worth
    /// keeping together: `SchedulerConfig::root_run_length`).
    fn run_worker(&self, f: FnId) -> Option<WIdx> {
        let info = &self.fns[f as usize];
        let w = info.run_worker?;
        let live = self.workers.get(w.0 as usize).is_some_and(|x| x.is_some());
        // A function with nothing queued or processing starts a new batch:
        // its first task goes to the best worker, not after the last run
        // (which may be busy with something long by now).
        let busy = info.counts[TaskState::Queued.index()] + info.counts[TaskState::Processing.index()] > 0;
        let mid_run = busy && info.roots_taken % self.run_length(f) != 0;
        (mid_run && live && self.is_light(f)).then_some(w)
    }

    /// Counts a root task of `f` going to `w` (before `t` changes state:
    /// the count starts again when `f` has nothing queued or processing).
    fn note_root(&mut self, f: FnId, w: WIdx) {
        let info = &mut self.fns[f as usize];
        if info.counts[TaskState::Queued.index()] == 0 && info.counts[TaskState::Processing.index()] == 0 {
            info.roots_taken = 0;
        }
        info.roots_taken += 1;
        info.run_worker = Some(w);
    }

    /// The candidate where `t` starts earliest (ties: fewest tasks
    /// processing, then the lower worker id), among those the first-sight
    /// rule admits: moving inputs away from the candidate that needs the
    /// fewest bytes moved (the "holder") must be paid by known work
    /// (measured durations, queued fetches), never by a guess. A task of a function never measured counts
    /// `default_task_duration_s` (0.5 s) in its worker's queue; without
    /// the rule, consumers of large inputs pinned on one worker looked
    /// better off moving them once a few of them sat there on that guess
    /// (`docs/scheduling.md`, "Placement on first sight"). With every
    /// queue measured the rule admits every candidate that would win, so
    /// the choice is plain earliest start.
    pub(super) fn best_worker(&self, t: TaskId, candidates: &[WIdx]) -> Option<WIdx> {
        if let [only] = candidates {
            return Some(*only);
        }
        let ests: Vec<(StartEstimate, WIdx)> = candidates.iter().map(|&w| (self.estimate(t, w), w)).collect();
        let key = |e: &StartEstimate, w: WIdx| {
            let ws = self.worker(w);
            (e.start(), ws.processing.len(), ws.id)
        };
        let holder = if self.config.first_sight_locality {
            ests.iter()
                .min_by(|(a, x), (b, y)| {
                    a.bytes_s
                        .total_cmp(&b.bytes_s)
                        .then_with(|| key(a, *x).partial_cmp(&key(b, *y)).unwrap_or(Ordering::Equal))
                })
                .map(|(e, _)| *e)
        } else {
            None
        };
        let admitted = |e: &StartEstimate| {
            holder.is_none_or(|h| {
                // Extra bytes worth a round trip or less are let through:
                // they cost no more than the message that asks for them.
                let extra = e.bytes_s - h.bytes_s;
                // The holder's lead in measured work alone keeps the rule
                // out of the way when nothing is guessed (a candidate that
                // starts earlier always fits in it); the lead with queued
                // fetches counted lets a burst of consumers spread when the
                // holder's queue is mostly fetches.
                let lead = (h.measured_s - e.measured_s).max(h.known_s() - e.known_s()).max(0.0);
                extra <= self.config.fetch_latency_s + lead
            })
        };
        let mut best: Option<((f64, usize, WorkerId), WIdx)> = None;
        for (e, w) in &ests {
            if !admitted(e) {
                continue;
            }
            let k = key(e, *w);
            if best.as_ref().is_none_or(|(b, _)| k < *b) {
                best = Some((k, *w));
            }
        }
        best.map(|b| b.1)
    }

    /// Places a ready, detached task: processing, queued or no-worker.
    pub(super) fn place(&mut self, t: TaskId, out: &mut Outbox) {
        let s = self.slot(t);
        let f = s.func;
        if self.fns[f as usize].nworkers == 0 {
            self.enter_no_worker(t, out);
            return;
        }
        let mut restricted = false;
        let resources = s.resources();
        if let Some(extra) = s.restrictions() {
            let mut cands: Vec<WIdx> = Vec::new();
            for r in &extra.restrictions {
                let w = self.worker_names.get(r).or_else(|| self.worker_addrs.get(r));
                if let Some(&w) = w {
                    let ws = self.worker(w);
                    if ws.has_fn(f) && ws.satisfies(resources) && !cands.contains(&w) {
                        cands.push(w);
                    }
                }
            }
            if let Some(w) = self.best_worker(t, &cands) {
                self.assign(t, w, out);
                return;
            }
            if !extra.allow_other_workers {
                self.enter_no_worker(t, out);
                return;
            }
            restricted = true;
        }
        if s.dependencies.is_empty() && !restricted && resources.is_empty() {
            // Root task: only onto a worker with room, else queue; the
            // current run's worker first while it has room.
            if let Some(w) = self.run_worker(f) {
                let ws = self.worker(w);
                if ws.roomy && ws.has_fn(f) && self.root_fits(ws, f) {
                    self.note_root(f, w);
                    self.assign(t, w, out);
                    return;
                }
            }
            if self.nroomy > 0 {
                let found = self.ranked.iter().map(|r| r.3).find(|&w| {
                    let ws = self.worker(w);
                    ws.roomy && ws.has_fn(f) && self.root_fits(ws, f)
                });
                if let Some(w) = found {
                    self.note_root(f, w);
                    self.assign(t, w, out);
                    return;
                }
            }
            self.enter_queued(t);
            return;
        }
        // Candidates: workers holding dependencies, plus the least occupied.
        let mut cands: Vec<WIdx> = Vec::new();
        for &d in &s.dependencies {
            for &w in &self.slot(d).who_has {
                if !cands.contains(&w) && self.worker(w).has_fn(f) && self.worker(w).satisfies(resources) {
                    cands.push(w);
                }
            }
        }
        if let Some(w) = self.ranked.iter().map(|r| r.3).find(|&w| {
            let ws = self.worker(w);
            ws.has_fn(f) && ws.satisfies(resources)
        }) {
            if !cands.contains(&w) {
                cands.push(w);
            }
        }
        match self.best_worker(t, &cands) {
            Some(w) => self.assign(t, w, out),
            None => self.enter_no_worker(t, out),
        }
    }

    pub(super) fn assign(&mut self, t: TaskId, w: WIdx, out: &mut Outbox) {
        let f = self.slot(t).func;
        // Its inputs' fetch is known work too (Dask counts it in
        // occupancy); kept apart, for the first-sight rule only.
        let fetch_ns = if self.config.first_sight_locality {
            (self.estimate(t, w).fetch_s() * 1e9) as u64
        } else {
            0
        };
        let e = Expected {
            ns: self.expected_ns(f),
            guessed: self.fns[f as usize].avg_ns.is_none(),
            fetch_ns,
        };
        // The ComputeTask follows any earlier FreeKeys on the connection.
        if let Some(x) = self.slot_mut(t).extra.as_mut() {
            x.freed_on.retain(|&x| x != w);
        }
        let run_id = self.next_run_id(t);
        self.slot_mut(t).run = run_id;
        let ws = self.worker_mut(w);
        ws.processing.insert(t, e);
        ws.load(e);
        self.update_rank(w);
        self.slot_mut(t).processing_on = Some(w);
        self.set_state(t, TaskState::Processing);
        let s = self.slot(t);
        let dependencies = s
            .dependencies
            .iter()
            .map(|&d| {
                let ds = self.slot(d);
                DependencyLocation {
                    key: ds.key.clone(),
                    who_has: self.addresses(&ds.who_has),
                    nbytes: ds.nbytes,
                }
            })
            .collect();
        let msg = ToWorker::ComputeTask {
            key: s.key.clone(),
            function: self.fns[f as usize].name.clone(),
            args: s.args.to_vec(),
            dependencies,
            priority: s.priority,
            sequence: s.sequence,
            resources: s.resources().to_vec(),
            run_id,
        };
        self.send_worker(out, w, msg);
    }

    /// Pulls queued root tasks onto `w` while it has room, best first;
    /// a light function's task comes with the next ones of its queue, up
    /// to a run of `root_run_length`, so that neighbours stay together
    /// even when the workers free their slots one at a time.
    pub(super) fn drain(&mut self, w: WIdx, out: &mut Outbox) {
        while !self.queued_fns.is_empty() && self.worker(w).roomy {
            let ws = self.worker(w);
            let best = self
                .queued_fns
                .iter()
                .filter(|&&f| ws.has_fn(f) && self.root_fits(ws, f))
                .filter_map(|&f| self.fns[f as usize].queue.first().copied())
                .min();
            let Some((_, _, t)) = best else {
                break;
            };
            self.note_root(self.slot(t).func, w);
            self.detach(t, false, out);
            self.assign(t, w, out);
            let f = self.slot(t).func;
            while let Some(next) = self.run_worker(f).filter(|&x| x == w).and_then(|_| self.next_queued(f)) {
                self.note_root(f, w);
                self.detach(next, false, out);
                self.assign(next, w, out);
            }
        }
    }

    /// The first queued root task of `f`, if any.
    fn next_queued(&self, f: FnId) -> Option<TaskId> {
        self.fns[f as usize].queue.first().map(|&(_, _, t)| t)
    }
}

/// The parts of a task's estimated start on a worker, seconds.
#[derive(Clone, Copy, Debug)]
struct StartEstimate {
    /// A round trip (`fetch_latency_s`) if some input is missing there.
    latency_s: f64,
    /// The missing inputs' bytes ÷ bandwidth.
    bytes_s: f64,
    /// Work queued there whose functions were measured, per thread.
    measured_s: f64,
    /// The fetches its queued tasks wait for (known from their inputs'
    /// sizes), per thread: counted as known work by the first-sight rule
    /// only, not in `start` (which stays Dask's objective).
    queued_fetch_s: f64,
    /// Work queued there on a guess (functions not measured when
    /// assigned), per thread.
    guessed_s: f64,
}

impl StartEstimate {
    /// Dask's `worker_objective`: transfer plus queue wait.
    fn start(&self) -> f64 {
        self.fetch_s() + self.measured_s + self.guessed_s
    }
    /// The work queued there that is known, not guessed.
    fn known_s(&self) -> f64 {
        self.measured_s + self.queued_fetch_s
    }
    /// The missing inputs' fetch.
    fn fetch_s(&self) -> f64 {
        self.latency_s + self.bytes_s
    }
}
