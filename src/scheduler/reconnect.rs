//! Peers that come back after losing the scheduler (a scheduler restart or
//! a cut connection): a worker registering again with the keys it holds,
//! and a client re-declaring the keys it holds futures for
//! (`ReconnectClient`). See docs/resilience.md, "Scheduler restart".

use super::coordination::HOLDER;
use super::ids::WIdx;
use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing};
use crate::wire::messages::{ErrorKind, Key, TaskFailure, ToClient};

/// How a reconnecting client's key that this scheduler cannot resume errs
/// when the scheduler keeps no journal: Dask's behaviour (work is lost).
pub const LOST_WITHOUT_JOURNAL: &str = "the scheduler restarted without a journal; work lost";

impl SchedulerState {
    /// Keys a worker announced in its registration: during a recovery from
    /// the journal they are claims to confirm, otherwise each is handled
    /// as an `AddKeys` (kept when the task is in memory here, else
    /// `FreeKeys`: a scheduler without a journal tells the worker to drop
    /// what it does not know).
    pub(super) fn worker_holds(&mut self, w: WIdx, keys: Vec<(Key, u64)>, out: &mut Outbox) {
        if keys.is_empty() {
            return;
        }
        if let Some(r) = self.recovery.as_mut() {
            r.claim(w, keys);
            return;
        }
        for (key, _) in keys {
            self.add_key(w, key, out);
        }
    }

    /// `ReconnectClient`: client `c` held futures for `keys` under its
    /// lost session `previous`. That session's wants (still kept for its
    /// grace period, or restored from the journal) pass to `c`; each key
    /// is reported as after `UpdateGraph`, and a key this scheduler does
    /// not know errs with `DataLost`.
    pub(super) fn reconnect_client(&mut self, c: ClientId, previous: ClientId, keys: Vec<Key>, out: &mut Outbox) {
        if let Some(r) = self.recovery.as_mut() {
            r.reconnects.push((c, previous, keys));
            return;
        }
        let known = previous != c && previous != HOLDER && self.clients.contains_key(&previous);
        for key in keys {
            match self.task_id(&key) {
                Some(t) => self.want(c, t, out),
                None => {
                    let message = if known || self.journal.is_some() {
                        format!(
                            "key {key:?} is not known to the scheduler after it lost this client's connection \
                             (not in its journal); work lost"
                        )
                    } else {
                        format!("{LOST_WITHOUT_JOURNAL} (key {key:?} is not known to it; submit it again)")
                    };
                    out.messages.push(Outgoing::Client(
                        c,
                        ToClient::TaskErred {
                            key,
                            failure: TaskFailure {
                                kind: ErrorKind::DataLost,
                                message,
                            },
                        },
                    ));
                }
            }
        }
        if known {
            // Wanted by `c` now: dropping the old session releases nothing
            // `c` still holds.
            self.drop_client(previous);
        }
    }
}
