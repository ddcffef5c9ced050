//! The memory files of one direct scatter: each large value is copied into
//! a sealed memfd once, and that one file goes to every worker on this host
//! that receives the value (each maps it; the pages are shared), instead of
//! one copy per worker.

use std::os::fd::OwnedFd;
use std::sync::{Arc, Mutex};

use bytes::Bytes;
use tokio::sync::OnceCell;

use super::{fds, ShmError};
use crate::util::FxMap;
use crate::wire::messages::Key;

type Cell = Arc<OnceCell<Arc<OwnedFd>>>;

/// Memory files by key, made on first use; cloning shares them. The files
/// close when the last clone and the last worker's descriptor are gone
/// (a worker's mapping keeps the memory until it drops the value).
#[derive(Clone, Default)]
pub struct PushFiles(Arc<Mutex<FxMap<Key, Cell>>>);

impl PushFiles {
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
