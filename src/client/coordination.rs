//! The client's side of the coordination primitives: one request, one
//! bounded wait for its answer ([`Core::coordinate`]); published datasets
//! and `fire_and_forget` on [`AsyncClient`] and [`Client`]; and what a
//! queue or variable hands back ([`Item`]).
//!
//! The primitives themselves are in `locks` ([`Lock`](super::Lock),
//! [`Semaphore`](super::Semaphore), [`MultiLock`](super::MultiLock)),
//! `shared` ([`Queue`](super::Queue), [`Variable`](super::Variable),
//! [`Event`](super::Event)) and `pubsub` ([`Pub`](super::Pub),
//! [`Sub`](super::Sub)). Semantics: `docs/coordination.md`.

use std::sync::Arc;
use std::time::Duration;

use futures_util::future::{select, Either};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::core::Core;
use super::future::{decode_result, Future};
use super::{AsyncClient, Client, Error};
use crate::runtime::block_on;
use crate::task::encode_value;
use crate::wire::messages::{CoordItem, CoordOp, CoordResult, FromClient, Key, ToClient};

/// How long past a request's own timeout a client waits for the
/// scheduler's answer before it fails with [`Error::Timeout`]: the
/// scheduler answers every wait at its deadline, so only a scheduler that
/// is stuck (or a connection that is silently gone) gets this far.
pub const COORDINATION_REPLY_GRACE: Duration = Duration::from_secs(30);

impl Core {
    /// Sends a coordination request and waits for its answer, at most
    /// `wait` (the request's own timeout) plus [`COORDINATION_REPLY_GRACE`].
    /// The scheduler's refusals are [`Error::Refused`] naming `what`.
    pub(crate) async fn coordinate(&self, what: &str, op: CoordOp, wait: Duration) -> Result<CoordResult, Error> {
        let rx = self.request(|request_id| FromClient::Coordinate { request_id, op })?;
        let bound = wait + COORDINATION_REPLY_GRACE;
        let sleep = std::pin::pin!(self.runtime.sleep(bound));
        match select(rx, sleep).await {
            Either::Left((Ok(ToClient::CoordReply { result, .. }), _)) => match result {
                CoordResult::Error(why) => Err(Error::Refused(format!("{what}: {why}"))),
                other => Ok(other),
            },
            Either::Left((Ok(other), _)) => Err(Error::Wire(format!("unexpected answer to {what}: {other:?}"))),
            Either::Left((Err(_), _)) => {
                let why = self.shared.lock().disconnected.clone();
                Err(Error::Disconnected(format!(
                    "{what}: {}",
                    why.unwrap_or_else(|| "the connection ended before the answer".into())
                )))
            }
            Either::Right(_) => Err(Error::Timeout(format!(
                "the answer to {what} from the scheduler at {}: none within {bound:?}",
                self.address
            ))),
        }
    }
}

/// Milliseconds of a timeout on the wire (saturating).
pub(crate) fn millis(d: Duration) -> u64 {
    u64::try_from(d.as_millis()).unwrap_or(u64::MAX)
}

/// A fresh lease id: what the scheduler knows one acquisition by.
pub(crate) fn lease_id() -> String {
    uuid::Uuid::new_v4().simple().to_string()
}

/// What a [`Queue`](super::Queue) or [`Variable`](super::Variable) hands
/// back: a value, or a future (this client now holds it, as if it had
/// submitted it).
#[derive(Debug)]
pub enum Item<T> {
    /// A value put as such.
    Value(T),
    /// A future put as such; its result lives on the workers.
    Future(Future<T>),
}

impl<T: DeserializeOwned> Item<T> {
    /// The value, waiting for a future's result if need be (up to
    /// `timeout`).
    pub async fn value_async(self, timeout: Duration) -> Result<T, Error> {
        match self {
            Item::Value(v) => Ok(v),
            Item::Future(f) => f.result_timeout_async(Some(timeout)).await,
        }
    }

    /// [`value_async`](Self::value_async), blocking.
    pub fn value(self, timeout: Duration) -> Result<T, Error> {
        block_on(self.value_async(timeout))
    }
}

/// Encodes what a queue or variable is given.
pub(crate) fn value_item<T: Serialize>(value: &T) -> Result<CoordItem, Error> {
    let bytes = encode_value(value).map_err(|e| Error::Encode(e.to_string()))?;
    Ok(CoordItem::Value(ByteBuf::from(bytes)))
}

/// Turns an answer's item into an [`Item`]. A future's reference was
/// counted when the answer arrived (`actors::client::apply`).
pub(crate) fn item_of<T: DeserializeOwned>(core: &Arc<Core>, what: &str, item: CoordItem) -> Result<Item<T>, Error> {
    match item {
        CoordItem::Value(bytes) => decode_result(what, &bytes).map(Item::Value),
        CoordItem::Future(key) => Ok(Item::Future(Future::new(key, core.clone()))),
    }
}

pub(crate) fn unexpected(what: &str, result: &CoordResult) -> Error {
    Error::Wire(format!("unexpected answer to {what}: {result:?}"))
}

impl AsRef<AsyncClient> for AsyncClient {
    fn as_ref(&self) -> &AsyncClient {
        self
    }
}

impl AsRef<AsyncClient> for Client {
    fn as_ref(&self) -> &AsyncClient {
        &self.inner
    }
}

impl AsyncClient {
    /// Publishes `futures` under `name` (Dask's `publish_dataset`): the
    /// scheduler keeps their results until
    /// [`unpublish_dataset`](Self::unpublish_dataset), after this client
    /// has gone too. A name already published is refused.
    pub async fn publish_dataset<T>(&self, name: &str, futures: &[Future<T>]) -> Result<(), Error> {
        let op = CoordOp::PublishDataset {
            name: name.to_string(),
            keys: futures.iter().map(|f| f.key.clone()).collect(),
            overwrite: false,
        };
        let what = format!("publish_dataset({name:?})");
        self.core.coordinate(&what, op, Duration::ZERO).await.map(drop)
    }

    /// The futures of dataset `name` (Dask's `get_dataset`), held by this
    /// client from now on; an error if none is published under that name.
    pub async fn get_dataset<T>(&self, name: &str) -> Result<Vec<Future<T>>, Error> {
        let what = format!("get_dataset({name:?})");
        let op = CoordOp::GetDataset { name: name.to_string() };
        match self.core.coordinate(&what, op, Duration::ZERO).await? {
            CoordResult::Keys(keys) => Ok(keys
                .into_iter()
                .map(|k: Key| Future::new(k, self.core.clone()))
                .collect()),
            other => Err(unexpected(&what, &other)),
        }
    }

    /// The names of the published datasets, sorted (Dask's `list_datasets`).
    pub async fn list_datasets(&self) -> Result<Vec<String>, Error> {
        match self
            .core
            .coordinate("list_datasets", CoordOp::ListDatasets, Duration::ZERO)
            .await?
        {
            CoordResult::Names(names) => Ok(names),
            other => Err(unexpected("list_datasets", &other)),
        }
    }

    /// Drops dataset `name`: its results are released unless a client
    /// still holds them (Dask's `unpublish_dataset`).
    pub async fn unpublish_dataset(&self, name: &str) -> Result<(), Error> {
        let what = format!("unpublish_dataset({name:?})");
        let op = CoordOp::UnpublishDataset { name: name.to_string() };
        self.core.coordinate(&what, op, Duration::ZERO).await.map(drop)
    }

    /// Runs `futures` to completion even once no client holds them (Dask's
    /// `fire_and_forget`): dropping them, or this client, no longer
    /// cancels them. Their results are released once computed.
    pub fn fire_and_forget<T>(&self, futures: &[Future<T>]) -> Result<(), Error> {
        let keys = futures.iter().map(|f| f.key.clone()).collect();
        self.core.send(FromClient::FireAndForget { keys })
    }
}

impl Client {
    /// [`AsyncClient::publish_dataset`], blocking.
    pub fn publish_dataset<T>(&self, name: &str, futures: &[Future<T>]) -> Result<(), Error> {
        block_on(self.inner.publish_dataset(name, futures))
    }

    /// [`AsyncClient::get_dataset`], blocking.
    pub fn get_dataset<T>(&self, name: &str) -> Result<Vec<Future<T>>, Error> {
        block_on(self.inner.get_dataset(name))
    }

    /// [`AsyncClient::list_datasets`], blocking.
    pub fn list_datasets(&self) -> Result<Vec<String>, Error> {
        block_on(self.inner.list_datasets())
    }

    /// [`AsyncClient::unpublish_dataset`], blocking.
    pub fn unpublish_dataset(&self, name: &str) -> Result<(), Error> {
        block_on(self.inner.unpublish_dataset(name))
    }

    /// [`AsyncClient::fire_and_forget`].
    pub fn fire_and_forget<T>(&self, futures: &[Future<T>]) -> Result<(), Error> {
        self.inner.fire_and_forget(futures)
    }
}
