//! `submit_actor`: submits the actor's constructor task and waits until
//! the actor lives on a worker (its key in memory there), or fails clearly:
//! the constructor failed, or no connected worker knows the actor type.

use std::time::{Duration, Instant};

use super::{constructor_name, Actor, ActorRef, ActorType, ACTOR_CREATE_TIMEOUT};
use crate::actors::client::KeyStatus;
use crate::client::submit;
use crate::client::{AsyncClient, Error, Future, ReturnWhen, SubmitOptions};
use crate::wire::messages::Arg;

/// How often the creation wait looks at the key's status.
const CREATE_POLL: Duration = Duration::from_millis(50);

/// Creates an actor of type `T` from encoded constructor arguments.
pub(crate) async fn create<T: ActorType>(
    client: &AsyncClient,
    args: Vec<Arg>,
    opts: &SubmitOptions,
) -> Result<Actor<T>, Error> {
    create_raw(client, T::NAME, args, opts).await.map(Actor::from_ref)
}

/// Creates an actor of the type registered as `type_name`.
pub(crate) async fn create_raw(
    client: &AsyncClient,
    type_name: &str,
    args: Vec<Arg>,
    opts: &SubmitOptions,
) -> Result<ActorRef, Error> {
    let constructor = constructor_name(type_name);
    // Every actor is a new instance, never a cached result: a fresh key.
    let opts = SubmitOptions {
        pure: false,
        ..opts.clone()
    };
    let future: Future<String> = submit::submit(&client.core, &constructor, args, &opts)?;
    let key = future.key().to_string();
    let deadline = Instant::now() + ACTOR_CREATE_TIMEOUT;
    loop {
        let status = client.core.shared.lock().keys.get(&key).map(|e| e.status.clone());
        match status {
            Some(KeyStatus::Finished { who_has, .. }) => {
                let Some(worker) = who_has.into_iter().next() else {
                    return Err(Error::Wire(format!(
                        "actor {key} was created but no worker is listed for it"
                    )));
                };
                return Ok(ActorRef::owned(key, worker, type_name, client.clone(), future));
            }
            Some(KeyStatus::Error(failure)) => return Err(Error::Task { key, failure }),
            Some(KeyStatus::Cancelled) => return Err(Error::Cancelled(key)),
            Some(KeyStatus::NoWorker(why)) => {
                let info = client.scheduler_info().await?;
                if !info.workers.is_empty() && !info.workers.iter().any(|w| w.functions.contains(&constructor)) {
                    return Err(Error::Refused(format!(
                        "unknown actor type {}: none of the {} connected workers has it registered (no worker \
                         offers {:?}); run workers from a binary that links the #[rdask::actor] type ({why})",
                        type_name,
                        info.workers.len(),
                        constructor
                    )));
                }
            }
            Some(KeyStatus::Pending) => {}
            None => return Err(Error::Wire(format!("actor {key}: the client lost track of its key"))),
        }
        client.core.check_connected()?;
        if Instant::now() >= deadline {
            return Err(Error::Timeout(format!(
                "actor {type_name} ({key}) to be created, for {ACTOR_CREATE_TIMEOUT:?}: its status is {}",
                future.status()
            )));
        }
        // Ends early when the key completes; a timeout here is the poll.
        let _ = client
            .core
            .wait(std::slice::from_ref(&key), ReturnWhen::AllCompleted, Some(CREATE_POLL))
            .await;
    }
}
