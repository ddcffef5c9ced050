//! The scheduler: an I/O-free task state machine ([`state`]) that the actor
//! layer drives with events and whose outgoing messages it sends.

pub mod state;

pub use state::{
    ClientId, Outbox, Outgoing, SchedulerConfig, SchedulerError, SchedulerState, TaskState, WorkerId,
    WorkerRegistration,
};
