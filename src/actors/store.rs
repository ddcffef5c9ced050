//! The worker's data store actor: task results by key.
//!
//! Values are kept as the serialized bytes they arrived or were produced as,
//! so serving a peer or a client costs no encoding, and a `Bytes` clone
//! shares the buffer instead of copying it.
//!
//! With a memory limit, the store spills least-recently-used values to files
//! in a per-worker directory, as [`SpillBuffer`] decides; files are written,
//! read and removed on tokio's blocking threads, never on the actor's
//! thread. A spilled value is read back for a peer's request here, and by
//! the task's own thread for a task ([`GetArgs`] answers with the file).
//! The store also measures process memory and pauses the task threads
//! past the `pause` threshold (the worker actor, told with [`PauseChanged`],
//! then hands no new task to a thread and tells the scheduler).

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use bytes::Bytes;
use tracing::{info, warn};

use super::spill_log::SpillLog;
use crate::wire::messages::{Key, SpillEvent};
use crate::worker::memory::{
    Lookup, MemoryFigures, MemoryThresholds, PauseChange, SpillBuffer, SpillOp, DEFAULT_MEMORY_MONITOR_INTERVAL_MS,
};

/// Released store memory (deleted or spilled values) after which the store
/// asks the allocator to return freed pages to the OS
/// ([`crate::util::release_free_memory`]); smaller releases are left to the
/// allocator, which reuses them.
pub const TRIM_AFTER_RELEASED_BYTES: u64 = 32 * 1024 * 1024;

/// While process memory is past the pause threshold, the store asks the
/// allocator to return freed pages at most this often before judging
/// whether to pause, so memory freed by finished tasks counts too.
pub const TRIM_INTERVAL_OVER_PAUSE: Duration = Duration::from_secs(1);

/// After a spill write fails, no new write starts for this long: values
/// stay in memory, and a full or read-only disk is not tried again and
/// again (the failure is logged once per [`crate::logging::REPEATED_LOG_INTERVAL`]).
pub const SPILL_RETRY_INTERVAL: Duration = Duration::from_secs(5);

/// Counters shared by a worker's actors, reported on its peer port.
#[derive(Debug, Default)]
pub struct WorkerCounters {
    /// Tasks run on the pool.
    pub tasks_executed: AtomicU64,
    /// Bytes received from peers.
    pub bytes_fetched: AtomicU64,
    /// Bytes served to peers and clients.
    pub bytes_served: AtomicU64,
    /// Of `bytes_fetched`, bytes received through shared memory.
    pub bytes_fetched_shared_memory: AtomicU64,
    /// Of `bytes_served`, bytes served through shared memory.
    pub bytes_served_shared_memory: AtomicU64,
    /// Bytes clients pushed here (direct scatters).
    pub bytes_pushed: AtomicU64,
    /// Of `bytes_pushed`, bytes that came through shared memory.
    pub bytes_pushed_shared_memory: AtomicU64,
}

/// How a store manages memory.
#[derive(Clone, Debug)]
pub struct StoreMemory {
    /// Memory limit and thresholds.
    pub thresholds: MemoryThresholds,
    /// This worker's own spill directory; created at the first spill and
    /// removed, with its files, when the store goes away.
    pub spill_directory: PathBuf,
    /// How often process memory is measured (when there is a limit).
    pub monitor_interval: Duration,
    /// Worker name, for logs.
    pub worker: String,
}

impl Default for StoreMemory {
    fn default() -> Self {
        StoreMemory {
            thresholds: MemoryThresholds::default(),
            spill_directory: std::env::temp_dir().join(format!("rdask-worker-{}", uuid::Uuid::new_v4().simple())),
            monitor_interval: Duration::from_millis(DEFAULT_MEMORY_MONITOR_INTERVAL_MS),
            worker: String::new(),
        }
    }
}

/// Removes the spill directory when the store is dropped (the worker
/// process exits or the actor system stops).
#[derive(Debug)]
struct SpillDir(PathBuf);

impl Drop for SpillDir {
    fn drop(&mut self) {
        remove_dir(&self.0);
    }
}

fn remove_dir(path: &Path) {
    match std::fs::remove_dir_all(path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => warn!("cannot remove spill directory {}: {e}", path.display()),
    }
}

/// The store.
pub struct DataStore {
    buffer: SpillBuffer,
    counters: Arc<WorkerCounters>,
    dir: SpillDir,
    memory: StoreMemory,
    /// Store bytes released (deleted or spilled) since the allocator was
    /// last asked to return freed pages.
    released_since_trim: u64,
    /// When the allocator was last asked to return freed pages.
    last_trim: Option<Instant>,
    /// The last spill failure, naming the directory and the OS error, while
    /// spilling does not work; cleared by the next successful write.
    spill_error: Option<String>,
    /// Rate limit of the "cannot spill" warning.
    spill_log: crate::logging::RateLimitedLog,
    /// A spilling retry is scheduled.
    retry_scheduled: bool,
    /// The pause reason last told to the watcher.
    told_reason: Option<String>,
    /// Told of each pause and resume (the worker actor, which tells the
    /// scheduler).
    pause_watcher: Option<Recipient<PauseChanged>>,
    /// Spill writes and reads since the last heartbeat (the dashboard's
    /// task stream).
    spills: SpillLog,
    /// The worker's shuffle shards, written to disk while it is paused.
    shuffles: Option<crate::shuffle::ShuffleReceiver>,
}

impl DataStore {
    /// An empty store without a memory limit.
    pub fn new(counters: Arc<WorkerCounters>) -> Self {
        Self::with_memory(counters, StoreMemory::default())
    }

    /// An empty store managing memory as `memory` says.
    pub fn with_memory(counters: Arc<WorkerCounters>, memory: StoreMemory) -> Self {
        DataStore {
            buffer: SpillBuffer::new(memory.thresholds),
            counters,
            dir: SpillDir(memory.spill_directory.clone()),
            memory,
            released_since_trim: 0,
            last_trim: None,
            spill_error: None,
            spill_log: Default::default(),
            retry_scheduled: false,
            told_reason: None,
            pause_watcher: None,
            spills: SpillLog::default(),
            shuffles: None,
        }
    }

    /// The same store, also writing `shuffles`' in-memory shards to disk
    /// while the worker is paused.
    pub fn with_shuffles(mut self, shuffles: crate::shuffle::ShuffleReceiver) -> Self {
        self.shuffles = Some(shuffles);
        self
    }

    /// Counts `bytes` of store memory as released, and past
    /// [`TRIM_AFTER_RELEASED_BYTES`] has the allocator return freed pages
    /// (on a blocking thread: it walks the whole heap).
    fn released(&mut self, bytes: u64) {
        self.released_since_trim += bytes;
        if self.released_since_trim >= TRIM_AFTER_RELEASED_BYTES {
            self.released_since_trim = 0;
            self.last_trim = Some(Instant::now());
            drop(tokio::task::spawn_blocking(crate::util::release_free_memory));
        }
    }

    /// Carries out the buffer's file operations on blocking threads.
    fn run_ops(&mut self, ops: Vec<SpillOp>, ctx: &mut Context<Self>) {
        for op in ops {
            match op {
                SpillOp::Write { key, file, name, data } => {
                    let dir = self.dir.0.clone();
                    let (started, bytes) = (Instant::now(), data.len() as u64);
                    let write = tokio::task::spawn_blocking(move || {
                        std::fs::create_dir_all(&dir)?;
                        std::fs::write(dir.join(name), &data)
                    });
                    ctx.spawn(
                        async move {
                            match write.await {
                                Ok(r) => r,
                                Err(e) => Err(std::io::Error::other(e.to_string())),
                            }
                        }
                        .into_actor(self)
                        .map(move |result, act, ctx| {
                            match &result {
                                Err(e) => act.spill_failed(&key, e, ctx),
                                Ok(()) => {
                                    act.spills.record(false, bytes, started.elapsed());
                                    if act.spill_error.take().is_some() {
                                        info!(worker = %act.memory.worker, "spilling to {} works again", act.dir.0.display());
                                        act.tell_pause(false);
                                    }
                                }
                            }
                            let mut more = Vec::new();
                            let before = act.buffer.figures().memory_bytes;
                            act.buffer.write_done(&key, file, result.is_ok(), &mut more);
                            let after = act.buffer.figures().memory_bytes;
                            act.released(before.saturating_sub(after));
                            act.run_ops(more, ctx);
                        }),
                    );
                }
                SpillOp::Remove { name } => {
                    let path = self.dir.0.join(name);
                    // Nothing waits for a removal; a failure is only logged.
                    drop(tokio::task::spawn_blocking(move || {
                        if let Err(e) = std::fs::remove_file(&path) {
                            if e.kind() != std::io::ErrorKind::NotFound {
                                warn!("cannot remove spilled file {}: {e}", path.display());
                            }
                        }
                    }));
                }
            }
        }
    }

    /// Tells the watcher of a pause or resume (`changed`), or, while paused,
    /// of a new reason: spilling started or stopped failing.
    fn tell_pause(&mut self, changed: bool) {
        let paused = self.buffer.figures().paused;
        let reason = self.spill_error.clone().filter(|_| paused);
        if !changed && reason == self.told_reason {
            return;
        }
        self.told_reason = reason.clone();
        if let Some(watcher) = &self.pause_watcher {
            watcher.do_send(PauseChanged { paused, reason });
        }
    }

    /// A spill write failed: the value stays in memory, spilling stops
    /// for [`SPILL_RETRY_INTERVAL`] (the buffer blocks it), and the failure
    /// is logged at a bounded rate and kept for the worker's info.
    fn spill_failed(&mut self, key: &str, e: &std::io::Error, ctx: &mut Context<Self>) {
        let error = format!("cannot spill to {}: {e}", self.dir.0.display());
        if let Some(n) = self.spill_log.allow() {
            warn!(
                worker = %self.memory.worker,
                "{error} (value {key:?}); values stay in memory, spilling is retried every {} s{}",
                SPILL_RETRY_INTERVAL.as_secs(),
                crate::logging::also(n)
            );
        }
        self.spill_error = Some(error);
        self.tell_pause(false);
        // One retry timer at a time: writes already under way may fail too.
        if !self.retry_scheduled {
            self.retry_scheduled = true;
            ctx.run_later(SPILL_RETRY_INTERVAL, |act, ctx| {
                act.retry_scheduled = false;
                let mut ops = Vec::new();
                act.buffer.retry_spilling(&mut ops);
                act.run_ops(ops, ctx);
            });
        }
    }

    /// Measures process memory: spills past `spill`, pauses past `pause`.
    fn monitor(&mut self, ctx: &mut Context<Self>) {
        let mut rss = crate::util::rss_bytes();
        // Judge the pause on memory in use, not on pages the allocator
        // kept after values and task temporaries were freed: without this a
        // worker that held a lot stays past `pause` with an empty store.
        let pause = self.memory.thresholds.bytes(self.memory.thresholds.pause);
        if pause.is_some_and(|p| rss > p) && self.last_trim.is_none_or(|t| t.elapsed() >= TRIM_INTERVAL_OVER_PAUSE) {
            self.last_trim = Some(Instant::now());
            self.released_since_trim = 0;
            crate::util::release_free_memory();
            rss = crate::util::rss_bytes();
        }
        let mut ops = Vec::new();
        let change = self.buffer.memory_measured(rss, &mut ops);
        let limit = self.memory.thresholds.limit;
        match change {
            Some(PauseChange::Pause) => {
                warn!(worker = %self.memory.worker, rss, limit, "paused: process memory is past the pause threshold; no new task starts until it falls");
            }
            Some(PauseChange::Resume) => {
                info!(worker = %self.memory.worker, rss, limit, "resumed: process memory fell below the pause threshold");
            }
            None => {}
        }
        self.tell_pause(change.is_some());
        if self.buffer.figures().paused {
            self.spill_shuffle_shards();
        }
        self.run_ops(ops, ctx);
    }

    /// While paused, the shuffle shards held in memory go to disk: they
    /// wait for unpack tasks that cannot start before every transfer ran,
    /// and no transfer starts while the worker is paused.
    fn spill_shuffle_shards(&mut self) {
        let Some(shuffles) = &self.shuffles else { return };
        if shuffles.with(|b| b.memory_bytes()) == 0 {
            return;
        }
        match shuffles.with(|b| b.spill_memory()) {
            Ok(bytes) => {
                info!(worker = %self.memory.worker, bytes, "paused: shuffle shards written to disk");
                crate::util::release_free_memory();
            }
            Err(e) => warn!(worker = %self.memory.worker, "paused, and cannot write shuffle shards to disk: {e}"),
        }
    }
}

impl Actor for DataStore {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        if self.memory.thresholds.limit > 0 {
            ctx.run_interval(self.memory.monitor_interval, |act, ctx| act.monitor(ctx));
        }
    }
}

/// The store paused or resumed the worker's task threads.
#[derive(Message)]
#[rtype(result = "()")]
pub struct PauseChanged {
    /// Whether paused now.
    pub paused: bool,
    /// While paused, why memory cannot be freed when the store knows: its
    /// spill directory cannot be written (`cannot spill to <dir>: <error>`).
    pub reason: Option<String>,
}

/// Tell `0` of every pause and resume from now on (and at once if paused).
#[derive(Message)]
#[rtype(result = "()")]
pub struct WatchPause(pub Recipient<PauseChanged>);

impl Handler<WatchPause> for DataStore {
    type Result = ();
    fn handle(&mut self, msg: WatchPause, _: &mut Self::Context) {
        if self.buffer.figures().paused {
            msg.0.do_send(PauseChanged {
                paused: true,
                reason: self.spill_error.clone(),
            });
        }
        self.pause_watcher = Some(msg.0);
    }
}

/// Store values (each replacing any previous one), in this order: the
/// worker sends the results of one event in one message, not one each.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Put {
    /// Keys and their serialized values.
    pub values: Vec<(Key, Bytes)>,
}

impl Handler<Put> for DataStore {
    type Result = ();
    fn handle(&mut self, msg: Put, ctx: &mut Self::Context) {
        let mut ops = Vec::new();
        for (key, data) in msg.values {
            self.buffer.put(key, data, &mut ops);
        }
        self.run_ops(ops, ctx);
    }
}

/// Delete values.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Delete {
    /// Keys; unknown ones are ignored.
    pub keys: Vec<Key>,
}

impl Handler<Delete> for DataStore {
    type Result = ();
    fn handle(&mut self, msg: Delete, ctx: &mut Self::Context) {
        let mut ops = Vec::new();
        let before = self.buffer.figures().memory_bytes;
        for k in msg.keys {
            self.buffer.delete(&k, &mut ops);
        }
        let after = self.buffer.figures().memory_bytes;
        self.released(before.saturating_sub(after));
        self.run_ops(ops, ctx);
    }
}

/// Look values up; spilled ones are read back from disk (off the actor's
/// thread) for this answer only, without returning to memory.
#[derive(Message)]
#[rtype(result = "Vec<(Key, Option<Bytes>)>")]
pub struct Get {
    /// Keys, answered in order.
    pub keys: Vec<Key>,
    /// Whether the data leaves the worker (counted as served).
    pub for_peer: bool,
}

impl Handler<Get> for DataStore {
    type Result = ResponseFuture<Vec<(Key, Option<Bytes>)>>;
    fn handle(&mut self, msg: Get, _: &mut Self::Context) -> Self::Result {
        let mut out: Vec<(Key, Option<Bytes>)> = Vec::with_capacity(msg.keys.len());
        let mut reads: Vec<(usize, PathBuf)> = Vec::new();
        for k in msg.keys {
            let v = match self.buffer.get(&k) {
                Some(Lookup::Memory(b)) => Some(b),
                Some(Lookup::Disk(name)) => {
                    reads.push((out.len(), self.dir.0.join(name)));
                    None
                }
                None => None,
            };
            out.push((k, v));
        }
        let counters = self.counters.clone();
        let worker = self.memory.worker.clone();
        let spills = self.spills.clone();
        Box::pin(async move {
            if !reads.is_empty() {
                let started = Instant::now();
                let read = tokio::task::spawn_blocking(move || {
                    reads
                        .into_iter()
                        .map(|(i, path)| (i, std::fs::read(&path).map_err(|e| format!("{}: {e}", path.display()))))
                        .collect::<Vec<_>>()
                });
                match read.await {
                    Ok(loaded) => {
                        let bytes = loaded
                            .iter()
                            .filter_map(|(_, r)| r.as_ref().ok())
                            .map(|d| d.len() as u64)
                            .sum();
                        spills.record(true, bytes, started.elapsed());
                        for (i, r) in loaded {
                            match r {
                                Ok(data) => out[i].1 = Some(Bytes::from(data)),
                                // The key was freed meanwhile, or the disk failed:
                                // answered as not held.
                                Err(e) => warn!(%worker, "cannot read back spilled value: {e}"),
                            }
                        }
                    }
                    Err(e) => warn!(%worker, "reading spilled values failed: {e}"),
                }
            }
            if msg.for_peer {
                let served: u64 = out.iter().filter_map(|(_, v)| v.as_ref()).map(|v| v.len() as u64).sum();
                counters.bytes_served.fetch_add(served, Ordering::Relaxed);
            }
            out
        })
    }
}

/// A task argument as the store holds it.
#[derive(Clone, Debug)]
pub enum ArgData {
    /// In memory.
    Memory(Bytes),
    /// Spilled to this file, to be read by the task's thread.
    Disk(PathBuf),
}

/// Look up a task's arguments: values in memory, or the files of spilled
/// ones (the task's thread reads them just before it runs).
#[derive(Message)]
#[rtype(result = "Vec<(Key, Option<ArgData>)>")]
pub struct GetArgs {
    /// Keys, answered in order.
    pub keys: Vec<Key>,
}

impl Handler<GetArgs> for DataStore {
    type Result = MessageResult<GetArgs>;
    fn handle(&mut self, msg: GetArgs, _: &mut Self::Context) -> Self::Result {
        let out = msg
            .keys
            .into_iter()
            .map(|k| {
                let v = match self.buffer.get(&k) {
                    Some(Lookup::Memory(b)) => Some(ArgData::Memory(b)),
                    Some(Lookup::Disk(name)) => Some(ArgData::Disk(self.dir.0.join(name))),
                    None => None,
                };
                (k, v)
            })
            .collect();
        MessageResult(out)
    }
}

/// The store's memory figures.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct StoreReport {
    /// Keys, bytes in memory and spilled, pause state.
    pub figures: MemoryFigures,
    /// Process memory (RSS) measured now.
    pub rss_bytes: u64,
    /// Memory limit; 0 for none.
    pub memory_limit: u64,
    /// The worker's spill directory (it may not exist yet).
    pub spill_directory: PathBuf,
    /// Why spilling does not work now (the directory and the OS error), if
    /// the last write failed.
    pub spill_error: Option<String>,
}

/// Report memory figures.
#[derive(Message)]
#[rtype(result = "StoreReport")]
pub struct Report;

impl Handler<Report> for DataStore {
    type Result = MessageResult<Report>;
    fn handle(&mut self, _: Report, _: &mut Self::Context) -> Self::Result {
        let rss_bytes = crate::util::rss_bytes();
        MessageResult(StoreReport {
            figures: self.buffer.figures(),
            rss_bytes,
            memory_limit: self.memory.thresholds.limit,
            spill_directory: self.dir.0.clone(),
            spill_error: self.spill_error.clone(),
        })
    }
}

/// What the worker's heartbeat needs: a [`Report`] and the spill events
/// since the previous one (which it forgets).
#[derive(Message)]
#[rtype(result = "(StoreReport, Vec<SpillEvent>)")]
pub struct ForHeartbeat;

impl Handler<ForHeartbeat> for DataStore {
    type Result = MessageResult<ForHeartbeat>;
    fn handle(&mut self, _: ForHeartbeat, ctx: &mut Self::Context) -> Self::Result {
        let MessageResult(report) = <Self as Handler<Report>>::handle(self, Report, ctx);
        MessageResult((report, self.spills.take()))
    }
}

/// Delete everything and the spill directory (the worker stopped).
#[derive(Message)]
#[rtype(result = "()")]
pub struct Clear;

impl Handler<Clear> for DataStore {
    type Result = ();
    fn handle(&mut self, _: Clear, _: &mut Self::Context) {
        let mut ops = Vec::new();
        let keys: Vec<Key> = self.buffer.keys().cloned().collect();
        for k in keys {
            self.buffer.delete(&k, &mut ops);
        }
        // The whole directory goes, so the per-file removals are not needed.
        let dir = self.dir.0.clone();
        drop(tokio::task::spawn_blocking(move || remove_dir(&dir)));
    }
}

/// Number of keys held, and bytes held in memory.
#[derive(Message)]
#[rtype(result = "(u64, u64)")]
pub struct Stats;

impl Handler<Stats> for DataStore {
    type Result = MessageResult<Stats>;
    fn handle(&mut self, _: Stats, _: &mut Self::Context) -> Self::Result {
        let f = self.buffer.figures();
        MessageResult((f.nkeys, f.memory_bytes))
    }
}
