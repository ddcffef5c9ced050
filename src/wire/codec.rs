//! Frame layout and (de)serialization of message batches.
//!
//! A frame is
//!
//! ```text
//! u32 BE  header_len
//! u32 BE  n_payloads
//! u64 BE  payload_len   (n_payloads times)
//! header_len bytes      msgpack: an array of messages (or one bare map in a handshake)
//! payload bytes         the payloads, back to back, in index order
//! ```
//!
//! A [`Payload`] field is written in the header as the index of its payload
//! frame. The encoder collects payloads in a thread-local list while serde
//! walks the message, and the decoder hands them out the same way, so task
//! data is never copied into or out of a msgpack value; on the read side each
//! payload is one allocation filled straight from the socket.

use std::cell::RefCell;
use std::future::Future;
use std::io;
use std::task::Poll;
use std::time::Duration;

use bytes::{Bytes, BytesMut};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use super::messages::Payload;

/// Largest msgpack header accepted in one frame.
pub const DEFAULT_MAX_HEADER_BYTES: u32 = 256 * 1024 * 1024;
/// Most payload frames accepted in one frame (a batch of many small results).
pub const DEFAULT_MAX_PAYLOADS_PER_FRAME: u32 = 1 << 20;
/// Largest frame (header plus payloads) accepted: a single task result above
/// this cannot be moved.
pub const DEFAULT_MAX_FRAME_BYTES: u64 = 2 * 1024 * 1024 * 1024;
/// Most messages a writer packs into one frame before starting the next.
pub const MAX_MESSAGES_PER_FRAME: usize = 16 * 1024;
/// A frame once begun must advance by at least this many bytes (or end)
/// within [`ReadTimeouts::stall`]: a peer dribbling a byte at a time cannot
/// hold a connection, yet a large frame on a slow link (2 KiB/s and up with
/// the default stall timeout) arrives whole.
pub const FRAME_PROGRESS_BYTES: usize = 64 * 1024;
/// Capacity reserved for a header or payload before its bytes arrive; the
/// buffer then grows (doubling) as they do, so a peer that claims 2 GiB and
/// sends nothing costs this much, not what it claimed.
pub const INITIAL_READ_RESERVE: usize = 64 * 1024;
/// Payload lengths read per step: a claim of a million payloads is not
/// answered with an 8 MiB table before the lengths arrive.
const LENGTHS_PER_READ: usize = 512;

/// Limits applied to every frame read from a peer.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct FrameLimits {
    /// Largest header, bytes.
    pub max_header_bytes: u32,
    /// Most payloads per frame.
    pub max_payloads: u32,
    /// Largest frame in total, bytes.
    pub max_frame_bytes: u64,
}

impl Default for FrameLimits {
    fn default() -> Self {
        FrameLimits {
            max_header_bytes: DEFAULT_MAX_HEADER_BYTES,
            max_payloads: DEFAULT_MAX_PAYLOADS_PER_FRAME,
            max_frame_bytes: DEFAULT_MAX_FRAME_BYTES,
        }
    }
}

/// Time bounds on reading frames. `None` waits forever.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct ReadTimeouts {
    /// Longest wait for the first byte of the next frame: how a client or
    /// worker notices a scheduler gone silent (the scheduler sends a
    /// keep-alive when it has nothing else to say).
    pub idle: Option<Duration>,
    /// Longest a frame in progress may go without advancing by
    /// [`FRAME_PROGRESS_BYTES`] (or ending).
    pub stall: Option<Duration>,
}

/// Errors of the wire layer.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] io::Error),
    /// A frame exceeds one of the [`FrameLimits`].
    #[error("frame too large: {0}")]
    TooLarge(String),
    /// The header is not valid msgpack for the expected message type.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// A message could not be encoded.
    #[error("cannot encode message: {0}")]
    Encode(String),
    /// The peer closed the connection in the middle of a frame.
    #[error("connection closed in the middle of a frame")]
    Truncated,
    /// The handshake failed (other protocol version, wrong magic, refusal).
    #[error("handshake failed: {0}")]
    Handshake(String),
    /// The peer did not answer in time.
    #[error("timed out: {0}")]
    Timeout(String),
    /// The connection is closed.
    #[error("connection closed")]
    Closed,
    /// An address is not `tcp://HOST:PORT` or `tls://HOST:PORT`.
    #[error("malformed address {0:?}: expected tcp://HOST:PORT or tls://HOST:PORT")]
    Address(String),
    /// Nothing rdask could be reached at an address (the text says where,
    /// how often it was tried, and for how long).
    #[error("{0}")]
    Unreachable(String),
    /// The peer is not an rdask process of the expected kind (an HTTP
    /// server, a TLS port, something else); the text says what it answered.
    #[error("{0}")]
    NotRdask(String),
    /// Nothing arrived from the peer for [`ReadTimeouts::idle`].
    #[error("peer silent for {} s", .0.as_secs_f64())]
    Silent(Duration),
    /// A frame in progress did not advance for [`ReadTimeouts::stall`].
    #[error(
        "incomplete frame stalled: less than {FRAME_PROGRESS_BYTES} bytes arrived in {} s",
        .0.as_secs_f64()
    )]
    Stalled(Duration),
    /// The connection was cut because the peer did not read what was sent
    /// to it (the text gives the figures).
    #[error("{0}")]
    NotReading(String),
}

impl WireError {
    /// Whether the peer broke the protocol (undecodable or oversized
    /// frames, a refused message), as opposed to the connection failing
    /// or going quiet.
    pub fn is_protocol_error(&self) -> bool {
        matches!(self, WireError::TooLarge(_) | WireError::Malformed(_))
    }
}

/// One frame as read from the socket.
#[derive(Debug, Default, Clone)]
pub struct Frame {
    /// The msgpack header.
    pub header: Bytes,
    /// The raw payloads, by index.
    pub payloads: Vec<Bytes>,
}

thread_local! {
    static OUT_PAYLOADS: RefCell<Vec<Bytes>> = const { RefCell::new(Vec::new()) };
    static IN_PAYLOADS: RefCell<Vec<Option<Bytes>>> = const { RefCell::new(Vec::new()) };
}

impl Serialize for Payload {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let index = OUT_PAYLOADS.with(|p| {
            let mut p = p.borrow_mut();
            p.push(self.0.clone());
            p.len() - 1
        });
        serializer.serialize_u32(index as u32)
    }
}

impl<'de> Deserialize<'de> for Payload {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let index = u32::deserialize(deserializer)? as usize;
        IN_PAYLOADS.with(|p| {
            let mut p = p.borrow_mut();
            match p.get_mut(index) {
                Some(slot) => slot
                    .take()
                    .map(Payload)
                    .ok_or_else(|| serde::de::Error::custom(format!("payload {index} referenced twice"))),
                None => Err(serde::de::Error::custom(format!(
                    "payload index {index} out of range ({} payloads in frame)",
                    p.len()
                ))),
            }
        })
    }
}

/// Encodes a value (a batch `&[M]` or a single handshake struct) into a
/// header and the payloads it references.
pub fn encode<T: Serialize + ?Sized>(value: &T) -> Result<(Vec<u8>, Vec<Bytes>), WireError> {
    OUT_PAYLOADS.with(|p| p.borrow_mut().clear());
    let header = rmp_serde::to_vec_named(value).map_err(|e| WireError::Encode(e.to_string()));
    let payloads = OUT_PAYLOADS.with(|p| std::mem::take(&mut *p.borrow_mut()));
    Ok((header?, payloads))
}

/// Decodes a frame's header into `T`, resolving payload indices.
pub fn decode<T: DeserializeOwned>(frame: Frame) -> Result<T, WireError> {
    IN_PAYLOADS.with(|p| *p.borrow_mut() = frame.payloads.into_iter().map(Some).collect());
    let result = rmp_serde::from_slice(&frame.header).map_err(|e| WireError::Malformed(e.to_string()));
    IN_PAYLOADS.with(|p| p.borrow_mut().clear());
    result
}

/// Reads one frame. `Ok(None)` on a clean end of stream between frames.
pub async fn read_frame<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: &FrameLimits,
) -> Result<Option<Frame>, WireError> {
    read_frame_within(reader, limits, &ReadTimeouts::default()).await
}

/// [`read_frame`] bounded in time by `timeouts`.
pub async fn read_frame_within<R: AsyncRead + Unpin>(
    reader: &mut R,
    limits: &FrameLimits,
    timeouts: &ReadTimeouts,
) -> Result<Option<Frame>, WireError> {
    let mut prefix = [0u8; 8];
    // A clean EOF before the first byte is the peer closing; after it, truncation.
    let first = match timeouts.idle {
        Some(idle) => tokio::time::timeout(idle, reader.read(&mut prefix[..1]))
            .await
            .map_err(|_| WireError::Silent(idle))??,
        None => reader.read(&mut prefix[..1]).await?,
    };
    if first == 0 {
        return Ok(None);
    }
    let mut progress = Progress::new(timeouts.stall);
    progress.read_exact(reader, &mut prefix[1..]).await?;
    let header_len = u32::from_be_bytes([prefix[0], prefix[1], prefix[2], prefix[3]]);
    let n_payloads = u32::from_be_bytes([prefix[4], prefix[5], prefix[6], prefix[7]]);
    if header_len > limits.max_header_bytes {
        return Err(WireError::TooLarge(format!(
            "header of {header_len} bytes exceeds the limit of {}",
            limits.max_header_bytes
        )));
    }
    if n_payloads > limits.max_payloads {
        return Err(WireError::TooLarge(format!(
            "{n_payloads} payloads exceed the limit of {}",
            limits.max_payloads
        )));
    }
    let mut lengths = Vec::with_capacity((n_payloads as usize).min(LENGTHS_PER_READ));
    let mut total = header_len as u64;
    // On the heap and sized to the frame: a fixed 4 KiB array here was
    // zeroed on every frame (most carry no payloads) and made this future
    // 4 KiB larger; together about 2 % of a scheduler's instructions.
    let mut raw: Vec<u8> = Vec::new();
    let mut left = n_payloads as usize;
    while left > 0 {
        let step = left.min(LENGTHS_PER_READ);
        raw.resize(step * 8, 0);
        progress.read_exact(reader, &mut raw[..step * 8]).await?;
        for chunk in raw[..step * 8].chunks_exact(8) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            let len = u64::from_be_bytes(b);
            total = total.saturating_add(len);
            lengths.push(len);
        }
        left -= step;
    }
    if total > limits.max_frame_bytes {
        return Err(WireError::TooLarge(format!(
            "frame of {total} bytes exceeds the limit of {}",
            limits.max_frame_bytes
        )));
    }
    let header = progress.read_bytes(reader, header_len as usize).await?;
    let mut payloads = Vec::with_capacity(lengths.len());
    for len in lengths {
        payloads.push(progress.read_bytes(reader, len as usize).await?);
    }
    Ok(Some(Frame { header, payloads }))
}

/// The stall clock of one frame: each read must finish before the deadline,
/// which moves on each time [`FRAME_PROGRESS_BYTES`] more have arrived.
struct Progress {
    stall: Option<Duration>,
    deadline: Option<tokio::time::Instant>,
    since: usize,
}

impl Progress {
    fn new(stall: Option<Duration>) -> Self {
        Progress {
            stall,
            deadline: stall.map(|s| tokio::time::Instant::now() + s),
            since: 0,
        }
    }

    /// Runs one read; end of stream inside a frame is truncation.
    async fn step(&mut self, read: impl Future<Output = io::Result<usize>>) -> Result<usize, WireError> {
        let mut read = std::pin::pin!(read);
        // Most reads are served from the socket's buffer at once: the stall
        // timer (a timer-wheel entry) is armed only for a read that waits.
        let first = std::future::poll_fn(|cx| Poll::Ready(read.as_mut().poll(cx))).await;
        let n = match (first, self.deadline, self.stall) {
            (Poll::Ready(r), _, _) => r?,
            (Poll::Pending, Some(deadline), Some(stall)) => tokio::time::timeout_at(deadline, read)
                .await
                .map_err(|_| WireError::Stalled(stall))??,
            (Poll::Pending, _, _) => read.await?,
        };
        if n == 0 {
            return Err(WireError::Truncated);
        }
        self.since += n;
        if self.since >= FRAME_PROGRESS_BYTES {
            self.since = 0;
            self.deadline = self.stall.map(|s| tokio::time::Instant::now() + s);
        }
        Ok(n)
    }

    async fn read_exact<R: AsyncRead + Unpin>(&mut self, reader: &mut R, buf: &mut [u8]) -> Result<(), WireError> {
        let mut filled = 0;
        while filled < buf.len() {
            filled += self.step(reader.read(&mut buf[filled..])).await?;
        }
        Ok(())
    }

    async fn read_bytes<R: AsyncRead + Unpin>(&mut self, reader: &mut R, len: usize) -> Result<Bytes, WireError> {
        // Filled with read_buf, so the buffer is not zeroed first; it grows
        // with what arrives (Vec-style doubling, so a large payload costs a
        // few reallocations, which glibc does by remapping, not copying).
        let mut buf = BytesMut::with_capacity(len.min(INITIAL_READ_RESERVE));
        while buf.len() < len {
            let remaining = len - buf.len();
            if buf.capacity() == buf.len() {
                buf.reserve(remaining.min(buf.len().max(INITIAL_READ_RESERVE)));
            }
            self.step(reader.read_buf(&mut (&mut buf).limit(remaining))).await?;
        }
        Ok(buf.freeze())
    }
}

use bytes::BufMut;

/// The lengths that open a frame (header length, payload count, payload
/// lengths), written before the header.
pub fn frame_prefix(header: &[u8], payloads: &[Bytes]) -> Vec<u8> {
    let mut prefix = Vec::with_capacity(8 + payloads.len() * 8);
    prefix.extend_from_slice(&(header.len() as u32).to_be_bytes());
    prefix.extend_from_slice(&(payloads.len() as u32).to_be_bytes());
    for p in payloads {
        prefix.extend_from_slice(&(p.len() as u64).to_be_bytes());
    }
    prefix
}

/// Writes one frame. Large payloads go to the socket straight from their
/// buffers; pair with a `BufWriter` so small frames cost one syscall.
pub async fn write_frame<W: AsyncWrite + Unpin>(writer: &mut W, header: &[u8], payloads: &[Bytes]) -> io::Result<()> {
    writer.write_all(&frame_prefix(header, payloads)).await?;
    writer.write_all(header).await?;
    for p in payloads {
        writer.write_all(p).await?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::{FromPeer, FromWorker};

    fn roundtrip<M: Serialize + DeserializeOwned>(msgs: &[M]) -> Vec<M> {
        let (header, payloads) = encode(msgs).unwrap();
        decode(Frame {
            header: header.into(),
            payloads,
        })
        .unwrap()
    }

    #[test]
    fn payloads_travel_beside_the_header() {
        let big = Bytes::from(vec![7u8; 100_000]);
        let msgs = vec![
            FromPeer::Data {
                request_id: 3,
                data: vec![
                    ("a".into(), Some(Payload(big.clone()))),
                    ("b".into(), None),
                    ("c".into(), Some(Payload(Bytes::from_static(b"xy")))),
                ],
            },
            FromPeer::Data {
                request_id: 4,
                data: vec![],
            },
        ];
        let (header, payloads) = encode(&msgs).unwrap();
        assert!(header.len() < 100, "payload must not be inside the header");
        assert_eq!(payloads.len(), 2);
        assert_eq!(roundtrip(&msgs), msgs);
    }

    #[test]
    fn bad_payload_index_is_an_error() {
        let msgs = vec![FromWorker::TaskFinished {
            key: "k".into(),
            nbytes: 1,
            inline: Some(Payload(Bytes::from_static(b"x"))),
            duration_us: 0,
            thread: 0,
            run_id: 1,
        }];
        let (header, _) = encode(&msgs).unwrap();
        let err = decode::<Vec<FromWorker>>(Frame {
            header: header.into(),
            payloads: vec![],
        })
        .unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[tokio::test]
    async fn a_stalled_frame_and_a_silent_peer_time_out() {
        use tokio::io::AsyncWriteExt;
        let short = Some(Duration::from_millis(50));
        let (mut tx, mut rx) = tokio::io::duplex(1024);
        // Begun, then nothing more: stalled, though the stream stays open.
        tx.write_all(&[0, 0, 0, 10, 0, 0, 0, 0, 0x90]).await.unwrap();
        let stall = ReadTimeouts {
            idle: None,
            stall: short,
        };
        let err = read_frame_within(&mut rx, &FrameLimits::default(), &stall)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Stalled(_)), "{err}");
        // Nothing at all: silent.
        let (_tx, mut rx) = tokio::io::duplex(1024);
        let idle = ReadTimeouts {
            idle: short,
            stall: None,
        };
        let err = read_frame_within(&mut rx, &FrameLimits::default(), &idle)
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Silent(_)), "{err}");
    }

    #[tokio::test]
    async fn a_large_payload_arrives_whole_through_a_growing_buffer() {
        let big = Bytes::from(
            (0..3 * INITIAL_READ_RESERVE as u32 + 7)
                .map(|i| i as u8)
                .collect::<Vec<u8>>(),
        );
        let mut buf = Vec::new();
        write_frame(&mut buf, b"\x90", std::slice::from_ref(&big))
            .await
            .unwrap();
        let f = read_frame(&mut &buf[..], &FrameLimits::default())
            .await
            .unwrap()
            .unwrap();
        assert_eq!(f.payloads[0], big);
    }

    #[tokio::test]
    async fn frames_roundtrip_through_a_stream_and_limits_hold() {
        let mut buf = Vec::new();
        write_frame(&mut buf, b"\x90", &[Bytes::from_static(b"hello")])
            .await
            .unwrap();
        let mut r = &buf[..];
        let f = read_frame(&mut r, &FrameLimits::default()).await.unwrap().unwrap();
        assert_eq!(&f.header[..], b"\x90");
        assert_eq!(&f.payloads[0][..], b"hello");
        assert!(read_frame(&mut r, &FrameLimits::default()).await.unwrap().is_none());

        // 4 GiB header length is refused before anything is allocated.
        let huge = [0xffu8, 0xff, 0xff, 0xff, 0, 0, 0, 0];
        let err = read_frame(&mut &huge[..], &FrameLimits::default()).await.unwrap_err();
        assert!(matches!(err, WireError::TooLarge(_)), "{err}");

        // Truncated in the middle.
        let err = read_frame(&mut &buf[..buf.len() - 2], &FrameLimits::default())
            .await
            .unwrap_err();
        assert!(matches!(err, WireError::Truncated), "{err}");
    }
}
