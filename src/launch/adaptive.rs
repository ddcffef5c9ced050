//! Adaptive scaling (Dask's `Adaptive`): every `interval`, ask the
//! scheduler how many workers the work in hand needs (`adaptive_target`),
//! start workers through a [`ScaleBackend`] when more are needed, and when
//! fewer are, retire the idle ones the scheduler names (their data moves to
//! the workers that stay, nothing is recomputed) once it has named them
//! `wait_count` times in a row, then stop them through the backend.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{mpsc, Arc, Mutex};

use super::*;
use crate::client::Client;

/// Dask's `distributed.adaptive.interval`.
pub const DEFAULT_ADAPTIVE_INTERVAL: Duration = Duration::from_secs(1);
/// Dask's `distributed.adaptive.wait-count`: how many consecutive
/// decisions must name a worker before it is retired.
pub const DEFAULT_WAIT_COUNT: u32 = 3;
/// Dask's `distributed.adaptive.target-duration`.
pub const DEFAULT_TARGET_DURATION: Duration = Duration::from_secs(5);
/// How long one retirement may take (its data copied to other workers)
/// before the loop stops waiting for it, logs it and goes on.
pub const RETIRE_TIMEOUT: Duration = Duration::from_secs(60);

/// What one [`Adaptive::step`] did.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Decision {
    /// Nothing to do.
    Same,
    /// Started these workers.
    Up(Vec<String>),
    /// Retired (when connected) and stopped these workers.
    Down(Vec<String>),
}

/// Dask's `Adaptive`: keeps a backend's workers between `minimum` and
/// `maximum` as the scheduler's `adaptive_target` asks. Call
/// [`step`](Self::step) yourself, or [`start`](Self::start) a thread that
/// steps every `interval`.
pub struct Adaptive<B: ScaleBackend> {
    backend: B,
    client: Client,
    minimum: u32,
    maximum: u32,
    interval: Duration,
    wait_count: u32,
    target_duration: Duration,
    close_counts: HashMap<String, u32>,
}

impl<B: ScaleBackend> Adaptive<B> {
    /// Scales `backend`'s workers of the scheduler `client` is connected
    /// to between `minimum` and `maximum`, with Dask's defaults
    /// ([`DEFAULT_ADAPTIVE_INTERVAL`], [`DEFAULT_WAIT_COUNT`],
    /// [`DEFAULT_TARGET_DURATION`]).
    pub fn new(backend: B, client: Client, minimum: u32, maximum: u32) -> Self {
        Adaptive {
            backend,
            client,
            minimum,
            maximum: maximum.max(minimum),
            interval: DEFAULT_ADAPTIVE_INTERVAL,
            wait_count: DEFAULT_WAIT_COUNT,
            target_duration: DEFAULT_TARGET_DURATION,
            close_counts: HashMap::new(),
        }
    }

    /// Time between decisions.
    pub fn interval(mut self, interval: Duration) -> Self {
        self.interval = interval;
        self
    }

    /// Consecutive decisions naming a worker before it is retired (at least 1).
    pub fn wait_count(mut self, n: u32) -> Self {
        self.wait_count = n.max(1);
        self
    }

    /// How long the work in hand should take with the target's workers.
    pub fn target_duration(mut self, d: Duration) -> Self {
        self.target_duration = d;
        self
    }

    /// The backend.
    pub fn backend(&self) -> &B {
        &self.backend
    }

    /// Gives the backend back (its workers keep running).
    pub fn into_backend(self) -> B {
        self.backend
    }

    /// One decision (Dask's `Adaptive.adapt`): asks the scheduler for its
    /// target and scales toward it.
    pub fn step(&mut self) -> Result<Decision, LaunchError> {
        self.backend.refresh()?;
        let scheduler_err = |e: crate::client::Error| LaunchError::Scheduler {
            address: self.client.scheduler_address().to_string(),
            message: e.to_string(),
        };
        let answer = self
            .client
            .adaptive_target(self.target_duration, self.minimum, self.maximum)
            .map_err(scheduler_err)?;
        let plan = self.backend.requested();
        let target = answer.target as usize;
        if target == plan.len() {
            self.close_counts.clear();
            return Ok(Decision::Same);
        }
        if target > plan.len() {
            self.close_counts.clear();
            let started = self.backend.start_workers(target - plan.len())?;
            tracing::info!(target, ?started, "adaptive: scaling up");
            return Ok(Decision::Up(started));
        }
        // Fewer wanted: first the workers asked for that never arrived,
        // then the idle ones the scheduler named.
        let excess = plan.len() - target;
        let mut to_close: Vec<String> = plan
            .iter()
            .filter(|n| !answer.workers.contains(n))
            .take(excess)
            .cloned()
            .collect();
        for n in &answer.to_close {
            if to_close.len() >= excess {
                break;
            }
            if plan.contains(n) && !to_close.contains(n) {
                to_close.push(n.clone());
            }
        }
        let mut firm = Vec::new();
        for n in &to_close {
            let c = self.close_counts.entry(n.clone()).or_insert(0);
            *c += 1;
            if *c >= self.wait_count {
                firm.push(n.clone());
            }
        }
        self.close_counts.retain(|n, _| to_close.contains(n));
        if firm.is_empty() {
            return Ok(Decision::Same);
        }
        let connected: Vec<String> = firm.iter().filter(|n| answer.workers.contains(n)).cloned().collect();
        if !connected.is_empty() {
            self.retire(&connected);
        }
        self.backend.stop_workers(&firm)?;
        for n in &firm {
            self.close_counts.remove(n);
        }
        tracing::info!(target, stopped = ?firm, "adaptive: scaling down");
        Ok(Decision::Down(firm))
    }

    /// Retires `names` through the scheduler, bounded by [`RETIRE_TIMEOUT`];
    /// a failure is logged and the workers are stopped anyway (their
    /// unique data is then recomputed, as for a worker that dies).
    fn retire(&self, names: &[String]) {
        let client = self.client.clone();
        let owned = names.to_vec();
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            let refs: Vec<&str> = owned.iter().map(String::as_str).collect();
            let _ = tx.send(client.retire_workers(&refs));
        });
        match rx.recv_timeout(RETIRE_TIMEOUT) {
            Ok(Ok(_)) => {}
            Ok(Err(e)) => tracing::warn!(?names, "adaptive: retiring failed, stopping them anyway: {e}"),
            Err(_) => tracing::warn!(
                ?names,
                "adaptive: retirement not done within {RETIRE_TIMEOUT:?}; stopping them anyway"
            ),
        }
    }
}

impl<B: ScaleBackend + 'static> Adaptive<B> {
    /// Steps every `interval` on a thread until [`AdaptiveHandle::stop`].
    /// A failed step is logged (warn) and kept as the handle's
    /// [`last_error`](AdaptiveHandle::last_error); the loop goes on.
    pub fn start(mut self) -> AdaptiveHandle<B> {
        let stop = Arc::new(AtomicBool::new(false));
        let last_error = Arc::new(Mutex::new(None));
        let (s, e) = (stop.clone(), last_error.clone());
        let thread = std::thread::spawn(move || {
            while !s.load(Ordering::Relaxed) {
                if let Err(err) = self.step() {
                    tracing::warn!("adaptive step failed: {err}");
                    *e.lock().unwrap_or_else(|p| p.into_inner()) = Some(err.to_string());
                }
                let until = Instant::now() + self.interval;
                while !s.load(Ordering::Relaxed) && Instant::now() < until {
                    std::thread::sleep(POLL_INTERVAL.min(self.interval));
                }
            }
            self
        });
        AdaptiveHandle {
            stop,
            last_error,
            thread: Some(thread),
        }
    }
}

/// A running adaptive loop ([`Adaptive::start`]).
pub struct AdaptiveHandle<B: ScaleBackend> {
    stop: Arc<AtomicBool>,
    last_error: Arc<Mutex<Option<String>>>,
    thread: Option<std::thread::JoinHandle<Adaptive<B>>>,
}

impl<B: ScaleBackend> AdaptiveHandle<B> {
    /// The last failed step's error, if any.
    pub fn last_error(&self) -> Option<String> {
        self.last_error.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    /// Stops the loop after its current step and gives it back (the
    /// workers keep running; drop it, or its backend, to stop them).
    pub fn stop(mut self) -> Option<Adaptive<B>> {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.take().and_then(|t| t.join().ok())
    }
}

impl<B: ScaleBackend> Drop for AdaptiveHandle<B> {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}
