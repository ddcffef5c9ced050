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
//!
//! # Layout
//!
//! What a user needs is re-exported here: [`Client`] and [`AsyncClient`]
//! (Dask's `submit`, `map`, `gather`, `scatter`, `wait`, `as_completed`),
//! [`LocalCluster`], the [`task`](macro@task) attribute, [`init_logging`],
//! and the options of each role. The modules, by layer:
//!
//! - [`client`]: the user's API, blocking and async, and typed futures;
//!   Dask's coordination primitives ([`Lock`], [`Semaphore`], [`Queue`],
//!   [`Variable`], [`Event`], [`Pub`]/[`Sub`], published datasets,
//!   `fire_and_forget`; `docs/coordination.md`), `restart` (forget every
//!   task, restart every worker through its nanny); [`worker_client()`]: a
//!   client for tasks that submit tasks or share those primitives.
//! - [`actor_api`]: actors ([`actor`](macro@actor), [`Actor`],
//!   [`ActorCall`]): stateful objects living on one worker, called
//!   directly on it.
//! - [`cluster`]: `LocalCluster`, a scheduler and workers in this process.
//! - [`task`](mod@task), [`registry`], [`builtins`]: typed tasks, the functions a
//!   binary can serve, and the `rdask` binary's own tasks.
//! - [`delayed`]: lazy task graphs (Dask's `delayed`), computed on a
//!   cluster in one submission or on a local thread pool; [`bag`]: Dask's
//!   bags on top of them; [`shuffle`]: the peer-to-peer shuffle the
//!   collections use (its scheduler side in `shuffle::runs`, glued in
//!   `scheduler::shuffle`).
//! - [`cli`], [`config`], [`launch`], [`certs`], [`logging`],
//!   [`log_ring`]: the `rdask` command line (embeddable in a user's
//!   binary; `rdask top` in `cli::top`) and the worker's nanny,
//!   configuration files, `rdask cluster up`, TLS certificates, log output
//!   and the last log lines a worker sends to the dashboard;
//!   [`launch`] also has adaptive scaling ([`launch::Adaptive`], Dask's)
//!   and its backends: local or ssh processes and SLURM jobs
//!   ([`launch::SlurmCluster`]; `docs/deploy.md`).
//! - [`simulate`]: `rdask simulate`, the real scheduler state machine
//!   driven by simulated workers on a virtual clock (`docs/scale.md`).
//! - [`wire`]: frames, handshake, TLS and the message enums of the
//!   protocol (`docs/protocol.md`), for clients in other languages and
//!   raw submissions.
//! - Internal, hidden from these docs: `scheduler` and `worker` (the
//!   I/O-free task state machines; `scheduler::coordination` keeps the
//!   coordination primitives' state, `scheduler::restart` a cluster
//!   restart's), `actors` (the actix actors around
//!   them), `runtime` (the client's background actix system), `http` (the
//!   `/health`, `/metrics` and `/api/v1/info` endpoint), `dashboard` (the
//!   scheduler's web dashboard and the performance report on that
//!   endpoint, `docs/dashboard.md`; the scheduler's side of it in
//!   `scheduler::diagnostics`, `scheduler::worker_load` and
//!   `scheduler::task_graph`), `shm` (shared-memory transfers between
//!   workers on one host, and a client's direct-scatter pushes to them,
//!   Linux; `docs/architecture.md`), `util`. Scatters: the client side in
//!   `client::scatter` (through the scheduler, or pushed directly), the
//!   scheduler's placement in `scheduler::scatter` and its confirmations
//!   in `scheduler::scatter_acks`, a worker's peer port in
//!   `actors::peer_service` (its connection pool in `actors::peer`).
//!
//! Logs are `tracing` events; a binary that does not install its own
//! subscriber calls [`init_logging`] (the `rdask` command line does).

#![warn(missing_docs)]

pub mod actor_api;
#[doc(hidden)]
pub mod actors;
pub mod bag;
pub mod builtins;
pub mod certs;
pub mod cli;
pub mod client;
pub mod cluster;
pub mod config;
#[doc(hidden)]
pub mod dashboard;
pub mod delayed;
#[doc(hidden)]
pub mod http;
pub mod launch;
pub mod log_ring;
pub mod logging;
pub mod registry;
#[doc(hidden)]
pub mod runtime;
#[doc(hidden)]
pub mod scheduler;
#[cfg(target_os = "linux")]
#[doc(hidden)]
pub mod shm;
pub mod shuffle;
pub mod simulate;
pub mod task;
#[doc(hidden)]
pub mod util;
pub mod wire;
#[doc(hidden)]
pub mod worker;
pub mod worker_client;

pub use actor_api::{Actor, ActorCall, ActorRef};
pub use client::progress::{progress, FuturesOf};
pub use client::{
    AsyncClient, Client, ClientOptions, Error, Event, Future, Item, Lock, MultiLock, Pub, Queue, ReturnWhen,
    RunOptions, ScatterOptions, Semaphore, Sub, SubmitOptions, Variable, WaitResult,
};
pub use cluster::LocalCluster;
pub use logging::init_logging;
pub use rdask_macros::{actor, task};
pub use task::{Blob, Task};
pub use wire::{Security, TlsFiles};
pub use worker_client::{get_client, worker_client};

pub use actors::scheduler::SchedulerOptions;
pub use actors::worker::WorkerOptions;

/// The README's Rust examples compile against this API (`cargo test --doc`).
#[cfg(doctest)]
#[doc = include_str!("../README.md")]
struct ReadmeExamples;

/// So does `docs/coordination.md`'s.
#[cfg(doctest)]
#[doc = include_str!("../docs/coordination.md")]
struct CoordinationExamples;

/// And `docs/dashboard.md`'s.
#[cfg(doctest)]
#[doc = include_str!("../docs/dashboard.md")]
struct DashboardExamples;
