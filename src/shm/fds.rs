//! Values as memory files: a sealed `memfd` holding one value's bytes
//! (sending side), and a read-only mapping of one kept as the stored value
//! (receiving side).

use std::fs::File;
use std::io::Write;
use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use rustix::fs::{fcntl_add_seals, fcntl_get_seals, fstat, memfd_create, MemfdFlags, SealFlags};

use super::{io, ShmError};
use crate::util::FxMap;

/// Seals a shared value carries: it can neither change nor shrink (a
/// shrunk file would make reading the mapping raise SIGBUS), nor be
/// unsealed.
fn required_seals() -> SealFlags {
    SealFlags::WRITE | SealFlags::SHRINK | SealFlags::GROW | SealFlags::SEAL
}

/// A new, empty memory file that can be sealed.
pub fn create() -> Result<File, ShmError> {
    let fd = memfd_create("rdask-value", MemfdFlags::CLOEXEC | MemfdFlags::ALLOW_SEALING)
        .map_err(|e| io("memfd_create")(e.into()))?;
    Ok(File::from(fd))
}

/// Seals `file` against any change: writing, shrinking, growing and further sealing.
pub fn seal(file: &File) -> Result<(), ShmError> {
    fcntl_add_seals(file, required_seals()).map_err(|e| io("sealing a memory file")(e.into()))
}

/// A memory file holding `data`, sealed against any change. This is the
/// one copy of a shared-memory transfer.
pub fn share(data: &[u8]) -> Result<OwnedFd, ShmError> {
    let mut file = create()?;
    file.write_all(data).map_err(io("writing a memory file"))?;
    seal(&file)?;
    Ok(file.into())
}

/// The bytes of memory file `fd`, announced as `len` bytes long, mapped
/// read-only (pages populated now, so the task reading them takes no page
/// faults). Refuses a file that is not sealed against writing and shrinking,
/// or whose size is not `len`.
pub fn map(fd: OwnedFd, len: u64) -> Result<Bytes, ShmError> {
    map_shared(Arc::new(fd), len)
}

/// [`map`] of a file the caller keeps too. The mapping keeps `fd` beside
/// it, so the value can be served to peers as this same file
/// ([`file_of`]).
pub fn map_shared(fd: Arc<OwnedFd>, len: u64) -> Result<Bytes, ShmError> {
    let seals = fcntl_get_seals(&*fd).map_err(|e| io("reading a memory file's seals")(e.into()))?;
    if !seals.contains(SealFlags::WRITE | SealFlags::SHRINK) {
        return Err(ShmError::Protocol(format!(
            "a shared value is not sealed against writing and shrinking (seals {seals:?})"
        )));
    }
    let size = fstat(&*fd)
        .map_err(|e| io("reading a memory file's size")(e.into()))?
        .st_size;
    if u64::try_from(size).ok() != Some(len) || len == 0 {
        return Err(ShmError::Protocol(format!(
            "a shared value announced as {len} bytes is a file of {size} bytes"
        )));
    }
    let len = usize::try_from(len).map_err(|_| ShmError::Protocol(format!("a value of {len} bytes")))?;
    // SAFETY: the mapping is read-only and the file is sealed against
    // writing and shrinking (checked above, and the seals cannot be
    // removed), so its bytes cannot change or vanish while mapped; this is
    // what makes handing them out as an immutable `Bytes` sound.
    let mapping =
        unsafe { memmap2::MmapOptions::new().len(len).populate().map(&*fd) }.map_err(io("mapping a memory file"))?;
    Ok(Bytes::from_owner(Mapped::new(mapping, fd)))
}

/// A mapped memory file, recorded in [`MAPPED`] while it lives.
struct Mapped {
    map: memmap2::Mmap,
}

/// The memory file behind each live [`Mapped`], by the mapping's address
/// and length: how a stored value that is such a mapping is recognised
/// when a peer fetches it, so the file is passed on instead of a copy.
static MAPPED: Mutex<MappedFiles> = Mutex::new(MappedFiles::with_hasher(rustc_hash::FxBuildHasher));

/// A mapping's address -> its length and its file.
type MappedFiles = FxMap<usize, (usize, Arc<OwnedFd>)>;

fn mapped() -> std::sync::MutexGuard<'static, MappedFiles> {
    // A panic elsewhere while holding the lock leaves the map whole.
    MAPPED.lock().unwrap_or_else(|p| p.into_inner())
}

impl Mapped {
    fn new(map: memmap2::Mmap, file: Arc<OwnedFd>) -> Mapped {
        mapped().insert(map.as_ptr() as usize, (map.len(), file));
        Mapped { map }
    }
}

impl AsRef<[u8]> for Mapped {
    fn as_ref(&self) -> &[u8] {
        &self.map
    }
}

impl Drop for Mapped {
    fn drop(&mut self) {
        mapped().remove(&(self.map.as_ptr() as usize));
    }
}

/// The sealed memory file whose whole mapping `value` is, if it is one
/// (a value pushed or fetched through shared memory, or a task's result
/// encoded into a file): passing it to a peer on this host costs no copy.
pub fn file_of(value: &Bytes) -> Option<Arc<OwnedFd>> {
    let guard = mapped();
    let (len, file) = guard.get(&(value.as_ptr() as usize))?;
    (*len == value.len()).then(|| file.clone())
}

/// A memory file holding `value` for a peer: the file it already is
/// ([`file_of`], a new descriptor of it), or a copy ([`share`]).
pub fn share_value(value: &Bytes) -> Result<OwnedFd, ShmError> {
    match file_of(value) {
        Some(file) => file.try_clone().map_err(io("passing a memory file on")),
        None => share(value),
    }
}
