//! Giving memory back to the operating system when the scheduler goes
//! idle (holds no task after having held some).
//!
//! Why: the scheduler process allocates with mimalloc
//! (`crate::util::allocator`), which keeps freed pages for reuse. After a
//! graph is released the process stayed 10–17 MB above where it started
//! (against 6–8 MB with glibc) in the chaos test, whose bound on that growth
//! catches real leaks; an idle scheduler should look idle to an operator
//! too. The collection (`mi_collect`) walks the heap, so it runs at most
//! once per [`IDLE_COLLECT_MIN_INTERVAL`]: a client submitting and
//! releasing one task at a time does not pay it per task.

use std::time::{Duration, Instant};

/// Least time between two collections on going idle.
pub const IDLE_COLLECT_MIN_INTERVAL: Duration = Duration::from_secs(1);

/// Whether the scheduler just went idle and should give memory back.
#[derive(Debug, Default)]
pub(super) struct IdleCollect {
    /// Held tasks since the last collection.
    busy: bool,
    last: Option<Instant>,
}

impl IdleCollect {
    /// Called after a client's batch with the number of tasks held; true
    /// when memory should be given back now.
    pub(super) fn after_batch(&mut self, ntasks: usize, now: Instant) -> bool {
        if ntasks > 0 {
            self.busy = true;
            return false;
        }
        let recent = self
            .last
            .is_some_and(|last| now.saturating_duration_since(last) < IDLE_COLLECT_MIN_INTERVAL);
        if !self.busy || recent {
            return false;
        }
        self.busy = false;
        self.last = Some(now);
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn collects_once_on_going_idle_and_not_more_often_than_the_interval() {
        let t0 = Instant::now();
        let mut c = IdleCollect::default();
        assert!(!c.after_batch(0, t0), "never busy: nothing to give back");
        assert!(!c.after_batch(5, t0));
        assert!(c.after_batch(0, t0), "went idle");
        assert!(!c.after_batch(0, t0), "still idle: once is enough");
        // Busy and idle again within the interval: not yet ...
        assert!(!c.after_batch(1, t0 + Duration::from_millis(10)));
        assert!(!c.after_batch(0, t0 + Duration::from_millis(20)));
        // ... but on the first idle batch after it.
        assert!(c.after_batch(0, t0 + IDLE_COLLECT_MIN_INTERVAL));
        assert!(!c.after_batch(0, t0 + 3 * IDLE_COLLECT_MIN_INTERVAL));
    }
}
