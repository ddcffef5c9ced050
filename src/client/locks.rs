//! [`Lock`], [`Semaphore`] and [`MultiLock`]: leases kept by the
//! scheduler for this client's connection, Dask's names and calls.
//!
//! A lease lives while its holder's connection does: a client that closes
//! or vanishes, or a worker (whose tasks share one `worker_client`) that
//! dies, frees its leases at once; one whose connection goes silent past
//! the scheduler's `lease_timeout_s` (default 30 s) loses them then.

use std::sync::Mutex;
use std::time::Duration;

use super::coordination::{lease_id, millis, unexpected};
use super::{AsyncClient, Error};
use crate::runtime::block_on;
use crate::wire::messages::{CoordOp, CoordResult};

/// The lease ids one handle holds, oldest first.
#[derive(Debug, Default)]
struct Held(Mutex<Vec<String>>);

impl Held {
    fn push(&self, id: String) {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).push(id);
    }

    fn pop_oldest(&self) -> Option<String> {
        let mut ids = self.0.lock().unwrap_or_else(|e| e.into_inner());
        (!ids.is_empty()).then(|| ids.remove(0))
    }

    fn count(&self) -> usize {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).len()
    }
}

/// Sends an acquisition, answering whether it was granted.
async fn acquire(client: &AsyncClient, what: &str, op: CoordOp, timeout: Duration) -> Result<bool, Error> {
    match client.core.coordinate(what, op, timeout).await? {
        CoordResult::Bool(granted) => Ok(granted),
        other => Err(unexpected(what, &other)),
    }
}

/// Gives back the oldest lease `held` has: `Ok(false)` if the scheduler
/// had already taken it back (the lease timeout).
async fn release(
    client: &AsyncClient,
    what: &str,
    held: &Held,
    op: impl FnOnce(String) -> CoordOp,
) -> Result<bool, Error> {
    let Some(id) = held.pop_oldest() else {
        return Err(Error::Refused(format!("{what}: not acquired by this handle")));
    };
    match client.core.coordinate(what, op(id), Duration::ZERO).await? {
        CoordResult::Bool(held) => Ok(held),
        other => Err(unexpected(what, &other)),
    }
}

/// A named lock held across the cluster (Dask's `distributed.Lock`): at
/// most one holder at a time, whichever client or task it is.
///
/// Not re-entrant: a handle that holds it and acquires again waits like
/// anyone else.
pub struct Lock {
    client: AsyncClient,
    name: String,
    held: Held,
}

impl Lock {
    /// The lock `name` (nothing is sent until [`acquire`](Self::acquire)).
    pub fn new(client: impl AsRef<AsyncClient>, name: &str) -> Lock {
        Lock {
            client: client.as_ref().clone(),
            name: name.to_string(),
            held: Held::default(),
        }
    }

    /// The lock's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes the lock, waiting up to `timeout` (zero: only if free now);
    /// whether it was taken.
    pub async fn acquire_async(&self, timeout: Duration) -> Result<bool, Error> {
        let id = lease_id();
        let op = CoordOp::LockAcquire {
            name: self.name.clone(),
            lease_id: id.clone(),
            timeout_ms: millis(timeout),
        };
        let granted = acquire(&self.client, &format!("Lock({:?}).acquire", self.name), op, timeout).await?;
        if granted {
            self.held.push(id);
        }
        Ok(granted)
    }

    /// [`acquire_async`](Self::acquire_async), blocking (the task's thread
    /// stays taken while it waits, as in Dask).
    pub fn acquire(&self, timeout: Duration) -> Result<bool, Error> {
        block_on(self.acquire_async(timeout))
    }

    /// Releases the lock: `Ok(true)`, or `Ok(false)` if the scheduler had
    /// taken it back (this connection was silent past the lease timeout);
    /// an error if this handle does not hold it.
    pub async fn release_async(&self) -> Result<bool, Error> {
        let name = self.name.clone();
        let what = format!("Lock({name:?}).release");
        release(&self.client, &what, &self.held, |lease_id| CoordOp::LockRelease {
            name,
            lease_id,
        })
        .await
    }

    /// [`release_async`](Self::release_async), blocking.
    pub fn release(&self) -> Result<bool, Error> {
        block_on(self.release_async())
    }

    /// Whether this handle holds the lock (as far as it knows).
    pub fn locked(&self) -> bool {
        self.held.count() > 0
    }
}

/// A named semaphore (Dask's `distributed.Semaphore`): at most
/// `max_leases` holders at once across the cluster. Every handle of one
/// name must give the same `max_leases`.
pub struct Semaphore {
    client: AsyncClient,
    name: String,
    max_leases: u32,
    held: Held,
}

impl Semaphore {
    /// The semaphore `name` with `max_leases` leases.
    pub fn new(client: impl AsRef<AsyncClient>, name: &str, max_leases: u32) -> Semaphore {
        Semaphore {
            client: client.as_ref().clone(),
            name: name.to_string(),
            max_leases,
            held: Held::default(),
        }
    }

    /// The semaphore's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Takes a lease, waiting up to `timeout` (zero: only if one is free
    /// now); whether one was taken. A handle may hold several.
    pub async fn acquire_async(&self, timeout: Duration) -> Result<bool, Error> {
        let id = lease_id();
        let op = CoordOp::SemaphoreAcquire {
            name: self.name.clone(),
            max_leases: self.max_leases,
            lease_id: id.clone(),
            timeout_ms: millis(timeout),
        };
        let what = format!("Semaphore({:?}).acquire", self.name);
        let granted = acquire(&self.client, &what, op, timeout).await?;
        if granted {
            self.held.push(id);
        }
        Ok(granted)
    }

    /// [`acquire_async`](Self::acquire_async), blocking.
    pub fn acquire(&self, timeout: Duration) -> Result<bool, Error> {
        block_on(self.acquire_async(timeout))
    }

    /// Gives back this handle's oldest lease: `Ok(true)`, or `Ok(false)`
    /// if the scheduler had taken it back (lease timeout); an error if the
    /// handle holds none.
    pub async fn release_async(&self) -> Result<bool, Error> {
        let name = self.name.clone();
        let what = format!("Semaphore({name:?}).release");
        release(&self.client, &what, &self.held, |lease_id| CoordOp::SemaphoreRelease {
            name,
            lease_id,
        })
        .await
    }

    /// [`release_async`](Self::release_async), blocking.
    pub fn release(&self) -> Result<bool, Error> {
        block_on(self.release_async())
    }

    /// Leases this handle holds (as far as it knows).
    pub fn held(&self) -> usize {
        self.held.count()
    }
}

/// Several locks taken together or not at all (Dask's `MultiLock`), in the
/// namespace of [`Lock`]: a `MultiLock` over `["a", "b"]` and a
/// `Lock("a")` exclude each other.
pub struct MultiLock {
    client: AsyncClient,
    names: Vec<String>,
    held: Held,
}

impl MultiLock {
    /// The locks `names`.
    pub fn new(client: impl AsRef<AsyncClient>, names: &[&str]) -> MultiLock {
        MultiLock {
            client: client.as_ref().clone(),
            names: names.iter().map(|n| n.to_string()).collect(),
            held: Held::default(),
        }
    }

    /// Takes every lock, waiting up to `timeout`; whether they were taken
    /// (never only some).
    pub async fn acquire_async(&self, timeout: Duration) -> Result<bool, Error> {
        let id = lease_id();
        let op = CoordOp::MultiLockAcquire {
            names: self.names.clone(),
            lease_id: id.clone(),
            timeout_ms: millis(timeout),
        };
        let what = format!("MultiLock({:?}).acquire", self.names);
        let granted = acquire(&self.client, &what, op, timeout).await?;
        if granted {
            self.held.push(id);
        }
        Ok(granted)
    }

    /// [`acquire_async`](Self::acquire_async), blocking.
    pub fn acquire(&self, timeout: Duration) -> Result<bool, Error> {
        block_on(self.acquire_async(timeout))
    }

    /// Releases every lock: `Ok(false)` if the scheduler had taken them
    /// back; an error if this handle holds none.
    pub async fn release_async(&self) -> Result<bool, Error> {
        let names = self.names.clone();
        let what = format!("MultiLock({names:?}).release");
        release(&self.client, &what, &self.held, |lease_id| CoordOp::MultiLockRelease {
            names,
            lease_id,
        })
        .await
    }

    /// [`release_async`](Self::release_async), blocking.
    pub fn release(&self) -> Result<bool, Error> {
        block_on(self.release_async())
    }
}
