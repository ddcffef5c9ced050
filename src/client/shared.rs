//! [`Queue`], [`Variable`] and [`Event`]: named state the scheduler keeps
//! for every client and task, Dask's names and calls. Items may be values
//! or futures; a future in a queue or variable keeps its result alive on
//! the workers until it is taken out (or replaced).

use std::marker::PhantomData;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde::Serialize;

use super::coordination::{item_of, millis, unexpected, value_item, Item};
use super::{AsyncClient, Error, Future};
use crate::runtime::block_on;
use crate::wire::messages::{CoordItem, CoordOp, CoordResult};

/// A named first-in, first-out queue across the cluster (Dask's
/// `distributed.Queue`), of `T` values or futures of `T`. Unbounded: a
/// put never waits. Each item goes to exactly one getter.
pub struct Queue<T> {
    client: AsyncClient,
    name: String,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Queue<T> {
    /// The queue `name` (created by its first put).
    pub fn new(client: impl AsRef<AsyncClient>, name: &str) -> Queue<T> {
        Queue {
            client: client.as_ref().clone(),
            name: name.to_string(),
            _type: PhantomData,
        }
    }

    /// The queue's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    async fn put_item(&self, item: CoordItem) -> Result<(), Error> {
        let what = format!("Queue({:?}).put", self.name);
        let op = CoordOp::QueuePut {
            name: self.name.clone(),
            item,
        };
        self.client.core.coordinate(&what, op, Duration::ZERO).await.map(drop)
    }

    /// Appends a value; returns once the scheduler has it (it then
    /// survives this client and any worker).
    pub async fn put_async(&self, value: &T) -> Result<(), Error> {
        self.put_item(value_item(value)?).await
    }

    /// [`put_async`](Self::put_async), blocking.
    pub fn put(&self, value: &T) -> Result<(), Error> {
        block_on(self.put_async(value))
    }

    /// Appends a future: its result is kept until a getter takes it.
    pub async fn put_future_async(&self, future: &Future<T>) -> Result<(), Error> {
        self.put_item(CoordItem::Future(future.key.clone())).await
    }

    /// [`put_future_async`](Self::put_future_async), blocking.
    pub fn put_future(&self, future: &Future<T>) -> Result<(), Error> {
        block_on(self.put_future_async(future))
    }

    /// Takes the oldest item, waiting up to `timeout` for one (zero: only
    /// if one is there); [`Error::Timeout`] if none came.
    pub async fn get_async(&self, timeout: Duration) -> Result<Item<T>, Error> {
        let what = format!("Queue({:?}).get", self.name);
        let op = CoordOp::QueueGet {
            name: self.name.clone(),
            timeout_ms: millis(timeout),
        };
        match self.client.core.coordinate(&what, op, timeout).await? {
            CoordResult::Item(item) => item_of(&self.client.core, &what, item),
            CoordResult::TimedOut => Err(Error::Timeout(format!(
                "an item of queue {:?}: none within {timeout:?}",
                self.name
            ))),
            other => Err(unexpected(&what, &other)),
        }
    }

    /// [`get_async`](Self::get_async), blocking.
    pub fn get(&self, timeout: Duration) -> Result<Item<T>, Error> {
        block_on(self.get_async(timeout))
    }

    /// Items in the queue now.
    pub async fn qsize_async(&self) -> Result<u64, Error> {
        let what = format!("Queue({:?}).qsize", self.name);
        let op = CoordOp::QueueSize {
            name: self.name.clone(),
        };
        match self.client.core.coordinate(&what, op, Duration::ZERO).await? {
            CoordResult::Count(n) => Ok(n),
            other => Err(unexpected(&what, &other)),
        }
    }

    /// [`qsize_async`](Self::qsize_async), blocking.
    pub fn qsize(&self) -> Result<u64, Error> {
        block_on(self.qsize_async())
    }
}

/// A named variable across the cluster (Dask's `distributed.Variable`):
/// one value or future of `T`, which every reader gets.
pub struct Variable<T> {
    client: AsyncClient,
    name: String,
    _type: PhantomData<fn() -> T>,
}

impl<T: Serialize + DeserializeOwned> Variable<T> {
    /// The variable `name`.
    pub fn new(client: impl AsRef<AsyncClient>, name: &str) -> Variable<T> {
        Variable {
            client: client.as_ref().clone(),
            name: name.to_string(),
            _type: PhantomData,
        }
    }

    async fn set_item(&self, item: CoordItem) -> Result<(), Error> {
        let what = format!("Variable({:?}).set", self.name);
        let op = CoordOp::VariableSet {
            name: self.name.clone(),
            item,
        };
        self.client.core.coordinate(&what, op, Duration::ZERO).await.map(drop)
    }

    /// Sets a value (replacing the previous one).
    pub async fn set_async(&self, value: &T) -> Result<(), Error> {
        self.set_item(value_item(value)?).await
    }

    /// [`set_async`](Self::set_async), blocking.
    pub fn set(&self, value: &T) -> Result<(), Error> {
        block_on(self.set_async(value))
    }

    /// Sets a future: its result is kept while the variable holds it.
    pub async fn set_future_async(&self, future: &Future<T>) -> Result<(), Error> {
        self.set_item(CoordItem::Future(future.key.clone())).await
    }

    /// [`set_future_async`](Self::set_future_async), blocking.
    pub fn set_future(&self, future: &Future<T>) -> Result<(), Error> {
        block_on(self.set_future_async(future))
    }

    /// The value, waiting up to `timeout` for one to be set;
    /// [`Error::Timeout`] if none was.
    pub async fn get_async(&self, timeout: Duration) -> Result<Item<T>, Error> {
        let what = format!("Variable({:?}).get", self.name);
        let op = CoordOp::VariableGet {
            name: self.name.clone(),
            timeout_ms: millis(timeout),
        };
        match self.client.core.coordinate(&what, op, timeout).await? {
            CoordResult::Item(item) => item_of(&self.client.core, &what, item),
            CoordResult::TimedOut => Err(Error::Timeout(format!(
                "variable {:?} to be set: not within {timeout:?}",
                self.name
            ))),
            other => Err(unexpected(&what, &other)),
        }
    }

    /// [`get_async`](Self::get_async), blocking.
    pub fn get(&self, timeout: Duration) -> Result<Item<T>, Error> {
        block_on(self.get_async(timeout))
    }

    /// Unsets the variable (a future it held is released).
    pub async fn delete_async(&self) -> Result<(), Error> {
        let what = format!("Variable({:?}).delete", self.name);
        let op = CoordOp::VariableDelete {
            name: self.name.clone(),
        };
        self.client.core.coordinate(&what, op, Duration::ZERO).await.map(drop)
    }

    /// [`delete_async`](Self::delete_async), blocking.
    pub fn delete(&self) -> Result<(), Error> {
        block_on(self.delete_async())
    }
}

/// A named event across the cluster (Dask's `distributed.Event`): set,
/// clear, and wait until set.
pub struct Event {
    client: AsyncClient,
    name: String,
}

impl Event {
    /// The event `name` (clear until set).
    pub fn new(client: impl AsRef<AsyncClient>, name: &str) -> Event {
        Event {
            client: client.as_ref().clone(),
            name: name.to_string(),
        }
    }

    async fn send(&self, what: &str, op: CoordOp, wait: Duration) -> Result<CoordResult, Error> {
        let what = format!("Event({:?}).{what}", self.name);
        self.client.core.coordinate(&what, op, wait).await
    }

    /// Sets the event: every waiter returns `true`.
    pub async fn set_async(&self) -> Result<(), Error> {
        let op = CoordOp::EventSet {
            name: self.name.clone(),
        };
        self.send("set", op, Duration::ZERO).await.map(drop)
    }

    /// [`set_async`](Self::set_async), blocking.
    pub fn set(&self) -> Result<(), Error> {
        block_on(self.set_async())
    }

    /// Clears the event.
    pub async fn clear_async(&self) -> Result<(), Error> {
        let op = CoordOp::EventClear {
            name: self.name.clone(),
        };
        self.send("clear", op, Duration::ZERO).await.map(drop)
    }

    /// [`clear_async`](Self::clear_async), blocking.
    pub fn clear(&self) -> Result<(), Error> {
        block_on(self.clear_async())
    }

    /// Whether the event is set.
    pub async fn is_set_async(&self) -> Result<bool, Error> {
        let op = CoordOp::EventIsSet {
            name: self.name.clone(),
        };
        match self.send("is_set", op, Duration::ZERO).await? {
            CoordResult::Bool(b) => Ok(b),
            other => Err(unexpected("Event.is_set", &other)),
        }
    }

    /// [`is_set_async`](Self::is_set_async), blocking.
    pub fn is_set(&self) -> Result<bool, Error> {
        block_on(self.is_set_async())
    }

    /// Waits up to `timeout` for the event to be set; whether it was
    /// (Dask's `wait(timeout)`).
    pub async fn wait_async(&self, timeout: Duration) -> Result<bool, Error> {
        let op = CoordOp::EventWait {
            name: self.name.clone(),
            timeout_ms: millis(timeout),
        };
        match self.send("wait", op, timeout).await? {
            CoordResult::Bool(b) => Ok(b),
            other => Err(unexpected("Event.wait", &other)),
        }
    }

    /// [`wait_async`](Self::wait_async), blocking.
    pub fn wait(&self, timeout: Duration) -> Result<bool, Error> {
        block_on(self.wait_async(timeout))
    }
}
