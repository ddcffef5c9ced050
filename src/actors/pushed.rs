//! The message carrying values a client pushed to a worker (its direct
//! scatter), from the peer port or the shared-memory socket to the worker
//! actor; apart from both so neither depends on the other.

use actix::Message;
use bytes::Bytes;

use crate::wire::messages::Key;

/// Values pushed by a client, to keep as a scheduler's `StoreData`;
/// answered once the worker took them.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Pushed(pub Vec<(Key, Bytes)>);

/// Where a worker's peer port and shared-memory socket hand pushed values.
pub type PushSink = actix::Recipient<Pushed>;
