//! The scheduler actor and its session actors: a thin adapter between TCP
//! connections and the I/O-free [`SchedulerState`].
//!
//! The listener performs the handshake, then starts one session actor per
//! connection (`ClientSession`, `WorkerSession`). A session reads frames and
//! hands each batch to the [`SchedulerActor`], waiting for it to be handled
//! before reading on: that wait is the back-pressure on a fast peer. The
//! scheduler actor applies the batch to the state machine and routes the
//! outbox to the peers' writers, so every message produced by one batch
//! leaves in one frame per peer.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::time::{Duration, Instant};

use actix::prelude::*;
use tokio::net::TcpListener;
use tracing::{debug, info, info_span, warn, Instrument};

use crate::scheduler::state::{
    ClientId, Outbox, Outgoing, SchedulerConfig, SchedulerState, WorkerId, WorkerRegistration,
};
use crate::wire::messages::*;
use crate::wire::transport::{self, Reader, Sender};
use crate::wire::{FrameLimits, Security, WireError};

/// Settings of a scheduler process.
#[derive(Clone, Debug)]
pub struct SchedulerOptions {
    /// State machine settings.
    pub state: SchedulerConfig,
    /// Limits on frames read from peers.
    pub limits: FrameLimits,
    /// A worker silent for this long is removed as dead.
    pub worker_timeout: Duration,
    /// Most connections still in their handshake at once; more are closed at
    /// accept, so a flood of silent connections cannot exhaust the scheduler.
    pub max_pending_handshakes: usize,
    /// How long a new connection has to complete its handshake (and a
    /// worker its registration) before it is closed; capped by
    /// [`transport::HANDSHAKE_TIMEOUT`].
    pub handshake_timeout: Duration,
    /// A client whose connection drops without `CloseClient` keeps its keys
    /// this long (a client on a flaky network, or one restarting), then
    /// they are released as if it had closed.
    pub client_grace: Duration,
    /// TLS and token settings of the scheduler port (default: plain TCP).
    pub security: Security,
}

impl Default for SchedulerOptions {
    fn default() -> Self {
        SchedulerOptions {
            state: SchedulerConfig::default(),
            limits: FrameLimits::default(),
            worker_timeout: DEFAULT_WORKER_TIMEOUT,
            max_pending_handshakes: DEFAULT_MAX_PENDING_HANDSHAKES,
            handshake_timeout: transport::HANDSHAKE_TIMEOUT,
            client_grace: DEFAULT_CLIENT_GRACE,
            security: Security::default(),
        }
    }
}

/// Default grace period of a vanished client: long enough to ride out a
/// brief network hiccup, short enough that an abandoned client's results do
/// not hold worker memory for long.
pub const DEFAULT_CLIENT_GRACE: Duration = Duration::from_secs(5);

/// A worker that sent nothing (not even a heartbeat) for this long is dead.
pub const DEFAULT_WORKER_TIMEOUT: Duration = Duration::from_secs(30);
/// Default cap on connections in their handshake.
pub const DEFAULT_MAX_PENDING_HANDSHAKES: usize = 1024;
/// How often the scheduler looks for silent workers.
const WORKER_CHECK_INTERVAL: Duration = Duration::from_millis(500);

/// The scheduler: owns the state machine and a writer per peer.
pub struct SchedulerActor {
    state: SchedulerState,
    clients: HashMap<ClientId, Sender<ToClient>>,
    workers: HashMap<WorkerId, WorkerConn>,
    next_id: u64,
    outbox: Outbox,
    worker_timeout: Duration,
    client_grace: Duration,
    /// How often to run work stealing (`SchedulerState::balance`); zero = never.
    stealing_interval: Duration,
    /// Tasks workers reported finished / erred, for the HTTP `/metrics`
    /// (cumulative, so a monitor can compute tasks per second).
    pub(crate) tasks_finished: u64,
    pub(crate) tasks_erred: u64,
}

struct WorkerConn {
    sender: Sender<ToWorker>,
    name: String,
    last_seen: Instant,
}

impl SchedulerActor {
    /// A scheduler with no peers yet.
    pub fn new(options: &SchedulerOptions) -> Self {
        SchedulerActor {
            state: SchedulerState::new(options.state.clone()),
            clients: HashMap::new(),
            workers: HashMap::new(),
            next_id: 1,
            outbox: Outbox::default(),
            worker_timeout: options.worker_timeout,
            client_grace: options.client_grace,
            stealing_interval: Duration::from_millis(options.state.work_stealing_interval_ms),
            tasks_finished: 0,
            tasks_erred: 0,
        }
    }

    fn flush(&mut self) {
        for out in self.outbox.messages.drain(..) {
            match out {
                Outgoing::Worker(id, msg) => {
                    // A Close from the state machine: the worker retired and
                    // the state already forgot it; so does the actor.
                    let closing = matches!(msg, ToWorker::Close { .. });
                    if let Some(w) = self.workers.get(&id) {
                        if let Err(e) = w.sender.send(msg) {
                            debug!(worker = %w.name, "cannot send: {e}");
                        }
                    }
                    if closing {
                        if let Some(w) = self.workers.remove(&id) {
                            info!(worker = %w.name, "worker retired");
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
        ctx.run_interval(WORKER_CHECK_INTERVAL, |act, _| {
            let now = Instant::now();
            let dead: Vec<WorkerId> = act
                .workers
                .iter()
                .filter(|(_, w)| now.duration_since(w.last_seen) > act.worker_timeout)
                .map(|(id, _)| *id)
                .collect();
            for id in dead {
                act.remove_worker(id, "no heartbeat within the worker timeout");
            }
        });
    }
}

/// A client connected.
#[derive(Message)]
#[rtype(result = "ClientId")]
pub struct ClientJoined {
    sender: Sender<ToClient>,
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
    id: ClientId,
    messages: Vec<ToScheduler>,
}

impl Handler<ClientBatch> for SchedulerActor {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: ClientBatch, _: &mut Self::Context) -> Self::Result {
        let mut result = Ok(());
        for m in msg.messages {
            let closing = matches!(m, ToScheduler::CloseClient);
            if let Err(e) = self.state.handle_client_message(msg.id, m, &mut self.outbox) {
                result = Err(e.to_string());
                break;
            }
            if closing {
                // The session is gone; anything after it in the frame is moot.
                self.clients.remove(&msg.id);
                break;
            }
        }
        self.flush();
        result
    }
}

/// A client's connection ended.
#[derive(Message)]
#[rtype(result = "()")]
pub struct ClientLeft {
    id: ClientId,
}

impl Handler<ClientLeft> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, msg: ClientLeft, ctx: &mut Self::Context) {
        // After `CloseClient` the client is already gone from `clients`.
        if self.clients.remove(&msg.id).is_some() {
            let id = msg.id;
            if self.client_grace.is_zero() {
                self.state.remove_client(id, &mut self.outbox);
                self.flush();
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
            });
        }
    }
}

/// A worker connected and sent its registration.
#[derive(Message)]
#[rtype(result = "Result<WorkerId, String>")]
pub struct WorkerJoined {
    sender: Sender<ToWorker>,
    registration: WorkerRegistration,
}

impl Handler<WorkerJoined> for SchedulerActor {
    type Result = Result<WorkerId, String>;
    fn handle(&mut self, msg: WorkerJoined, _: &mut Self::Context) -> Self::Result {
        let id = WorkerId(self.next_id);
        self.next_id += 1;
        let name = msg.registration.name.clone();
        let address = msg.registration.address.clone();
        let nthreads = msg.registration.nthreads;
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
        self.flush();
        Ok(id)
    }
}

/// A batch of messages from a worker.
#[derive(Message)]
#[rtype(result = "Result<(), String>")]
pub struct WorkerBatch {
    id: WorkerId,
    messages: Vec<ToScheduler>,
}

impl Handler<WorkerBatch> for SchedulerActor {
    type Result = Result<(), String>;
    fn handle(&mut self, msg: WorkerBatch, _: &mut Self::Context) -> Self::Result {
        let Some(w) = self.workers.get_mut(&msg.id) else {
            return Err("worker is no longer registered".into());
        };
        w.last_seen = Instant::now();
        let mut result = Ok(());
        for m in msg.messages {
            match &m {
                ToScheduler::TaskFinished { .. } => self.tasks_finished += 1,
                ToScheduler::TaskErred { .. } => self.tasks_erred += 1,
                _ => {}
            }
            if let Err(e) = self.state.handle_worker_message(msg.id, m, &mut self.outbox) {
                result = Err(e.to_string());
                break;
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
    id: WorkerId,
    reason: String,
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

/// A session actor for one client connection: reads its frames and feeds
/// them to the scheduler; when the connection ends it tells the scheduler,
/// which releases what only this client wanted.
struct ClientSession {
    id: ClientId,
    peer: SocketAddr,
    scheduler: Addr<SchedulerActor>,
    reader: Option<Reader>,
    limits: FrameLimits,
}

impl Actor for ClientSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(mut reader) = self.reader.take() else {
            ctx.stop();
            return;
        };
        let (id, scheduler, limits) = (self.id, self.scheduler.clone(), self.limits);
        let span = info_span!("client", id = id.0, peer = %self.peer);
        let read = async move { client_read_loop(&mut reader, id, &scheduler, &limits).await };
        ctx.spawn(read.instrument(span).into_actor(self).map(|result, act, ctx| {
            match &result {
                Ok(()) => info!(client = act.id.0, "client disconnected"),
                Err(e) => warn!(client = act.id.0, peer = %act.peer, "client connection closed: {e}"),
            }
            act.scheduler.do_send(ClientLeft { id: act.id });
            ctx.stop();
        }));
    }
}

/// A session actor for one worker connection, the worker's counterpart of
/// [`ClientSession`]; its end removes the worker from the scheduler.
struct WorkerSession {
    id: WorkerId,
    name: String,
    scheduler: Addr<SchedulerActor>,
    reader: Option<Reader>,
    limits: FrameLimits,
}

impl Actor for WorkerSession {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(mut reader) = self.reader.take() else {
            ctx.stop();
            return;
        };
        let (id, scheduler, limits) = (self.id, self.scheduler.clone(), self.limits);
        let span = info_span!("worker-session", name = %self.name);
        let read = async move { worker_read_loop(&mut reader, id, &scheduler, &limits).await };
        ctx.spawn(read.instrument(span).into_actor(self).map(|result, act, ctx| {
            let reason = match result {
                Ok(()) => "connection closed".to_string(),
                Err(e) => format!("connection lost: {e}"),
            };
            act.scheduler.do_send(WorkerLeft { id: act.id, reason });
            ctx.stop();
        }));
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
    let actor = SchedulerActor::new(&options).start();
    let span = info_span!("scheduler", %address);
    let handle = SchedulerHandle {
        address: address.clone(),
        actor: actor.clone(),
    };
    info!(parent: &span, "scheduler listening on {address}");
    actix_rt::spawn(accept_loop(listener, actor, options).instrument(span));
    Ok(handle)
}

async fn accept_loop(listener: TcpListener, scheduler: Addr<SchedulerActor>, options: SchedulerOptions) {
    let open = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("accept failed: {e}");
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        let count = open.fetch_add(1, std::sync::atomic::Ordering::Relaxed) + 1;
        if count > options.max_pending_handshakes {
            open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            warn!(%peer, "refusing connection: {} connections already handshaking", options.max_pending_handshakes);
            drop(stream);
            continue;
        }
        let scheduler = scheduler.clone();
        let limits = options.limits;
        let handshake_timeout = options.handshake_timeout;
        let security = options.security.clone();
        let open = open.clone();
        actix_rt::spawn(
            async move {
                if let Err(e) = serve_connection(stream, peer, scheduler, limits, handshake_timeout, &security).await {
                    warn!(%peer, "connection closed: {e}");
                }
                open.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
            }
            .instrument(info_span!("conn", %peer)),
        );
    }
}

async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    scheduler: Addr<SchedulerActor>,
    limits: FrameLimits,
    handshake_timeout: Duration,
    security: &Security,
) -> Result<(), WireError> {
    let (hello, mut reader, write) = tokio::time::timeout(
        handshake_timeout,
        transport::accept(stream, &[Role::Client, Role::Worker], security),
    )
    .await
    .map_err(|_| WireError::Timeout("peer sent no handshake".into()))??;
    match hello.role {
        Role::Client => {
            let sender = transport::spawn_writer::<ToClient>(write, format!("client {peer}"));
            let id = scheduler
                .send(ClientJoined { sender: sender.clone() })
                .await
                .map_err(|_| WireError::Closed)?;
            info!(client = id.0, name = %hello.name, "client connected");
            ClientSession {
                id,
                peer,
                scheduler,
                reader: Some(reader),
                limits,
            }
            .start();
            Ok(())
        }
        Role::Worker => {
            let first = tokio::time::timeout(
                handshake_timeout,
                transport::read_batch::<ToScheduler>(&mut reader, &limits),
            )
            .await
            .map_err(|_| WireError::Timeout("worker sent no registration".into()))??;
            let registration = match first {
                Some(mut msgs) if msgs.len() == 1 => match msgs.pop() {
                    Some(ToScheduler::RegisterWorker {
                        name,
                        address,
                        nthreads,
                        memory_limit,
                        functions,
                        resources,
                    }) => WorkerRegistration {
                        name,
                        address,
                        nthreads,
                        memory_limit,
                        functions,
                        resources,
                    },
                    _ => {
                        return Err(WireError::Malformed(
                            "a worker's first message must be RegisterWorker".into(),
                        ))
                    }
                },
                Some(_) => {
                    return Err(WireError::Malformed(
                        "a worker's first frame must hold one RegisterWorker".into(),
                    ))
                }
                None => return Err(WireError::Closed),
            };
            let name = registration.name.clone();
            let sender = transport::spawn_writer::<ToWorker>(write, format!("worker {name}"));
            let id = match scheduler
                .send(WorkerJoined {
                    sender: sender.clone(),
                    registration,
                })
                .await
                .map_err(|_| WireError::Closed)?
            {
                Ok(id) => id,
                Err(why) => {
                    warn!(worker = %name, "refusing worker: {why}");
                    let _ = sender.send(ToWorker::Close { reason: why.clone() });
                    // Give the writer a moment to deliver the reason.
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    return Err(WireError::Handshake(why));
                }
            };
            WorkerSession {
                id,
                name,
                scheduler,
                reader: Some(reader),
                limits,
            }
            .start();
            Ok(())
        }
        Role::Peer => Err(WireError::Handshake("peer role on the scheduler port".into())),
    }
}

async fn client_read_loop(
    reader: &mut Reader,
    id: ClientId,
    scheduler: &Addr<SchedulerActor>,
    limits: &FrameLimits,
) -> Result<(), WireError> {
    while let Some(messages) = transport::read_batch::<ToScheduler>(reader, limits).await? {
        let closing = messages.iter().any(|m| matches!(m, ToScheduler::CloseClient));
        match scheduler.send(ClientBatch { id, messages }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(WireError::Malformed(e)),
            Err(_) => return Err(WireError::Closed),
        }
        if closing {
            break;
        }
    }
    Ok(())
}

async fn worker_read_loop(
    reader: &mut Reader,
    id: WorkerId,
    scheduler: &Addr<SchedulerActor>,
    limits: &FrameLimits,
) -> Result<(), WireError> {
    while let Some(messages) = transport::read_batch::<ToScheduler>(reader, limits).await? {
        match scheduler.send(WorkerBatch { id, messages }).await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(WireError::Malformed(e)),
            Err(_) => return Err(WireError::Closed),
        }
    }
    Ok(())
}
