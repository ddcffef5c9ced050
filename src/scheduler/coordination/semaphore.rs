//! Semaphores, and locks as semaphores of one lease (in a table of their
//! own), with multi-locks as one acquisition over several names: leases
//! held by client connections, waiters answered first come, first served
//! among those that fit.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Fx, Waiter};
use crate::scheduler::types::ClientId;
use crate::util::FxMap;
use crate::wire::messages::CoordResult;

/// One lease: who holds it and the id it was taken under.
#[derive(Clone, Debug, PartialEq, Eq)]
struct Lease {
    client: ClientId,
    lease_id: String,
}

#[derive(Debug)]
struct Semaphore {
    max_leases: u32,
    leases: Vec<Lease>,
}

/// An acquisition waiting for room in every semaphore it names.
#[derive(Debug)]
struct Acquire {
    waiter: Waiter,
    names: Vec<String>,
    lease_id: String,
}

/// A table of semaphores (the semaphores, or the locks).
#[derive(Debug, Default)]
pub(super) struct Semaphores {
    table: FxMap<String, Semaphore>,
    waiting: VecDeque<Acquire>,
}

impl Semaphores {
    fn fits(&self, names: &[String]) -> bool {
        names
            .iter()
            .all(|n| self.table.get(n).is_none_or(|s| (s.leases.len() as u32) < s.max_leases))
    }

    fn grant(&mut self, client: ClientId, names: &[String], lease_id: &str) {
        for n in names {
            if let Some(s) = self.table.get_mut(n) {
                s.leases.push(Lease {
                    client,
                    lease_id: lease_id.to_string(),
                });
            }
        }
    }

    /// `SemaphoreAcquire`, `LockAcquire`, `MultiLockAcquire`.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn acquire(
        &mut self,
        fx: &mut Fx<'_>,
        client: ClientId,
        request_id: u64,
        mut names: Vec<String>,
        max_leases: u32,
        lease_id: String,
        now: Instant,
        timeout_ms: u64,
    ) {
        names.sort();
        names.dedup();
        if names.is_empty() || max_leases == 0 {
            let why = if names.is_empty() {
                "no lock named"
            } else {
                "max_leases must be at least 1"
            };
            return fx.reply(client, request_id, CoordResult::Error(why.into()));
        }
        for n in &names {
            if let Some(s) = self.table.get(n) {
                if s.max_leases != max_leases {
                    let why = format!(
                        "semaphore {n:?} exists with max_leases {}, not {max_leases}",
                        s.max_leases
                    );
                    return fx.reply(client, request_id, CoordResult::Error(why));
                }
                if s.leases.iter().any(|l| l.lease_id == lease_id) {
                    let why = format!("lease {lease_id:?} of {n:?} is already held");
                    return fx.reply(client, request_id, CoordResult::Error(why));
                }
            }
        }
        for n in &names {
            self.table.entry(n.clone()).or_insert_with(|| Semaphore {
                max_leases,
                leases: Vec::new(),
            });
        }
        // Earlier waiters that fit would have been granted already, so a
        // newcomer that fits now overtakes nobody who could run.
        if self.fits(&names) {
            self.grant(client, &names, &lease_id);
            return fx.reply(client, request_id, CoordResult::Bool(true));
        }
        if timeout_ms == 0 {
            fx.reply(client, request_id, CoordResult::Bool(false));
            return self.forget_unused(&names);
        }
        self.waiting.push_back(Acquire {
            waiter: Waiter::new(client, request_id, now, timeout_ms),
            names,
            lease_id,
        });
    }

    /// `SemaphoreRelease`, `LockRelease`, `MultiLockRelease`: answers
    /// whether the lease was held (in any of `names`).
    pub(super) fn release(
        &mut self,
        fx: &mut Fx<'_>,
        client: ClientId,
        request_id: u64,
        names: &[String],
        lease_id: &str,
        now: Instant,
    ) {
        let mut held = false;
        for n in names {
            if let Some(s) = self.table.get_mut(n) {
                let before = s.leases.len();
                s.leases.retain(|l| l.lease_id != lease_id);
                held |= s.leases.len() < before;
            }
        }
        fx.reply(client, request_id, CoordResult::Bool(held));
        self.grant_waiting(fx, now);
        self.forget_unused(names);
    }

    /// Grants every waiting acquisition that fits now, in arrival order.
    fn grant_waiting(&mut self, fx: &mut Fx<'_>, now: Instant) {
        let mut i = 0;
        while i < self.waiting.len() {
            let a = &self.waiting[i];
            if a.waiter.deadline >= now && self.fits(&a.names) {
                if let Some(a) = self.waiting.remove(i) {
                    self.grant(a.waiter.client, &a.names, &a.lease_id);
                    fx.reply(a.waiter.client, a.waiter.request_id, CoordResult::Bool(true));
                }
            } else {
                i += 1;
            }
        }
    }

    /// Drops semaphores with no lease and nobody waiting for them, so a
    /// name can later be used with another `max_leases`.
    fn forget_unused(&mut self, names: &[String]) {
        for n in names {
            let unused = self.table.get(n).is_some_and(|s| s.leases.is_empty())
                && !self.waiting.iter().any(|a| a.names.contains(n));
            if unused {
                self.table.remove(n);
            }
        }
    }

    /// Takes back every lease `client` holds; how many.
    pub(super) fn drop_leases(&mut self, fx: &mut Fx<'_>, client: ClientId, now: Instant) -> usize {
        let mut freed = 0;
        let mut names = Vec::new();
        for (n, s) in &mut self.table {
            let before = s.leases.len();
            s.leases.retain(|l| l.client != client);
            if s.leases.len() < before {
                freed += before - s.leases.len();
                names.push(n.clone());
            }
        }
        if freed > 0 {
            self.grant_waiting(fx, now);
            self.forget_unused(&names);
        }
        freed
    }

    /// `client` is gone: its leases are taken back and its waits dropped
    /// (nobody is left to answer). Returns the leases freed.
    pub(super) fn drop_client(&mut self, fx: &mut Fx<'_>, client: ClientId, now: Instant) -> usize {
        let mut names = Vec::new();
        self.waiting.retain(|a| {
            let mine = a.waiter.client == client;
            if mine {
                names.extend(a.names.iter().cloned());
            }
            !mine
        });
        let freed = self.drop_leases(fx, client, now);
        self.forget_unused(&names);
        freed
    }

    /// Answers `Bool(false)` to acquisitions past their deadline.
    pub(super) fn expire(&mut self, fx: &mut Fx<'_>, now: Instant) {
        if self.waiting.iter().all(|a| a.waiter.deadline > now) {
            return;
        }
        let mut names = Vec::new();
        self.waiting.retain(|a| {
            let late = a.waiter.deadline <= now;
            if late {
                fx.reply(a.waiter.client, a.waiter.request_id, CoordResult::Bool(false));
                names.extend(a.names.iter().cloned());
            }
            !late
        });
        self.forget_unused(&names);
    }

    /// Whether any lease is held or any acquisition waits.
    pub(super) fn pending(&self) -> bool {
        !self.waiting.is_empty() || !self.table.is_empty()
    }

    /// Leases held, over the table.
    pub(super) fn lease_count(&self) -> usize {
        self.table.values().map(|s| s.leases.len()).sum()
    }
}
