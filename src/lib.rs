//! rdask: a distributed task runtime for Rust in the model of
//! Dask.distributed — a central scheduler, many workers, any number of
//! clients, and a `concurrent.futures`-style API.
//!
//! ```no_run
//! #[rdask::task]
//! fn double(x: i64) -> i64 {
//!     x * 2
//! }
//!
//! let cluster = rdask::LocalCluster::new(2)?;
//! let client = cluster.client()?;
//! let futures = client.map(double, 0..10i64)?;
//! let doubled: Vec<i64> = client.gather(&futures)?;
//! assert_eq!(doubled[3], 6);
//! # Ok::<(), rdask::Error>(())
//! ```

pub mod actors;
pub mod builtins;
pub mod certs;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
pub mod http;
pub mod launch;
pub mod logging;
pub mod registry;
pub mod runtime;
pub mod scheduler;
pub mod task;
pub mod util;
pub mod wire;
pub mod worker;
pub mod worker_client;

pub use client::{AsyncClient, Client, ClientOptions, Error, Future, ReturnWhen, SubmitOptions, WaitResult};
pub use cluster::LocalCluster;
pub use logging::init_logging;
pub use rdask_macros::task;
pub use task::{Blob, Task};
pub use wire::{Security, TlsFiles};
pub use worker_client::{get_client, worker_client};
