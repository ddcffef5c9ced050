//! The coordination primitives (`coordination`) glued to the task state:
//! their requests and expiries, and their effects turned into messages and
//! wants. A key a primitive holds is wanted by the [`HOLDER`] pseudo-client,
//! so the release rule keeps it (and recomputes it if its data is lost)
//! exactly as for a client's future.

use std::time::Instant;

use super::coordination::{op_keys, Effect, HOLDER};
use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing, TaskState};
use crate::wire::messages::{CoordOp, CoordResult, Key, ToClient};

impl SchedulerState {
    /// `FromClient::Coordinate`. A request naming a key the scheduler does
    /// not know is refused with `Error`.
    pub(super) fn coordinate(&mut self, c: ClientId, request_id: u64, op: CoordOp, out: &mut Outbox) {
        if let Some(k) = op_keys(&op).into_iter().find(|k| self.task_id(k).is_none()) {
            let why = format!("key {k:?} is not known to the scheduler (released or never submitted)");
            out.messages.push(Outgoing::Client(
                c,
                ToClient::CoordReply {
                    request_id,
                    result: CoordResult::Error(why),
                },
            ));
            return;
        }
        if let CoordOp::ShuffleGetOrCreate {
            shuffle_id,
            ninputs,
            npartitions,
        } = op
        {
            self.shuffle_get_or_create(c, request_id, (shuffle_id, ninputs, npartitions), out);
            return;
        }
        let effects = self.coord.handle(c, request_id, op, Instant::now());
        self.apply_effects(effects, out);
    }

    /// `FromClient::FireAndForget`: unknown keys are skipped; one already
    /// done is let go at the end of the event.
    pub(super) fn fire_and_forget(&mut self, keys: Vec<Key>, out: &mut Outbox) {
        let known: Vec<Key> = keys.into_iter().filter(|k| self.task_id(k).is_some()).collect();
        let effects = self.coord.fire_and_forget(&known);
        self.apply_effects(effects, out);
        for key in known {
            if let Some(t) = self.task_id(&key) {
                if matches!(self.slot(t).state, TaskState::Memory | TaskState::Erred) {
                    out.held_done.push(key);
                }
            }
        }
    }

    /// Coordination waits past their deadline are answered, and leases of
    /// clients silent past the lease timeout taken back (the actor calls
    /// this every `COORDINATION_TICK`).
    pub fn expire_coordination(&mut self, now: Instant, out: &mut Outbox) {
        let effects = self.coord.expire(now);
        if effects.is_empty() {
            return; // the usual tick: nothing to do, nothing to finish
        }
        self.begin();
        self.apply_effects(effects, out);
        self.finish(out);
    }

    /// Whether coordination waits or leases need
    /// [`expire_coordination`](Self::expire_coordination) ticks.
    pub fn coordination_pending(&self) -> bool {
        self.coord.pending()
    }

    /// The actor starts ticking again after a pause of its ticks.
    pub fn coordination_ticks_resumed(&mut self, now: Instant) {
        self.coord.ticks_resumed(now);
    }

    /// Client `c` sent something: its leases are alive.
    pub fn client_seen(&mut self, c: ClientId, now: Instant) {
        self.coord.client_seen(c, now);
    }

    /// Client `c`'s connection ended: its leases, waits and subscriptions
    /// go now, whatever grace its keys get.
    pub fn coordination_client_gone(&mut self, c: ClientId, out: &mut Outbox) {
        self.begin();
        let effects = self.coord.client_gone(c, Instant::now());
        self.apply_effects(effects, out);
        self.finish(out);
    }

    /// Leases held over every lock and semaphore.
    pub fn coordination_leases(&self) -> usize {
        self.coord.leases()
    }

    pub(super) fn apply_effects(&mut self, effects: Vec<Effect>, out: &mut Outbox) {
        for e in effects {
            match e {
                Effect::Reply(c, request_id, result) => out
                    .messages
                    .push(Outgoing::Client(c, ToClient::CoordReply { request_id, result })),
                Effect::Hold(key) => {
                    if let Some(t) = self.task_id(&key) {
                        self.clients.entry(HOLDER).or_default();
                        self.want(HOLDER, t, out);
                    }
                }
                Effect::Unhold(key) => {
                    if let Some(t) = self.task_id(&key) {
                        self.unwant(HOLDER, t);
                    }
                }
                Effect::Want(c, key) => {
                    if let Some(t) = self.task_id(&key) {
                        self.want(c, t, out);
                    } else {
                        // Its task was forgotten while the primitive held it
                        // (a `Client::restart`): the future fails at once
                        // instead of waiting for a task that will never run.
                        let failure = crate::wire::messages::TaskFailure {
                            kind: crate::wire::messages::ErrorKind::Cancelled,
                            message: format!(
                                "key {key:?} is no longer known to the scheduler: {}",
                                super::restart::RESTART_MESSAGE
                            ),
                        };
                        out.messages
                            .push(Outgoing::Client(c, ToClient::TaskErred { key, failure }));
                    }
                }
                Effect::Topic(c, topic, value) => out
                    .messages
                    .push(Outgoing::Client(c, ToClient::TopicMessage { topic, value })),
            }
        }
    }

    /// Held keys reached memory or erred in this event: the
    /// fire-and-forgets of them are over.
    pub(super) fn held_keys_done(&mut self, out: &mut Outbox) {
        let keys = std::mem::take(&mut out.held_done);
        if !self.coord.has_fired() {
            return;
        }
        for key in keys {
            let effects = self.coord.task_done(&key);
            self.apply_effects(effects, out);
        }
    }
}
