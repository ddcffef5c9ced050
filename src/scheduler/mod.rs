//! The scheduler: an I/O-free task state machine ([`state`]) that the actor
//! layer drives with events and whose outgoing messages it sends.

pub mod adaptive;
mod coordinated;
pub mod coordination;
mod data_moves;
pub mod diagnostics;
mod graph;
mod handlers;
mod ids;
mod invariants;
pub mod journal;
mod lost_data;
mod membership;
mod no_worker;
mod notify;
mod pausing;
mod placement;
mod reconnect;
pub mod recovery;
mod release;
pub mod restart;
mod results;
mod retirement;
mod scatter;
mod scatter_acks;
mod shuffle;
pub mod state;
mod stealing;
pub mod task_graph;
mod tasks;
mod transitions;
mod types;
pub mod worker_load;
mod workers;

#[cfg(test)]
mod tests;

pub use journal::{JournalImage, JournalRecord};
pub use pausing::PausedMoves;
pub use reconnect::LOST_WITHOUT_JOURNAL;
pub use recovery::RecoveryReport;
pub use state::{
    ClientId, Outbox, Outgoing, SchedulerConfig, SchedulerError, SchedulerState, TaskState, WorkerId,
    WorkerRegistration,
};
