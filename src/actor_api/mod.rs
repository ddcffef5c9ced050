//! Actors (Dask's `actor=True`): a user type marked `#[rdask::actor]` lives
//! on one worker, and its methods are called through an [`Actor`] handle,
//! directly between the caller and that worker's peer port, never through
//! the scheduler. `docs/coordination.md` has the semantics.
//!
//! ```no_run
//! pub struct Counter {
//!     n: i64,
//! }
//!
//! #[rdask::actor]
//! impl Counter {
//!     pub fn new(start: i64) -> Counter {
//!         Counter { n: start }
//!     }
//!     pub fn increment(&mut self, by: i64) -> i64 {
//!         self.n += by;
//!         self.n
//!     }
//! }
//!
//! let cluster = rdask::LocalCluster::new(2)?;
//! let client = cluster.client()?;
//! let counter: rdask::Actor<Counter> = client.submit_actor::<Counter>((0,))?;
//! assert_eq!(counter.increment(5).result()?, 5); // a call: a future
//! # Ok::<(), rdask::Error>(())
//! ```
//!
//! - `mod.rs`: the [`ActorType`] and [`ActorProxy`] traits the macro
//!   implements, and what its expansion calls (`__private`).
//! - `handle.rs`: [`Actor`], [`ActorRef`] and [`ActorCall`], the caller's
//!   side.
//! - `create.rs`: `submit_actor`, waiting until the actor lives.
//! - `table.rs`: the worker's side, [`ActorTable`] and the constructor task.

mod create;
mod handle;
mod table;

#[cfg(test)]
mod tests;

use std::time::Duration;

pub(crate) use create::{create, create_raw};
pub use handle::{Actor, ActorCall, ActorRef};
pub(crate) use table::catch_panic;
pub use table::{construct, constructor_name, ActorObject, ActorTable};

use crate::wire::messages::TaskFailure;

/// Longest wait for one method call, its run included: a longer call fails
/// with [`crate::Error::Timeout`] (the actor finishes it anyway).
pub const ACTOR_CALL_TIMEOUT: Duration = Duration::from_secs(3600);

/// While a call is running longer than this, the caller asks the scheduler
/// this often whether the actor's worker still holds it, so that a worker
/// that vanished without closing its connection (a machine gone, a
/// partition) is noticed within the scheduler's own worker timeout, not
/// [`ACTOR_CALL_TIMEOUT`].
pub const ACTOR_LIVENESS_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// When the connection to an actor's worker fails during a call, how long
/// the caller waits for the scheduler to confirm the worker is gone (then
/// `ActorLost`) before reporting only the connection's failure: a dead
/// worker is confirmed at once, a live one never.
pub const ACTOR_LOST_CONFIRM_TIMEOUT: Duration = Duration::from_secs(5);

/// Longest `submit_actor` waits for the actor to be created (a worker
/// that can host it to join, the constructor to run).
pub const ACTOR_CREATE_TIMEOUT: Duration = Duration::from_secs(120);

/// A type whose instances can live on a worker as actors. Implemented by
/// `#[rdask::actor]` on the type's `impl` block; not by hand.
pub trait ActorType: Send + Sized + 'static {
    /// The type's registered name, `module_path!()::Type`.
    const NAME: &'static str;
    /// The constructor task's name: `actor:` then [`NAME`](Self::NAME).
    const CONSTRUCTOR: &'static str;
    /// The constructor's (`new`) parameters as a tuple.
    type Args;
    /// The typed handle methods are called on (generated `TypeProxy`).
    type Proxy: ActorProxy;
    /// Builds an instance from msgpack-encoded constructor arguments.
    fn construct(args: &[&[u8]]) -> Result<Self, TaskFailure>;
    /// Runs one method with msgpack-encoded arguments; an unknown method
    /// is an `UnknownFunction` failure naming the methods there are.
    fn dispatch(&mut self, method: &str, args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure>;
}

/// The generated typed handle of an actor type: one method per actor
/// method, each returning an [`ActorCall`]. [`Actor`] derefs to it.
pub trait ActorProxy: Clone + Send + Sync + 'static {
    /// Wraps an untyped reference.
    fn from_ref(actor: ActorRef) -> Self;
    /// The untyped reference.
    fn actor_ref(&self) -> &ActorRef;
}

/// What the `#[rdask::actor]` expansion calls. Not a public API.
#[doc(hidden)]
pub mod __private {
    pub use super::table::construct;
    use crate::wire::messages::{ErrorKind, TaskFailure};

    /// Encodes one method argument.
    pub fn encode_arg<T: serde::Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, crate::Error> {
        crate::task::encode_value(v).map_err(|e| crate::Error::Encode(e.to_string()))
    }

    /// The failure of a call naming a method the type does not have.
    pub fn unknown_method(type_name: &str, method: &str, methods: &[&str]) -> TaskFailure {
        TaskFailure {
            kind: ErrorKind::UnknownFunction,
            message: format!(
                "actor type {type_name} has no method {method:?} (its methods: {})",
                methods.join(", ")
            ),
        }
    }
}
