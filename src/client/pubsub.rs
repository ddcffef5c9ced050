//! [`Pub`] and [`Sub`]: Dask's Pub/Sub topics, through the scheduler and
//! best effort: a value reaches the subscribers connected when it is
//! published, is not stored or resent, and a client keeps at most
//! [`MAX_TOPIC_BUFFER`](crate::actors::client::MAX_TOPIC_BUFFER) unread
//! values per topic (the oldest go first). Subscriptions of one client to
//! one topic share its values: each goes to one of them.

use std::marker::PhantomData;
use std::time::Duration;

use futures_util::future::{select, Either};
use serde::de::DeserializeOwned;
use serde::Serialize;
use serde_bytes::ByteBuf;

use super::coordination::unexpected;
use super::future::decode_result;
use super::{AsyncClient, Error};
use crate::runtime::block_on;
use crate::task::encode_value;
use crate::wire::messages::{CoordOp, CoordResult, FromClient};

/// Publishes values of `T` on a topic.
pub struct Pub<T> {
    client: AsyncClient,
    topic: String,
    _type: PhantomData<fn(T)>,
}

impl<T: Serialize> Pub<T> {
    /// A publisher on `topic`.
    pub fn new(client: impl AsRef<AsyncClient>, topic: &str) -> Pub<T> {
        Pub {
            client: client.as_ref().clone(),
            topic: topic.to_string(),
            _type: PhantomData,
        }
    }

    /// Sends `value` to the topic's subscribers; how many there were.
    pub async fn put_async(&self, value: &T) -> Result<u64, Error> {
        let bytes = encode_value(value).map_err(|e| Error::Encode(e.to_string()))?;
        let what = format!("Pub({:?}).put", self.topic);
        let op = CoordOp::TopicPublish {
            topic: self.topic.clone(),
            value: ByteBuf::from(bytes),
        };
        match self.client.core.coordinate(&what, op, Duration::ZERO).await? {
            CoordResult::Count(n) => Ok(n),
            other => Err(unexpected(&what, &other)),
        }
    }

    /// [`put_async`](Self::put_async), blocking.
    pub fn put(&self, value: &T) -> Result<u64, Error> {
        block_on(self.put_async(value))
    }
}

/// Receives the values published on a topic from its creation on.
/// Dropping it unsubscribes.
pub struct Sub<T> {
    client: AsyncClient,
    topic: String,
    _type: PhantomData<fn() -> T>,
}

impl<T: DeserializeOwned> Sub<T> {
    /// Subscribes to `topic`; returns once the scheduler has the
    /// subscription.
    pub async fn new_async(client: impl AsRef<AsyncClient>, topic: &str) -> Result<Sub<T>, Error> {
        let client = client.as_ref().clone();
        {
            let mut st = client.core.shared.lock();
            st.topics.entry(topic.to_string()).or_default();
            *st.topic_subscribers.entry(topic.to_string()).or_insert(0) += 1;
        }
        // From here on, dropping `sub` undoes the count.
        let sub = Sub {
            client,
            topic: topic.to_string(),
            _type: PhantomData,
        };
        let what = format!("Sub({topic:?})");
        let op = CoordOp::TopicSubscribe {
            topic: topic.to_string(),
        };
        sub.client.core.coordinate(&what, op, Duration::ZERO).await?;
        Ok(sub)
    }

    /// [`new_async`](Self::new_async), blocking.
    pub fn new(client: impl AsRef<AsyncClient>, topic: &str) -> Result<Sub<T>, Error> {
        block_on(Self::new_async(client, topic))
    }

    /// The next value, waiting up to `timeout`; [`Error::Timeout`] if none
    /// came, [`Error::Disconnected`] if the connection is gone.
    pub async fn get_async(&self, timeout: Duration) -> Result<T, Error> {
        let core = &self.client.core;
        let mut sleep = std::pin::pin!(core.runtime.sleep(timeout));
        loop {
            let notified = core.shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            {
                let mut st = core.shared.lock();
                if let Some(bytes) = st.topics.get_mut(&self.topic).and_then(|v| v.pop_front()) {
                    drop(st);
                    return decode_result(&format!("topic {:?}", self.topic), &bytes);
                }
                if let Some(why) = &st.disconnected {
                    return Err(Error::Disconnected(why.clone()));
                }
            }
            if let Either::Right(_) = select(notified, sleep.as_mut()).await {
                return Err(Error::Timeout(format!(
                    "a value on topic {:?}: none within {timeout:?}",
                    self.topic
                )));
            }
        }
    }

    /// [`get_async`](Self::get_async), blocking.
    pub fn get(&self, timeout: Duration) -> Result<T, Error> {
        block_on(self.get_async(timeout))
    }
}

impl<T> Drop for Sub<T> {
    fn drop(&mut self) {
        let last = {
            let mut st = self.client.core.shared.lock();
            let n = st.topic_subscribers.entry(self.topic.clone()).or_insert(1);
            *n -= 1;
            let last = *n == 0;
            if last {
                st.topic_subscribers.remove(&self.topic);
                st.topics.remove(&self.topic);
            }
            last
        };
        if last {
            // Fire and forget: the answer finds no waiter and is dropped.
            let topic = self.topic.clone();
            let _ = self.client.core.request(|request_id| FromClient::Coordinate {
                request_id,
                op: CoordOp::TopicUnsubscribe { topic },
            });
        }
    }
}
