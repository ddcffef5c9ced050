//! Named events (Dask's `Event`): set, clear, and waits answered `true`
//! when the event is set or `false` at their deadline.

use std::time::Instant;

use super::{Fx, Waiter};
use crate::scheduler::types::ClientId;
use crate::util::FxMap;
use crate::wire::messages::CoordResult;

#[derive(Debug, Default)]
struct Event {
    set: bool,
    waiters: Vec<Waiter>,
}

/// Every event, by name; one clear with no waiter is dropped.
#[derive(Debug, Default)]
pub(super) struct Events {
    table: FxMap<String, Event>,
}

impl Events {
    /// `EventSet`: every waiter is answered `true`.
    pub(super) fn set(&mut self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, name: String) {
        let e = self.table.entry(name).or_default();
        e.set = true;
        for w in std::mem::take(&mut e.waiters) {
            fx.reply(w.client, w.request_id, CoordResult::Bool(true));
        }
        fx.reply(client, request_id, CoordResult::Done);
    }

    /// `EventClear`.
    pub(super) fn clear(&mut self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, name: &str) {
        if let Some(e) = self.table.get_mut(name) {
            e.set = false;
            if e.waiters.is_empty() {
                self.table.remove(name);
            }
        }
        fx.reply(client, request_id, CoordResult::Done);
    }

    /// Whether any wait is under way.
    pub(super) fn pending(&self) -> bool {
        self.table.values().any(|e| !e.waiters.is_empty())
    }

    /// `EventIsSet`.
    pub(super) fn is_set(&self, name: &str) -> bool {
        self.table.get(name).is_some_and(|e| e.set)
    }

    /// `EventWait`.
    pub(super) fn wait(
        &mut self,
        fx: &mut Fx<'_>,
        client: ClientId,
        request_id: u64,
        name: String,
        now: Instant,
        timeout_ms: u64,
    ) {
        if self.is_set(&name) {
            fx.reply(client, request_id, CoordResult::Bool(true));
        } else if timeout_ms == 0 {
            fx.reply(client, request_id, CoordResult::Bool(false));
        } else {
            let w = Waiter::new(client, request_id, now, timeout_ms);
            self.table.entry(name).or_default().waiters.push(w);
        }
    }

    /// `client` is gone: its waits are dropped.
    pub(super) fn drop_client(&mut self, client: ClientId) {
        self.table.retain(|_, e| {
            e.waiters.retain(|w| w.client != client);
            e.set || !e.waiters.is_empty()
        });
    }

    /// Answers `false` to waits past their deadline.
    pub(super) fn expire(&mut self, fx: &mut Fx<'_>, now: Instant) {
        self.table.retain(|_, e| {
            e.waiters.retain(|w| {
                let late = w.deadline <= now;
                if late {
                    fx.reply(w.client, w.request_id, CoordResult::Bool(false));
                }
                !late
            });
            e.set || !e.waiters.is_empty()
        });
    }
}
