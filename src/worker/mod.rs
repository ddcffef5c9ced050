//! The worker: its task state machine and the thread pool that runs tasks.

pub mod args;
pub mod memory;
pub mod pool;
pub mod state;
