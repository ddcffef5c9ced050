//! A fetch from a peer finished: its bytes counted (and a large one's
//! bandwidth reported to the scheduler), its values handed to the state
//! machine, or its failure reported there so the keys are fetched again
//! elsewhere.

use std::sync::atomic::Ordering;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tracing::warn;

use super::options::BANDWIDTH_SAMPLE_MIN_BYTES;
use super::WorkerActor;
use crate::wire::messages::{FromWorker, Key};
use crate::wire::WireError;
use crate::worker::state::WorkerEffect;

/// A fetch from a peer finished.
#[derive(Message)]
#[rtype(result = "()")]
pub(super) struct FetchDone {
    pub(super) worker: String,
    pub(super) keys: Vec<Key>,
    /// Wall time from request to reply.
    pub(super) elapsed: Duration,
    pub(super) result: Result<Vec<(Key, Option<Bytes>)>, WireError>,
}

impl Handler<FetchDone> for WorkerActor {
    type Result = ();
    fn handle(&mut self, msg: FetchDone, ctx: &mut Self::Context) {
        let mut effects = std::mem::take(&mut self.effects);
        match msg.result {
            Ok(data) => {
                let bytes: u64 = data
                    .iter()
                    .filter_map(|(_, v)| v.as_ref())
                    .map(|v| v.len() as u64)
                    .sum();
                self.counters.bytes_fetched.fetch_add(bytes, Ordering::Relaxed);
                if bytes >= BANDWIDTH_SAMPLE_MIN_BYTES {
                    effects.push(WorkerEffect::Send(FromWorker::TransferStats {
                        bytes,
                        duration_us: u64::try_from(msg.elapsed.as_micros()).unwrap_or(u64::MAX).max(1),
                    }));
                }
                self.state.fetch_finished(&msg.worker, data, &mut effects);
            }
            Err(e) => {
                warn!(worker = %self.name, peer = %msg.worker, "fetch failed: {e}");
                self.state.fetch_failed(&msg.worker, msg.keys, &mut effects);
            }
        }
        self.apply(effects, ctx);
    }
}
