//! Test support that is not rdask: the multi-host test cluster (network
//! namespaces joined by a delay line), shared by `tests/multi_host.rs` and
//! `examples/bench_hosts.rs` (which includes it by path).
#![allow(dead_code)]

pub mod delay_line;
pub mod hosts;
