//! The actix actors: thin adapters that connect the I/O-free state machines
//! to sockets, threads and each other.

pub mod client;
pub mod journal;
pub mod key_table;
pub mod liveness;
pub mod peer;
pub mod peer_service;
pub mod pushed;
pub mod scheduler;
mod session;
pub mod spill_log;
pub mod store;
pub mod worker;
