//! The memory files of one direct scatter: each large value is copied into
//! a sealed memfd once, and that one file goes to every worker on this host
//! that receives the value (each maps it; the pages are shared), instead of
//! one copy per worker. A value can also be encoded straight into its
//! memory file ([`encode_shared`]): then the encoding is the one copy.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::{fds, io, ShmError, SHM_MIN_VALUE_BYTES};
use crate::util::FxMap;
use crate::wire::messages::Key;

type Cell = Arc<OnceCell<Arc<OwnedFd>>>;

/// A value's encoding, and the memory file holding it when it is large.
pub type SharedEncoding = (Bytes, Option<Arc<OwnedFd>>);

/// Memory files by key, made on first use; cloning shares them. The files
/// close when the last clone and the last worker's descriptor are gone
/// (a worker's mapping keeps the memory until it drops the value).
#[derive(Clone, Default)]
pub struct PushFiles(Arc<Mutex<FxMap<Key, Cell>>>);

impl PushFiles {
    /// Records `file` as the memory file of `key` (one [`encode_shared`]
    /// made).
    pub fn insert(&self, key: Key, file: Arc<OwnedFd>) {
        let mut cells = self.0.lock().unwrap_or_else(|p| p.into_inner());
        cells.insert(key, Arc::new(OnceCell::new_with(Some(file))));
    }

    /// The memory file holding `value` (the value of `key`), made now if
    /// no push of this scatter made it yet; concurrent pushes of the same
    /// key wait for the one copy.
    pub async fn file(&self, key: &Key, value: &Bytes) -> Result<Arc<OwnedFd>, ShmError> {
        let cell = {
            let mut cells = self.0.lock().unwrap_or_else(|p| p.into_inner());
            cells.entry(key.clone()).or_default().clone()
        };
        let value = value.clone();
        cell.get_or_try_init(|| async move {
            // One memcpy of the value, off the async threads.
            tokio::task::spawn_blocking(move || fds::share(&value))
                .await
                .map_err(|e| ShmError::Protocol(format!("making a memory file failed: {e}")))?
                .map(Arc::new)
        })
        .await
        .cloned()
    }
}

/// Bytes of a memory file's write buffer: large enough that an encoder's
/// small writes (markers, lengths) cost no system call each.
const WRITE_BUFFER_BYTES: usize = 256 * 1024;

/// Where an encoding goes: memory while small, a memory file once it
/// reaches `min_file_bytes`.
struct Spill {
    small: Vec<u8>,
    file: Option<BufWriter<File>>,
    /// The memory file could not be made or written.
    failed: bool,
    min_file_bytes: usize,
}

impl Write for Spill {
    fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
        let written = self.write_inner(b);
        self.failed |= written.is_err();
        written
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.file.as_mut().map_or(Ok(()), |f| f.flush())
    }
}

impl Spill {
    fn write_inner(&mut self, b: &[u8]) -> std::io::Result<usize> {
        if self.file.is_none() && self.small.len() + b.len() >= self.min_file_bytes {
            let mut file = BufWriter::with_capacity(WRITE_BUFFER_BYTES, fds::create().map_err(std::io::Error::other)?);
            file.write_all(&std::mem::take(&mut self.small))?;
            self.file = Some(file);
        }
        match &mut self.file {
            Some(f) => f.write_all(b).map(|()| b.len()),
            None => {
                self.small.extend_from_slice(b);
                Ok(b.len())
            }
        }
    }
}

/// `v` encoded as [`crate::task::encode_value`] encodes it, and, when the
/// encoding is at least [`SHM_MIN_VALUE_BYTES`], written straight into a
/// sealed memory file as it is produced: the bytes are then a read-only
/// mapping of that file (no second copy in the process's heap), and the
/// file is returned to be passed to workers. `Err` when encoding fails;
/// a memory file that cannot be made leaves the caller to encode the
/// ordinary way (`Ok(None)`).
pub fn encode_shared<T: serde::Serialize + ?Sized>(v: &T) -> Result<Option<SharedEncoding>, rmp_serde::encode::Error> {
    encode_shared_from(v, SHM_MIN_VALUE_BYTES)
}

/// [`encode_shared`], into a memory file only once the encoding reaches
/// `min_file_bytes` (a task's result: [`crate::task::SHARED_OUTPUT_MIN_BYTES`]).
pub fn encode_shared_from<T: serde::Serialize + ?Sized>(
    v: &T,
    min_file_bytes: usize,
) -> Result<Option<SharedEncoding>, rmp_serde::encode::Error> {
    let mut out = Spill {
        small: Vec::new(),
        file: None,
        failed: false,
        min_file_bytes,
    };
    match rmp_serde::encode::write_named(&mut out, v) {
        Ok(()) => {}
        // The memory file failed (no memfd here, no memory): not the value.
        Err(_) if out.failed => return Ok(None),
        Err(e) => return Err(e),
    }
    let Some(file) = out.file else {
        return Ok(Some((Bytes::from(out.small), None)));
    };
    let shared = || -> Result<(Bytes, Arc<OwnedFd>), ShmError> {
        let file = file
            .into_inner()
            .map_err(|e| io("writing a memory file")(e.into_error()))?;
        fds::seal(&file)?;
        let len = file.metadata().map_err(io("reading a memory file's size"))?.len();
        let fd: Arc<OwnedFd> = Arc::new(file.into());
        Ok((fds::map_shared(fd.clone(), len)?, fd))
    };
    Ok(shared().ok().map(|(bytes, fd)| (bytes, Some(fd))))
}
