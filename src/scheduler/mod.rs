//! The scheduler: an I/O-free task state machine ([`state`]) that the actor
//! layer drives with events and whose outgoing messages it sends.

mod coordinated;
pub mod coordination;
mod data_moves;
pub mod diagnostics;
mod graph;
mod handlers;
mod ids;
mod invariants;
mod lost_data;
mod membership;
mod no_worker;
mod notify;
mod pausing;
mod placement;
mod release;
pub mod restart;
mod results;
mod retirement;
mod shuffle;
pub mod state;
mod stealing;
mod tasks;
mod transitions;
mod types;
mod workers;

#[cfg(test)]
mod tests;

pub use pausing::PausedMoves;
pub use state::{
    ClientId, Outbox, Outgoing, SchedulerConfig, SchedulerError, SchedulerState, TaskState, WorkerId,
    WorkerRegistration,
};
