//! The scheduler actor: a thin adapter between the connections' sessions
//! (`super::session`) and the I/O-free [`SchedulerState`].
//!
//! The scheduler actor applies each batch a session hands it to the state
//! machine and routes the outbox to the peers' writers, so every message
//! produced by one batch leaves in one frame per peer.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::net::TcpListener;
use tracing::{debug, info, info_span, warn, Instrument};

use super::journal::JournalFile;
use super::liveness::{check_workers, discount_stall, LivenessVerdict, WORKER_CHECK_INTERVAL};
use super::session::{serve_connection, ConnectionSettings};
use crate::scheduler::coordination::COORDINATION_TICK;
use crate::scheduler::state::{ClientId, Outbox, Outgoing, SchedulerState, WorkerId, WorkerRegistration};
use crate::wire::listener::{self, ListenerOptions};

mod idle_memory;
mod journal;
mod options;
use crate::wire::messages::*;
use crate::wire::transport::{Sender, WriterOptions};
use crate::wire::{ReadTimeouts, WireError};
use journal::first_session_id;
pub use options::*;

/// How often the scheduler errs tasks that waited too long for a worker
/// (`SchedulerState::expire_no_worker`), and answers restarts whose
/// workers did not come back in time (`SchedulerState::expire_restarts`):
/// the precision of those bounds.
const NO_WORKER_CHECK_INTERVAL: Duration = Duration::from_secs(1);

/// The scheduler: owns the state machine and a writer per peer.
pub struct SchedulerActor {
    state: SchedulerState,
    clients: HashMap<ClientId, Sender<ToClient>>,
    workers: HashMap<WorkerId, WorkerConn>,
    next_id: u64,
    outbox: Outbox,
    worker_timeout: Duration,
    paused_worker_timeout: Duration,
    client_grace: Duration,
    /// How often to run work stealing (`SchedulerState::balance`); zero = never.
    stealing_interval: Duration,
    /// Tasks workers reported finished / erred, for the HTTP `/metrics`
    /// (cumulative, so a monitor can compute tasks per second).
    pub(crate) tasks_finished: u64,
    pub(crate) tasks_erred: u64,
    /// The coordination expiry timer, running only while a coordination
    /// wait or lease is pending (an idle scheduler is not woken for it).
    coordination_tick: Option<SpawnHandle>,
    /// The journal, when the scheduler keeps one.
    journal: Option<JournalFile>,
    journal_fsync_interval: Duration,
    journal_compact_interval: Duration,
    /// When to give memory back to the OS on going idle.
    idle_collect: idle_memory::IdleCollect,
}

struct WorkerConn {
    sender: Sender<ToWorker>,
    name: String,
    last_seen: Instant,
}

impl SchedulerActor {
    /// The state machine, for the dashboard's reads.
    pub(crate) fn state(&self) -> &SchedulerState {
        &self.state
    }

    /// Each connected worker's name and the time since it was last heard.
    pub(crate) fn last_seen(&self) -> Vec<(String, Duration)> {
        self.workers
            .values()
            .map(|w| (w.name.clone(), w.last_seen.elapsed()))
            .collect()
    }

    /// A scheduler with no peers yet.
    pub fn new(options: &SchedulerOptions) -> Self {
        SchedulerActor {
            state: SchedulerState::new(options.state.clone()),
            clients: HashMap::new(),
            workers: HashMap::new(),
            next_id: first_session_id(),
            outbox: Outbox::default(),
            worker_timeout: options.worker_timeout,
            paused_worker_timeout: options.paused_worker_timeout,
            client_grace: options.client_grace,
            stealing_interval: Duration::from_millis(options.state.work_stealing_interval_ms),
            tasks_finished: 0,
            tasks_erred: 0,
            coordination_tick: None,
            journal: None,
            journal_fsync_interval: options.journal_fsync_interval,
            journal_compact_interval: options.journal_compact_interval,
            idle_collect: Default::default(),
        }
    }

    fn flush(&mut self) {
        self.write_journal();
        for out in self.outbox.messages.drain(..) {
            match out {
                Outgoing::Worker(id, msg) => {
                    // A Close (or RestartWorker) from the state machine: the
                    // worker retired (or is restarting) and the state already
                    // forgot it; so does the actor.
                    let closing = match &msg {
                        ToWorker::Close { reason } | ToWorker::RestartWorker { reason } => Some(reason.clone()),
                        _ => None,
                    };
                    if let Some(w) = self.workers.get(&id) {
                        if let Err(e) = w.sender.send(msg) {
                            debug!(worker = %w.name, "cannot send: {e}");
                        }
                    }
                    if let Some(reason) = closing {
                        if let Some(w) = self.workers.remove(&id) {
                            info!(worker = %w.name, "worker closed: {reason}");
                            w.sender.close();
                        }
                    }
                }
                Outgoing::Client(id, mut msg) => {
                    if let ToClient::InfoReply { info, .. } = &mut msg {
                        // Only the process itself can say how much memory it uses.
                        info.rss_bytes = crate::util::rss_bytes();
                    }
                    if let Some(c) = self.clients.get(&id) {
                        if let Err(e) = c.send(msg) {
                            debug!(client = id.0, "cannot send: {e}");
                        }
                    }
                }
            }
        }
    }

    /// Logs a worker's pause or resume, and on a pause starts its
    /// paused-worker timer.
    fn worker_status_changed(
        &mut self,
        id: WorkerId,
        was_paused: Option<u64>,
        status: WorkerStatus,
        ctx: &mut Context<Self>,
    ) {
        let Some(name) = self.workers.get(&id).map(|w| w.name.clone()) else {
            return;
        };
        let now_paused = self.state.pause_serial(id);
        match (was_paused, now_paused) {
            (None, Some(serial)) => {
                let timeout = self.paused_worker_timeout;
                info!(worker = %name, "worker paused (memory past its pause threshold): it gets no new task; its waiting tasks move elsewhere if it stays paused for {timeout:?}");
                ctx.run_later(timeout, move |act, _| {
                    let Some(moves) = act.state.move_off_paused_worker(id, serial, &mut act.outbox) else {
                        return; // resumed, paused again, or gone
                    };
                    warn!(
                        worker = %moves.worker,
                        "worker paused for {timeout:?}: asked it to give up {} tasks it has not started, to run \
                         elsewhere; {} stay on it (running or on its threads)",
                        moves.asked, moves.kept
                    );
                    act.flush();
                });
            }
            (Some(_), None) => info!(worker = %name, "worker resumed"),
            _ => debug!(worker = %name, ?status, "worker status unchanged"),
        }
    }

    /// Starts the coordination expiry ticks if a wait or lease is pending;
    /// they stop themselves once nothing is.
    fn tick_coordination_if_pending(&mut self, ctx: &mut Context<Self>) {
        if self.coordination_tick.is_some() || !self.state.coordination_pending() {
            return;
        }
        self.state.coordination_ticks_resumed(Instant::now());
        let handle = ctx.run_interval(COORDINATION_TICK, |act, ctx| {
            act.state.expire_coordination(Instant::now(), &mut act.outbox);
            act.flush();
            if !act.state.coordination_pending() {
                if let Some(h) = act.coordination_tick.take() {
                    ctx.cancel_future(h);
                }
            }
        });
        self.coordination_tick = Some(handle);
    }

    fn remove_worker(&mut self, id: WorkerId, why: &str) {
        if let Some(w) = self.workers.remove(&id) {
            warn!(worker = %w.name, "removing worker: {why}");
            // If it is only silent (stopped, cut off), it must not carry on
            // as a worker the scheduler forgot: tell it, then hang up.
            let _ = w.sender.send(ToWorker::Close {
                reason: format!("removed by the scheduler: {why}"),
            });
            w.sender.close();
            self.state.remove_worker(id, &mut self.outbox);
            self.flush();
        }
    }
}

impl Actor for SchedulerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.stealing_interval > Duration::ZERO {
            ctx.run_interval(self.stealing_interval, |act, _| {
                act.state.balance(&mut act.outbox);
                act.flush();
            });
        }
        if self.journal.is_some() && !self.journal_compact_interval.is_zero() {
            ctx.run_interval(self.journal_compact_interval, |act, _| {
                if act
                    .journal
                    .as_ref()
                    .is_some_and(|j| j.appended >= JOURNAL_COMPACT_MIN_BYTES)
                {
                    act.compact_journal();
                }
            });
        }
        ctx.run_interval(NO_WORKER_CHECK_INTERVAL, |act, _| {
            if act.journal.is_some() {
                act.check_recovery();
            }
            act.state.expire_no_worker(Instant::now(), &mut act.outbox);
            if act.state.restart_pending() {
                act.state.expire_restarts(Instant::now(), &mut act.outbox);
            }
            act.flush();
        });
        let mut previous_check = Instant::now();
        ctx.run_interval(WORKER_CHECK_INTERVAL, move |act, _| {
            let now = Instant::now();
            let last_seen = act.workers.iter().map(|(id, w)| (*id, w.last_seen));
            let verdict = check_workers(now, previous_check, act.worker_timeout, last_seen);
            previous_check = now;
            match verdict {
                LivenessVerdict::SchedulerStalled { gap } => {
                    // What the workers sent meanwhile is still unread in the
                    // sockets: judging now would remove them all.
                    warn!(
                        "the scheduler did not run for {:.1} s (stopped, paused or blocked); \
                         that time does not count as any worker's silence",
                        gap.as_secs_f64()
                    );
                    for w in act.workers.values_mut() {
                        w.last_seen = discount_stall(w.last_seen, gap, now);
                    }
                }
                LivenessVerdict::Silent(dead) => {
                    for id in dead {
                        act.remove_worker(id, "no heartbeat within the worker timeout");
                    }
                }
            }
        });
    }
}

/// A client connected.
#[derive(Message)]
#[rtype(result = "ClientId")]
pub struct ClientJoined {
    pub(super) sender: Sender<ToClient>,
}

impl Handler<ClientJoined> for SchedulerActor {
    type Result = MessageResult<ClientJoined>;
    fn handle(&mut self, msg: ClientJoined, _: &mut Self::Context) -> Self::Result {
        let id = ClientId(self.next_id);
        self.next_id += 1;
        self.clients.insert(id, msg.sender);
        self.state.add_client(id, &mut self.outbox);
        self.flush();
        MessageResult(id)
    }
}

/// A batch of messages from a client.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct ClientBatch {
    pub(super) id: ClientId,
    pub(super) messages: Vec<FromClient>,
}

impl Handler<ClientBatch> for SchedulerActor {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: ClientBatch, ctx: &mut Self::Context) -> Self::Result {
        let mut result = Ok(());
        // Any frame, a keep-alive too, keeps the client's leases alive.
        self.state.client_seen(msg.id, Instant::now());
        let total = msg.messages.len();
        for (i, m) in msg.messages.into_iter().enumerate() {
            let closing = matches!(m, FromClient::CloseClient);
            if let Err(e) = self.state.handle_client_message(msg.id, m, &mut self.outbox) {
                result = Err(e.to_string());
                break;
            }
            if closing {
                // The session is gone; anything after it in the frame is moot.
                self.clients.remove(&msg.id);
                let after = total - i - 1;
                if after > 0 {
                    warn!(
                        client = msg.id.0,
                        "ignoring {after} messages after CloseClient in the same frame"
                    );
                }
                break;
            }
        }
        self.flush();
        self.tick_coordination_if_pending(ctx);
        if self.idle_collect.after_batch(self.state.ntasks(), Instant::now()) {
            crate::util::release_free_memory();
        }
        result
    }
}

/// A client's connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientLeft {
    pub(super) id: ClientId,
    /// Release its keys at once (it broke the protocol) instead of after
    /// the grace period.
    pub(super) release_now: bool,
}

impl Handler<ClientLeft> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: ClientLeft, ctx: &mut Self::Context) {
        // After `CloseClient` the client is already gone from `clients`.
        if self.clients.remove(&msg.id).is_some() {
            let id = msg.id;
            // Its locks and leases go now: a holder that is gone cannot
            // release them, and nothing it waited for can reach it.
            self.state.coordination_client_gone(id, &mut self.outbox);
            self.flush();
            if self.client_grace.is_zero() || msg.release_now {
                self.state.remove_client(id, &mut self.outbox);
                self.flush();
                // A client's results (inline ones are held here) may be
                // many small allocations that glibc would otherwise keep.
                crate::util::release_free_memory();
                return;
            }
            info!(
                client = id.0,
                "client vanished without closing; its keys are kept for {:?}", self.client_grace
            );
            ctx.run_later(self.client_grace, move |act, _| {
                info!(client = id.0, "grace period over; releasing the vanished client's keys");
                act.state.remove_client(id, &mut act.outbox);
                act.flush();
                crate::util::release_free_memory();
            });
        }
    }
}

/// A worker connected and sent its registration.
#[derive(Message)]
#[rtype(result = "Result<WorkerId, String>")]
pub struct WorkerJoined {
    pub(super) sender: Sender<ToWorker>,
    pub(super) registration: WorkerRegistration,
}

impl Handler<WorkerJoined> for SchedulerActor {
    type Result = Result<WorkerId, String>;
    fn handle(&mut self, msg: WorkerJoined, _: &mut Self::Context) -> Self::Result {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let name = msg.registration.name.clone();
        let address = msg.registration.address.clone();
        let nthreads = msg.registration.nthreads;
        let restarted = msg.registration.restarted.clone();
        self.workers.insert(
            id,
            WorkerConn {
                sender: msg.sender,
                name: name.clone(),
                last_seen: Instant::now(),
            },
        );
        if let Err(e) = self.state.add_worker(id, msg.registration, &mut self.outbox) {
            self.workers.remove(&id);
            self.outbox.messages.clear();
            return Err(e.to_string());
        }
        info!(worker = %name, %address, nthreads, "worker registered");
        if let Some(why) = restarted {
            warn!(worker = %name, "worker restarted by its nanny: {why}");
        }
        self.flush();
        if self.state.recovering() {
            self.check_recovery();
        }
        Ok(id)
    }
}

/// A batch of messages from a worker.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct WorkerBatch {
    pub(super) id: WorkerId,
    pub(super) messages: Vec<FromWorker>,
}

impl Handler<WorkerBatch> for SchedulerActor {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: WorkerBatch, ctx: &mut Self::Context) -> Self::Result {
        let Some(w) = self.workers.get_mut(&msg.id) else {
            return Err("worker is no longer registered".into());
        };
        w.last_seen = Instant::now();
        let mut result = Ok(());
        for m in msg.messages {
            let status = match &m {
                FromWorker::TaskFinished { .. } => {
                    self.tasks_finished += 1;
                    None
                }
                FromWorker::TaskErred { .. } => {
                    self.tasks_erred += 1;
                    None
                }
                FromWorker::WorkerStatus { status, .. } => Some(*status),
                _ => None,
            };
            let was_paused = status.and_then(|_| self.state.pause_serial(msg.id));
            if let Err(e) = self.state.handle_worker_message(msg.id, m, &mut self.outbox) {
                result = Err(e.to_string());
                break;
            }
            if let Some(status) = status {
                self.worker_status_changed(msg.id, was_paused, status, ctx);
            }
        }
        self.flush();
        result
    }
}

/// A worker's connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct WorkerLeft {
    pub(super) id: WorkerId,
    pub(super) reason: String,
}

impl Handler<WorkerLeft> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: WorkerLeft, _: &mut Self::Context) {
        self.remove_worker(msg.id, &msg.reason);
    }
}

/// Scheduler figures, for in-process callers.
#[derive(Message)]
#[rtype(result = "SchedulerInfo")]
pub struct GetInfo;

impl Handler<GetInfo> for SchedulerActor {
    type Result = MessageResult<GetInfo>;
    fn handle(&mut self, _: GetInfo, _: &mut Self::Context) -> Self::Result {
        let mut info = self.state.info();
        info.rss_bytes = crate::util::rss_bytes();
        MessageResult(info)
    }
}

/// A running scheduler: its address and actor.
#[derive(Clone)]
pub struct SchedulerHandle {
    /// `tcp://host:port` clients and workers connect to.
    pub address: String,
    /// The actor, for in-process queries.
    pub actor: Addr<SchedulerActor>,
}

/// Starts a scheduler on the current actix arbiter, accepting on `listener`.
pub fn start_scheduler(listener: TcpListener, options: SchedulerOptions) -> std::io::Result<SchedulerHandle> {
    let local = listener.local_addr()?;
    let address = format!("{}://{local}", options.security.scheme());
    let mut actor = SchedulerActor::new(&options);
    if let Some(path) = &options.journal {
        let (journal, contents) = JournalFile::open(path).map_err(|e| std::io::Error::other(e.to_string()))?;
        actor = actor.with_journal(journal, contents);
    }
    let actor = actor.start();
    let span = info_span!("scheduler", %address);
    let handle = SchedulerHandle {
        address: address.clone(),
        actor: actor.clone(),
    };
    info!(parent: &span, "scheduler listening on {address}");
    let settings = Arc::new(ConnectionSettings {
        scheduler: actor,
        limits: options.limits,
        handshake_timeout: options.handshake_timeout,
        timeouts: ReadTimeouts {
            idle: None,
            stall: options.frame_stall_timeout,
        },
        client_silence: options.client_silence_timeout.filter(|d| !d.is_zero()),
        writer: WriterOptions {
            max_unsent_bytes: options.max_unsent_bytes_per_connection,
            keepalive: Some(options.keepalive_interval).filter(|d| !d.is_zero()),
        },
        max_pending_handshakes: options.max_pending_handshakes,
        handshaking: Arc::default(),
        security: options.security.clone(),
    });
    let listener_options = ListenerOptions {
        label: "scheduler",
        max_connections: listener::effective_max_connections(options.max_connections),
        plain_refusal: !options.security.is_tls(),
    };
    let accept = listener::serve(listener, listener_options, move |stream, peer, permit| {
        let settings = settings.clone();
        async move {
            match serve_connection(stream, peer, &settings, permit).await {
                Ok(()) => {}
                // A port scanner, a health check that only connects.
                Err(WireError::Closed) => info!(%peer, "connection closed before the handshake completed"),
                Err(e) => warn!(%peer, "connection closed: {e}"),
            }
        }
        .instrument(info_span!("conn", %peer))
    });
    actix_rt::spawn(accept.instrument(span));
    Ok(handle)
}
