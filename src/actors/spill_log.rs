//! The spill writes and reads a worker's store made since its last
//! heartbeat, for the dashboard's task stream: a small bounded list shared
//! by the store actor (writes) and its read-back tasks (reads), emptied by
//! each heartbeat.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use crate::wire::messages::SpillEvent;

/// Most spill events one heartbeat carries: the newest (a burst of small
/// spills would otherwise make a large heartbeat; the bars would overlap
/// on the page anyway).
pub const MAX_SPILL_EVENTS_PER_HEARTBEAT: usize = 200;

/// One recorded write or read: when it ended, whether it was a read,
/// bytes, how long it took.
type Recorded = (Instant, bool, u64, Duration);

/// Events recorded since the last [`SpillLog::take`].
#[derive(Clone, Debug, Default)]
pub struct SpillLog(Arc<Mutex<VecDeque<Recorded>>>);

impl SpillLog {
    /// Records a write (`unspill` false) or read of `bytes` that ended now
    /// and took `took`.
    pub fn record(&self, unspill: bool, bytes: u64, took: Duration) {
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        if q.len() == MAX_SPILL_EVENTS_PER_HEARTBEAT {
            q.pop_front();
        }
        q.push_back((Instant::now(), unspill, bytes, took));
    }

    /// The events recorded so far, as the heartbeat carries them (times
    /// relative to now), and forgets them.
    pub fn take(&self) -> Vec<SpillEvent> {
        let now = Instant::now();
        let mut q = self.0.lock().unwrap_or_else(|p| p.into_inner());
        q.drain(..)
            .map(|(end, unspill, bytes, took)| SpillEvent {
                unspill,
                bytes,
                duration_us: took.as_micros() as u64,
                ago_us: now.duration_since(end).as_micros() as u64,
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_log_keeps_the_newest_and_empties_on_take() {
        let log = SpillLog::default();
        for i in 0..(MAX_SPILL_EVENTS_PER_HEARTBEAT as u64 + 5) {
            log.record(i % 2 == 1, i, Duration::from_millis(1));
        }
        let taken = log.take();
        assert_eq!(taken.len(), MAX_SPILL_EVENTS_PER_HEARTBEAT);
        assert_eq!(taken[0].bytes, 5, "the oldest went first");
        assert_eq!(taken[0].duration_us, 1_000);
        assert!(log.take().is_empty());
    }
}
