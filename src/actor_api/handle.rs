//! The caller's side of an actor: the typed [`Actor`] handle, the untyped
//! [`ActorRef`] it wraps, and [`ActorCall`], the future of one method call.
//!
//! A call goes straight to the actor's worker over the caller's client's
//! peer connections. It races a liveness check: while it runs longer than
//! [`ACTOR_LIVENESS_CHECK_INTERVAL`], the caller asks the scheduler whether
//! the worker still holds the actor, so a caller never waits on a worker
//! the cluster has given up on.

use std::future::Future as StdFuture;
use std::marker::PhantomData;
use std::pin::Pin;
use std::sync::{Arc, OnceLock};
use std::task::{Context, Poll};

use bytes::Bytes;
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};

use super::{ActorProxy, ActorType, ACTOR_CALL_TIMEOUT, ACTOR_LIVENESS_CHECK_INTERVAL, ACTOR_LOST_CONFIRM_TIMEOUT};
use crate::client::{AsyncClient, Error, Future};
use crate::wire::messages::{ErrorKind, Key};
use crate::wire::WireError;

/// Where an actor lives: what a handle is on the wire (a task argument).
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
struct ActorAddress {
    /// The key of the task that created it.
    key: Key,
    /// Its worker's peer address.
    worker: String,
    /// Its type's registered name.
    type_name: String,
}

struct RefInner {
    address: ActorAddress,
    /// The client calls go through: the creating client, or (for a handle
    /// decoded in a task) the task's `worker_client`, bound on first call.
    client: OnceLock<AsyncClient>,
    /// Keeps the actor alive at the scheduler while a handle of the
    /// creating client exists. A handle decoded in a task holds none (as
    /// in Dask): the caller that passed it keeps the actor alive.
    _owner: Option<Future<String>>,
}

/// An untyped handle on an actor: its key, worker and type, and the client
/// its calls go through. Clones share everything. On the wire (as a task
/// argument) it is the map `{"key", "worker", "type_name"}`, the same as a
/// typed [`Actor`].
#[derive(Clone)]
pub struct ActorRef {
    inner: Arc<RefInner>,
}

impl std::fmt::Debug for ActorRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let a = &self.inner.address;
        write!(f, "Actor({} {} on {})", a.type_name, a.key, a.worker)
    }
}

impl Serialize for ActorRef {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.inner.address.serialize(s)
    }
}

impl<'de> Deserialize<'de> for ActorRef {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        ActorAddress::deserialize(d).map(ActorRef::decoded)
    }
}

impl ActorRef {
    pub(crate) fn owned(key: Key, worker: String, type_name: &str, client: AsyncClient, owner: Future<String>) -> Self {
        let bound = OnceLock::new();
        let _ = bound.set(client);
        ActorRef {
            inner: Arc::new(RefInner {
                address: ActorAddress {
                    key,
                    worker,
                    type_name: type_name.to_string(),
                },
                client: bound,
                _owner: Some(owner),
            }),
        }
    }

    fn decoded(address: ActorAddress) -> Self {
        ActorRef {
            inner: Arc::new(RefInner {
                address,
                client: OnceLock::new(),
                _owner: None,
            }),
        }
    }

    /// The actor's key (the key of the task that created it).
    pub fn key(&self) -> &str {
        &self.inner.address.key
    }

    /// The peer address of the worker it lives on.
    pub fn worker(&self) -> &str {
        &self.inner.address.worker
    }

    /// Its type's registered name.
    pub fn type_name(&self) -> &str {
        &self.inner.address.type_name
    }

    fn client(&self) -> Result<AsyncClient, Error> {
        if let Some(c) = self.inner.client.get() {
            return Ok(c.clone());
        }
        let client = crate::worker_client().map_err(|e| {
            Error::Wire(format!(
                "actor handle {self:?} has no client to call through: a handle decoded from bytes works only \
                 inside a task (through its worker_client): {e}"
            ))
        })?;
        Ok(self.inner.client.get_or_init(|| client.as_async()).clone())
    }

    /// Calls `method` with arguments encoded one by one (the untyped door;
    /// the generated proxies call this). The call starts at once; the
    /// returned future gives its result, decoded as `R`.
    pub fn call<R: DeserializeOwned + Send + 'static>(
        &self,
        method: &str,
        args: Vec<Result<Vec<u8>, Error>>,
    ) -> ActorCall<R> {
        let started = args
            .into_iter()
            .collect::<Result<Vec<_>, _>>()
            .and_then(|args| Ok((self.client()?, args)));
        let (client, args) = match started {
            Ok(x) => x,
            Err(e) => return ActorCall::ready(Err(e)),
        };
        let address = self.inner.address.clone();
        let method = method.to_string();
        let core = client.core.clone();
        let run = core.runtime.run(call(client, address, method, args));
        let what = format!("{self:?}");
        ActorCall {
            fut: Box::pin(async move {
                let bytes = run
                    .await
                    .unwrap_or_else(|| Err(Error::Disconnected("the client's runtime stopped".into())))?;
                crate::task::decode_value::<R>(&bytes).map_err(|e| Error::Decode {
                    key: what,
                    message: e.to_string(),
                })
            }),
        }
    }

    /// [`call`](Self::call) with arguments already msgpack-encoded, one
    /// buffer each (a client that does not link the actor's type).
    pub fn call_encoded<R: DeserializeOwned + Send + 'static>(&self, method: &str, args: Vec<Vec<u8>>) -> ActorCall<R> {
        self.call(method, args.into_iter().map(Ok).collect())
    }
}

/// One call, on the client's runtime thread: the request raced against
/// the liveness check.
async fn call(client: AsyncClient, a: ActorAddress, method: String, args: Vec<Vec<u8>>) -> Result<Bytes, Error> {
    let peers = client.core.peers.clone();
    let request = peers.actor_call(&a.worker, a.key.clone(), method.clone(), args, ACTOR_CALL_TIMEOUT);
    let request = std::pin::pin!(request);
    let watch = std::pin::pin!(still_held(&client, &a));
    match futures_util::future::select(request, watch).await {
        futures_util::future::Either::Left((reply, _)) => match reply {
            Ok(Ok(bytes)) => Ok(bytes),
            Ok(Err(failure)) if failure.kind == ErrorKind::ActorLost => Err(lost(&a, failure.message)),
            Ok(Err(failure)) => Err(Error::ActorCall {
                actor: format!("{} ({})", a.key, a.type_name),
                method,
                failure,
            }),
            Err(WireError::Timeout(what)) => Err(Error::Timeout(format!(
                "{what}: method {method} of actor {} did not answer within {ACTOR_CALL_TIMEOUT:?}",
                a.key
            ))),
            Err(e) => Err(connection_failed(&client, &a, &method, e).await),
        },
        futures_util::future::Either::Right((reason, _)) => Err(lost(&a, reason)),
    }
}

fn lost(a: &ActorAddress, reason: String) -> Error {
    Error::ActorLost {
        actor: format!("{} ({})", a.key, a.type_name),
        worker: a.worker.clone(),
        reason,
    }
}

/// The connection to the actor's worker broke (or could not be made):
/// the actor is lost if the scheduler stops listing it on that worker
/// within [`ACTOR_LOST_CONFIRM_TIMEOUT`] (a dead worker's connection to
/// the scheduler closes too, so it learns at once); otherwise the worker
/// lives and only this connection failed. Either way, whether the call
/// ran is unknown: calls are not retried.
async fn connection_failed(client: &AsyncClient, a: &ActorAddress, method: &str, e: WireError) -> Error {
    let deadline = std::time::Instant::now() + ACTOR_LOST_CONFIRM_TIMEOUT;
    loop {
        match client.who_has(&[a.key.as_str()]).await {
            Ok(who) if who.first().is_some_and(|w| w.workers.contains(&a.worker)) => {}
            Ok(_) => {
                return lost(
                    a,
                    format!("the connection to its worker failed during the call ({e}), and the scheduler no longer lists it there"),
                )
            }
            Err(s) => {
                return lost(
                    a,
                    format!("the connection to its worker failed during the call ({e}), and the scheduler cannot be asked: {s}"),
                )
            }
        }
        if std::time::Instant::now() >= deadline {
            return Error::Wire(format!(
                "call of {method} on actor {} ({}): the connection to worker {} failed ({e}), but the scheduler \
                 still lists the actor there after {ACTOR_LOST_CONFIRM_TIMEOUT:?}; whether the call ran is unknown",
                a.key, a.type_name, a.worker
            ));
        }
        client.core.runtime.sleep(CONFIRM_POLL).await;
    }
}

/// How often [`connection_failed`] asks the scheduler.
const CONFIRM_POLL: std::time::Duration = std::time::Duration::from_millis(50);

/// Completes (with why) once the scheduler no longer lists the actor's key
/// on its worker; checked every [`ACTOR_LIVENESS_CHECK_INTERVAL`].
async fn still_held(client: &AsyncClient, a: &ActorAddress) -> String {
    loop {
        client.core.runtime.sleep(ACTOR_LIVENESS_CHECK_INTERVAL).await;
        match client.who_has(&[a.key.as_str()]).await {
            Ok(who) if who.first().is_some_and(|w| w.workers.contains(&a.worker)) => {}
            Ok(_) => {
                return "the scheduler no longer lists it on its worker (the worker died or left, or the actor \
                        was released)"
                    .into()
            }
            Err(e) => return format!("the scheduler cannot be asked whether it lives: {e}"),
        }
    }
}

/// The future of one method call: `.await` it, or block with
/// [`result`](Self::result). The call was sent when it was made; dropping
/// this does not undo it.
#[must_use = "the call runs anyway; its result or error is in this future"]
pub struct ActorCall<R> {
    fut: Pin<Box<dyn StdFuture<Output = Result<R, Error>> + Send>>,
}

impl<R: Send + 'static> ActorCall<R> {
    fn ready(r: Result<R, Error>) -> Self {
        ActorCall {
            fut: Box::pin(std::future::ready(r)),
        }
    }

    /// Blocks until the call is done; its result.
    pub fn result(self) -> Result<R, Error> {
        crate::runtime::block_on(self)
    }
}

impl<R> StdFuture for ActorCall<R> {
    type Output = Result<R, Error>;
    fn poll(mut self: Pin<&mut Self>, cx: &mut Context<'_>) -> Poll<Self::Output> {
        self.fut.as_mut().poll(cx)
    }
}

/// A typed handle on an actor of type `T`, returned by `submit_actor`.
/// It derefs to `T`'s generated proxy, whose methods are `T`'s (public,
/// `&self` / `&mut self`) methods returning [`ActorCall`]s.
///
/// Clones share the actor; it lives while a handle of the creating client
/// does (the scheduler counts the client's hold on its key, as for a
/// [`Future`]). A handle passed to a task (as a task argument) calls
/// through that task's worker's client and does not keep the actor alive:
/// keep a handle in the client until the tasks are done, as in Dask.
pub struct Actor<T: ActorType> {
    proxy: T::Proxy,
    _type: PhantomData<fn() -> T>,
}

impl<T: ActorType> Actor<T> {
    pub(crate) fn from_ref(actor: ActorRef) -> Self {
        Actor {
            proxy: T::Proxy::from_ref(actor),
            _type: PhantomData,
        }
    }

    /// The untyped reference (key, worker, [`ActorRef::call`]). An
    /// associated function, so it never hides a method of the actor.
    pub fn actor_ref(this: &Self) -> &ActorRef {
        this.proxy.actor_ref()
    }
}

impl<T: ActorType> Clone for Actor<T> {
    fn clone(&self) -> Self {
        Actor {
            proxy: self.proxy.clone(),
            _type: PhantomData,
        }
    }
}

impl<T: ActorType> std::fmt::Debug for Actor<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        self.proxy.actor_ref().fmt(f)
    }
}

impl<T: ActorType> std::ops::Deref for Actor<T> {
    type Target = T::Proxy;
    fn deref(&self) -> &T::Proxy {
        &self.proxy
    }
}

impl<T: ActorType> Serialize for Actor<T> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.proxy.actor_ref().serialize(s)
    }
}

impl<'de, T: ActorType> Deserialize<'de> for Actor<T> {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let address = ActorAddress::deserialize(d)?;
        if address.type_name != T::NAME {
            return Err(serde::de::Error::custom(format!(
                "a handle on actor {} of type {} where one of type {} was expected",
                address.key,
                address.type_name,
                T::NAME
            )));
        }
        Ok(Actor::from_ref(ActorRef::decoded(address)))
    }
}

impl<T: ActorType> crate::client::IntoArg<Actor<T>> for &Actor<T> {
    fn into_arg(self) -> Result<crate::wire::messages::Arg, Error> {
        crate::task::encode_value(self)
            .map(crate::wire::messages::Arg::Value)
            .map_err(|e| Error::Encode(e.to_string()))
    }
}
