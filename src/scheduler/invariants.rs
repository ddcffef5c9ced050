//! Consistency checks of the whole state, for tests and debugging: every
//! redundant record (counters, indices, both directions of a relation) is
//! recomputed from the task and worker tables and compared.

use std::collections::BTreeSet;

use super::ids::{FnId, TaskId, WIdx};
use super::state::SchedulerState;
use super::types::TaskState;
use crate::util::FxSet;

/// Returns `Err` with the formatted message when the condition fails.
macro_rules! ensure {
    ($cond:expr, $($msg:tt)+) => {
        if !$cond {
            return Err(format!($($msg)+));
        }
    };
}

impl SchedulerState {
    /// Cross-checks task states against worker `processing` / `has_what`,
    /// dependencies against dependents, wanted-by against clients, queue
    /// membership, per-state counts, worker occupancy and ranking, and that
    /// no forgotten task is referenced. Meant to hold between events (after
    /// any public method returned). O(tasks + workers): for tests.
    pub fn check_invariants(&self) -> Result<(), String> {
        ensure!(
            self.candidates.is_empty() && self.dirty_workers.is_empty(),
            "deferred work left after an event"
        );
        self.check_tasks()?;
        self.check_workers()?;
        self.check_queues()?;
        self.check_side_tables()
    }

    fn live_task(&self, t: TaskId) -> bool {
        self.tasks
            .get(t.0 as usize)
            .is_some_and(|s| s.state != TaskState::Forgotten)
    }

    fn live_worker(&self, w: WIdx) -> bool {
        self.workers.get(w.0 as usize).is_some_and(|x| x.is_some())
    }

    fn check_tasks(&self) -> Result<(), String> {
        let mut counts = [0u64; 8];
        let mut fn_counts = vec![[0u64; 8]; self.fns.len()];
        let mut live = 0;
        let free: FxSet<TaskId> = self.free_tasks.iter().copied().collect();
        ensure!(free.len() == self.free_tasks.len(), "a slot is free twice");
        for (i, s) in self.tasks.iter().enumerate() {
            let t = TaskId(i as u32);
            if s.state == TaskState::Forgotten {
                ensure!(free.contains(&t), "forgotten slot {i} not on the free list");
                continue;
            }
            ensure!(!free.contains(&t), "{:?} is live but on the free list", s.key);
            live += 1;
            counts[s.state.index()] += 1;
            fn_counts[s.func as usize][s.state.index()] += 1;
            let k = &s.key;
            ensure!(self.task_id(k) == Some(t), "{k:?} not indexed by its key");

            // Dependencies and dependents, both directions.
            let mut missing = 0;
            for &d in &s.dependencies {
                ensure!(self.live_task(d), "{k:?} depends on a forgotten task");
                let ds = self.slot(d);
                ensure!(
                    ds.dependents.iter().any(|r| r.id == t && r.gen == s.gen),
                    "{:?} does not list dependent {k:?}",
                    ds.key
                );
                if ds.state != TaskState::Memory {
                    missing += 1;
                }
            }
            let (mut nlive, mut nactive) = (0, 0);
            for &r in &s.dependents {
                if !self.is_live(r) {
                    continue;
                }
                nlive += 1;
                let ds = self.slot(r.id);
                ensure!(
                    ds.dependencies.contains(&t),
                    "dependent {:?} does not list dependency {k:?}",
                    ds.key
                );
                if ds.state.is_active() {
                    nactive += 1;
                }
            }
            ensure!(
                s.live_dependents == nlive,
                "{k:?}: live_dependents {} != {nlive}",
                s.live_dependents
            );
            ensure!(
                s.active_dependents == nactive,
                "{k:?}: active_dependents {} != {nactive}",
                s.active_dependents
            );

            // The state against its containers.
            match s.state {
                TaskState::Waiting => {
                    ensure!(missing > 0, "{k:?} waiting with every dependency in memory");
                    ensure!(
                        s.waiting_on == missing,
                        "{k:?}: waiting_on {} != {missing}",
                        s.waiting_on
                    );
                }
                TaskState::Processing | TaskState::Queued | TaskState::NoWorker => {
                    ensure!(
                        missing == 0,
                        "{k:?} is {} with a dependency not in memory",
                        s.state.name()
                    );
                }
                _ => {}
            }
            match (s.state, s.processing_on) {
                (TaskState::Processing, Some(w)) => {
                    ensure!(self.live_worker(w), "{k:?} processing on a removed worker");
                    ensure!(
                        self.worker(w).processing.contains_key(&t),
                        "{k:?} processing on {} which does not list it",
                        self.worker(w).name
                    );
                }
                (TaskState::Processing, None) => return Err(format!("{k:?} processing nowhere")),
                (_, Some(_)) => return Err(format!("{k:?} is {} but has processing_on", s.state.name())),
                (_, None) => {}
            }
            ensure!(
                (s.state == TaskState::Memory) != s.who_has.is_empty(),
                "{k:?} is {} with {} holders",
                s.state.name(),
                s.who_has.len()
            );
            let holders: BTreeSet<WIdx> = s.who_has.iter().copied().collect();
            ensure!(holders.len() == s.who_has.len(), "{k:?} lists a holder twice");
            for &w in &s.who_has {
                ensure!(self.live_worker(w), "{k:?} held by a removed worker");
                ensure!(
                    self.worker(w).has_what.contains(&t),
                    "{k:?} held by {} which does not list it",
                    self.worker(w).name
                );
            }
            ensure!(
                s.state != TaskState::Erred || s.failure().is_some(),
                "{k:?} erred without a failure"
            );

            // Wanted by: both directions.
            let wanters: BTreeSet<_> = s.wanted_by.iter().copied().collect();
            ensure!(wanters.len() == s.wanted_by.len(), "{k:?} wanted twice by a client");
            for c in &s.wanted_by {
                ensure!(
                    self.clients.contains_key(c),
                    "{k:?} wanted by {c:?}, which is not connected"
                );
            }

            // The release rule has run: an unneeded task is released or
            // erred, and kept only for its dependents.
            if !self.needed(t) {
                ensure!(
                    matches!(s.state, TaskState::Released | TaskState::Erred) && s.live_dependents > 0,
                    "{k:?} is {} with {} live dependents and nobody needs it",
                    s.state.name(),
                    s.live_dependents
                );
            }
        }
        ensure!(
            live == self.keys.len(),
            "{} keys indexed, {live} live tasks",
            self.keys.len()
        );
        ensure!(counts == self.counts, "state counts {:?} != {counts:?}", self.counts);
        for (f, c) in self.fns.iter().zip(&fn_counts) {
            ensure!(&f.counts == c, "{}: state counts {:?} != {c:?}", f.name, f.counts);
        }
        Ok(())
    }

    fn check_workers(&self) -> Result<(), String> {
        let mut nlive = 0;
        let mut nroomy = 0;
        let mut nworkers = vec![0u32; self.fns.len()];
        for (i, ws) in self.workers.iter().enumerate() {
            let Some(ws) = ws else { continue };
            let w = WIdx(i as u32);
            let n = &ws.name;
            nlive += 1;
            ensure!(self.worker_ids.get(&ws.id) == Some(&w), "{n} not indexed by id");
            ensure!(self.worker_names.get(n) == Some(&w), "{n} not indexed by name");
            let mut occupancy = 0;
            let mut guessed = 0;
            let mut fetch = 0;
            for (&t, e) in &ws.processing {
                ensure!(self.live_task(t), "{n} processes a forgotten task");
                let s = self.slot(t);
                ensure!(
                    s.state == TaskState::Processing && s.processing_on == Some(w),
                    "{n} lists {:?} as processing, but it is {} on {:?}",
                    s.key,
                    s.state.name(),
                    s.processing_on
                );
                occupancy += e.ns;
                if e.guessed {
                    guessed += e.ns;
                }
                fetch += e.fetch_ns;
            }
            ensure!(
                ws.occupancy_ns == occupancy,
                "{n}: occupancy {} != {occupancy} (sum of processing)",
                ws.occupancy_ns
            );
            ensure!(
                ws.guessed_ns == guessed,
                "{n}: guessed occupancy {} != {guessed} (sum of processing on a guess)",
                ws.guessed_ns
            );
            ensure!(
                ws.fetch_ns == fetch,
                "{n}: queued fetches {} != {fetch} (sum over processing)",
                ws.fetch_ns
            );
            for t in &ws.executing {
                ensure!(ws.processing.contains_key(t), "{n} executes a task it does not process");
            }
            let mut nbytes = 0;
            for &t in &ws.has_what {
                ensure!(self.live_task(t), "{n} holds a forgotten task");
                let s = self.slot(t);
                ensure!(
                    s.who_has.contains(&w),
                    "{n} holds {:?} which does not list it ({})",
                    s.key,
                    s.state.name()
                );
                nbytes += s.nbytes;
            }
            ensure!(
                ws.known_nbytes == nbytes,
                "{n}: known_nbytes {} != {nbytes}",
                ws.known_nbytes
            );
            for t in &ws.long_running {
                ensure!(
                    ws.processing.get(t).is_some_and(|e| e.ns == 0 && e.fetch_ns == 0),
                    "{n}: a long-running task is not processing there or still counts in occupancy"
                );
            }
            let rank = (ws.occupancy_ns / ws.nthreads.max(1) as u64, ws.busy() as u32, ws.id, w);
            ensure!(ws.rank == rank && self.ranked.contains(&rank), "{n}: stale rank");
            ensure!(ws.roomy == self.has_room(ws), "{n}: stale roomy flag");
            nroomy += usize::from(ws.roomy);
            for (f, &has) in ws.fn_mask.iter().enumerate() {
                if has {
                    nworkers[f] += 1;
                }
            }
            ensure!(
                ws.fn_mask.is_empty() || ws.retiring.is_none(),
                "retiring {n} still offers functions"
            );
            ensure!(
                ws.paused.is_none() || (ws.fn_mask.is_empty() && ws.retiring.is_none()),
                "paused {n} offers functions or is retiring"
            );
        }
        ensure!(self.worker_ids.len() == nlive, "worker ids index removed workers");
        ensure!(self.worker_names.len() == nlive, "worker names index removed workers");
        ensure!(self.ranked.len() == nlive, "ranking lists removed workers");
        ensure!(self.nroomy == nroomy, "nroomy {} != {nroomy}", self.nroomy);
        for (a, &w) in &self.worker_addrs {
            ensure!(
                self.live_worker(w) && &self.worker(w).address == a,
                "address {a} indexes a removed or other worker"
            );
        }
        for (f, info) in self.fns.iter().enumerate() {
            ensure!(
                info.nworkers == nworkers[f],
                "function {:?}: nworkers {} != {}",
                info.name,
                info.nworkers,
                nworkers[f]
            );
        }
        Ok(())
    }

    fn check_queues(&self) -> Result<(), String> {
        for &(p, seq, t) in &self.no_worker {
            ensure!(self.live_task(t), "no-worker set holds a forgotten task");
            let s = self.slot(t);
            ensure!(
                s.state == TaskState::NoWorker,
                "{:?} in the no-worker set is {}",
                s.key,
                s.state.name()
            );
            ensure!(s.queue_key(t) == (p, seq, t), "{:?}: stale no-worker key", s.key);
        }
        ensure!(
            self.no_worker.len() as u64 == self.counts[TaskState::NoWorker.index()],
            "no-worker set and count differ"
        );
        ensure!(
            self.no_worker_since.keys().all(|qk| self.no_worker.contains(qk)),
            "a no-worker wait is recorded for a task no longer in no-worker"
        );
        let mut queued = 0;
        for (f, info) in self.fns.iter().enumerate() {
            let f = f as FnId;
            ensure!(
                info.queue.is_empty() != self.queued_fns.contains(&f),
                "queued_fns disagrees with the queue of {:?}",
                info.name
            );
            for &(p, seq, t) in &info.queue {
                ensure!(self.live_task(t), "queue of {:?} holds a forgotten task", info.name);
                let s = self.slot(t);
                ensure!(
                    s.state == TaskState::Queued && s.func == f,
                    "{:?} in the queue of {:?} is {}",
                    s.key,
                    info.name,
                    s.state.name()
                );
                ensure!(s.queue_key(t) == (p, seq, t), "{:?}: stale queue key", s.key);
                queued += 1;
            }
        }
        ensure!(
            queued == self.counts[TaskState::Queued.index()],
            "queues hold {queued} tasks, count says {}",
            self.counts[TaskState::Queued.index()]
        );
        Ok(())
    }

    fn check_side_tables(&self) -> Result<(), String> {
        for &t in self.steals.keys() {
            ensure!(
                self.live_task(t) && self.slot(t).state == TaskState::Processing,
                "a steal is pending for a task not processing"
            );
        }
        for (&t, &(from, to)) in &self.moving {
            ensure!(
                self.live_task(t) && self.slot(t).state == TaskState::Memory,
                "a move is pending for a task not in memory"
            );
            ensure!(from != to, "a move from a worker to itself");
        }
        for r in &self.retire_requests {
            ensure!(!r.waiting.is_empty(), "a finished retirement is still pending");
            for &w in &r.waiting {
                ensure!(
                    self.live_worker(w) && self.worker(w).retiring.is_some(),
                    "a retirement waits for a worker that is gone or not retiring"
                );
            }
        }
        Ok(())
    }
}
