//! `Client::restart` (Dask's `client.restart()`): the scheduler forgets
//! every task of the cluster (every client's futures fail with the restart
//! error, kind `Cancelled`) and restarts every worker through its nanny;
//! the call returns once as many workers as were restarted have registered
//! again. See `docs/coordination.md` ("Restarting the cluster").

use std::time::Duration;

use futures_util::future::{select, Either};

use super::{AsyncClient, Client, Error};
use crate::runtime::block_on;
use crate::wire::messages::{FromClient, ToClient};

/// A timeout for [`Client::restart`] when the caller has none of its own:
/// how long to wait for the workers to come back (Dask's `restart(timeout=...)` default is 120 s; rdask workers
/// start in well under a second, so less).
pub const DEFAULT_RESTART_TIMEOUT: Duration = Duration::from_secs(60);

/// How long past the restart's own timeout the client waits for the
/// scheduler's answer: the scheduler answers at the deadline, so only a
/// stuck scheduler or a silently dead connection gets this far.
pub const RESTART_REPLY_GRACE: Duration = Duration::from_secs(30);

impl AsyncClient {
    /// Restarts the cluster (Dask's `client.restart()`): the scheduler
    /// forgets every task of every client — their futures, this client's
    /// included, fail with `Cancelled` and a message saying the cluster was
    /// restarted — and every worker run by a nanny (`rdask worker --nanny`)
    /// is restarted as a fresh process. Returns the names of the workers
    /// registered again, once as many have as were restarted.
    ///
    /// Errors ([`Error::Refused`]) name what went wrong: workers without a
    /// nanny (they were told to close, as Dask does, and are named), fewer
    /// workers back than restarted within `timeout` (with how many came
    /// back), or a [`crate::LocalCluster`], whose in-process workers cannot
    /// be restarted (nothing is forgotten then).
    pub async fn restart(&self, timeout: Duration) -> Result<Vec<String>, Error> {
        let timeout_ms = u64::try_from(timeout.as_millis()).unwrap_or(u64::MAX);
        let rx = self
            .core
            .request(|request_id| FromClient::RestartCluster { request_id, timeout_ms })?;
        let bound = timeout + RESTART_REPLY_GRACE;
        let sleep = std::pin::pin!(self.core.runtime.sleep(bound));
        match select(rx, sleep).await {
            Either::Left((Ok(ToClient::RestartDone { workers, error, .. }), _)) => match error {
                None => Ok(workers),
                Some(e) => Err(Error::Refused(format!(
                    "restart: {e} (workers registered again: {workers:?})"
                ))),
            },
            Either::Left((Ok(other), _)) => Err(super::async_client::unexpected("restart", &other)),
            Either::Left((Err(_), _)) => {
                let why = self.core.shared.lock().disconnected.clone();
                Err(Error::Disconnected(format!(
                    "restart: {}",
                    why.unwrap_or_else(|| "the connection ended before the answer".into())
                )))
            }
            Either::Right(_) => Err(Error::Timeout(format!(
                "the answer to restart from the scheduler at {}: none within {bound:?}",
                self.core.address
            ))),
        }
    }
}

impl Client {
    /// See [`AsyncClient::restart`].
    pub fn restart(&self, timeout: Duration) -> Result<Vec<String>, Error> {
        block_on(self.inner.restart(timeout))
    }
}
