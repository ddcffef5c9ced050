//! A scheduler restarting from its journal: the state is rebuilt from a
//! [`JournalImage`] once the workers that held results are back.
//!
//! While recovering, workers register as usual and the keys they hold are
//! noted as claims; clients' `ReconnectClient` are held back. The image is
//! loaded when every worker the journal names as a holder has registered
//! again, or when `journal_worker_wait_s` has passed: then the tasks are
//! created, each claimed key enters memory on the workers that hold it (so
//! it is not recomputed), the journaled client sessions want their keys
//! again (which wakes what must be computed, as an `UpdateGraph` would),
//! and the held-back reconnections pass those wants to the new sessions.
//! A journaled session that does not reconnect within
//! `journal_client_wait_s` is dropped as a closed client would be.

use std::time::{Duration, Instant};

use super::ids::WIdx;
use super::journal::JournalImage;
use super::state::SchedulerState;
use super::types::{ClientId, Outbox};
use crate::util::FxSet;
use crate::wire::messages::Key;

/// A recovery in progress (see the module documentation).
#[derive(Debug)]
pub(super) struct Recovery {
    pub(super) image: JournalImage,
    /// Names of workers the journal lists as holders, not back yet.
    expected: FxSet<String>,
    /// When to load the image even if some of them are not back.
    deadline: Instant,
    /// Keys registered workers hold.
    claims: Vec<(WIdx, Vec<(Key, u64)>)>,
    /// `ReconnectClient`s held back: (new session, old session, keys).
    pub(super) reconnects: Vec<(ClientId, ClientId, Vec<Key>)>,
}

impl Recovery {
    pub(super) fn claim(&mut self, w: WIdx, keys: Vec<(Key, u64)>) {
        self.claims.push((w, keys));
    }
}

/// What [`SchedulerState::check_recovery`] did, for the actor's log.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct RecoveryReport {
    /// Tasks restored.
    pub tasks: usize,
    /// Results confirmed in memory on the workers that came back.
    pub kept: usize,
    /// Results the journal listed in memory that no worker claimed: they
    /// are recomputed if still needed.
    pub missing: usize,
    /// Workers the journal named that did not come back in time.
    pub absent_workers: Vec<String>,
    /// Keys workers claimed that the journal does not know (freed).
    pub unknown_claims: usize,
}

impl SchedulerState {
    /// Starts a recovery from `image` (see the module documentation); the
    /// actor then calls [`Self::check_recovery`] at once and periodically.
    pub fn begin_recovery(&mut self, image: JournalImage, now: Instant) {
        let expected = image.memory.values().map(|(w, _)| w.clone()).collect();
        let wait = Duration::from_secs_f64(self.config.journal_worker_wait_s.max(0.0));
        self.recovery = Some(Box::new(Recovery {
            image,
            expected,
            deadline: now + wait,
            claims: Vec::new(),
            reconnects: Vec::new(),
        }));
    }

    /// Whether a recovery is waiting for workers.
    pub fn recovering(&self) -> bool {
        self.recovery.is_some()
    }

    /// Loads the image if every expected worker is back or the wait is
    /// over; drops journaled client sessions that did not reconnect in
    /// time. Returns a report when the image was loaded now.
    pub fn check_recovery(&mut self, now: Instant, out: &mut Outbox) -> Option<RecoveryReport> {
        if let Some((deadline, clients)) = &self.journal_clients {
            if now >= *deadline {
                let clients = clients.clone();
                self.journal_clients = None;
                for c in clients {
                    if self.clients.contains_key(&c) {
                        self.remove_client(c, out);
                    }
                }
            }
        }
        let r = self.recovery.as_mut()?;
        for name in self.worker_names.keys() {
            r.expected.remove(name);
        }
        if !r.expected.is_empty() && now < r.deadline {
            return None;
        }
        let r = self.recovery.take()?;
        self.begin();
        let report = self.restore(*r, now, out);
        self.finish(out);
        Some(report)
    }

    /// Workers leaving during a recovery take their claims with them.
    pub(super) fn recovery_worker_gone(&mut self, w: WIdx) {
        if let Some(r) = self.recovery.as_mut() {
            r.claims.retain(|(x, _)| *x != w);
        }
    }

    fn restore(&mut self, r: Recovery, now: Instant, out: &mut Outbox) -> RecoveryReport {
        let Recovery {
            image,
            expected,
            claims,
            reconnects,
            ..
        } = r;
        let mut report = RecoveryReport {
            tasks: image.tasks.len(),
            absent_workers: {
                let mut v: Vec<String> = expected.into_iter().collect();
                v.sort();
                v
            },
            ..Default::default()
        };
        let mut specs: Vec<_> = image.tasks.into_values().collect();
        specs.sort_by_key(|(seq, _)| *seq);
        let (created, _) = self.intake(specs.into_iter().map(|(_, s)| s).collect(), out);
        // Claimed results enter memory before anything is woken, so that
        // nothing that depends on them is computed again.
        let mut confirmed: FxSet<Key> = FxSet::default();
        for (w, keys) in claims {
            for (key, nbytes) in keys {
                match self.task_id(&key) {
                    Some(t) if self.slot(t).state == super::types::TaskState::Released => {
                        self.enter_memory(t, w, nbytes, None, out);
                        confirmed.insert(key);
                    }
                    // A second holder, or a key the graph errs: as `AddKeys`.
                    Some(_) => self.add_key(w, key, out),
                    None => {
                        report.unknown_claims += 1;
                        self.free_key(out, w, key);
                    }
                }
            }
        }
        report.kept = confirmed.len();
        report.missing = image.memory.keys().filter(|k| !confirmed.contains(*k)).count();
        // The journaled sessions want their keys again: that wakes what
        // must be computed.
        let mut sessions = Vec::new();
        for (client, keys) in image.wants {
            let c = ClientId(client);
            self.clients.entry(c).or_default();
            sessions.push(c);
            for key in keys {
                if let Some(t) = self.task_id(&key) {
                    self.want(c, t, out);
                }
            }
        }
        let wait = Duration::from_secs_f64(self.config.journal_client_wait_s.max(0.0));
        self.journal_clients = Some((now + wait, sessions));
        for (c, previous, keys) in reconnects {
            if self.clients.contains_key(&c) {
                self.reconnect_client(c, previous, keys, out);
            }
        }
        self.candidates.extend(created);
        self.diag.event(
            "journal-restored",
            format!(
                "restored {} tasks from the journal: {} results kept on the workers that came back, {} to \
                 recompute if needed",
                report.tasks, report.kept, report.missing
            ),
        );
        report
    }
}
