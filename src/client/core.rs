//! The state every handle of one client shares: the connection, the key
//! table the client actor keeps, the peer pool for fetching results, and
//! the runtime thread that drives them; plus waiting on that table.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::oneshot;

use super::link::{dial, Dial, Reconnect, SchedulerLink};
use super::{ClientOptions, Error, ReturnWhen, WaitResult};
use crate::actors::client::{ClientActor, KeyStatus, Shared, SharedState};
use crate::actors::peer::PeerPool;
use crate::runtime::Runtime;
use crate::wire::messages::*;
use crate::wire::{FrameLimits, Security, WireError};

pub(crate) struct Core {
    pub(crate) shared: Arc<Shared>,
    pub(crate) sender: Arc<SchedulerLink>,
    pub(crate) peers: PeerPool,
    next_request: AtomicU64,
    pub(crate) address: String,
    pub(crate) limits: FrameLimits,
    // Last field: dropped after everything above that may use it.
    pub(crate) runtime: Runtime,
}

impl Drop for Core {
    fn drop(&mut self) {
        let _ = self.sender.send(FromClient::CloseClient);
    }
}

impl Core {
    pub(crate) fn check_connected(&self) -> Result<(), Error> {
        match &self.shared.lock().disconnected {
            Some(why) => Err(Error::Disconnected(why.clone())),
            None => Ok(()),
        }
    }

    pub(crate) fn send(&self, msg: FromClient) -> Result<(), Error> {
        self.sender.send(msg).map_err(|e| Error::Disconnected(e.to_string()))
    }

    /// Sends a request; the receiver gets the scheduler's reply (or closes
    /// when the connection is lost).
    pub(crate) fn request(&self, make: impl FnOnce(u64) -> FromClient) -> Result<oneshot::Receiver<ToClient>, Error> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let orphaned = {
            let mut st = self.shared.lock();
            if let Some(why) = &st.disconnected {
                return Err(Error::Disconnected(why.clone()));
            }
            st.requests.insert(id, tx);
            std::mem::take(&mut st.orphaned)
        };
        if !orphaned.is_empty() {
            self.send(FromClient::ReleaseKeys { keys: orphaned })?;
        }
        self.send(make(id))?;
        Ok(rx)
    }

    /// A request id and the receiver of its answer, for a reply that
    /// follows another request's (a direct scatter's `ScatterDone`).
    pub(crate) fn await_reply(&self) -> Result<(u64, oneshot::Receiver<ToClient>), Error> {
        let id = self.next_request.fetch_add(1, Ordering::Relaxed);
        let (tx, rx) = oneshot::channel();
        let mut st = self.shared.lock();
        if let Some(why) = &st.disconnected {
            return Err(Error::Disconnected(why.clone()));
        }
        st.requests.insert(id, tx);
        Ok((id, rx))
    }

    /// Sends a request and waits for its reply; `what` names it in the error.
    pub(crate) async fn ask(&self, what: &str, make: impl FnOnce(u64) -> FromClient) -> Result<ToClient, Error> {
        let rx = self.request(make)?;
        rx.await.map_err(|_| {
            let why = self.shared.lock().disconnected.clone();
            Error::Disconnected(why.unwrap_or_else(|| format!("no answer to {what}")))
        })
    }

    /// Runs `fut` on the client's runtime thread and awaits it from any
    /// executor.
    pub(crate) async fn on_runtime<T, F>(&self, fut: F) -> Result<T, Error>
    where
        T: Send + 'static,
        F: std::future::Future<Output = T> + Send + 'static,
    {
        self.runtime
            .run(fut)
            .await
            .ok_or_else(|| Error::Disconnected("the client's runtime stopped".into()))
    }

    /// Waits until all (or the first) of `keys` are done, or the timeout.
    pub(crate) async fn wait(&self, keys: &[Key], when: ReturnWhen, timeout: Option<Duration>) -> Result<(), Error> {
        let mut sleep = std::pin::pin!(async {
            match timeout {
                Some(t) => self.runtime.sleep(t).await,
                None => std::future::pending().await,
            }
        });
        let mut progress = WaitProgress::new();
        let result = loop {
            // Registered before the check, so a change after it still wakes us.
            let notified = self.shared.notify.notified();
            let mut notified = std::pin::pin!(notified);
            notified.as_mut().enable();
            match progress.check(&mut self.shared.lock(), keys, when) {
                Ok(true) => break Ok(()),
                Err(e) => break Err(e),
                Ok(false) => {}
            }
            let woken = futures_util::future::select(notified, sleep.as_mut()).await;
            if let futures_util::future::Either::Right(_) = woken {
                let pending = match when {
                    ReturnWhen::AllCompleted => keys.get(progress.next),
                    ReturnWhen::FirstCompleted => keys.first(),
                };
                let t = timeout.unwrap_or_default();
                break Err(Error::Timeout(self.describe_wait(keys.len(), pending, t)));
            }
        };
        progress.unwatch(&mut self.shared.lock());
        result
    }

    /// The message of a timed-out wait: the key waited for, its function
    /// and where it stands.
    fn describe_wait(&self, n: usize, pending: Option<&Key>, timeout: Duration) -> String {
        let Some(key) = pending else {
            return format!("{n} futures (after {timeout:?})");
        };
        let st = self.shared.lock();
        let entry = st.keys.get(key);
        let function = entry.map(|e| &*e.function).filter(|f| !f.is_empty());
        let state = match entry.map(|e| &e.status) {
            Some(KeyStatus::NoWorker(why)) => format!("no-worker: {why}"),
            Some(KeyStatus::Pending) | None => {
                "pending (the scheduler has not reported it finished; see Client::scheduler_info for the workers)"
                    .to_string()
            }
            Some(s) => format!("{s:?}"),
        };
        let others = if n > 1 {
            format!(" (and {} more futures)", n - 1)
        } else {
            String::new()
        };
        match function {
            Some(f) => format!("{key}, a call of `{f}`{others}, after {timeout:?}; it is {state}"),
            None => format!("{key}{others} after {timeout:?}; it is {state}"),
        }
    }

    /// Splits `keys` by whether they are done.
    pub(crate) fn split_done(&self, keys: &[Key]) -> WaitResult {
        let st = self.shared.lock();
        let mut r = WaitResult::default();
        for (i, k) in keys.iter().enumerate() {
            if st.keys.get(k).is_none_or(|e| e.status.is_done()) {
                r.done.push(i);
            } else {
                r.not_done.push(i);
            }
        }
        r
    }
}

/// Progress of a wait over many keys. Done keys stay done, so for
/// `AllCompleted` the keys before `next` never need another look: a wait over
/// n keys costs O(n) in total, not O(n) per wake-up.
struct WaitProgress {
    next: usize,
    /// Keys registered in `SharedState::watched` by this wait.
    watching: Vec<Key>,
}

impl WaitProgress {
    fn new() -> Self {
        WaitProgress {
            next: 0,
            watching: Vec::new(),
        }
    }

    /// Whether the wait condition holds; an error if it never will. While
    /// it does not hold, the keys whose completion could change that are
    /// watched, so the client actor wakes this waiter for them.
    fn check(&mut self, st: &mut SharedState, keys: &[Key], when: ReturnWhen) -> Result<bool, Error> {
        let done = |st: &SharedState, k: &Key| st.keys.get(k).is_none_or(|e| e.status.is_done());
        let holds = match when {
            ReturnWhen::AllCompleted => {
                while self.next < keys.len() && done(st, &keys[self.next]) {
                    self.next += 1;
                }
                self.next == keys.len()
            }
            ReturnWhen::FirstCompleted => keys.is_empty() || keys.iter().any(|k| done(st, k)),
        };
        if let Some(why) = &st.disconnected {
            if !holds {
                return Err(Error::Disconnected(why.clone()));
            }
        }
        if !holds {
            let wanted: &[Key] = match when {
                ReturnWhen::AllCompleted => &keys[self.next..self.next + 1],
                ReturnWhen::FirstCompleted => keys,
            };
            if self.watching.as_slice() != wanted {
                self.unwatch(st);
                for k in wanted {
                    st.watch(k);
                }
                self.watching = wanted.to_vec();
            }
        }
        Ok(holds)
    }

    fn unwatch(&mut self, st: &mut SharedState) {
        for k in self.watching.drain(..) {
            st.unwatch(&k);
        }
    }
}

/// Connects: starts the client's runtime thread, and there the connection,
/// the handshake and the actor reading the scheduler's messages. The
/// returned future can be awaited from any executor (or `block_on`).
pub(crate) async fn connect(address: String, options: ClientOptions) -> Result<Arc<Core>, Error> {
    let name = options.name.clone().unwrap_or_else(client_name);
    let security = options.security;
    let limits = options.limits;
    let runtime = Runtime::new("rdask-client").map_err(|e| Error::Wire(e.to_string()))?;
    let shared = Arc::new(Shared::default());
    let sh = shared.clone();
    let d = Dial {
        address: address.clone(),
        name: name.clone(),
        security: security.clone(),
        limits,
    };
    let (connect_timeout, silence, reconnect_timeout) = (
        options.connect_timeout,
        options.scheduler_silence_timeout,
        options.reconnect_timeout,
    );
    let link = runtime
        .run(async move {
            let (reader, sender) = dial(&d, &sh, connect_timeout).await?;
            let link = Arc::new(SchedulerLink::new(sender));
            let reconnect = Reconnect {
                dial: d.clone(),
                link: link.clone(),
                timeout: reconnect_timeout,
            };
            actix::Actor::start(
                ClientActor::new(sh, reader, limits)
                    .watching(&d.address, silence)
                    .reconnecting(reconnect),
            );
            Ok::<_, WireError>(link)
        })
        .await
        .ok_or_else(|| Error::Wire("client runtime stopped".into()))??;
    Ok(Arc::new(Core {
        shared,
        sender: link,
        peers: client_peers(&name, limits, security),
        next_request: AtomicU64::new(1),
        address,
        limits,
        runtime,
    }))
}

/// The client's connections to workers: gathers by TCP, pushes of a
/// direct scatter through shared memory to workers on this host.
fn client_peers(name: &str, limits: FrameLimits, security: Security) -> PeerPool {
    let peers = PeerPool::new(name, limits).with_security(security);
    #[cfg(target_os = "linux")]
    if let Some(host) = crate::shm::host_id() {
        let counters = Arc::new(crate::actors::store::WorkerCounters::default());
        return peers.with_shm_pushes(crate::shm::ShmFetcher::new(&host, counters, limits));
    }
    peers
}

fn client_name() -> String {
    format!("client-{}", &uuid::Uuid::new_v4().simple().to_string()[..8])
}
