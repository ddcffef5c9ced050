//! Named queues of values and futures: `put` never waits (queues are
//! unbounded), `get` waits up to its timeout; an item goes to exactly one
//! getter, the longest waiting.

use std::collections::VecDeque;
use std::time::Instant;

use super::{Fx, Waiter};
use crate::scheduler::types::ClientId;
use crate::util::FxMap;
use crate::wire::messages::{CoordItem, CoordResult};

#[derive(Debug, Default)]
struct Queue {
    items: VecDeque<CoordItem>,
    getters: VecDeque<Waiter>,
}

/// Every queue, by name; a queue with no item and no getter is dropped.
#[derive(Debug, Default)]
pub(super) struct Queues {
    table: FxMap<String, Queue>,
}

impl Queues {
    /// `QueuePut`: to the longest-waiting getter, else to the queue's end.
    pub(super) fn put(&mut self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, name: String, item: CoordItem) {
        let q = self.table.entry(name).or_default();
        match q.getters.pop_front() {
            Some(g) => fx.deliver(g.client, g.request_id, item),
            None => {
                fx.hold(&item);
                q.items.push_back(item);
            }
        }
        fx.reply(client, request_id, CoordResult::Done);
    }

    /// `QueueGet`.
    pub(super) fn get(
        &mut self,
        fx: &mut Fx<'_>,
        client: ClientId,
        request_id: u64,
        name: String,
        now: Instant,
        timeout_ms: u64,
    ) {
        let q = self.table.entry(name.clone()).or_default();
        if let Some(item) = q.items.pop_front() {
            fx.deliver(client, request_id, item.clone());
            fx.unhold(&item);
        } else if timeout_ms == 0 {
            fx.reply(client, request_id, CoordResult::TimedOut);
        } else {
            q.getters.push_back(Waiter::new(client, request_id, now, timeout_ms));
        }
        self.forget_if_unused(&name);
    }

    /// Whether any get waits.
    pub(super) fn pending(&self) -> bool {
        self.table.values().any(|q| !q.getters.is_empty())
    }

    /// `QueueSize`.
    pub(super) fn size(&self, name: &str) -> u64 {
        self.table.get(name).map_or(0, |q| q.items.len() as u64)
    }

    fn forget_if_unused(&mut self, name: &str) {
        if self
            .table
            .get(name)
            .is_some_and(|q| q.items.is_empty() && q.getters.is_empty())
        {
            self.table.remove(name);
        }
    }

    /// `client` is gone: its gets are dropped (items stay queued).
    pub(super) fn drop_client(&mut self, client: ClientId) {
        self.table.retain(|_, q| {
            q.getters.retain(|g| g.client != client);
            !(q.items.is_empty() && q.getters.is_empty())
        });
    }

    /// Answers `TimedOut` to gets past their deadline.
    pub(super) fn expire(&mut self, fx: &mut Fx<'_>, now: Instant) {
        self.table.retain(|_, q| {
            q.getters.retain(|g| {
                let late = g.deadline <= now;
                if late {
                    fx.reply(g.client, g.request_id, CoordResult::TimedOut);
                }
                !late
            });
            !(q.items.is_empty() && q.getters.is_empty())
        });
    }
}
