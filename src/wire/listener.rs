//! The one accept loop of every rdask port (the scheduler's, each worker's
//! peer port): a cap on open connections with a clear refusal for the
//! newest, and accept errors (out of file descriptors) logged at a bounded
//! rate while the loop backs off, so a flood cannot fill the log or spin.

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tracing::{info, warn};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

use super::codec;
use super::messages::{HandshakeReply, PROTOCOL_VERSION};
use crate::logging::{also, RateLimitedLog};

/// Default cap on a scheduler's open connections (clients, workers and
/// connections in their handshake).
pub const DEFAULT_MAX_CONNECTIONS: usize = 10_000;
/// File descriptors kept free under the open-files limit for everything
/// that is not a peer connection (log and spill files, the HTTP endpoint,
/// outgoing connections): the connection cap is lowered to fit.
pub const FD_HEADROOM: usize = 128;
/// How long a refused connection is read from after the refusal is written
/// (closing with its handshake unread would reset the connection and could
/// lose the refusal).
pub const REFUSAL_READ_TIMEOUT: Duration = Duration::from_secs(1);
/// Most refused connections kept open for [`REFUSAL_READ_TIMEOUT`]; past
/// it, a refused connection is closed right after the refusal is written.
pub const MAX_PENDING_REFUSALS: usize = 64;
/// At most one log line per this interval for a repeating accept error or
/// refusal; the line counts what it stands for.
pub const LOG_INTERVAL: Duration = crate::logging::REPEATED_LOG_INTERVAL;
/// First pause after a failed accept; it doubles, up to [`MAX_ACCEPT_BACKOFF`].
const FIRST_ACCEPT_BACKOFF: Duration = Duration::from_millis(10);
/// Longest pause after failed accepts.
const MAX_ACCEPT_BACKOFF: Duration = Duration::from_secs(1);

/// Settings of one accept loop.
#[derive(Clone, Debug)]
pub struct ListenerOptions {
    /// What this port is, for the log (`scheduler`, `peer port`).
    pub label: &'static str,
    /// Most open connections; the newest past it are refused.
    pub max_connections: usize,
    /// Whether a refusal may be answered with a plain-TCP handshake reply
    /// (not on a TLS port, where the peer expects TLS records).
    pub plain_refusal: bool,
}

/// One open connection's place under the cap: held by whatever owns the
/// connection, released when dropped.
pub struct ConnectionPermit(Arc<AtomicUsize>);

impl Drop for ConnectionPermit {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// The cap on connections this process can keep open: `configured`, lowered
/// to fit under the open-files limit, which is first raised to its hard
/// limit. Logs the outcome.
pub fn effective_max_connections(configured: usize) -> usize {
    match crate::util::raise_open_files_limit() {
        Some(files) => {
            let fit = usize::try_from(files)
                .unwrap_or(usize::MAX)
                .saturating_sub(FD_HEADROOM)
                .max(1);
            if fit < configured {
                info!("open-files limit {files}: at most {fit} connections (max_connections {configured})");
            }
            configured.min(fit)
        }
        None => configured,
    }
}

/// Accepts connections on `listener` forever, handing each under the cap
/// to `serve` with its permit; must run on an actix (or tokio local)
/// runtime.
pub async fn serve<F, Fut>(listener: TcpListener, options: ListenerOptions, serve: F)
where
    F: Fn(TcpStream, SocketAddr, ConnectionPermit) -> Fut,
    Fut: Future<Output = ()> + 'static,
{
    let open = Arc::new(AtomicUsize::new(0));
    let refusal = options.plain_refusal.then(|| refusal_frame(options.max_connections));
    let refusing = Arc::new(AtomicUsize::new(0));
    let mut accept_errors = RateLimitedLog::default();
    let mut refusals = RateLimitedLog::default();
    let mut backoff = FIRST_ACCEPT_BACKOFF;
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => {
                backoff = FIRST_ACCEPT_BACKOFF;
                x
            }
            Err(e) => {
                if let Some(n) = accept_errors.allow() {
                    warn!("{}: accept failed: {e}; backing off{}", options.label, also(n));
                }
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(backoff).await;
                backoff = (backoff * 2).min(MAX_ACCEPT_BACKOFF);
                continue;
            }
        };
        if open.fetch_add(1, Ordering::Relaxed) >= options.max_connections {
            open.fetch_sub(1, Ordering::Relaxed);
            if let Some(n) = refusals.allow() {
                warn!(
                    %peer,
                    "{}: refusing a connection: {} connections open (max_connections){}",
                    options.label,
                    options.max_connections,
                    also(n)
                );
            }
            if let Some(answer) = &refusal {
                // Written at once (a few bytes on a fresh socket), so even a
                // refusal past MAX_PENDING_REFUSALS is told why.
                let _ = stream.try_write(answer);
                if refusing.fetch_add(1, Ordering::Relaxed) < MAX_PENDING_REFUSALS {
                    let refusing = refusing.clone();
                    actix_rt::spawn(async move {
                        linger(stream).await;
                        refusing.fetch_sub(1, Ordering::Relaxed);
                    });
                } else {
                    refusing.fetch_sub(1, Ordering::Relaxed);
                }
            }
            continue;
        }
        actix_rt::spawn(serve(stream, peer, ConnectionPermit(open.clone())));
    }
}

/// The refusal text for a connection past the cap.
pub fn too_many_connections(max: usize) -> String {
    format!("too many connections: {max} are open (max_connections); try again later")
}

/// The handshake reply refusing a connection past the cap, as a frame.
fn refusal_frame(max: usize) -> Vec<u8> {
    let reply = HandshakeReply {
        protocol_version: PROTOCOL_VERSION,
        error: Some(too_many_connections(max)),
    };
    // A struct of a string and an integer always encodes.
    let header = codec::encode(&reply).map(|(h, _)| h).unwrap_or_default();
    let mut frame = Vec::with_capacity(8 + header.len());
    frame.extend_from_slice(&(header.len() as u32).to_be_bytes());
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(&header);
    frame
}

/// After the refusal is written: ends our side and reads what the peer
/// sends (its handshake) for a moment, so that closing does not reset the
/// connection before the refusal is read.
async fn linger(mut stream: TcpStream) {
    let _ = stream.shutdown().await;
    let mut sink = [0u8; 1024];
    let _ = tokio::time::timeout(REFUSAL_READ_TIMEOUT, async {
        while matches!(stream.read(&mut sink).await, Ok(n) if n > 0) {}
    })
    .await;
}
