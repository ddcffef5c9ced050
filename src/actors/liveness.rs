//! The scheduler's rule for declaring a silent worker dead, free of I/O.
//!
//! A worker is dead when nothing from it was *read* for the worker timeout.
//! But the scheduler can only read while it runs: after it was stopped
//! (SIGSTOP, a VM pause, a swap storm, its thread blocked for seconds) the
//! heartbeats of the whole pause wait unread in its sockets, and the first
//! check after waking would find every worker silent for the length of the
//! pause and remove them all — destroying a healthy cluster (issue 16
//! case 1). So the check first asks whether the scheduler itself was
//! running: a check that comes far later than its interval means it was
//! not, and then no worker is judged, and the time the scheduler was not
//! running is not counted as anyone's silence: silence is measured in time
//! the scheduler could have read.

use std::time::{Duration, Instant};

/// How often the scheduler looks for silent workers.
pub const WORKER_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// A check this many intervals (or more) after the previous one means the
/// scheduler was not running in between (stopped, paused, or its thread
/// blocked), so it could not read what workers sent meanwhile. Four
/// intervals (2 s) is far beyond a timer's jitter on a loaded machine, and
/// well under any sensible worker timeout.
pub const STALLED_CHECK_INTERVALS: u32 = 4;

/// What one liveness check decides.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum LivenessVerdict<K> {
    /// The scheduler itself was not running since the previous check: judge
    /// no one, and move every worker's last-heard time on by `gap`
    /// ([`discount_stall`]), so the stall counts toward no one's silence.
    SchedulerStalled {
        /// How long since the previous check.
        gap: Duration,
    },
    /// These workers were not heard for longer than the worker timeout
    /// while the scheduler was running: they are dead.
    Silent(Vec<K>),
}

/// The periodic liveness check: `previous_check` is when the last one ran,
/// `last_seen` when each worker was last heard.
pub fn check_workers<K>(
    now: Instant,
    previous_check: Instant,
    worker_timeout: Duration,
    last_seen: impl IntoIterator<Item = (K, Instant)>,
) -> LivenessVerdict<K> {
    let gap = now.saturating_duration_since(previous_check);
    if gap >= WORKER_CHECK_INTERVAL * STALLED_CHECK_INTERVALS {
        return LivenessVerdict::SchedulerStalled { gap };
    }
    LivenessVerdict::Silent(
        last_seen
            .into_iter()
            .filter(|(_, seen)| now.saturating_duration_since(*seen) > worker_timeout)
            .map(|(k, _)| k)
            .collect(),
    )
}

/// A worker's last-heard time after a stall of `gap`: moved on by the
/// stall (but not past `now`), so that only time in which the scheduler
/// could read counts as silence. A worker that was already silent before
/// the stall keeps that silence; repeated stalls never shield a dead worker
/// for good.
pub fn discount_stall(last_seen: Instant, gap: Duration, now: Instant) -> Instant {
    (last_seen + gap).min(now)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TIMEOUT: Duration = Duration::from_secs(30);

    #[test]
    fn a_worker_silent_past_the_timeout_while_the_scheduler_ran_is_dead() {
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(31);
        let previous = now - WORKER_CHECK_INTERVAL;
        let seen = [(1, t0), (2, now - Duration::from_secs(1))];
        assert_eq!(
            check_workers(now, previous, TIMEOUT, seen),
            LivenessVerdict::Silent(vec![1])
        );
    }

    #[test]
    fn after_a_pause_longer_than_the_timeout_no_worker_is_judged() {
        // Stopped for 60 s: every heartbeat of the pause is still unread.
        let t0 = Instant::now();
        let now = t0 + Duration::from_secs(60);
        let seen = [(1, t0), (2, t0)];
        assert_eq!(
            check_workers(now, t0, TIMEOUT, seen),
            LivenessVerdict::SchedulerStalled {
                gap: Duration::from_secs(60)
            }
        );
    }

    #[test]
    fn a_late_check_counts_as_a_stall_from_the_threshold_on() {
        let t0 = Instant::now();
        let at = |gap: Duration| check_workers(t0 + gap, t0, TIMEOUT, [(1, t0)]);
        let threshold = WORKER_CHECK_INTERVAL * STALLED_CHECK_INTERVALS;
        assert_eq!(
            at(threshold - Duration::from_millis(1)),
            LivenessVerdict::Silent(Vec::new())
        );
        assert_eq!(at(threshold), LivenessVerdict::SchedulerStalled { gap: threshold });
    }

    #[test]
    fn a_stall_counts_toward_no_ones_silence_but_earlier_silence_stays() {
        let t0 = Instant::now();
        // Heard 1 s before a 60 s stall: heard "just now" afterwards.
        let stall_start = t0 + Duration::from_secs(1);
        let now = stall_start + Duration::from_secs(60);
        let gap = Duration::from_secs(60);
        assert_eq!(
            discount_stall(stall_start - Duration::from_secs(1), gap, now),
            now - Duration::from_secs(1)
        );
        // Silent 25 s before a 10 s stall (timeout 30 s): still 25 s silent,
        // so removed 5 s of running time later if nothing comes.
        let now = t0 + Duration::from_secs(35);
        let seen = discount_stall(t0, Duration::from_secs(10), now);
        assert_eq!(now - seen, Duration::from_secs(25));
        let later = now + Duration::from_secs(6);
        let previous = later - WORKER_CHECK_INTERVAL;
        assert_eq!(
            check_workers(later, previous, TIMEOUT, [(1, seen)]),
            LivenessVerdict::Silent(vec![1])
        );
        // Never past now.
        assert_eq!(discount_stall(now, gap, now), now);
    }

    #[test]
    fn the_stall_threshold_is_far_below_the_default_worker_timeout() {
        // Otherwise a stall shorter than it could still remove workers.
        let threshold = WORKER_CHECK_INTERVAL * STALLED_CHECK_INTERVALS;
        assert!(threshold * 4 <= crate::actors::scheduler::DEFAULT_WORKER_TIMEOUT);
    }
}
