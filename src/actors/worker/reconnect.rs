//! A worker that lost its scheduler: it keeps its results and registers
//! again, announcing them, retrying with back-off for the worker's
//! `reconnect_timeout` (a restarted scheduler keeps what it knows from its
//! journal and tells the worker to drop the rest). Past that bound, or with
//! a bound of zero, it stops as before reconnection existed: `rdask worker`
//! then exits with status 1, having logged why.

use std::time::{Duration, Instant};

use actix::prelude::*;
use tracing::{error, info, warn};

use super::register::{register, Registered};
use super::{FromScheduler, WorkerActor};
use crate::wire::messages::*;
use crate::wire::transport::{self, Reader};
use crate::wire::WireError;

/// First pause between two registration attempts after a refusal or a
/// failed handshake (connection attempts while nothing listens back off by
/// themselves, up to [`transport::MAX_CONNECT_BACKOFF`]).
pub const FIRST_RECONNECT_BACKOFF: Duration = Duration::from_millis(100);
/// Longest pause between two registration attempts.
pub const MAX_RECONNECT_BACKOFF: Duration = Duration::from_secs(2);

/// The keys in memory now, for a registration.
#[derive(Message)]
#[rtype(result = "Vec<(Key, u64)>")]
struct HeldKeys;

impl Handler<HeldKeys> for WorkerActor {
    type Result = MessageResult<HeldKeys>;
    fn handle(&mut self, _: HeldKeys, _: &mut Self::Context) -> Self::Result {
        MessageResult(self.state.held_keys())
    }
}

impl WorkerActor {
    /// Reads the scheduler's batches until the connection ends, then
    /// reconnects or stops.
    pub(super) fn read_scheduler(&mut self, mut reader: Reader, ctx: &mut Context<Self>) {
        let me = ctx.address();
        let (limits, timeouts) = (self.limits, self.timeouts);
        let address = self.scheduler_address.clone();
        let read = async move {
            loop {
                match transport::read_batch_within::<ToWorker>(&mut reader, &limits, &timeouts).await {
                    Ok(Some(messages)) => {
                        if messages.is_empty() {
                            continue; // a keep-alive
                        }
                        if me.send(FromScheduler(messages)).await.is_err() {
                            return Ok(());
                        }
                    }
                    Ok(None) => return Err("the scheduler closed the connection".to_string()),
                    Err(WireError::Silent(after)) => {
                        return Err(format!("scheduler at {address} silent for {} s", after.as_secs_f64()))
                    }
                    Err(e) => return Err(format!("lost the connection to the scheduler: {e}")),
                }
            }
        };
        ctx.spawn(
            read.into_actor(self)
                .map(|result: Result<(), String>, act, ctx| match result {
                    Ok(()) => ctx.stop(),
                    Err(why) => act.scheduler_lost(why, ctx),
                }),
        );
    }

    fn scheduler_lost(&mut self, why: String, ctx: &mut Context<Self>) {
        if ctx.state() != ActorState::Running {
            return; // closing already (told to by the scheduler, or a signal)
        }
        if self.reconnect_timeout.is_zero() {
            error!(worker = %self.name, "{why}; shutting down");
            ctx.stop();
            return;
        }
        let mut effects = std::mem::take(&mut self.effects);
        self.state.scheduler_lost(&mut effects);
        // Nothing can be sent until registered again; the rest (store
        // deletes of what was dropped) is carried out.
        effects.retain(|e| !matches!(e, crate::worker::state::WorkerEffect::Send(_)));
        self.apply(effects, ctx);
        let timeout = self.reconnect_timeout;
        warn!(
            worker = %self.name,
            "{why}; keeping its {} results and trying to register again for {timeout:?}",
            self.state.nkeys_in_memory()
        );
        let identity = self.identity.clone();
        let me = ctx.address();
        let deadline = Instant::now() + timeout;
        let attempts = async move {
            let mut backoff = FIRST_RECONNECT_BACKOFF;
            let mut last = why;
            loop {
                let left = deadline.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    return Err(last);
                }
                let Ok(keys) = me.send(HeldKeys).await else {
                    return Err("the worker stopped".to_string());
                };
                match tokio::time::timeout(left, register(&identity, None, keys, left)).await {
                    Ok(Ok(registered)) => return Ok(registered),
                    Ok(Err(e)) => last = e.to_string(),
                    Err(_) => last = format!("no registration within {timeout:?}"),
                }
                let left = deadline.saturating_duration_since(Instant::now());
                tokio::time::sleep(backoff.min(left)).await;
                backoff = (backoff * 2).min(MAX_RECONNECT_BACKOFF);
            }
        };
        ctx.spawn(attempts.into_actor(self).map(move |result, act, ctx| match result {
            Ok(registered) => act.registered_again(registered, ctx),
            Err(why) => {
                error!(
                    worker = %act.name,
                    "could not register with the scheduler again within {timeout:?} (last: {why}); shutting down"
                );
                ctx.stop();
            }
        }));
    }

    fn registered_again(&mut self, registered: Registered, ctx: &mut Context<Self>) {
        let Registered {
            reader, sender, rest, ..
        } = registered;
        info!(
            worker = %self.name,
            scheduler = %self.scheduler_address,
            "registered with the scheduler again, holding {} results",
            self.state.nkeys_in_memory()
        );
        self.scheduler = sender;
        let mut effects = std::mem::take(&mut self.effects);
        self.state.announce_status(&mut effects);
        self.apply(effects, ctx);
        if !rest.is_empty() {
            self.handle_batch(rest, ctx);
        }
        self.read_scheduler(reader, ctx);
    }
}
