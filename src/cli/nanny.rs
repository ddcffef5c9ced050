//! The nanny (`rdask worker --nanny`, Dask's `Nanny`): a small supervising
//! process that runs the worker as its child, restarts it when it crashes,
//! and kills and restarts it when its memory passes the `terminate`
//! fraction of its limit (Dask's `distributed.worker.memory.terminate`).
//!
//! The restarted worker tells the scheduler why it was restarted (the
//! `restarted` field of its registration), and the scheduler logs it. The
//! tasks the old worker was running count toward `KilledWorker` as for any
//! worker that dies, so a task that blows the memory every time it runs
//! fails with `KilledWorker` instead of killing workers for ever.
//!
//! What restarts and what does not is decided by [`RestartPolicy`], a plain
//! struct tested without processes; [`supervise`] is the thin loop around
//! the child process.

use std::collections::VecDeque;
use std::ffi::OsString;
use std::process::ExitStatus;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use super::serve::ShutdownSignals;
use crate::actors::worker::RESTART_EXIT_CODE;
use crate::scheduler::restart::RESTART_REASON;

/// How often the nanny measures its worker's memory.
pub const NANNY_POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Most restarts within [`RESTART_WINDOW`]; one more and the nanny gives up
/// (a worker that cannot stay up is not retried for ever).
pub const MAX_RESTARTS_IN_WINDOW: usize = 10;
/// The window of [`MAX_RESTARTS_IN_WINDOW`].
pub const RESTART_WINDOW: Duration = Duration::from_secs(60);
/// Pause before starting the worker again, so that the scheduler has seen
/// the old one go (a restarted worker keeps its name).
pub const RESTART_DELAY: Duration = Duration::from_millis(500);
/// How long a worker asked to stop (SIGTERM forwarded) may take to retire
/// before the nanny kills it.
pub const STOP_TIMEOUT: Duration = Duration::from_secs(60);
/// Set in the worker's environment by its nanny: the worker then ignores
/// the `nanny` setting (no nanny of a nanny).
pub const CHILD_ENV: &str = "RDASK_NANNY_CHILD";
/// Set in a restarted worker's environment: why its predecessor was
/// restarted, passed on to the scheduler.
pub const RESTART_REASON_ENV: &str = "RDASK_NANNY_RESTART_REASON";

/// How the worker process ended.
#[derive(Clone, Debug, PartialEq)]
pub enum WorkerEnd {
    /// It exited with this code.
    Exited(i32),
    /// A signal the nanny did not send killed it (a crash, the kernel's
    /// out-of-memory killer, a `kill -9`).
    Killed(i32),
    /// The nanny killed it: its memory passed the terminate threshold.
    OverMemory {
        /// Its resident memory, bytes.
        rss: u64,
        /// The threshold, bytes.
        threshold: u64,
    },
}

/// What the nanny does next.
#[derive(Clone, Debug, PartialEq)]
pub enum Decision {
    /// Exit with this code (the worker chose to stop: retired, lost its
    /// scheduler, or bad settings).
    Exit(i32),
    /// Start the worker again; the reason goes to the scheduler.
    Restart(String),
    /// Too many restarts: stop with an error.
    GiveUp(String),
}

/// Decides, from how each worker process ended, whether to start another.
#[derive(Debug, Default)]
pub struct RestartPolicy {
    recent: VecDeque<Instant>,
}

impl RestartPolicy {
    /// The decision for a worker that ended as `end` at `now`.
    ///
    /// Exit codes are the worker's own decisions and are passed on: 0
    /// (retired or stopped by a signal), 1 (lost or never reached its
    /// scheduler, or failed to start), 2 (bad settings).
    /// [`RESTART_EXIT_CODE`] (a client's `restart`) restarts at once and is
    /// not counted toward the limit. Anything else
    /// (a panic's 101, a signal, the memory threshold) is a crash and
    /// restarts, at most [`MAX_RESTARTS_IN_WINDOW`] times in [`RESTART_WINDOW`].
    pub fn decide(&mut self, end: &WorkerEnd, now: Instant) -> Decision {
        let reason = match end {
            WorkerEnd::Exited(code @ 0..=2) => return Decision::Exit(*code),
            // Asked for, not a crash: restarted, never counted.
            WorkerEnd::Exited(RESTART_EXIT_CODE) => return Decision::Restart(RESTART_REASON.to_string()),
            WorkerEnd::Exited(code) => format!("the worker exited with code {code}"),
            WorkerEnd::Killed(signal) => format!("the worker was killed by signal {signal}"),
            WorkerEnd::OverMemory { rss, threshold } => format!(
                "the worker used {} of memory, past its terminate threshold of {}; the nanny killed it",
                bytesize::ByteSize::b(*rss),
                bytesize::ByteSize::b(*threshold)
            ),
        };
        while self
            .recent
            .front()
            .is_some_and(|t| now.duration_since(*t) > RESTART_WINDOW)
        {
            self.recent.pop_front();
        }
        if self.recent.len() >= MAX_RESTARTS_IN_WINDOW {
            return Decision::GiveUp(format!(
                "{reason}, and it was restarted {} times in the last {:?} already; giving up",
                self.recent.len(),
                RESTART_WINDOW
            ));
        }
        self.recent.push_back(now);
        Decision::Restart(reason)
    }
}

/// The memory threshold past which the nanny kills its worker: `fraction`
/// of `memory_limit`; `None` when either is 0 (no limit, or never).
pub fn terminate_threshold(memory_limit: u64, fraction: f64) -> Option<u64> {
    (memory_limit > 0 && fraction > 0.0).then_some((memory_limit as f64 * fraction) as u64)
}

/// Resident memory of process `pid`, bytes (Linux: `/proc/PID/statm`
/// times the page size); `None` where it cannot be read.
fn resident_bytes(pid: u32) -> Option<u64> {
    let statm = std::fs::read_to_string(format!("/proc/{pid}/statm")).ok()?;
    let pages: u64 = statm.split_whitespace().nth(1)?.parse().ok()?;
    // SAFETY: sysconf has no preconditions.
    let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
    Some(pages * u64::try_from(page).ok().filter(|p| *p > 0)?)
}

fn send_signal(pid: u32, signal: i32) {
    if let Ok(pid) = i32::try_from(pid) {
        // SAFETY: kill has no memory preconditions; a stale pid fails with ESRCH.
        unsafe { libc::kill(pid, signal) };
    }
}

fn end_of(status: ExitStatus) -> WorkerEnd {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(code), _) => WorkerEnd::Exited(code),
        (None, Some(signal)) => WorkerEnd::Killed(signal),
        (None, None) => WorkerEnd::Exited(1),
    }
}

/// Runs the worker (this executable with `args`, the nanny's own arguments
/// without `--nanny`) as a child until it stops for good; returns the exit
/// code. `memory_limit` and `terminate` give the kill threshold.
pub fn supervise(args: Vec<OsString>, memory_limit: u64, terminate: f64) -> i32 {
    let exe = match std::env::current_exe() {
        Ok(e) => e,
        Err(e) => {
            eprintln!("error: the nanny cannot find its own executable: {e}");
            return 1;
        }
    };
    let threshold = terminate_threshold(memory_limit, terminate);
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("error: the nanny cannot start its runtime: {e}");
            return 1;
        }
    };
    runtime.block_on(async move {
        let mut signals = ShutdownSignals::install();
        let mut policy = RestartPolicy::default();
        let mut reason: Option<String> = None;
        loop {
            let mut cmd = tokio::process::Command::new(&exe);
            cmd.args(&args).env(CHILD_ENV, "1").kill_on_drop(true);
            // A nanny that dies (even by SIGKILL) takes its worker with it:
            // the kernel sends the worker SIGTERM, so it retires.
            #[cfg(target_os = "linux")]
            // SAFETY: prctl is async-signal-safe and touches no memory of
            // the parent; it runs in the child between fork and exec.
            unsafe {
                cmd.pre_exec(|| {
                    if libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGTERM) == -1 {
                        return Err(std::io::Error::last_os_error());
                    }
                    Ok(())
                });
            }
            match &reason {
                Some(r) => cmd.env(RESTART_REASON_ENV, r),
                None => cmd.env_remove(RESTART_REASON_ENV),
            };
            let mut child = match cmd.spawn() {
                Ok(c) => c,
                Err(e) => {
                    error!("the nanny cannot start its worker ({}): {e}", exe.display());
                    return 1;
                }
            };
            let pid = child.id().unwrap_or(0);
            info!(pid, "nanny: worker process started");
            let mut tick = tokio::time::interval(NANNY_POLL_INTERVAL);
            let end = loop {
                tokio::select! {
                    status = child.wait() => match status {
                        Ok(s) => break end_of(s),
                        Err(e) => {
                            error!("nanny: cannot wait for the worker: {e}");
                            return 1;
                        }
                    },
                    _ = tick.tick() => {
                        let (Some(threshold), Some(rss)) = (threshold, resident_bytes(pid)) else { continue };
                        if rss > threshold {
                            let _ = child.start_kill();
                            let _ = child.wait().await;
                            break WorkerEnd::OverMemory { rss, threshold };
                        }
                    }
                    why = signals.recv() => {
                        // Passed on: the worker retires (its results move to
                        // other workers) and exits; a second signal kills it.
                        info!("nanny {why}; stopping the worker (signal again to kill it)");
                        send_signal(pid, libc::SIGTERM);
                        let status = tokio::select! {
                            s = child.wait() => s.ok(),
                            _ = tokio::time::sleep(STOP_TIMEOUT) => None,
                            _ = signals.recv() => None,
                        };
                        return match status {
                            Some(s) => match end_of(s) {
                                WorkerEnd::Exited(code) => code,
                                _ => 1,
                            },
                            None => {
                                let _ = child.start_kill();
                                let _ = child.wait().await;
                                1
                            }
                        };
                    }
                }
            };
            match policy.decide(&end, Instant::now()) {
                Decision::Exit(code) => return code,
                Decision::GiveUp(why) => {
                    error!("nanny: {why}");
                    return 1;
                }
                Decision::Restart(why) => {
                    warn!("nanny: {why}; restarting it");
                    reason = Some(why);
                    tokio::time::sleep(RESTART_DELAY).await;
                }
            }
        }
    })
}

#[cfg(test)]
#[path = "nanny_tests.rs"]
mod tests;
