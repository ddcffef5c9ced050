//! The worker's data store actor: task results by key.
//!
//! Values are kept as the serialized bytes they arrived or were produced as,
//! so serving a peer or a client costs no encoding, and a `Bytes` clone
//! shares the buffer instead of copying it.

use crate::util::FxMap as HashMap;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use actix::prelude::*;
use bytes::Bytes;

use crate::wire::messages::Key;

/// Counters shared by a worker's actors, reported on its peer port.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Tasks run on the pool.
    pub tasks_executed: AtomicU64,
    /// Bytes received from peers.
    pub bytes_fetched: AtomicU64,
    /// Bytes served to peers and clients.
    pub bytes_served: AtomicU64,
}

/// The store.
pub struct DataStore {
    data: HashMap<Key, Bytes>,
    nbytes: u64,
    counters: Arc<WorkerCounters>,
}

impl DataStore {
    /// An empty store.
    pub fn new(counters: Arc<WorkerCounters>) -> Self {
        DataStore {
            data: HashMap::default(),
            nbytes: 0,
            counters,
        }
    }
}

impl Actor for DataStore {
    type Context = Context<Self>;
}

/// Store a value (replacing any previous one).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Put {
    /// Key.
    pub key: Key,
    /// Serialized value.
    pub data: Bytes,
}

impl Handler<Put> for DataStore {
    type Result = ();
    fn handle(&mut self, msg: Put, _: &mut Self::Context) {
        self.nbytes += msg.data.len() as u64;
        if let Some(old) = self.data.insert(msg.key, msg.data) {
            self.nbytes -= old.len() as u64;
        }
    }
}

/// Delete values.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delete {
    /// Keys; unknown ones are ignored.
    pub keys: Vec<Key>,
}

impl Handler<Delete> for DataStore {
    type Result = ();
    fn handle(&mut self, msg: Delete, _: &mut Self::Context) {
        for k in msg.keys {
            if let Some(old) = self.data.remove(&k) {
                self.nbytes -= old.len() as u64;
            }
        }
    }
}

/// Look values up.
#[derive(Message)]
#[rtype(result = "Vec<(Key, Option<Bytes>)>")]
pub struct Get {
    /// Keys, answered in order.
    pub keys: Vec<Key>,
    /// Whether the data leaves the worker (counted as served).
    pub for_peer: bool,
}

impl Handler<Get> for DataStore {
    type Result = MessageResult<Get>;
    fn handle(&mut self, msg: Get, _: &mut Self::Context) -> Self::Result {
        let out: Vec<(Key, Option<Bytes>)> = msg
            .keys
            .into_iter()
            .map(|k| {
                let v = self.data.get(&k).cloned();
                (k, v)
            })
            .collect();
        if msg.for_peer {
            let served: u64 = out.iter().filter_map(|(_, v)| v.as_ref()).map(|v| v.len() as u64).sum();
            self.counters.bytes_served.fetch_add(served, Ordering::Relaxed);
        }
        MessageResult(out)
    }
}

/// Number of keys and bytes held.
#[derive(Message)]
#[rtype(result = "(u64, u64)")]
pub struct Stats;

impl Handler<Stats> for DataStore {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        MessageResult((self.data.len() as u64, self.nbytes))
    }
}
