//! Named variables: one value or future each; `get` waits until one is
//! set (Dask's `Variable.get(timeout)`), and every waiter gets it.

use std::time::Instant;

use super::{Fx, Waiter};
use crate::scheduler::types::ClientId;
use crate::util::FxMap;
use crate::wire::messages::{CoordItem, CoordResult};

#[derive(Debug, Default)]
struct Variable {
    value: Option<CoordItem>,
    getters: Vec<Waiter>,
}

/// Every variable, by name; one unset with no getter is dropped.
#[derive(Debug, Default)]
pub(super) struct Variables {
    table: FxMap<String, Variable>,
}

impl Variables {
    /// `VariableSet`: replaces the value; waiting getters get the new one.
    pub(super) fn set(&mut self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, name: String, item: CoordItem) {
        let v = self.table.entry(name).or_default();
        fx.hold(&item);
        for g in std::mem::take(&mut v.getters) {
            fx.deliver(g.client, g.request_id, item.clone());
        }
        if let Some(old) = v.value.replace(item) {
            fx.unhold(&old);
        }
        fx.reply(client, request_id, CoordResult::Done);
    }

    /// `VariableGet`.
    pub(super) fn get(
        &mut self,
        fx: &mut Fx<'_>,
        client: ClientId,
        request_id: u64,
        name: String,
        now: Instant,
        timeout_ms: u64,
    ) {
        match self.table.get(&name).and_then(|v| v.value.clone()) {
            Some(item) => fx.deliver(client, request_id, item),
            None if timeout_ms == 0 => fx.reply(client, request_id, CoordResult::TimedOut),
            None => self
                .table
                .entry(name)
                .or_default()
                .getters
                .push(Waiter::new(client, request_id, now, timeout_ms)),
        }
    }

    /// Whether any get waits.
    pub(super) fn pending(&self) -> bool {
        self.table.values().any(|v| !v.getters.is_empty())
    }

    /// `VariableDelete`: unset (getters keep waiting for a new value).
    pub(super) fn delete(&mut self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, name: &str) {
        if let Some(v) = self.table.get_mut(name) {
            if let Some(old) = v.value.take() {
                fx.unhold(&old);
            }
            if v.getters.is_empty() {
                self.table.remove(name);
            }
        }
        fx.reply(client, request_id, CoordResult::Done);
    }

    /// `client` is gone: its gets are dropped (values stay).
    pub(super) fn drop_client(&mut self, client: ClientId) {
        self.table.retain(|_, v| {
            v.getters.retain(|g| g.client != client);
            v.value.is_some() || !v.getters.is_empty()
        });
    }

    /// Answers `TimedOut` to gets past their deadline.
    pub(super) fn expire(&mut self, fx: &mut Fx<'_>, now: Instant) {
        self.table.retain(|_, v| {
            v.getters.retain(|g| {
                let late = g.deadline <= now;
                if late {
                    fx.reply(g.client, g.request_id, CoordResult::TimedOut);
                }
                !late
            });
            v.value.is_some() || !v.getters.is_empty()
        });
    }
}
