//! The bounded spin a thread waiting for one future's result
//! ([`crate::runtime::block_on_spinning`], used by `Future::result`) does
//! before it parks, so that a short wait (a round trip to the cluster) is
//! not lengthened by waking a halted CPU. Waits for many results
//! (`gather`, `wait`) do not spin: measured, the spin there only took CPU
//! from the cluster (no-op throughput 6 % lower).
//!
//! Why: on a virtual machine an idle vCPU halts, and waking it again (an
//! interrupt to the host, which must run the vCPU again) costs tens of µs.
//! A round trip is a chain of eight wake-ups across processes and threads
//! (docs/benchmarks.md, "Round trip breakdown"); on a quiet 2-vCPU VM
//! nearly every one of them lands on a halted vCPU, and the median round
//! trip doubled against a busy machine. A waiting client thread that polls
//! its wake-up flag for a while keeps its vCPU running, and the chain's
//! wake-ups then find a running CPU.
//!
//! The spin costs CPU, so it is bounded three ways:
//! - only while the machine has an idle CPU ([`idle_cpus`], sampled at
//!   most every [`IDLE_SAMPLE_INTERVAL`]): on a busy machine no vCPU halts,
//!   and a spinning thread would take CPU from the work it waits for;
//! - at most [`MAX_WAIT_SPIN`] per wait (`RDASK_WAIT_SPIN_US` sets it;
//!   0 turns spinning off);
//! - per thread, adaptively (like the kernel's `haltpoll` governor): the
//!   window grows (doubling from [`WAIT_SPIN_START`]) while waits end
//!   within the maximum, and halves when they outlast it, so a thread
//!   waiting on long tasks stops spinning.

use std::cell::Cell;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// Longest a waiting thread spins before it parks, per wait, unless
/// `RDASK_WAIT_SPIN_US` says otherwise: longer than a quiet machine's round
/// trip (≈ 0.2 ms), so the spin usually ends with the reply.
pub const MAX_WAIT_SPIN: Duration = Duration::from_micros(250);
/// The environment variable that sets the longest spin in µs (0: never
/// spin), read once per process.
pub const WAIT_SPIN_ENV: &str = "RDASK_WAIT_SPIN_US";
/// The spin window a thread starts with, and grows to first from nothing.
pub const WAIT_SPIN_START: Duration = Duration::from_micros(50);
/// How often the machine's runnable threads are sampled to tell whether a
/// CPU is idle (one read of `/proc/loadavg`).
pub const IDLE_SAMPLE_INTERVAL: Duration = Duration::from_millis(100);

/// The longest spin: [`MAX_WAIT_SPIN`], or `RDASK_WAIT_SPIN_US` if set. A
/// value that is not a number of µs is reported once and ignored.
pub fn max_wait_spin() -> Duration {
    static MAX: OnceLock<Duration> = OnceLock::new();
    *MAX.get_or_init(|| match std::env::var(WAIT_SPIN_ENV) {
        Err(_) => MAX_WAIT_SPIN,
        Ok(v) => parse_wait_spin(&v).unwrap_or_else(|message| {
            tracing::warn!("{message}");
            MAX_WAIT_SPIN
        }),
    })
}

/// Reads a `RDASK_WAIT_SPIN_US` value; the error says what was wrong and
/// that the default is used instead.
pub fn parse_wait_spin(value: &str) -> Result<Duration, String> {
    value.trim().parse::<u64>().map(Duration::from_micros).map_err(|e| {
        format!(
            "{WAIT_SPIN_ENV}={value:?} is not a number of microseconds ({e}); using {} µs",
            MAX_WAIT_SPIN.as_micros()
        )
    })
}

/// Whether fewer threads are runnable than the machine has CPUs (so some
/// CPU idles and may halt), from the running count in `/proc/loadavg`
/// (`0.33 1.07 1.54 3/456 18354`: 3 runnable, the reader included),
/// sampled at most every [`IDLE_SAMPLE_INTERVAL`]. False where that file
/// cannot be read or parsed: no spinning without evidence it helps.
pub fn idle_cpus() -> bool {
    static EPOCH: OnceLock<Instant> = OnceLock::new();
    static SAMPLED_AT_MS: AtomicU64 = AtomicU64::new(u64::MAX);
    static IDLE: AtomicBool = AtomicBool::new(false);
    let now_ms = EPOCH.get_or_init(Instant::now).elapsed().as_millis() as u64;
    let last = SAMPLED_AT_MS.load(Ordering::Relaxed);
    let stale = last == u64::MAX || now_ms.saturating_sub(last) >= IDLE_SAMPLE_INTERVAL.as_millis() as u64;
    if stale
        && SAMPLED_AT_MS
            .compare_exchange(last, now_ms, Ordering::Relaxed, Ordering::Relaxed)
            .is_ok()
    {
        let cpus = std::thread::available_parallelism().map_or(1, |n| n.get());
        let idle = std::fs::read_to_string("/proc/loadavg")
            .ok()
            .and_then(|s| runnable_from_loadavg(&s))
            .is_some_and(|running| running <= cpus);
        IDLE.store(idle, Ordering::Relaxed);
    }
    IDLE.load(Ordering::Relaxed)
}

/// The runnable count (the reader included) of a `/proc/loadavg` line.
pub fn runnable_from_loadavg(line: &str) -> Option<usize> {
    let field = line.split_whitespace().nth(3)?;
    field.split_once('/')?.0.parse().ok()
}

thread_local! {
    /// This thread's spin window, adapted after every wait.
    static WINDOW: Cell<Duration> = const { Cell::new(WAIT_SPIN_START) };
}

/// The spin of one wait: started when the wait starts, [`Self::spin_until`]
/// before each park, [`Self::done`] when the wait ends.
pub struct WaitSpin {
    started: Instant,
    window: Duration,
}

impl WaitSpin {
    /// Starts a wait on this thread.
    pub fn start() -> WaitSpin {
        let max = max_wait_spin();
        let window = if max.is_zero() || !idle_cpus() {
            Duration::ZERO
        } else {
            WINDOW.get().min(max)
        };
        WaitSpin {
            started: Instant::now(),
            window,
        }
    }

    /// Polls `woken` until it is set (true) or the window since the wait
    /// started has passed (false: park now).
    pub fn spin_until(&self, woken: &AtomicBool) -> bool {
        if self.window.is_zero() {
            return false;
        }
        loop {
            if woken.load(Ordering::Acquire) {
                return true;
            }
            if self.started.elapsed() >= self.window {
                return false;
            }
            // Yield rather than busy-loop: a thread made runnable on this
            // CPU (the very wake-up chain this wait is for) runs at once,
            // where a plain spin would hold the CPU until its time slice
            // ends (measured: a plain spin made the quiet round trip slower).
            std::thread::yield_now();
        }
    }

    /// Adapts the thread's window to how long this wait took.
    pub fn done(self) {
        let next = next_window(WINDOW.get(), self.started.elapsed(), max_wait_spin());
        WINDOW.set(next);
    }
}

/// The window after a wait that took `took`: kept when the wait ended
/// within it, doubled (from at least [`WAIT_SPIN_START`], up to `max`) when
/// a longer spin would have caught it, halved (to nothing below half of
/// [`WAIT_SPIN_START`]) when the wait outlasted `max`.
pub fn next_window(window: Duration, took: Duration, max: Duration) -> Duration {
    if took <= window {
        window
    } else if took <= max {
        (window * 2).clamp(WAIT_SPIN_START.min(max), max)
    } else if window / 2 < WAIT_SPIN_START / 2 {
        Duration::ZERO
    } else {
        window / 2
    }
}

#[cfg(test)]
#[path = "wait_spin_tests.rs"]
mod tests;
