//! The knobs of a client and of its submissions, and the shape of a wait's
//! answer.

use std::time::Duration;

use crate::wire::{transport, FrameLimits, Security};

/// How a client connects ([`crate::Client::connect_with`]): its name, its
/// security (TLS identity, token) and the frame limits it assumes.
/// `ClientOptions::default()` is what [`crate::Client::connect`] uses: a
/// generated name, plain TCP, no token, the default limits, 30 s to reach
/// the scheduler, 60 s of scheduler silence tolerated.
#[derive(Clone, Debug)]
pub struct ClientOptions {
    /// Name announced to the scheduler and workers (default: `client-<random>`).
    pub name: Option<String>,
    /// TLS and token settings, used for the scheduler and for gathering from
    /// workers' peer ports.
    pub security: Security,
    /// Frame limits: applied to what this client reads, and checked before
    /// it sends, so that a message the scheduler would refuse (and drop the
    /// connection for) is refused here with an error instead. Set them to
    /// the scheduler's `[wire]` settings when those differ from the defaults.
    pub limits: FrameLimits,
    /// How long to keep trying while nothing listens at the scheduler's
    /// address (`client.connect_timeout_s`).
    pub connect_timeout: Duration,
    /// Every waiting call fails with `scheduler at ADDR silent for N s` when
    /// nothing (not even a keep-alive) arrived from the scheduler for this
    /// long; `None`: wait forever (`client.scheduler_silence_timeout_s`).
    pub scheduler_silence_timeout: Option<Duration>,
    /// After losing the scheduler connection, how long to keep trying to
    /// connect again (with back-off) before every waiting call fails with
    /// `Error::Disconnected`; zero: fail at once (`client.reconnect_timeout_s`).
    /// Reconnected, the client re-declares the keys it holds futures for
    /// (`ReconnectClient`): a scheduler restarted from its journal resumes
    /// them, one without a journal errs each with `the scheduler restarted
    /// without a journal; work lost`.
    pub reconnect_timeout: Duration,
}

/// Default of [`ClientOptions::reconnect_timeout`]: Dask's connect timeout.
pub const DEFAULT_CLIENT_RECONNECT_TIMEOUT: Duration = Duration::from_secs(30);

impl Default for ClientOptions {
    fn default() -> Self {
        ClientOptions {
            name: None,
            security: Security::default(),
            limits: FrameLimits::default(),
            connect_timeout: transport::DEFAULT_CONNECT_TIMEOUT,
            scheduler_silence_timeout: Some(crate::actors::worker::DEFAULT_SCHEDULER_SILENCE_TIMEOUT),
            reconnect_timeout: DEFAULT_CLIENT_RECONNECT_TIMEOUT,
        }
    }
}

impl ClientOptions {
    /// Options with `security`.
    pub fn with_security(security: Security) -> ClientOptions {
        ClientOptions {
            security,
            ..Default::default()
        }
    }
}

/// Options of one submission (Dask's `submit` keywords).
#[derive(Clone, Debug)]
pub struct SubmitOptions {
    /// Deterministic key from function and arguments (default), so the same
    /// call is computed once; `false` gives every call a fresh key.
    pub pure: bool,
    /// An explicit key (overrides `pure`). For `map`, used as a prefix.
    pub key: Option<String>,
    /// Higher runs first.
    pub priority: i32,
    /// Run only on these workers (names or addresses).
    pub workers: Vec<String>,
    /// With `workers`: may others run it when those cannot.
    pub allow_other_workers: bool,
    /// Reruns on failure.
    pub retries: u32,
    /// Abstract resources one run holds, e.g. `[("GPU", 1.0)]`: it runs
    /// only on workers that declared them (`rdask worker --resources`),
    /// and no more such runs at once than their amounts allow.
    pub resources: Vec<(String, f64)>,
}

impl Default for SubmitOptions {
    fn default() -> Self {
        SubmitOptions {
            pure: true,
            key: None,
            priority: 0,
            workers: Vec::new(),
            allow_other_workers: false,
            retries: 0,
            resources: Vec::new(),
        }
    }
}

impl SubmitOptions {
    /// Fresh keys for every call.
    pub fn impure() -> Self {
        SubmitOptions {
            pure: false,
            ..Default::default()
        }
    }
    /// Sets an explicit key.
    pub fn key(mut self, key: impl Into<String>) -> Self {
        self.key = Some(key.into());
        self
    }
    /// Sets the priority.
    pub fn priority(mut self, priority: i32) -> Self {
        self.priority = priority;
        self
    }
    /// Restricts to workers.
    pub fn workers(mut self, workers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.workers = workers.into_iter().map(Into::into).collect();
        self
    }
    /// With `workers`: whether other workers may run it when none of those can.
    pub fn allow_other_workers(mut self, allow: bool) -> Self {
        self.allow_other_workers = allow;
        self
    }
    /// Sets the resources one run holds, e.g. `[("GPU", 1.0)]`.
    pub fn resources(mut self, resources: impl IntoIterator<Item = (impl Into<String>, f64)>) -> Self {
        self.resources = resources.into_iter().map(|(n, a)| (n.into(), a)).collect();
        self
    }
    /// Sets the number of retries.
    pub fn retries(mut self, retries: u32) -> Self {
        self.retries = retries;
        self
    }
    /// Sets `pure`.
    pub fn pure(mut self, pure: bool) -> Self {
        self.pure = pure;
        self
    }
}

/// Options of one scatter (Dask's `scatter` keywords), for
/// [`crate::Client::scatter_with`].
#[derive(Clone, Debug)]
pub struct ScatterOptions {
    /// Only these workers (names or addresses); empty = any (Dask's
    /// `workers=`).
    pub workers: Vec<String>,
    /// A copy on every allowed worker, each sent by the scheduler (Dask's
    /// `broadcast=True`; a value already scattered gets a copy on the
    /// workers still without one); otherwise the values go round-robin,
    /// one copy each.
    pub broadcast: bool,
    /// Key each value by a hash of its encoded bytes (default; Dask's
    /// `hash=True`), so the same value scattered twice is one key. `false`
    /// gives it a random key instead (Dask's `hash=False`): no pass over
    /// the bytes, which for a large value is most of the client's share of
    /// the scatter (FNV-1a runs at about 1 GB/s).
    pub hash: bool,
    /// Longest wait for the scheduler's answer, which comes once every
    /// receiving worker confirmed storing its data (Dask's `timeout=`;
    /// default [`super::SCATTER_TIMEOUT`]).
    pub timeout: Duration,
    /// Push the values to the workers directly instead of through the
    /// scheduler (Dask's `direct=True`): the scheduler only says where
    /// each goes, and the client sends each worker its share, all at once;
    /// to a worker on this host through shared memory (one copy into a
    /// memory file, which the worker maps). A push that fails goes through
    /// the scheduler instead, with a log line. Default false.
    pub direct: bool,
}

impl Default for ScatterOptions {
    fn default() -> Self {
        ScatterOptions {
            workers: Vec::new(),
            broadcast: false,
            hash: true,
            timeout: super::SCATTER_TIMEOUT,
            direct: false,
        }
    }
}

impl ScatterOptions {
    /// Restricts to workers (names or addresses).
    pub fn workers(mut self, workers: impl IntoIterator<Item = impl Into<String>>) -> Self {
        self.workers = workers.into_iter().map(Into::into).collect();
        self
    }
    /// Sets `broadcast`.
    pub fn broadcast(mut self, broadcast: bool) -> Self {
        self.broadcast = broadcast;
        self
    }
    /// Sets `hash`.
    pub fn hash(mut self, hash: bool) -> Self {
        self.hash = hash;
        self
    }
    /// Sets `timeout`.
    pub fn timeout(mut self, timeout: Duration) -> Self {
        self.timeout = timeout;
        self
    }
    /// Sets `direct`.
    pub fn direct(mut self, direct: bool) -> Self {
        self.direct = direct;
        self
    }
}

/// When [`crate::Client::wait`] returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ReturnWhen {
    /// When every future is done.
    AllCompleted,
    /// When any future is done.
    FirstCompleted,
}

/// Futures split by [`crate::Client::wait`]: indices into the slice given.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct WaitResult {
    /// Done (finished, erred or cancelled).
    pub done: Vec<usize>,
    /// Still pending.
    pub not_done: Vec<usize>,
}
