//! Unit and property tests of the scheduler state machine, by concern.

mod actors;
mod adaptive;
mod coordination;
mod data_moves;
mod diagnostics;
mod direct_scatter;
mod failures;
mod first_sight;
mod helpers;
mod journal;
mod lifecycle;
mod lost_data;
mod no_worker;
mod pausing;
mod placement;
mod restart;
mod retirement;
mod run_ids;
mod shuffle;
mod sim;
mod stealing;
