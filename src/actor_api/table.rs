//! The worker's side of actors: the [`ActorTable`] of instances living on
//! one worker, the constructor task that fills it, and running one call.
//!
//! An actor is created by a task (its function is
//! `actor:<type path>`, [`ACTOR_FUNCTION_PREFIX`]) that runs on the
//! worker's task pool like any task; instead of returning the instance it
//! puts it in its worker's table under the task's key and returns the type
//! name, so the key is "in memory" on that worker for the scheduler
//! (placement, who holds it, release when no client wants it). When the
//! key is freed the worker drops the instance.
//!
//! Calls arrive on the worker's peer port and run on tokio's blocking
//! threads, never on the task pool: an actor stays callable while every
//! task thread is busy (for instance calling that actor). Each instance is
//! behind its own fair (first come, first served) async mutex, taken
//! before a blocking thread is: calls on one actor run one at a time in
//! the order they reached it (Dask runs them on one actor thread), waiting
//! calls hold no thread, and calls on different actors run in parallel.

use std::collections::HashMap;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};

use super::ActorType;
use crate::wire::messages::{ErrorKind, Key, TaskFailure, ACTOR_FUNCTION_PREFIX};

/// What the worker needs of an actor instance, type-erased.
pub trait ActorObject: Send {
    /// Runs method `method` with msgpack-encoded arguments.
    fn call(&mut self, method: &str, args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure>;
    /// The actor's type name, for messages.
    fn type_name(&self) -> &'static str;
}

impl<T: ActorType> ActorObject for T {
    fn call(&mut self, method: &str, args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
        self.dispatch(method, args)
    }
    fn type_name(&self) -> &'static str {
        T::NAME
    }
}

type Cell = Arc<tokio::sync::Mutex<Box<dyn ActorObject>>>;

/// The actors living on one worker, by key. Cheap to clone (shared).
#[derive(Clone, Default)]
pub struct ActorTable {
    inner: Arc<Mutex<HashMap<Key, Cell>>>,
    /// How many there are, read without the lock: freeing keys (on every
    /// task's release) checks it before looking for actors among them.
    count: Arc<AtomicU64>,
}

impl std::fmt::Debug for ActorTable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "ActorTable({})", self.len())
    }
}

impl ActorTable {
    fn lock(&self) -> MutexGuard<'_, HashMap<Key, Cell>> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Actors living here.
    pub fn len(&self) -> u64 {
        self.count.load(Ordering::Relaxed)
    }

    /// Whether none lives here.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Adds (or replaces, for a key computed again) an actor.
    pub fn insert(&self, key: Key, actor: Box<dyn ActorObject>) {
        let mut g = self.lock();
        g.insert(key, Arc::new(tokio::sync::Mutex::new(actor)));
        self.count.store(g.len() as u64, Ordering::Relaxed);
    }

    /// Drops the actors among `keys` (their keys were freed); returns how
    /// many. A call running on one finishes first (it holds the instance).
    pub fn remove(&self, keys: &[Key]) -> usize {
        if self.is_empty() {
            return 0;
        }
        let mut g = self.lock();
        let removed = keys.iter().filter(|k| g.remove(*k).is_some()).count();
        self.count.store(g.len() as u64, Ordering::Relaxed);
        removed
    }

    /// Drops every actor (the worker leaves the cluster).
    pub fn clear(&self) {
        let mut g = self.lock();
        g.clear();
        self.count.store(0, Ordering::Relaxed);
    }

    /// Runs one call on a blocking thread, after the calls on the same
    /// actor before it. A key not here is `ActorLost`.
    pub async fn call(
        &self,
        worker: &str,
        key: &str,
        method: String,
        args: Vec<Vec<u8>>,
    ) -> Result<Vec<u8>, TaskFailure> {
        let Some(cell) = self.lock().get(key).cloned() else {
            return Err(TaskFailure {
                kind: ErrorKind::ActorLost,
                message: format!(
                    "worker {worker} holds no actor {key:?} (it was released, or it lived on a worker that died \
                     and another took over this address)"
                ),
            });
        };
        let mut actor = cell.lock_owned().await;
        let run = move || {
            let slices: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
            let name = actor.type_name();
            catch_panic(&format!("actor {name}, method {method}"), || {
                actor.call(&method, &slices)
            })
        };
        match tokio::task::spawn_blocking(run).await {
            Ok(r) => r,
            Err(e) => Err(TaskFailure {
                kind: ErrorKind::Panicked,
                message: format!("the actor call's thread failed: {e}"),
            }),
        }
    }
}

/// Runs `f`, turning a panic into a `Panicked` failure naming `what`.
pub(crate) fn catch_panic(
    what: &str,
    f: impl FnOnce() -> Result<Vec<u8>, TaskFailure>,
) -> Result<Vec<u8>, TaskFailure> {
    match catch_unwind(AssertUnwindSafe(f)) {
        Ok(r) => r,
        Err(payload) => {
            let msg = payload
                .downcast_ref::<&str>()
                .map(|s| s.to_string())
                .or_else(|| payload.downcast_ref::<String>().cloned())
                .unwrap_or_else(|| "a non-string panic".into());
            Err(TaskFailure {
                kind: ErrorKind::Panicked,
                message: format!("{what} panicked: {msg}"),
            })
        }
    }
}

/// The constructor task of actor type `T` (registered as
/// `actor:<T::NAME>`): builds the instance from the task's arguments and
/// puts it in the table of the worker running the task, under the task's
/// key. Its result is the type name.
pub fn construct<T: ActorType>(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let Some((table, key)) = crate::worker::pool::task_actor_slot() else {
        return Err(TaskFailure {
            kind: ErrorKind::Failed,
            message: format!(
                "actor {} can only be created on a worker (Client::submit_actor), not run as a local task",
                T::NAME
            ),
        });
    };
    let actor = T::construct(args)?;
    table.insert(key, Box::new(actor));
    crate::task::__private::encode_output(T::NAME, T::NAME)
}

/// The constructor's registered name for an actor type name.
pub fn constructor_name(type_name: &str) -> String {
    format!("{ACTOR_FUNCTION_PREFIX}{type_name}")
}
