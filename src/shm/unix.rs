//! File descriptors over a tokio `UnixStream`: bytes with `SCM_RIGHTS`
//! attached on the way out, and the first bytes of a reply with the
//! descriptors that came with them on the way in.

use std::io::{IoSlice, IoSliceMut};
use std::mem::MaybeUninit;
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};

use rustix::net::{
    recvmsg, sendmsg, RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, ReturnFlags, SendAncillaryBuffer,
    SendAncillaryMessage, SendFlags,
};
use tokio::io::{AsyncWriteExt, Interest};
use tokio::net::UnixStream;

use super::{io, ShmError, MAX_FDS_PER_REPLY};

/// Writes `data` with `fds` attached to its first bytes. The kernel hands
/// the descriptors to the reader with the first read of those bytes.
pub async fn send_with_fds<F: AsFd>(stream: &mut UnixStream, data: &[u8], fds: &[F]) -> Result<(), ShmError> {
    if data.is_empty() {
        // A stream socket carries ancillary data only with at least a byte.
        return Err(ShmError::Protocol(
            "descriptors need at least one byte to travel with".into(),
        ));
    }
    let borrowed: Vec<BorrowedFd<'_>> = fds.iter().map(|f| f.as_fd()).collect();
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(borrowed.len().max(1)))];
    let sent = stream
        .async_io(Interest::WRITABLE, || {
            let mut control = SendAncillaryBuffer::new(&mut space);
            if !borrowed.is_empty() && !control.push(SendAncillaryMessage::ScmRights(&borrowed)) {
                return Err(std::io::Error::other("no room for the descriptors"));
            }
            Ok(sendmsg(
                &*stream,
                &[IoSlice::new(data)],
                &mut control,
                SendFlags::NOSIGNAL,
            )?)
        })
        .await
        .map_err(io("sending descriptors"))?;
    stream.write_all(&data[sent..]).await.map_err(io("sending a reply"))?;
    Ok(())
}

/// Reads up to `buf.len()` bytes and the descriptors that came with them
/// (at most [`MAX_FDS_PER_REPLY`]). Zero bytes: the peer closed.
pub async fn recv_with_fds(stream: &UnixStream, buf: &mut [u8]) -> Result<(usize, Vec<OwnedFd>), ShmError> {
    let mut space = vec![MaybeUninit::<u8>::uninit(); rustix::cmsg_space!(ScmRights(MAX_FDS_PER_REPLY))];
    stream
        .async_io(Interest::READABLE, || {
            let mut control = RecvAncillaryBuffer::new(&mut space);
            let got = recvmsg(
                stream,
                &mut [IoSliceMut::new(buf)],
                &mut control,
                RecvFlags::CMSG_CLOEXEC,
            )?;
            let mut fds = Vec::new();
            for message in control.drain() {
                if let RecvAncillaryMessage::ScmRights(received) = message {
                    fds.extend(received);
                }
            }
            if got.flags.contains(ReturnFlags::CTRUNC) {
                // Descriptors were dropped (too many, or out of descriptors).
                return Err(std::io::Error::other(format!(
                    "descriptors were cut off (more than {MAX_FDS_PER_REPLY}, or the process is out of descriptors)"
                )));
            }
            Ok((got.bytes, fds))
        })
        .await
        .map_err(io("receiving descriptors"))
}
