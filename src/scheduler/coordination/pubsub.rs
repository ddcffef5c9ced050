//! Pub/Sub topics, best effort as Dask's: a published value goes to the
//! clients subscribed at that moment and is not stored, resent or
//! acknowledged; a subscriber that is not connected misses it.

use std::collections::BTreeSet;

use serde_bytes::ByteBuf;

use super::{Effect, Fx};
use crate::scheduler::types::ClientId;
use crate::util::FxMap;
use crate::wire::messages::CoordResult;

/// Subscribers of each topic; a topic nobody subscribes to is dropped.
#[derive(Debug, Default)]
pub(super) struct Topics {
    table: FxMap<String, BTreeSet<ClientId>>,
}

impl Topics {
    /// `TopicPublish`: answers how many subscribers it went to.
    pub(super) fn publish(
        &mut self,
        fx: &mut Fx<'_>,
        client: ClientId,
        request_id: u64,
        topic: String,
        value: ByteBuf,
    ) {
        let subscribers = self.table.get(&topic).map(|s| s.iter().copied().collect::<Vec<_>>());
        let subscribers = subscribers.unwrap_or_default();
        for &c in &subscribers {
            fx.effects.push(Effect::Topic(c, topic.clone(), value.clone()));
        }
        fx.reply(client, request_id, CoordResult::Count(subscribers.len() as u64));
    }

    /// `TopicSubscribe`.
    pub(super) fn subscribe(&mut self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, topic: String) {
        self.table.entry(topic).or_default().insert(client);
        fx.reply(client, request_id, CoordResult::Done);
    }

    /// `TopicUnsubscribe`.
    pub(super) fn unsubscribe(&mut self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, topic: &str) {
        if let Some(s) = self.table.get_mut(topic) {
            s.remove(&client);
            if s.is_empty() {
                self.table.remove(topic);
            }
        }
        fx.reply(client, request_id, CoordResult::Done);
    }

    /// `client` is gone: unsubscribed everywhere.
    pub(super) fn drop_client(&mut self, client: ClientId) {
        self.table.retain(|_, s| {
            s.remove(&client);
            !s.is_empty()
        });
    }
}
