//! Connections: addresses (`tcp://` and `tls://`), TLS under the frames,
//! the versioned handshake (with the optional token), and the batching
//! writer every connection sends through.
//!
//! A connection's halves are [`ReadHalf`] and [`WriteHalf`]: enums over a
//! plain TCP socket and a TLS stream, so the plain path keeps tokio's owned
//! socket halves (no lock, no box, no extra copy) and TLS adds only what
//! rustls itself costs.
//!
//! Each connection has one writer task. Actors hand it messages through an
//! unbounded channel (so an actor never waits on a slow peer) guarded by a
//! byte budget ([`MAX_UNSENT_BYTES`]): a peer that stops reading is cut off
//! instead of growing our memory without bound. The writer drains whatever
//! is queued into one frame, which is where batching comes from: messages an
//! actor produced in one turn leave in one frame and, usually, one syscall.

use std::io;
use std::pin::Pin;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader, BufWriter, ReadBuf};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tokio_rustls::TlsStream;
use tracing::{debug, warn};

use super::codec::{self, FrameLimits, WireError, MAX_MESSAGES_PER_FRAME};
use super::messages::*;
use super::security::Security;

/// How long a peer has to complete the handshake after connecting.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// How long connecting to a peer may take.
pub const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Bytes queued for one connection and not yet written, past which the
/// connection is closed as stuck.
pub const MAX_UNSENT_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Size of the write buffer in front of each socket: frames smaller than
/// this are coalesced into one write.
pub const WRITE_BUFFER_BYTES: usize = 256 * 1024;
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

/// A message type that travels on the wire.
pub trait WireMessage: Serialize + DeserializeOwned + Send + 'static {
    /// Rough bytes this message occupies while queued (payloads dominate).
    fn approx_bytes(&self) -> u64;
}

fn payload_len(p: &Option<Payload>) -> u64 {
    p.as_ref().map_or(0, |p| p.len() as u64)
}

const MESSAGE_OVERHEAD: u64 = 64;

/// Rough encoded size of a task argument.
fn arg_bytes(a: &Arg) -> u64 {
    let n = match a {
        Arg::Value(v) => v.len(),
        Arg::Key(k) => k.len(),
        Arg::Keys(ks) => ks.iter().map(|k| k.len() + 4).sum(),
        Arg::KeyMap(entries) => entries.iter().map(|(b, k)| b.len() + k.len() + 8).sum(),
    };
    n as u64 + 8
}

impl WireMessage for ToScheduler {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                ToScheduler::Scatter { data, .. } => data.iter().map(|(_, p)| p.len() as u64).sum(),
                ToScheduler::TaskFinished { inline, .. } => payload_len(inline),
                ToScheduler::UpdateGraph { tasks, .. } => tasks
                    .iter()
                    .map(|t| 128 + t.args.iter().map(arg_bytes).sum::<u64>())
                    .sum(),
                _ => 0,
            }
    }
}

impl WireMessage for ToClient {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                ToClient::KeyInMemory { inline, .. } => payload_len(inline),
                _ => 0,
            }
    }
}

impl WireMessage for ToWorker {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                ToWorker::StoreData { data } => data.iter().map(|(_, p)| p.len() as u64).sum(),
                _ => 0,
            }
    }
}

impl WireMessage for ToPeer {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
    }
}

impl WireMessage for FromPeer {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                FromPeer::Data { data, .. } => data.iter().map(|(_, p)| payload_len(p)).sum(),
                _ => 0,
            }
    }
}

/// A queued message at least this large (by `approx_bytes`) is written in a
/// frame of its own: batching gains it nothing.
pub const ALONE_BYTES: u64 = 64 * 1024;
/// Most bytes of small messages batched into one frame.
pub const BATCH_BYTES: u64 = 4 * 1024 * 1024;

/// The transport an address names.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scheme {
    /// `tcp://` (or no scheme): plain TCP.
    Tcp,
    /// `tls://`: TLS over TCP with mutual authentication.
    Tls,
}

/// Splits `tcp://host:port`, `tls://host:port` or `host:port` (plain TCP)
/// into the scheme and `host:port`.
pub fn parse_address(address: &str) -> Result<(Scheme, &str), WireError> {
    let (scheme, rest) = if let Some(rest) = address.strip_prefix("tcp://") {
        (Scheme::Tcp, rest)
    } else if let Some(rest) = address.strip_prefix("tls://") {
        (Scheme::Tls, rest)
    } else {
        (Scheme::Tcp, address)
    };
    if rest.contains("://") {
        return Err(WireError::Handshake(format!(
            "unsupported address {address:?}: only tcp:// and tls:// are supported"
        )));
    }
    if !rest.contains(':') {
        return Err(WireError::Handshake(format!(
            "address {address:?} has no port (expected tcp://host:port or tls://host:port)"
        )));
    }
    Ok((scheme, rest))
}

/// `tcp://host:port`, `tls://host:port` or `host:port` to `host:port`.
pub fn socket_address(address: &str) -> Result<&str, WireError> {
    parse_address(address).map(|(_, rest)| rest)
}

/// The host part of `host:port` (IPv6 brackets removed), for TLS's server
/// name; rdask does not check it against the certificate (see
/// [`super::security`]), but rustls needs one.
fn server_name(target: &str) -> rustls::pki_types::ServerName<'static> {
    let host = target.rsplit_once(':').map_or(target, |(h, _)| h);
    let host = host.trim_start_matches('[').trim_end_matches(']');
    rustls::pki_types::ServerName::try_from(host.to_string())
        .unwrap_or_else(|_| rustls::pki_types::ServerName::try_from("rdask").expect("a valid DNS name"))
}

/// Connects to `address`, performs the handshake as `role`, and returns the
/// two halves. A `tls://` address needs `security` to hold TLS settings;
/// its token, if any, is presented in the handshake.
pub async fn connect(
    address: &str,
    role: Role,
    name: &str,
    security: &Security,
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
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| WireError::Timeout(format!("connecting to {address}")))??;
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
        write_one(&mut write, &hello).await?;
        if scheme == Scheme::Tcp {
            // A TLS server answers plaintext with a TLS alert record; say so
            // instead of reporting a garbled frame.
            let first = reader.fill_buf().await?;
            if matches!(first.first(), Some(0x15 | 0x16)) {
                return Err(WireError::Handshake(format!(
                    "{address} answered with TLS: connect with a tls:// address and a certificate"
                )));
            }
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
    let mut first = [0u8; 1];
    // Peeking costs one syscall per connection, never per message; it lets
    // both kinds of port tell a mismatched peer what is wrong.
    let peeked = tokio::time::timeout(HANDSHAKE_TIMEOUT, stream.peek(&mut first))
        .await
        .map_err(|_| WireError::Timeout("peer sent no handshake".into()))??;
    if peeked == 0 {
        return Err(WireError::Closed);
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
    match codec::read_frame(reader, limits).await? {
        Some(frame) => codec::decode(frame).map(Some),
        None => Ok(None),
    }
}

/// Handle for queueing messages on a connection's writer.
pub struct Sender<M> {
    tx: mpsc::UnboundedSender<M>,
    unsent: Arc<AtomicU64>,
    broken: Arc<AtomicBool>,
}

impl<M> Clone for Sender<M> {
    fn clone(&self) -> Self {
        Sender {
            tx: self.tx.clone(),
            unsent: self.unsent.clone(),
            broken: self.broken.clone(),
        }
    }
}

impl<M: WireMessage> Sender<M> {
    /// Queues a message. Fails if the connection is closed or over its
    /// unsent-bytes budget (the writer is then shut down).
    pub fn send(&self, msg: M) -> Result<(), WireError> {
        if self.broken.load(Ordering::Relaxed) {
            return Err(WireError::Closed);
        }
        let size = msg.approx_bytes();
        let queued = self.unsent.fetch_add(size, Ordering::Relaxed) + size;
        if queued > MAX_UNSENT_BYTES {
            self.broken.store(true, Ordering::Relaxed);
            return Err(WireError::TooLarge(format!(
                "{queued} bytes queued for a peer that is not reading (limit {MAX_UNSENT_BYTES})"
            )));
        }
        self.tx.send(msg).map_err(|_| WireError::Closed)
    }

    /// Whether the connection has failed or closed.
    pub fn is_closed(&self) -> bool {
        self.broken.load(Ordering::Relaxed) || self.tx.is_closed()
    }

    /// Stops the writer after what is queued; the socket is closed.
    pub fn close(&self) {
        self.broken.store(true, Ordering::Relaxed);
    }
}

/// Starts the writer task for a connection on the current (actix or tokio)
/// local task set, returning the handle that queues messages on it.
pub fn spawn_writer<M: WireMessage>(write: WriteHalf, label: String) -> Sender<M> {
    let (tx, rx) = mpsc::unbounded_channel();
    let sender = Sender {
        tx,
        unsent: Arc::new(AtomicU64::new(0)),
        broken: Arc::new(AtomicBool::new(false)),
    };
    let unsent = sender.unsent.clone();
    let broken = sender.broken.clone();
    tokio::task::spawn_local(async move {
        if let Err(e) = writer_loop(write, rx, &unsent, &broken).await {
            debug!(peer = %label, "writer stopped: {e}");
        }
        broken.store(true, Ordering::Relaxed);
    });
    sender
}

async fn writer_loop<M: WireMessage>(
    write: WriteHalf,
    mut rx: mpsc::UnboundedReceiver<M>,
    unsent: &AtomicU64,
    broken: &AtomicBool,
) -> Result<(), WireError> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write);
    let mut batch: Vec<M> = Vec::new();
    let mut carry: Option<M> = None;
    loop {
        let first = match carry.take() {
            Some(m) => m,
            None => match rx.recv().await {
                Some(m) => m,
                None => break,
            },
        };
        let mut bytes = first.approx_bytes();
        batch.push(first);
        // A large message goes in a frame of its own and small ones fill a
        // frame only up to BATCH_BYTES, so no frame is much larger than its
        // largest message, which its sender sized for the peer's limits.
        while bytes < ALONE_BYTES && batch.len() < MAX_MESSAGES_PER_FRAME {
            match rx.try_recv() {
                Ok(m) => {
                    let b = m.approx_bytes();
                    if b >= ALONE_BYTES || bytes + b > BATCH_BYTES {
                        carry = Some(m);
                        break;
                    }
                    bytes += b;
                    batch.push(m);
                }
                Err(_) => break,
            }
        }
        match codec::encode(&batch[..]) {
            Ok((header, payloads)) => codec::write_frame(&mut out, &header, &payloads).await?,
            Err(e) => warn!(
                "dropping a batch of {} messages that cannot be encoded: {e}",
                batch.len()
            ),
        }
        unsent.fetch_sub(bytes, Ordering::Relaxed);
        batch.clear();
        if rx.is_empty() && carry.is_none() {
            out.flush().await?;
        }
        if broken.load(Ordering::Relaxed) && rx.is_empty() && carry.is_none() {
            break;
        }
    }
    out.flush().await?;
    let _ = out.into_inner().shutdown().await;
    Ok(())
}
