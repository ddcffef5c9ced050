//! Dask's coordination primitives, kept by the scheduler beside the task
//! state machine and without I/O: locks, semaphores and multi-locks
//! (`semaphore`), queues (`queue`), variables (`variable`), events
//! (`event`), published datasets (`datasets`) and Pub/Sub topics
//! (`pubsub`).
//!
//! [`Coordination`] takes one request at a time and answers with
//! [`Effect`]s in the order they must happen: replies to clients, keys to
//! keep alive or let go, keys a client now wants, topic messages. The
//! scheduler (`super::coordinated`) turns them into task-state changes and
//! outgoing messages, so nothing here knows about tasks.
//!
//! Waits carry a deadline; [`Coordination::expire`] answers the ones past
//! it (the actor calls it every [`COORDINATION_TICK`]). Leases belong to a
//! client connection: they go when it goes ([`Coordination::client_gone`])
//! or when it has been silent for the lease timeout
//! ([`Coordination::expire`]), Dask's `lease-timeout`.

mod datasets;
mod event;
mod pubsub;
mod queue;
mod semaphore;
mod variable;

#[cfg(test)]
mod tests;

use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use super::types::ClientId;
use crate::util::FxMap;
use crate::wire::messages::{CoordItem, CoordOp, CoordResult, Key};

/// How often the scheduler actor answers coordination waits whose deadline
/// passed and expires silent holders' leases: the precision of every
/// coordination timeout.
pub const COORDINATION_TICK: Duration = Duration::from_millis(20);

/// A gap this long between two expiry checks means the scheduler did not
/// run meanwhile (stopped, paused, busy on a huge graph): what its clients
/// sent is unread in the sockets, so the gap does not count as their
/// silence (as `actors::liveness` does for workers).
pub const STALLED_CHECK_GAP: Duration = Duration::from_secs(1);

/// Default lease timeout (Dask's `distributed.scheduler.locks.lease-timeout`):
/// a semaphore lease or lock whose holder's connection has sent nothing
/// (not even a keep-alive, which Rust clients send every 5 s) for this long
/// is taken back.
pub const DEFAULT_LEASE_TIMEOUT_S: f64 = 30.0;

/// The id the scheduler's task state uses for "held by a coordination
/// primitive" (a queue, a variable, a dataset, a fire-and-forget): a client
/// slot no connection ever gets (the actor numbers connections from 1).
pub const HOLDER: ClientId = ClientId(u64::MAX);

/// What one request (or expiry) makes happen, in order.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Effect {
    /// Answer a request.
    Reply(ClientId, u64, CoordResult),
    /// Keep this key alive (its count went from 0 to 1).
    Hold(Key),
    /// Stop keeping this key alive (its count went back to 0).
    Unhold(Key),
    /// This client now wants this key (holds a future for it); always after
    /// the reply that told it the key.
    Want(ClientId, Key),
    /// A topic message to a subscriber.
    Topic(ClientId, String, ByteBuf),
}

/// A request waiting for its answer.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Waiter {
    pub(crate) client: ClientId,
    pub(crate) request_id: u64,
    pub(crate) deadline: Instant,
}

impl Waiter {
    fn new(client: ClientId, request_id: u64, now: Instant, timeout_ms: u64) -> Self {
        Waiter {
            client,
            request_id,
            deadline: now + Duration::from_millis(timeout_ms),
        }
    }
}

/// The effects of one call, with the key counts that produce `Hold` and
/// `Unhold`.
pub(crate) struct Fx<'a> {
    pub(crate) effects: &'a mut Vec<Effect>,
    held: &'a mut FxMap<Key, u32>,
}

impl Fx<'_> {
    pub(crate) fn reply(&mut self, client: ClientId, request_id: u64, result: CoordResult) {
        self.effects.push(Effect::Reply(client, request_id, result));
    }

    pub(crate) fn hold(&mut self, item: &CoordItem) {
        if let CoordItem::Future(key) = item {
            self.hold_key(key);
        }
    }

    pub(crate) fn hold_key(&mut self, key: &Key) {
        let n = self.held.entry(key.clone()).or_insert(0);
        *n += 1;
        if *n == 1 {
            self.effects.push(Effect::Hold(key.clone()));
        }
    }

    pub(crate) fn unhold(&mut self, item: &CoordItem) {
        if let CoordItem::Future(key) = item {
            self.unhold_key(key);
        }
    }

    pub(crate) fn unhold_key(&mut self, key: &Key) {
        if let Some(n) = self.held.get_mut(key) {
            *n -= 1;
            if *n == 0 {
                self.held.remove(key);
                self.effects.push(Effect::Unhold(key.clone()));
            }
        }
    }

    /// Answers `w` with `item`, handing a future over: the waiter wants
    /// the key before the primitive lets it go, so it is never unheld.
    pub(crate) fn deliver(&mut self, client: ClientId, request_id: u64, item: CoordItem) {
        let key = match &item {
            CoordItem::Future(k) => Some(k.clone()),
            CoordItem::Value(_) => None,
        };
        self.reply(client, request_id, CoordResult::Item(item));
        if let Some(key) = key {
            self.effects.push(Effect::Want(client, key));
        }
    }
}

/// The scheduler's coordination state. See the module documentation.
#[derive(Debug)]
pub struct Coordination {
    locks: semaphore::Semaphores,
    semaphores: semaphore::Semaphores,
    queues: queue::Queues,
    variables: variable::Variables,
    events: event::Events,
    datasets: datasets::Datasets,
    topics: pubsub::Topics,
    /// How many primitives hold each key (queue items, variables,
    /// datasets, fire-and-forget).
    held: FxMap<Key, u32>,
    /// Keys held for `fire_and_forget` until they are done.
    fired: FxMap<Key, u32>,
    /// When each client last sent anything: leases of one silent past
    /// `lease_timeout` are taken back.
    last_seen: FxMap<ClientId, Instant>,
    lease_timeout: Duration,
    /// When [`Coordination::expire`] last ran, to tell a stalled scheduler.
    last_check: Option<Instant>,
}

impl Coordination {
    /// Empty, with leases of clients silent for `lease_timeout` taken back
    /// (`Duration::ZERO`: never).
    pub fn new(lease_timeout: Duration) -> Self {
        Coordination {
            locks: semaphore::Semaphores::default(),
            semaphores: semaphore::Semaphores::default(),
            queues: queue::Queues::default(),
            variables: variable::Variables::default(),
            events: event::Events::default(),
            datasets: datasets::Datasets::default(),
            topics: pubsub::Topics::default(),
            held: FxMap::default(),
            fired: FxMap::default(),
            last_seen: FxMap::default(),
            lease_timeout,
            last_check: None,
        }
    }

    fn fx<'a>(held: &'a mut FxMap<Key, u32>, effects: &'a mut Vec<Effect>) -> Fx<'a> {
        Fx { effects, held }
    }

    /// Handles one request of `client`. The keys it names (futures put in
    /// a queue or variable, a dataset's) must be known to the scheduler:
    /// the caller checks ([`op_keys`]).
    pub fn handle(&mut self, client: ClientId, request_id: u64, op: CoordOp, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.last_seen.insert(client, now);
        let fx = &mut Self::fx(&mut self.held, &mut effects);
        let (c, r) = (client, request_id);
        match op {
            CoordOp::SemaphoreAcquire {
                name,
                max_leases,
                lease_id,
                timeout_ms,
            } => self
                .semaphores
                .acquire(fx, c, r, vec![name], max_leases, lease_id, now, timeout_ms),
            CoordOp::SemaphoreRelease { name, lease_id } => self.semaphores.release(fx, c, r, &[name], &lease_id, now),
            CoordOp::LockAcquire {
                name,
                lease_id,
                timeout_ms,
            } => self.locks.acquire(fx, c, r, vec![name], 1, lease_id, now, timeout_ms),
            CoordOp::LockRelease { name, lease_id } => self.locks.release(fx, c, r, &[name], &lease_id, now),
            CoordOp::MultiLockAcquire {
                names,
                lease_id,
                timeout_ms,
            } => self.locks.acquire(fx, c, r, names, 1, lease_id, now, timeout_ms),
            CoordOp::MultiLockRelease { names, lease_id } => self.locks.release(fx, c, r, &names, &lease_id, now),
            CoordOp::QueuePut { name, item } => self.queues.put(fx, c, r, name, item),
            CoordOp::QueueGet { name, timeout_ms } => self.queues.get(fx, c, r, name, now, timeout_ms),
            CoordOp::QueueSize { name } => {
                let n = self.queues.size(&name);
                fx.reply(c, r, CoordResult::Count(n));
            }
            CoordOp::VariableSet { name, item } => self.variables.set(fx, c, r, name, item),
            CoordOp::VariableGet { name, timeout_ms } => self.variables.get(fx, c, r, name, now, timeout_ms),
            CoordOp::VariableDelete { name } => self.variables.delete(fx, c, r, &name),
            CoordOp::EventSet { name } => self.events.set(fx, c, r, name),
            CoordOp::EventClear { name } => self.events.clear(fx, c, r, &name),
            CoordOp::EventIsSet { name } => {
                let set = self.events.is_set(&name);
                fx.reply(c, r, CoordResult::Bool(set));
            }
            CoordOp::EventWait { name, timeout_ms } => self.events.wait(fx, c, r, name, now, timeout_ms),
            CoordOp::PublishDataset { name, keys, overwrite } => self.datasets.publish(fx, c, r, name, keys, overwrite),
            CoordOp::GetDataset { name } => self.datasets.get(fx, c, r, &name),
            CoordOp::ListDatasets => {
                let names = self.datasets.names();
                fx.reply(c, r, CoordResult::Names(names));
            }
            CoordOp::UnpublishDataset { name } => self.datasets.unpublish(fx, c, r, &name),
            CoordOp::TopicPublish { topic, value } => self.topics.publish(fx, c, r, topic, value),
            CoordOp::TopicSubscribe { topic } => self.topics.subscribe(fx, c, r, topic),
            CoordOp::TopicUnsubscribe { topic } => self.topics.unsubscribe(fx, c, r, &topic),
            // Answered by the task state (`scheduler::shuffle`), which
            // takes it before it gets here.
            CoordOp::ShuffleGetOrCreate { shuffle_id, .. } => fx.reply(
                c,
                r,
                CoordResult::Error(format!("shuffle {shuffle_id}: not a coordination primitive")),
            ),
        }
        effects
    }

    /// Keeps `keys` alive until each is done ([`Self::task_done`]): Dask's
    /// `fire_and_forget`. The caller checks the keys exist.
    pub fn fire_and_forget(&mut self, keys: &[Key]) -> Vec<Effect> {
        let mut effects = Vec::new();
        let fx = &mut Self::fx(&mut self.held, &mut effects);
        for key in keys {
            *self.fired.entry(key.clone()).or_insert(0) += 1;
            fx.hold_key(key);
        }
        effects
    }

    /// A held key is in memory or erred: a fire-and-forget of it is over.
    pub fn task_done(&mut self, key: &Key) -> Vec<Effect> {
        let mut effects = Vec::new();
        if let Some(n) = self.fired.remove(key) {
            let fx = &mut Self::fx(&mut self.held, &mut effects);
            for _ in 0..n {
                fx.unhold_key(key);
            }
        }
        effects
    }

    /// Whether any fire-and-forget is pending (then held keys' completions
    /// matter).
    pub fn has_fired(&self) -> bool {
        !self.fired.is_empty()
    }

    /// `client` sent something (a request, a keep-alive): its leases are
    /// alive.
    pub fn client_seen(&mut self, client: ClientId, now: Instant) {
        // Only clients that made a request are tracked: the others hold no
        // lease, and a scheduler whose clients never coordinate pays nothing.
        if let Some(seen) = self.last_seen.get_mut(&client) {
            *seen = now;
        }
    }

    /// Whether anything waits for a deadline or a lease could expire: the
    /// scheduler ticks [`Self::expire`] only meanwhile.
    pub fn pending(&self) -> bool {
        self.locks.pending()
            || self.semaphores.pending()
            || self.queues.pending()
            || self.variables.pending()
            || self.events.pending()
    }

    /// The expiry ticks start again after a pause of theirs (nothing was
    /// pending): that pause is not a stalled scheduler.
    pub fn ticks_resumed(&mut self, now: Instant) {
        self.last_check = Some(now);
    }

    /// `client`'s connection is gone: its leases are released (waiters
    /// granted), its waits and subscriptions dropped.
    pub fn client_gone(&mut self, client: ClientId, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        self.last_seen.remove(&client);
        let fx = &mut Self::fx(&mut self.held, &mut effects);
        for (kind, table) in [("lock", &mut self.locks), ("semaphore", &mut self.semaphores)] {
            let freed = table.drop_client(fx, client, now);
            if freed > 0 {
                tracing::info!(
                    client = client.0,
                    "client gone: released {freed} {kind} lease(s) it held"
                );
            }
        }
        self.queues.drop_client(client);
        self.variables.drop_client(client);
        self.events.drop_client(client);
        self.topics.drop_client(client);
        effects
    }

    /// Answers the waits whose deadline passed, and takes back the leases
    /// of clients silent for the lease timeout.
    pub fn expire(&mut self, now: Instant) -> Vec<Effect> {
        let mut effects = Vec::new();
        let fx = &mut Self::fx(&mut self.held, &mut effects);
        self.locks.expire(fx, now);
        self.semaphores.expire(fx, now);
        self.queues.expire(fx, now);
        self.variables.expire(fx, now);
        self.events.expire(fx, now);
        let gap = self
            .last_check
            .map_or(Duration::ZERO, |t| now.saturating_duration_since(t));
        self.last_check = Some(now);
        if gap >= STALLED_CHECK_GAP {
            tracing::warn!(
                "the scheduler did not run for {:.1} s; that time does not count against any lease holder",
                gap.as_secs_f64()
            );
            for seen in self.last_seen.values_mut() {
                *seen = (*seen + gap).min(now);
            }
        }
        if !self.lease_timeout.is_zero() {
            let timeout = self.lease_timeout;
            let silent: Vec<ClientId> = self
                .last_seen
                .iter()
                .filter(|(_, &seen)| now.saturating_duration_since(seen) > timeout)
                .map(|(&c, _)| c)
                .collect();
            for c in silent {
                let n = self.locks.drop_leases(fx, c, now) + self.semaphores.drop_leases(fx, c, now);
                if n > 0 {
                    tracing::warn!(
                        client = c.0,
                        "client silent for more than the lease timeout ({timeout:?}): took back {n} lock/semaphore lease(s)"
                    );
                }
            }
        }
        effects
    }

    /// The cluster was restarted and every task forgotten: the keys held
    /// for queue items, variables, datasets and fire-and-forget are no
    /// longer held (their tasks are gone). The items themselves stay; a
    /// future later handed out of one fails at once with the restart error.
    pub fn forget_futures(&mut self) {
        self.held.clear();
        self.fired.clear();
    }

    /// Leases held now, over every lock and semaphore (for tests and info).
    pub fn leases(&self) -> usize {
        self.locks.lease_count() + self.semaphores.lease_count()
    }

    /// How many primitives hold `key`.
    pub fn hold_count(&self, key: &str) -> u32 {
        self.held.get(key).copied().unwrap_or(0)
    }
}

/// The keys a request names that must be known to the scheduler.
pub fn op_keys(op: &CoordOp) -> Vec<&Key> {
    match op {
        CoordOp::QueuePut {
            item: CoordItem::Future(k),
            ..
        }
        | CoordOp::VariableSet {
            item: CoordItem::Future(k),
            ..
        } => vec![k],
        CoordOp::PublishDataset { keys, .. } => keys.iter().collect(),
        _ => Vec::new(),
    }
}
