//! A worker's registration with its scheduler, at start and again after
//! losing it: connect (retrying while nothing listens), send
//! `RegisterWorker` with the keys already held, read the answer.
//! Reconnection itself (the bounded retry with back-off): `reconnect`.

use std::time::Duration;

use super::WorkerError;
use crate::wire::messages::*;
use crate::wire::transport::{self, Reader, Sender};
use crate::wire::{FrameLimits, Security, WireError};

/// What a registration says about this worker (it does not change).
#[derive(Clone, Debug)]
pub(super) struct Identity {
    pub(super) scheduler: String,
    pub(super) name: String,
    pub(super) address: String,
    pub(super) nthreads: u32,
    pub(super) memory_limit: u64,
    pub(super) functions: Vec<String>,
    pub(super) resources: Vec<(String, f64)>,
    pub(super) nanny: bool,
    pub(super) security: Security,
    pub(super) limits: FrameLimits,
}

/// A registration the scheduler accepted.
pub(super) struct Registered {
    pub(super) reader: Reader,
    pub(super) sender: Sender<FromWorker>,
    pub(super) heartbeat_ms: u64,
    /// Messages that came in the same frame as `Registered`.
    pub(super) rest: Vec<ToWorker>,
}

/// Connects to the scheduler (retrying for `connect_timeout` while nothing
/// listens) and registers, announcing `keys` as held.
pub(super) async fn register(
    me: &Identity,
    restarted: Option<String>,
    keys: Vec<(Key, u64)>,
    connect_timeout: Duration,
) -> Result<Registered, WorkerError> {
    let (mut reader, write) =
        transport::connect_retrying(&me.scheduler, Role::Worker, &me.name, &me.security, connect_timeout).await?;
    let sender = transport::spawn_writer::<FromWorker>(write, format!("scheduler {}", me.scheduler));
    sender.send(FromWorker::RegisterWorker {
        name: me.name.clone(),
        address: me.address.clone(),
        nthreads: me.nthreads,
        memory_limit: me.memory_limit,
        functions: me.functions.clone(),
        resources: me.resources.clone(),
        restarted,
        nanny: me.nanny,
        keys,
    })?;
    let first = tokio::time::timeout(transport::HANDSHAKE_TIMEOUT, async {
        loop {
            match transport::read_batch::<ToWorker>(&mut reader, &me.limits).await {
                // A keep-alive may come first when the scheduler is busy.
                Ok(Some(msgs)) if msgs.is_empty() => continue,
                other => return other,
            }
        }
    })
    .await
    .map_err(|_| WireError::Timeout("the scheduler did not answer the registration".into()))??;
    match first {
        Some(msgs) => {
            let mut it = msgs.into_iter();
            match it.next() {
                Some(ToWorker::Registered { heartbeat_ms, .. }) => Ok(Registered {
                    reader,
                    sender,
                    heartbeat_ms,
                    rest: it.collect(),
                }),
                Some(ToWorker::Close { reason }) => Err(WorkerError::Refused(reason)),
                _ => Err(WorkerError::Refused("unexpected answer to registration".into())),
            }
        }
        None => Err(WorkerError::Refused("the scheduler closed the connection".into())),
    }
}
