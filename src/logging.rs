//! Log output of rdask processes: `tracing` events as text on stderr,
//! filtered by `RUST_LOG`, coloured only for a person at a terminal.

use std::io::IsTerminal as _;
use std::time::{Duration, Instant};

/// At most one log line per this interval for an error that repeats (a
/// failing accept, a spill directory that cannot be written); the line
/// counts the occurrences it stands for.
pub const REPEATED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The `RUST_LOG` filter used when the variable is unset or invalid: `info`,
/// less actix-web's start-up chatter and its ERROR line for every malformed
/// request a client sends (the client gets its 4xx answer).
pub const DEFAULT_LOG_FILTER: &str = "info,actix_server=warn,actix_http=off";

/// Sends `tracing` events to stderr (and to this process's
/// [`log_ring`](crate::log_ring)), filtered by `RUST_LOG` (default
/// [`DEFAULT_LOG_FILTER`]). ANSI colours are used only when stderr is a
/// terminal and `NO_COLOR` is unset, so logs redirected to a file, a pipe or
/// a service manager's journal carry no escape codes. Does nothing if a
/// global subscriber is already set (by an earlier call or by the
/// application), so it is safe to call from `main` of every binary.
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_LOG_FILTER));
    let colour = std::io::stderr().is_terminal() && std::env::var_os("NO_COLOR").is_none_or(|v| v.is_empty());
    use tracing_subscriber::layer::SubscriberExt as _;
    use tracing_subscriber::util::SubscriberInitExt as _;
    // The same filtered events go to stderr and to the in-memory ring a
    // worker sends to the scheduler (`log_ring`).
    let _ = tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(colour),
        )
        .with(crate::log_ring::RingLayer)
        .try_init();
}

/// A log line at most once per [`REPEATED_LOG_INTERVAL`], counting the
/// occurrences in between: for errors that can repeat many times a second.
#[derive(Debug, Default)]
pub(crate) struct RateLimitedLog {
    last: Option<Instant>,
    suppressed: u64,
}

impl RateLimitedLog {
    /// Whether to log now; if so, how many occurrences were not logged.
    pub(crate) fn allow(&mut self) -> Option<u64> {
        let now = Instant::now();
        match self.last {
            Some(t) if now.duration_since(t) < REPEATED_LOG_INTERVAL => {
                self.suppressed += 1;
                None
            }
            _ => {
                self.last = Some(now);
                Some(std::mem::take(&mut self.suppressed))
            }
        }
    }
}

/// The tail of a rate-limited line: how many occurrences it stands for.
pub(crate) fn also(suppressed: u64) -> String {
    if suppressed == 0 {
        String::new()
    } else {
        format!(" ({suppressed} more since the last such line)")
    }
}
