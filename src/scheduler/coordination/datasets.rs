//! Published datasets (Dask's `publish_dataset`): named lists of keys the
//! scheduler keeps alive, whoever published them, until unpublished.

use std::collections::BTreeMap;

use super::Fx;
use crate::scheduler::types::ClientId;
use crate::wire::messages::{CoordResult, Key};

/// Every dataset, by name (sorted, for `ListDatasets`).
#[derive(Debug, Default)]
pub(super) struct Datasets {
    table: BTreeMap<String, Vec<Key>>,
}

impl Datasets {
    /// `PublishDataset`.
    pub(super) fn publish(
        &mut self,
        fx: &mut Fx<'_>,
        client: ClientId,
        request_id: u64,
        name: String,
        keys: Vec<Key>,
        overwrite: bool,
    ) {
        if self.table.contains_key(&name) && !overwrite {
            let why = format!("a dataset named {name:?} is already published (unpublish it, or overwrite)");
            return fx.reply(client, request_id, CoordResult::Error(why));
        }
        for k in &keys {
            fx.hold_key(k);
        }
        if let Some(old) = self.table.insert(name, keys) {
            for k in &old {
                fx.unhold_key(k);
            }
        }
        fx.reply(client, request_id, CoordResult::Done);
    }

    /// `GetDataset`: the keys, then wanted by the asking client.
    pub(super) fn get(&self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, name: &str) {
        match self.table.get(name) {
            Some(keys) => {
                fx.reply(client, request_id, CoordResult::Keys(keys.clone()));
                for k in keys {
                    fx.effects.push(super::Effect::Want(client, k.clone()));
                }
            }
            None => fx.reply(client, request_id, CoordResult::Error(no_dataset(name))),
        }
    }

    /// `UnpublishDataset`.
    pub(super) fn unpublish(&mut self, fx: &mut Fx<'_>, client: ClientId, request_id: u64, name: &str) {
        match self.table.remove(name) {
            Some(keys) => {
                for k in &keys {
                    fx.unhold_key(k);
                }
                fx.reply(client, request_id, CoordResult::Done);
            }
            None => fx.reply(client, request_id, CoordResult::Error(no_dataset(name))),
        }
    }

    /// `ListDatasets`.
    pub(super) fn names(&self) -> Vec<String> {
        self.table.keys().cloned().collect()
    }
}

fn no_dataset(name: &str) -> String {
    format!("no dataset named {name:?} is published")
}
