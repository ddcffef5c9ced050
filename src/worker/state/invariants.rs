//! Test-only cross-check of every counter and index against the task table.

use super::{WorkerState, WorkerTaskState};

impl WorkerState {
    /// Cross-checks every counter and index against the task table.
    pub(super) fn check_invariants(&self) {
        use WorkerTaskState::*;
        let mut mem_keys = 0;
        let mut mem_bytes = 0;
        let mut ready = 0;
        let mut running = 0;
        let mut queued = 0;
        for (k, e) in &self.tasks {
            match e.state {
                Memory => {
                    mem_keys += 1;
                    mem_bytes += e.nbytes;
                }
                Ready => ready += 1,
                Fetch => queued += e.who_has.len(),
                Flight => assert!(e.flight_id != 0, "{k} in flight without a fetch"),
                Executing => assert!(e.on_thread, "{k} executing off-thread"),
                _ => {}
            }
            running += usize::from(e.on_thread && !e.long_running);
            assert!(e.on_thread || !e.long_running, "{k} long-running off-thread");
            assert!(
                e.held || !e.dependents.is_empty() || e.on_thread || e.in_flight_as(e.flight_id),
                "{k} ({:?}) should have been forgotten",
                e.state
            );
            if e.state == Waiting {
                let missing = e.dependencies.iter().filter(|d| self.tasks[*d].state != Memory).count();
                assert_eq!(e.waiting_on as usize, missing, "{k} waiting_on");
                assert!(missing > 0, "{k} waiting with all deps in memory");
            }
            for d in &e.dependencies {
                assert!(self.tasks[d].dependents.contains(k), "{d} lost dependent {k}");
            }
            for d in &e.dependents {
                assert!(self.tasks[d].dependencies.contains(k), "{d} lost dependency {k}");
            }
        }
        assert_eq!(mem_keys, self.mem_keys);
        assert_eq!(mem_bytes, self.mem_bytes);
        assert_eq!(ready, self.ready_count);
        assert_eq!(running, self.running);
        assert!(self.running <= self.config.nthreads as usize);
        assert!(self.in_flight.len() <= self.config.max_concurrent_fetches as usize);
        let mut in_queue = 0;
        for (w, q) in &self.fetch_queue.by_worker {
            assert!(!q.is_empty());
            for (seq, k) in q {
                let e = &self.tasks[k];
                assert_eq!(e.state, Fetch);
                assert_eq!(e.fetch_seq, *seq);
                assert!(e.who_has.contains(w));
                in_queue += 1;
            }
        }
        assert_eq!(in_queue, queued);
        for f in self.in_flight.values() {
            for k in &f.keys {
                if let Some(e) = self.tasks.get(k) {
                    assert!(e.flight_id != f.id || e.in_flight_as(f.id));
                }
            }
        }
        assert!(self.deletes.is_empty() && self.add_keys.is_empty());
        if self.tasks.is_empty() {
            assert!(self.ready.is_empty() && self.fetch_queue.by_worker.is_empty());
            assert!(self.in_flight.is_empty());
        }
    }
}
