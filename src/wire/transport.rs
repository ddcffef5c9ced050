//! Connections: connecting (with retries while nothing listens yet), TLS
//! under the frames, the versioned handshake (with the optional token), and
//! reading batches. The writer is in [`super::writer`], addresses in
//! [`super::address`].
//!
//! A connection's halves are [`ReadHalf`] and [`WriteHalf`]: enums over a
//! plain TCP socket and a TLS stream, so the plain path keeps tokio's owned
//! socket halves (no lock, no box, no extra copy) and TLS adds only what
//! rustls itself costs.
//!
//! Both sides look at the first bytes the other sends before decoding them
//! as a frame, so that a peer of another kind (an HTTP server or client, a
//! TLS port) is named as such instead of being reported as a garbled frame.

use std::io;
use std::pin::Pin;
use std::task::{Context, Poll};
use std::time::{Duration, Instant};

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio_rustls::TlsStream;
use tracing::debug;

use super::address::server_name;
pub use super::address::{parse_address, socket_address, Scheme};
use super::codec::{self, FrameLimits, ReadTimeouts, WireError};
use super::messages::*;
use super::security::Security;
pub use super::writer::{
    spawn_writer, spawn_writer_with, Sender, WireMessage, WriterOptions, MAX_UNSENT_BYTES, WRITE_BUFFER_BYTES,
};

/// How long a peer has to complete the handshake after connecting.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long one TCP connect to a worker's peer port may take (peers are
/// connected once, without retries: a peer that is gone is reported to the
/// scheduler at once).
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Default time a client or worker keeps trying to reach its scheduler when
/// nothing listens yet (Dask's `distributed.comm.timeouts.connect`).
pub const DEFAULT_CONNECT_TIMEOUT: Duration = Duration::from_secs(30);
/// First wait between two connection attempts; it doubles up to
/// [`MAX_CONNECT_BACKOFF`].
pub const FIRST_CONNECT_BACKOFF: Duration = Duration::from_millis(50);
/// Longest wait between two connection attempts.
pub const MAX_CONNECT_BACKOFF: Duration = Duration::from_secs(1);
/// Size of the read buffer behind each socket.
pub const READ_BUFFER_BYTES: usize = 256 * 1024;

/// The reading half of a connection, buffered.
pub type Reader = BufReader<ReadHalf>;

/// First byte of a TLS record carrying a handshake (a ClientHello): how a
/// TLS port tells a plaintext rdask peer (whose first frame starts with the
/// header length's high byte, 0) from a TLS one.
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// The reading half of a plain or TLS connection.
pub enum ReadHalf {
    /// Plain TCP.
    Tcp(OwnedReadHalf),
    /// TLS over TCP.
    Tls(tokio::io::ReadHalf<TlsStream<TcpStream>>),
}

/// The writing half of a plain or TLS connection.
pub enum WriteHalf {
    /// Plain TCP.
    Tcp(OwnedWriteHalf),
    /// TLS over TCP.
    Tls(tokio::io::WriteHalf<TlsStream<TcpStream>>),
}

impl AsyncRead for ReadHalf {
    fn poll_read(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &mut ReadBuf<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            ReadHalf::Tcp(r) => Pin::new(r).poll_read(cx, buf),
            ReadHalf::Tls(r) => match Pin::new(r).poll_read(cx, buf) {
                // rustls reports a close without close_notify as an error
                // (it guards protocols that cannot tell truncation from an
                // end). Frames carry their own lengths, so the codec already
                // reports a cut inside a frame as truncation; between frames
                // this is a peer closing, as on plain TCP.
                Poll::Ready(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => Poll::Ready(Ok(())),
                other => other,
            },
        }
    }
}

impl AsyncWrite for WriteHalf {
    fn poll_write(self: Pin<&mut Self>, cx: &mut Context<'_>, buf: &[u8]) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write(cx, buf),
            WriteHalf::Tls(w) => Pin::new(w).poll_write(cx, buf),
        }
    }

    fn poll_write_vectored(
        self: Pin<&mut Self>,
        cx: &mut Context<'_>,
        bufs: &[io::IoSlice<'_>],
    ) -> Poll<io::Result<usize>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_write_vectored(cx, bufs),
            WriteHalf::Tls(w) => Pin::new(w).poll_write_vectored(cx, bufs),
        }
    }

    fn is_write_vectored(&self) -> bool {
        match self {
            WriteHalf::Tcp(w) => w.is_write_vectored(),
            WriteHalf::Tls(w) => w.is_write_vectored(),
        }
    }

    fn poll_flush(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_flush(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_flush(cx),
        }
    }

    fn poll_shutdown(self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<io::Result<()>> {
        match self.get_mut() {
            WriteHalf::Tcp(w) => Pin::new(w).poll_shutdown(cx),
            WriteHalf::Tls(w) => Pin::new(w).poll_shutdown(cx),
        }
    }
}

/// Splits a plain TCP stream into buffered halves (no handshake).
pub fn split_plain(stream: TcpStream) -> (Reader, WriteHalf) {
    split_tcp(stream)
}

fn split_tcp(stream: TcpStream) -> (Reader, WriteHalf) {
    let (read, write) = stream.into_split();
    (
        BufReader::with_capacity(READ_BUFFER_BYTES, ReadHalf::Tcp(read)),
        WriteHalf::Tcp(write),
    )
}

fn split_tls(stream: TlsStream<TcpStream>) -> (Reader, WriteHalf) {
    let (read, write) = tokio::io::split(stream);
    (
        BufReader::with_capacity(READ_BUFFER_BYTES, ReadHalf::Tls(read)),
        WriteHalf::Tls(write),
    )
}

/// What a connector expects at the other end, for its messages.
fn expected_kind(role: Role) -> &'static str {
    match role {
        Role::Client | Role::Worker => "an rdask scheduler",
        Role::Peer => "an rdask worker's peer port",
    }
}

/// Connects to `address` once (bounded by [`CONNECT_TIMEOUT`]), performs
/// the handshake as `role`, and returns the two halves. A `tls://` address
/// needs `security` to hold TLS settings; its token, if any, is presented
/// in the handshake. For connections to workers' peer ports.
pub async fn connect(
    address: &str,
    role: Role,
    name: &str,
    security: &Security,
) -> Result<(Reader, WriteHalf), WireError> {
    connect_retrying(address, role, name, security, Duration::ZERO).await
}

/// [`connect`], but while nothing listens at `address` (connection
/// refused, unreachable, ...) it tries again, backing off from
/// [`FIRST_CONNECT_BACKOFF`] to [`MAX_CONNECT_BACKOFF`], until `timeout` has
/// passed (zero: one try). Then it fails with [`WireError::Unreachable`]:
/// `no rdask scheduler at ADDR: connection refused (N tries over T s)`.
/// Clients and workers reach their scheduler this way, so a worker started
/// before its scheduler waits for it, as in Dask.
pub async fn connect_retrying(
    address: &str,
    role: Role,
    name: &str,
    security: &Security,
    timeout: Duration,
) -> Result<(Reader, WriteHalf), WireError> {
    let (scheme, target) = parse_address(address)?;
    let tls = match scheme {
        Scheme::Tcp => None,
        Scheme::Tls => Some(security.client_config().ok_or_else(|| {
            WireError::Handshake(format!(
                "{address} is a TLS address, but no TLS certificate is configured \
                 (--tls-ca-file, --tls-cert, --tls-key)"
            ))
        })?),
    };
    let stream = connect_tcp(address, target, role, timeout).await?;
    stream.set_nodelay(true)?;
    let (mut reader, mut write) = match tls {
        None => split_tcp(stream),
        Some(config) => {
            let connector = tokio_rustls::TlsConnector::from(config);
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, connector.connect(server_name(target), stream))
                .await
                .map_err(|_| WireError::Timeout(format!("TLS handshake with {address}")))?
                .map_err(|e| {
                    WireError::Handshake(format!(
                        "TLS handshake with {address} failed: {e} (is it a TLS port of this cluster, \
                         with a certificate signed by the same CA?)"
                    ))
                })?;
            split_tls(TlsStream::Client(stream))
        }
    };
    let hello = Handshake {
        magic: HANDSHAKE_MAGIC.to_string(),
        protocol_version: PROTOCOL_VERSION,
        role,
        name: name.to_string(),
        token: security.token().map(str::to_string),
    };
    let reply: HandshakeReply = tokio::time::timeout(HANDSHAKE_TIMEOUT, async {
        // A refusing peer (past max_connections) may answer and close
        // before our hello is written; its reply, still in our receive
        // buffer, says more than the failed write, so read it first.
        let sent = write_one(&mut write, &hello).await;
        let first = match (reader.fill_buf().await, sent) {
            (Ok(first), _) if !first.is_empty() => first,
            (_, Err(e)) => return Err(e),
            (read, Ok(())) => read?,
        };
        if let Some(what) = foreign_reply(first) {
            return Err(WireError::NotRdask(format!(
                "{address} is not {} (it answered with {what})",
                expected_kind(role)
            )));
        }
        read_one(&mut reader).await
    })
    .await
    .map_err(|_| WireError::Timeout(format!("handshake with {address}")))?
    .map_err(|e| match (scheme, e) {
        // With TLS 1.3 a server checks the client's certificate after the
        // client considers the handshake done, so a refused certificate
        // surfaces here, as the server's alert.
        // The alert can also be lost to a reset (the server closes with our
        // handshake frame unread), leaving only a reset or an end of stream.
        (Scheme::Tls, e @ (WireError::Io(_) | WireError::Closed)) => WireError::Handshake(format!(
            "{address} refused the TLS connection: {e} (is this certificate signed by the cluster's CA?)"
        )),
        (_, e) => e,
    })?;
    if let Some(error) = reply.error {
        return Err(WireError::Handshake(format!(
            "{address} refused the connection: {error}"
        )));
    }
    if reply.protocol_version != PROTOCOL_VERSION {
        return Err(WireError::Handshake(format!(
            "{address} speaks protocol version {}, this build speaks {PROTOCOL_VERSION}",
            reply.protocol_version
        )));
    }
    Ok((reader, write))
}

/// The TCP connect of [`connect_retrying`].
async fn connect_tcp(address: &str, target: &str, role: Role, timeout: Duration) -> Result<TcpStream, WireError> {
    let started = Instant::now();
    let deadline = started + timeout;
    let mut backoff = FIRST_CONNECT_BACKOFF;
    let mut tries = 0u32;
    loop {
        tries += 1;
        // One try may take what is left of the timeout, and at least what a
        // single try is allowed.
        let bound = deadline.saturating_duration_since(Instant::now()).max(CONNECT_TIMEOUT);
        let error = match tokio::time::timeout(bound, TcpStream::connect(target)).await {
            Ok(Ok(stream)) => return Ok(stream),
            Ok(Err(e)) => e,
            Err(_) => io::Error::new(io::ErrorKind::TimedOut, "timed out"),
        };
        let now = Instant::now();
        if now + backoff >= deadline {
            let why = match error.kind() {
                io::ErrorKind::ConnectionRefused => "connection refused".to_string(),
                io::ErrorKind::TimedOut => "connect timed out".to_string(),
                _ => error.to_string(),
            };
            let what = expected_kind(role).trim_start_matches("an ");
            return Err(WireError::Unreachable(format!(
                "no {what} at {address}: {why} ({tries} {} over {:.1} s)",
                if tries == 1 { "try" } else { "tries" },
                now.duration_since(started).as_secs_f64()
            )));
        }
        debug!(%address, "cannot connect yet ({error}); trying again in {backoff:?}");
        tokio::time::sleep(backoff).await;
        backoff = (backoff * 2).min(MAX_CONNECT_BACKOFF);
    }
}

/// What the first bytes a peer sent say it is, when it is not an rdask peer
/// (whose frames start with the high bytes of a header length: zero for any
/// header under 16 MiB, which handshakes and their replies are).
pub fn foreign_reply(first: &[u8]) -> Option<String> {
    match first {
        [] | [0, ..] => None,
        [b'H', b'T', b'T', b'P', ..] => Some("HTTP \u{2014} the dashboard/metrics port?".into()),
        [0x15 | 0x16, 0x03, ..] => Some("TLS \u{2014} connect with a tls:// address and a certificate".into()),
        other => Some(format!(
            "bytes that are not an rdask frame: {}",
            other
                .iter()
                .take(8)
                .map(|b| format!("{b:02x}"))
                .collect::<Vec<_>>()
                .join(" ")
        )),
    }
}

/// What the first bytes an accepted peer sent say it is, when they cannot
/// start an rdask handshake: an HTTP request (a browser or a scraper on the
/// wrong port) or a TLS hello on a plain port.
pub fn foreign_request(first: &[u8]) -> Option<&'static str> {
    const METHODS: [&[u8]; 8] = [b"GET ", b"HEAD", b"POST", b"PUT ", b"DELE", b"OPTI", b"PATC", b"CONN"];
    if METHODS.iter().any(|m| first.starts_with(m)) {
        Some("HTTP")
    } else if matches!(first, [0x16, 0x03, ..]) {
        Some("TLS")
    } else {
        None
    }
}

/// What an HTTP client on an rdask port is answered, so that a browser or
/// `curl` shows why instead of an empty reply.
pub const HTTP_REFUSAL: &[u8] = b"HTTP/1.1 400 Bad Request\r\nContent-Type: text/plain\r\nConnection: close\r\n\r\n\
This is an rdask port, which speaks the rdask protocol (docs/protocol.md), not HTTP. \
The HTTP endpoint is on --http-port.\n";

/// What a refused plaintext peer on a TLS port is told.
pub const TLS_REQUIRED: &str = "this port requires TLS: connect with a tls:// address and a certificate signed by \
                                the cluster's CA";

/// Accepting side: the TLS handshake when `security` has TLS (refusing a
/// peer without a certificate signed by the CA), then the rdask handshake:
/// reads the peer's [`Handshake`], checks magic, version, token and role,
/// and answers. A refused peer is told why before the error is returned
/// (the caller closes the socket).
pub async fn accept(
    stream: TcpStream,
    allowed: &[Role],
    security: &Security,
) -> Result<(Handshake, Reader, WriteHalf), WireError> {
    stream.set_nodelay(true)?;
    let mut first = [0u8; 4];
    // Peeking costs one syscall per connection, never per message; it lets
    // both kinds of port tell a mismatched peer what is wrong.
    let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
        .await
        .map_err(|_| WireError::Timeout("peer sent no handshake".into()))??;
    if peeked == 0 {
        return Err(WireError::Closed);
    }
    if foreign_request(&first[..peeked]) == Some("HTTP") {
        let mut stream = stream;
        // Best effort, and the request is left unread: the reset that may
        // follow only cuts what the peer has not read yet.
        let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.write_all(HTTP_REFUSAL)).await;
        let _ = stream.shutdown().await;
        return Err(WireError::NotRdask(
            "an HTTP client connected to this rdask port (answered 400; the HTTP endpoint is on --http-port)".into(),
        ));
    }
    let is_tls_hello = first[0] == TLS_HANDSHAKE_RECORD;
    let (mut reader, mut write) = match security.server_config() {
        None if is_tls_hello => {
            return Err(WireError::Handshake(
                "a TLS client connected to this plain-TCP port (is the cluster configured for TLS?)".into(),
            ))
        }
        None => split_tcp(stream),
        Some(_) if !is_tls_hello => {
            // A plaintext rdask peer: read its hello so the refusal is read
            // back (closing with unread data would reset the connection).
            let (mut reader, mut write) = split_tcp(stream);
            let _ = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_one::<Handshake>(&mut reader)).await;
            let reply = HandshakeReply {
                protocol_version: PROTOCOL_VERSION,
                error: Some(TLS_REQUIRED.into()),
            };
            let _ = write_one(&mut write, &reply).await;
            return Err(WireError::Handshake("plaintext peer on a TLS port".into()));
        }
        Some(config) => {
            let acceptor = tokio_rustls::TlsAcceptor::from(config);
            let stream = tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream))
                .await
                .map_err(|_| WireError::Timeout("TLS handshake".into()))?
                .map_err(|e| WireError::Handshake(format!("TLS handshake failed: {e}")))?;
            split_tls(TlsStream::Server(stream))
        }
    };
    let hello: Handshake = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_one(&mut reader))
        .await
        .map_err(|_| WireError::Timeout("peer sent no handshake".into()))??;
    let refusal = if hello.magic != HANDSHAKE_MAGIC {
        Some(format!("bad handshake magic {:?}", hello.magic))
    } else if hello.protocol_version != PROTOCOL_VERSION {
        Some(format!(
            "protocol version mismatch: peer speaks {}, this side speaks {PROTOCOL_VERSION}",
            hello.protocol_version
        ))
    } else if !security.token_accepted(hello.token.as_deref()) {
        // Never echo the token, right or wrong.
        Some(AUTHENTICATION_FAILED.to_string())
    } else if !allowed.contains(&hello.role) {
        Some(format!(
            "role {:?} is not accepted here (accepts {allowed:?})",
            hello.role
        ))
    } else {
        None
    };
    let reply = HandshakeReply {
        protocol_version: PROTOCOL_VERSION,
        error: refusal.clone(),
    };
    // Best effort: the peer may already be gone.
    let _ = write_one(&mut write, &reply).await;
    match refusal {
        Some(why) => Err(WireError::Handshake(why)),
        None => Ok((hello, reader, write)),
    }
}

/// The refusal reason for a missing or wrong token.
pub const AUTHENTICATION_FAILED: &str = "authentication failed";

/// Writes one bare value as a frame (handshakes).
pub async fn write_one<T: Serialize>(write: &mut WriteHalf, value: &T) -> Result<(), WireError> {
    let (header, payloads) = codec::encode(value)?;
    codec::write_frame(write, &header, &payloads).await?;
    write.flush().await?;
    Ok(())
}

/// Reads one bare value (handshakes).
pub async fn read_one<T: DeserializeOwned>(reader: &mut Reader) -> Result<T, WireError> {
    let limits = FrameLimits {
        max_header_bytes: 64 * 1024,
        max_payloads: 0,
        max_frame_bytes: 64 * 1024,
    };
    match codec::read_frame(reader, &limits).await? {
        Some(frame) => codec::decode(frame),
        None => Err(WireError::Closed),
    }
}

/// Reads the next batch of messages. `Ok(None)`: the peer closed cleanly.
pub async fn read_batch<M: DeserializeOwned>(
    reader: &mut Reader,
    limits: &FrameLimits,
) -> Result<Option<Vec<M>>, WireError> {
    read_batch_within(reader, limits, &ReadTimeouts::default()).await
}

/// [`read_batch_within`] for the scheduler's end of a client or worker
/// connection: a message the other kind of peer sends is refused by name
/// ([`decode_inbound`]).
pub async fn read_inbound_within<M: Inbound>(
    reader: &mut Reader,
    limits: &FrameLimits,
    timeouts: &ReadTimeouts,
) -> Result<Option<Vec<M>>, WireError> {
    match codec::read_frame_within(reader, limits, timeouts).await? {
        Some(frame) => decode_inbound(frame).map(Some),
        None => Ok(None),
    }
}

/// [`read_batch`] bounded in time by `timeouts`.
pub async fn read_batch_within<M: DeserializeOwned>(
    reader: &mut Reader,
    limits: &FrameLimits,
    timeouts: &ReadTimeouts,
) -> Result<Option<Vec<M>>, WireError> {
    match codec::read_frame_within(reader, limits, timeouts).await? {
        Some(frame) => codec::decode(frame).map(Some),
        None => Ok(None),
    }
}
