//! The worker actor: a thin adapter between the scheduler connection, the
//! task thread pool, the data store actor, peers, and the I/O-free
//! [`WorkerState`].
//!
//! Every event (a batch from the scheduler, a finished task, a finished
//! fetch) goes through the state machine, and the actor carries out the
//! effects it returns.

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use bytes::Bytes;
use tokio::net::TcpListener;
use tracing::{error, info, info_span, warn, Instrument};

use super::peer::PeerPool;
use super::peer_service::{serve_peers, PeerService};
use super::store::{
    ArgData, Clear, DataStore, Delete, GetArgs, PauseChanged, Put, StoreMemory, WatchPause, WorkerCounters,
};
use crate::actor_api::ActorTable;
use crate::registry::Registry;
use crate::wire::messages::*;
use crate::wire::transport::{Reader, Sender};
use crate::wire::{FrameLimits, ReadTimeouts, WireError};
use crate::worker::args::{job_args, JobArg};
use crate::worker::memory::MemoryThresholds;
use crate::worker::pool::{Job, ResultsReady, SchedulerContact, TaskPool};
use crate::worker::state::{WorkerEffect, WorkerState, WorkerStateConfig};

mod fetched;
mod heartbeat;
mod options;
mod pushed;
mod reconnect;
mod register;
mod shared;
pub use heartbeat::MAX_LOG_LINES_PER_HEARTBEAT;
pub use options::*;
use register::{register, Identity, Registered};

/// Errors starting or running a worker.
#[derive(Debug, thiserror::Error)]
pub enum WorkerError {
    /// Talking to the scheduler failed.
    #[error("{0}")]
    Wire(#[from] WireError),
    /// The scheduler refused the registration.
    #[error("the scheduler refused this worker: {0}")]
    Refused(String),
    /// A local resource (socket, thread) could not be set up.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
}

/// A running worker.
#[derive(Clone)]
pub struct WorkerHandle {
    /// Its name.
    pub name: String,
    /// Its peer address, `tcp://host:port`.
    pub address: String,
    /// The worker actor.
    pub actor: Addr<WorkerActor>,
    /// Its data store actor.
    pub store: Addr<DataStore>,
    /// Its counters.
    pub counters: Arc<WorkerCounters>,
    closed: tokio::sync::watch::Receiver<bool>,
}

impl WorkerHandle {
    /// Waits until the worker has shut down (scheduler gone, or closed).
    pub async fn closed(&self) {
        let mut rx = self.closed.clone();
        while !*rx.borrow_and_update() {
            if rx.changed().await.is_err() {
                return;
            }
        }
    }
}

/// Starts a worker on the current actix arbiter: binds its peer port,
/// registers with the scheduler, and starts its actors.
pub async fn start_worker(options: WorkerOptions) -> Result<WorkerHandle, WorkerError> {
    let listener = TcpListener::bind((options.listen_host.as_str(), options.listen_port)).await?;
    let address = format!("{}://{}", options.security.scheme(), listener.local_addr()?);
    let name = options.name.clone().unwrap_or_else(|| address.clone());
    let registry = Registry::global();
    let identity = Identity {
        scheduler: options.scheduler.clone(),
        name: name.clone(),
        address: address.clone(),
        nthreads: options.nthreads,
        memory_limit: options.memory_limit,
        functions: registry.names(),
        resources: options.resources.clone(),
        nanny: options.nanny,
        security: options.security.clone(),
        limits: options.limits,
    };
    let Registered {
        reader,
        sender,
        heartbeat_ms,
        rest,
    } = register(
        &identity,
        options.restarted.clone(),
        Vec::new(),
        options.connect_timeout,
    )
    .await?;
    info!(worker = %name, %address, scheduler = %options.scheduler, "registered with the scheduler");

    if options.memory_limit > 0 {
        // Pausing is judged on process memory: large values freed must
        // leave it at once (issue 16 case 2). The setting is process-wide,
        // so a process hosting such a worker (a `LocalCluster`) gets it too.
        crate::util::return_large_blocks_to_os();
    }
    let counters = Arc::new(WorkerCounters::default());
    // A directory of its own, so workers sharing a local directory never
    // touch each other's files, and removing it on exit removes only ours.
    let base = options.local_directory.clone().unwrap_or_else(std::env::temp_dir);
    let memory = StoreMemory {
        thresholds: MemoryThresholds {
            limit: options.memory_limit,
            target: options.memory_target,
            spill: options.memory_spill,
            pause: options.memory_pause,
        },
        spill_directory: base.join(format!("rdask-worker-{}", uuid::Uuid::new_v4().simple())),
        monitor_interval: options.memory_monitor_interval,
        worker: name.clone(),
    };
    let shuffles = crate::shuffle::ShuffleReceiver::new(
        memory.spill_directory.join("shuffle"),
        crate::shuffle::effective_buffer_bytes(options.shuffle_buffer_bytes, options.memory_limit),
    );
    let store = DataStore::with_memory(counters.clone(), memory)
        .with_shuffles(shuffles.clone())
        .start();
    let peers = PeerPool::new(&name, options.limits).with_security(options.security.clone());
    let shared = shared::start(&name, &options, &base, &counters, peers);
    let (closed_tx, closed) = tokio::sync::watch::channel(false);
    let actors = ActorTable::default();
    let state = WorkerState::new(WorkerStateConfig {
        // A few tasks more than threads are handed to the pool, so a thread
        // finds its next task queued instead of waiting for the actor.
        nthreads: options.nthreads.max(1) * (1 + EXECUTE_AHEAD_PER_THREAD),
        inline_limit: options.inline_limit,
        max_concurrent_fetches: options.max_concurrent_fetches,
    })
    .with_resources(options.resources.clone());
    let actor = WorkerActor {
        name: name.clone(),
        nanny: options.nanny,
        state,
        scheduler: sender,
        store: store.clone(),
        pool: None,
        nthreads: options.nthreads,
        peers: shared.peers,
        counters: counters.clone(),
        registry,
        share_outputs: shared.socket.is_some(),
        effects: Vec::new(),
        reader: Some(reader),
        limits: options.limits,
        timeouts: ReadTimeouts {
            idle: options.scheduler_silence_timeout,
            stall: options.frame_stall_timeout,
        },
        scheduler_address: options.scheduler.clone(),
        heartbeat: Duration::from_millis(heartbeat_ms.max(10)),
        closed: closed_tx,
        first_batch: rest,
        beat: Default::default(),
        contact: SchedulerContact {
            address: options.scheduler.clone(),
            security: options.security.clone(),
            worker: name.clone(),
        },
        actors: actors.clone(),
        identity,
        reconnect_timeout: options.reconnect_timeout,
        shuffles: shuffles.clone(),
    };
    let actor = actor.start();
    #[cfg(target_os = "linux")]
    shared::serve(
        shared.server,
        &name,
        &options,
        crate::shm::ShmService {
            store: store.clone(),
            counters: counters.clone(),
            sink: actor.clone().recipient(),
        },
    );
    let service = PeerService {
        name: name.clone(),
        store: store.clone(),
        counters: counters.clone(),
        actors,
        shuffles,
        host: shared.host,
        shm_socket: shared.socket,
        sink: actor.clone().recipient(),
    };
    actix_rt::spawn(
        serve_peers(
            listener,
            service,
            options.limits,
            options.security.clone(),
            options.frame_stall_timeout,
        )
        .instrument(info_span!("worker", name = %name)),
    );
    Ok(WorkerHandle {
        name,
        address,
        actor,
        store,
        counters,
        closed,
    })
}

/// The worker actor.
pub struct WorkerActor {
    name: String,
    /// Whether a nanny runs this worker's process (`RestartWorker` then
    /// exits the process with [`RESTART_EXIT_CODE`]).
    nanny: bool,
    state: WorkerState,
    scheduler: Sender<FromWorker>,
    store: Addr<DataStore>,
    pool: Option<TaskPool>,
    nthreads: u32,
    peers: PeerPool,
    counters: Arc<WorkerCounters>,
    registry: &'static Registry,
    /// Whether peers on this host fetch through shared memory, so large
    /// task results are encoded straight into memory files they can map
    /// ([`Job::shared`](crate::worker::pool::Job::shared)).
    share_outputs: bool,
    effects: Vec<WorkerEffect>,
    reader: Option<Reader>,
    limits: FrameLimits,
    /// Reading the scheduler: silence and stalled frames end the worker.
    timeouts: ReadTimeouts,
    scheduler_address: String,
    heartbeat: Duration,
    closed: tokio::sync::watch::Sender<bool>,
    first_batch: Vec<ToWorker>,
    /// What heartbeats carry over (CPU sample, log position).
    beat: heartbeat::HeartbeatCursor,
    /// The scheduler as this worker's tasks reach it (`worker_client`).
    contact: SchedulerContact,
    /// The actors living here (shared with the pool and the peer port).
    actors: ActorTable,
    /// What it registers with (again, after losing the scheduler).
    identity: Identity,
    /// How long to keep trying to register again after losing the
    /// scheduler; zero: stop at once.
    reconnect_timeout: Duration,
    /// Shards of p2p shuffles received here (shared with the pool's unpack
    /// tasks and the peer port).
    shuffles: crate::shuffle::ShuffleReceiver,
}

impl Actor for WorkerActor {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let Some(reader) = self.reader.take() else {
            ctx.stop();
            return;
        };
        match TaskPool::new(self.nthreads, &self.name, ctx.address().recipient()) {
            Ok(pool) => {
                self.pool = Some(
                    pool.with_scheduler(self.contact.clone())
                        .with_actors(self.actors.clone())
                        .with_shuffles(self.shuffles.clone()),
                )
            }
            Err(e) => {
                error!(worker = %self.name, "cannot start task threads: {e}");
                ctx.stop();
                return;
            }
        }
        let first = std::mem::take(&mut self.first_batch);
        if !first.is_empty() {
            self.handle_batch(first, ctx);
        }
        self.store.do_send(WatchPause(ctx.address().recipient()));
        self.read_scheduler(reader, ctx);
        ctx.run_interval(self.heartbeat, heartbeat::beat);
    }

    fn stopped(&mut self, _: &mut Self::Context) {
        info!(worker = %self.name, "worker stopped");
        // Its results are of no use once it left the cluster: free them and
        // remove the spill directory.
        self.store.do_send(Clear);
        self.actors.clear();
        let _ = self.closed.send(true);
    }
}

/// A batch of messages from the scheduler.
#[derive(Message)]
#[rtype(result = "()")]
struct FromScheduler(Vec<ToWorker>);

impl Handler<FromScheduler> for WorkerActor {
    type Result = ();
    fn handle(&mut self, msg: FromScheduler, ctx: &mut Self::Context) {
        self.handle_batch(msg.0, ctx);
    }
}

impl Handler<ResultsReady> for WorkerActor {
    type Result = ();
    fn handle(&mut self, _: ResultsReady, ctx: &mut Self::Context) {
        // Seceded before done: a task may secede and finish in one batch.
        let seceded = self.pool.as_ref().map(|p| p.take_seceded()).unwrap_or_default();
        let done = self.pool.as_ref().map(|p| p.take_done()).unwrap_or_default();
        self.counters
            .tasks_executed
            .fetch_add(done.len() as u64, Ordering::Relaxed);
        let mut effects = std::mem::take(&mut self.effects);
        for key in seceded {
            self.state.task_seceded(&key, &mut effects);
        }
        for d in done {
            self.state
                .task_finished(d.key, d.result, d.duration_us, d.thread, &mut effects);
        }
        self.apply(effects, ctx);
    }
}

impl Handler<PauseChanged> for WorkerActor {
    type Result = ();
    fn handle(&mut self, msg: PauseChanged, ctx: &mut Self::Context) {
        let mut effects = std::mem::take(&mut self.effects);
        self.state.set_paused(msg.paused, msg.reason, &mut effects);
        self.apply(effects, ctx);
    }
}

/// Arguments of a task were looked up in the store.
#[derive(Message)]
#[rtype(result = "()")]
struct ArgsReady {
    key: Key,
    function: String,
    call: crate::task::TaskFn,
    shared: Option<crate::task::SharedTaskFn>,
    args: Vec<Arg>,
    found: Vec<(Key, Option<ArgData>)>,
}

impl Handler<ArgsReady> for WorkerActor {
    type Result = ();
    fn handle(&mut self, msg: ArgsReady, ctx: &mut Self::Context) {
        let values = msg.found.into_iter().map(|(_, data)| {
            data.map(|d| match d {
                ArgData::Memory(b) => JobArg::Ready(b),
                // Read by the task's thread when it starts the task.
                ArgData::Disk(path) => JobArg::Spilled(path),
            })
        });
        match job_args(msg.args, values) {
            Ok(args) => self.submit(Job {
                key: msg.key,
                function: msg.function,
                call: msg.call,
                shared: msg.shared,
                args,
            }),
            Err(k) => {
                let failure = TaskFailure {
                    kind: ErrorKind::DataLost,
                    message: format!("dependency {k:?} vanished from the worker's store before the task ran"),
                };
                warn!(worker = %self.name, "task {} ({}) failed: {}", msg.key, msg.function, failure.message);
                let mut effects = std::mem::take(&mut self.effects);
                self.state.task_finished(msg.key, Err(failure), 0, 0, &mut effects);
                self.apply(effects, ctx);
            }
        }
    }
}

/// Ask the scheduler to retire this worker gracefully: it gets no new
/// tasks, its unique results are copied to other workers, then the
/// scheduler closes it ([`WorkerHandle::closed`] resolves).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Retire;

/// How long `rdask worker` waits, after SIGTERM/SIGINT, for the scheduler
/// to finish its graceful retirement before exiting anyway (its unique
/// results are then recomputed elsewhere).
pub const RETIRE_TIMEOUT: Duration = Duration::from_secs(60);

impl Handler<Retire> for WorkerActor {
    type Result = ();
    fn handle(&mut self, _: Retire, ctx: &mut Self::Context) {
        info!(worker = %self.name, "asking the scheduler to retire this worker");
        if let Err(e) = self.scheduler.send(FromWorker::RetireMe) {
            warn!(worker = %self.name, "cannot reach the scheduler to retire: {e}");
            ctx.stop();
        }
    }
}

/// The exit code of a worker process that its nanny must start again at
/// once because a client restarted the cluster (`ToWorker::RestartWorker`),
/// not because it crashed: the nanny's `RestartPolicy` does not count it
/// toward its restart limit. Not 0, 1 or 2 (the worker's own decisions to
/// stop) nor 101 (a panic).
pub const RESTART_EXIT_CODE: i32 = 3;

/// Stop the worker.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Shutdown;

impl Handler<Shutdown> for WorkerActor {
    type Result = ();
    fn handle(&mut self, _: Shutdown, ctx: &mut Self::Context) {
        ctx.stop();
    }
}

impl WorkerActor {
    fn submit(&self, job: Job) {
        if let Some(pool) = &self.pool {
            pool.submit(job);
        }
    }

    fn handle_batch(&mut self, messages: Vec<ToWorker>, ctx: &mut Context<Self>) {
        let mut effects = std::mem::take(&mut self.effects);
        for m in messages {
            match m {
                ToWorker::Close { reason } => {
                    info!(worker = %self.name, "the scheduler asked this worker to close: {reason}");
                    ctx.stop();
                    return;
                }
                ToWorker::RestartWorker { reason } if self.nanny => {
                    // Dask's nanny kills its worker process on restart: the
                    // whole process goes (its memory, its running task
                    // threads, which cannot be interrupted), and the nanny
                    // starts a fresh one at once, not counting it as a crash.
                    info!(worker = %self.name, "the scheduler asked this worker to restart: {reason}; exiting for the nanny to start it again");
                    std::process::exit(RESTART_EXIT_CODE);
                }
                ToWorker::RestartWorker { reason } => {
                    // No nanny to start it again: it closes, as Dask's.
                    info!(worker = %self.name, "the scheduler asked this worker to restart ({reason}), but it has no nanny: closing");
                    ctx.stop();
                    return;
                }
                ToWorker::Registered { .. } => {
                    warn!(worker = %self.name, "ignoring a second registration answer");
                }
                other => {
                    if let Err(e) = self.state.handle_scheduler(other, &mut effects) {
                        warn!(worker = %self.name, "{e}");
                    }
                }
            }
        }
        self.apply(effects, ctx);
    }

    /// Carries out effects; effects produced while doing so (a task that
    /// cannot start) are carried out in the same pass.
    fn apply(&mut self, mut effects: Vec<WorkerEffect>, ctx: &mut Context<Self>) {
        // Values to store, sent as one `Put` before the next effect that
        // reads or deletes from the store (and at the end).
        let mut puts: Vec<(Key, Bytes)> = Vec::new();
        let mut i = 0;
        while i < effects.len() {
            let effect = std::mem::replace(&mut effects[i], WorkerEffect::StoreDelete { keys: Vec::new() });
            i += 1;
            let reads_store = match &effect {
                WorkerEffect::StoreDelete { .. } => true,
                WorkerEffect::Execute { args, .. } => args.iter().any(|a| a.key_count() > 0),
                _ => false,
            };
            if reads_store && !puts.is_empty() {
                self.store.do_send(Put {
                    values: std::mem::take(&mut puts),
                });
            }
            match effect {
                WorkerEffect::Send(msg) => {
                    if let Err(e) = self.scheduler.send(msg) {
                        warn!(worker = %self.name, "cannot reach the scheduler: {e}");
                    }
                }
                WorkerEffect::StorePut { key, data } => puts.push((key, data)),
                WorkerEffect::StoreDelete { keys } => {
                    // An actor whose key is freed (no client holds it) goes too.
                    self.actors.remove(&keys);
                    if !keys.is_empty() {
                        self.store.do_send(Delete { keys })
                    }
                }
                WorkerEffect::Execute { key, function, args } => {
                    let Some(entry) = self.registry.entry(&function) else {
                        let failure = TaskFailure {
                            kind: ErrorKind::UnknownFunction,
                            message: format!("worker {} has no function named {function:?}", self.name),
                        };
                        warn!(worker = %self.name, "task {key} ({function}) failed: {}", failure.message);
                        let mut more = Vec::new();
                        self.state.task_finished(key, Err(failure), 0, 0, &mut more);
                        effects.extend(more);
                        continue;
                    };
                    let call = entry.call;
                    let shared = entry.shared.filter(|_| self.share_outputs);
                    let deps: Vec<Key> = args.iter().flat_map(Arg::keys).cloned().collect();
                    if deps.is_empty() {
                        // No key to look up (values, or an empty list of
                        // keys), so this cannot fail.
                        if let Ok(args) = job_args(args, std::iter::empty()) {
                            self.submit(Job {
                                key,
                                function,
                                call,
                                shared,
                                args,
                            });
                        }
                    } else {
                        let lookup = self.store.send(GetArgs { keys: deps });
                        let me = ctx.address();
                        ctx.spawn(
                            async move {
                                if let Ok(found) = lookup.await {
                                    me.do_send(ArgsReady {
                                        key,
                                        function,
                                        call,
                                        shared,
                                        args,
                                        found,
                                    });
                                }
                            }
                            .into_actor(self),
                        );
                    }
                }
                WorkerEffect::Fetch { worker, keys } => {
                    let peers = self.peers.clone();
                    let me = ctx.address();
                    ctx.spawn(
                        async move {
                            let started = std::time::Instant::now();
                            let result = peers.get_data(&worker, keys.clone()).await;
                            let elapsed = started.elapsed();
                            me.do_send(fetched::FetchDone {
                                worker,
                                keys,
                                elapsed,
                                result,
                            });
                        }
                        .into_actor(self),
                    );
                }
            }
        }
        if !puts.is_empty() {
            self.store.do_send(Put { values: puts });
        }
        effects.clear();
        self.effects = effects;
    }
}
