//! TCP connections: addresses, the versioned handshake, and the batching
//! writer every connection sends through.
//!
//! Each connection has one writer task. Actors hand it messages through an
//! unbounded channel (so an actor never waits on a slow peer) guarded by a
//! byte budget ([`MAX_UNSENT_BYTES`]): a peer that stops reading is cut off
//! instead of growing our memory without bound. The writer drains whatever
//! is queued into one frame, which is where batching comes from: messages an
//! actor produced in one turn leave in one frame and, usually, one syscall.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;
use tokio::io::{AsyncWriteExt, BufReader, BufWriter};
use tokio::net::tcp::{OwnedReadHalf, OwnedWriteHalf};
use tokio::net::TcpStream;
use tokio::sync::mpsc;
use tracing::{debug, warn};

use super::codec::{self, FrameLimits, WireError, MAX_MESSAGES_PER_FRAME};
use super::messages::*;

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
pub type Reader = BufReader<OwnedReadHalf>;

/// A message type that travels on the wire.
pub trait WireMessage: Serialize + DeserializeOwned + Send + 'static {
    /// Rough bytes this message occupies while queued (payloads dominate).
    fn approx_bytes(&self) -> u64;
}

fn payload_len(p: &Option<Payload>) -> u64 {
    p.as_ref().map_or(0, |p| p.len() as u64)
}

const MESSAGE_OVERHEAD: u64 = 64;

impl WireMessage for ToScheduler {
    fn approx_bytes(&self) -> u64 {
        MESSAGE_OVERHEAD
            + match self {
                ToScheduler::Scatter { data, .. } => data.iter().map(|(_, p)| p.len() as u64).sum(),
                ToScheduler::TaskFinished { inline, .. } => payload_len(inline),
                ToScheduler::UpdateGraph { tasks, .. } => tasks.len() as u64 * 128,
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

/// `tcp://host:port` or `host:port` to `host:port`.
pub fn socket_address(address: &str) -> Result<&str, WireError> {
    let rest = address.strip_prefix("tcp://").unwrap_or(address);
    if rest.contains("://") {
        return Err(WireError::Handshake(format!(
            "unsupported address {address:?}: only tcp:// is supported"
        )));
    }
    if !rest.contains(':') {
        return Err(WireError::Handshake(format!(
            "address {address:?} has no port (expected tcp://host:port)"
        )));
    }
    Ok(rest)
}

/// Connects to `address`, performs the handshake as `role`, and returns the
/// two halves.
pub async fn connect(address: &str, role: Role, name: &str) -> Result<(Reader, OwnedWriteHalf), WireError> {
    let target = socket_address(address)?;
    let stream = tokio::time::timeout(CONNECT_TIMEOUT, TcpStream::connect(target))
        .await
        .map_err(|_| WireError::Timeout(format!("connecting to {address}")))??;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, read);
    let hello = Handshake {
        magic: HANDSHAKE_MAGIC.to_string(),
        protocol_version: PROTOCOL_VERSION,
        role,
        name: name.to_string(),
    };
    write_one(&mut write, &hello).await?;
    let reply: HandshakeReply = tokio::time::timeout(HANDSHAKE_TIMEOUT, read_one(&mut reader))
        .await
        .map_err(|_| WireError::Timeout(format!("handshake with {address}")))??;
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

/// Accepting side of the handshake: reads the peer's [`Handshake`], checks
/// magic, version and role, and answers. A refused peer is told why before
/// the error is returned (the caller closes the socket).
pub async fn accept(stream: TcpStream, allowed: &[Role]) -> Result<(Handshake, Reader, OwnedWriteHalf), WireError> {
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let mut reader = BufReader::with_capacity(READ_BUFFER_BYTES, read);
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

/// Writes one bare value as a frame (handshakes).
pub async fn write_one<T: Serialize>(write: &mut OwnedWriteHalf, value: &T) -> Result<(), WireError> {
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
pub fn spawn_writer<M: WireMessage>(write: OwnedWriteHalf, label: String) -> Sender<M> {
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
    write: OwnedWriteHalf,
    mut rx: mpsc::UnboundedReceiver<M>,
    unsent: &AtomicU64,
    broken: &AtomicBool,
) -> Result<(), WireError> {
    let mut out = BufWriter::with_capacity(WRITE_BUFFER_BYTES, write);
    let mut batch: Vec<M> = Vec::new();
    loop {
        let Some(first) = rx.recv().await else { break };
        batch.push(first);
        while batch.len() < MAX_MESSAGES_PER_FRAME {
            match rx.try_recv() {
                Ok(m) => batch.push(m),
                Err(_) => break,
            }
        }
        let bytes: u64 = batch.iter().map(|m| m.approx_bytes()).sum();
        match codec::encode(&batch[..]) {
            Ok((header, payloads)) => codec::write_frame(&mut out, &header, &payloads).await?,
            Err(e) => warn!(
                "dropping a batch of {} messages that cannot be encoded: {e}",
                batch.len()
            ),
        }
        unsent.fetch_sub(bytes, Ordering::Relaxed);
        batch.clear();
        if rx.is_empty() {
            out.flush().await?;
        }
        if broken.load(Ordering::Relaxed) && rx.is_empty() {
            break;
        }
    }
    out.flush().await?;
    let _ = out.into_inner().shutdown().await;
    Ok(())
}
