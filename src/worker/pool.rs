//! The worker's pool of task threads.
//!
//! Task functions are CPU-bound user code: they run on `nthreads` plain OS
//! threads, never on an actor's thread, so a slow or panicking task cannot
//! stall heartbeats or data transfers.
//!
//! Finished runs go into a shared list, and the worker actor is woken once
//! per batch rather than once per task: while it has not drained the list,
//! further results just pile up, and a thread that finished a short task
//! with more queued holds the wake-up back. On a small machine cross-thread
//! wake-ups, not the tasks, are most of the per-task cost of tiny tasks.
//!
//! **Seceding** (Dask's `secede`/`rejoin`): a task that blocks waiting for
//! tasks it submitted (through [`crate::worker_client()`]) would hold one of
//! the `nthreads` slots while doing nothing, and on a one-thread worker its
//! children could never run. The client's blocking waits therefore run
//! inside [`seceded`]: the thread gives its slot back for the duration, a
//! new thread is started if no idle one is left to take the slot, the
//! worker actor is told once per task (it frees the task's execution slot
//! and tells the scheduler, `LongRunning`), and when the wait ends the
//! thread takes a slot again, ahead of queued tasks, before it goes on.
//! Threads beyond `nthreads` plus the seceded ones exit after their task.

use std::cell::RefCell;
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock};
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use tracing::warn;

use super::args::{load_args, JobArg};
use crate::actor_api::ActorTable;
use crate::task::{run_task, take_panic_backtrace, SharedTaskFn, TaskFn};
use crate::wire::messages::{Key, TaskFailure};
use crate::wire::Security;

/// A task run finished on the pool.
#[derive(Debug)]
pub struct TaskDone {
    /// The task.
    pub key: Key,
    /// Its serialized result (a memory file's mapping when made by
    /// [`Job::shared`]), or why it failed.
    pub result: Result<Bytes, TaskFailure>,
    /// How long the function ran.
    pub duration_us: u64,
    /// The lane number of the pool thread that ran it: each thread holds
    /// one for its life, reused lowest first once a thread exits.
    pub thread: u32,
}

/// Tells the worker actor that finished runs wait in [`TaskPool::take_done`]
/// (or seceded tasks in [`TaskPool::take_seceded`]).
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResultsReady;

/// One task to run.
pub struct Job {
    /// The task's key, echoed in [`TaskDone`].
    pub key: Key,
    /// The registered function's name, for the log line of a failure.
    pub function: String,
    /// The registered function.
    pub call: TaskFn,
    /// Its form encoding a large result into a memory file, when this
    /// worker serves peers through shared memory (`Task::call_shared`);
    /// run instead of `call` when set.
    pub shared: Option<SharedTaskFn>,
    /// Its arguments; spilled or composite ones are put together by the
    /// task's thread just before it runs the task (see [`JobArg`]), so a
    /// queued job holds no spilled value in memory.
    pub args: Vec<JobArg>,
}

/// `nthreads` threads at a time running jobs from one queue (more threads
/// exist while tasks are seceded).
pub struct TaskPool {
    tx: crossbeam_channel::Sender<Job>,
    shared: Arc<Shared>,
}

/// A task shorter than this, with more tasks queued behind it, does not
/// wake the actor by itself: its result goes with the next batch.
pub const HOLD_RESULTS_OF_TASKS_SHORTER_THAN: std::time::Duration = std::time::Duration::from_micros(200);
/// At most this many results are held back before the actor is woken.
pub const MAX_HELD_RESULTS: usize = 256;

/// Finished runs and seceded tasks waiting for the actor, and whether it
/// has been told.
#[derive(Default)]
struct DoneList {
    inner: Mutex<DoneInner>,
}

#[derive(Default)]
struct DoneInner {
    results: Vec<TaskDone>,
    seceded: Vec<Key>,
    notified: bool,
}

impl DoneList {
    fn lock(&self) -> MutexGuard<'_, DoneInner> {
        self.inner.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Adds a result; returns how many are waiting.
    fn push(&self, d: TaskDone) -> usize {
        let mut g = self.lock();
        g.results.push(d);
        g.results.len()
    }

    /// Wakes the actor if anything waits and it has not been told yet.
    fn notify(&self, notify: &Recipient<ResultsReady>) {
        let tell = {
            let mut g = self.lock();
            let waiting = !g.results.is_empty() || !g.seceded.is_empty();
            let tell = waiting && !g.notified;
            g.notified |= tell;
            tell
        };
        if tell {
            notify.do_send(ResultsReady);
        }
    }

    fn take(&self) -> Vec<TaskDone> {
        let mut g = self.lock();
        g.notified = false;
        std::mem::take(&mut g.results)
    }

    fn take_seceded(&self) -> Vec<Key> {
        let mut g = self.lock();
        g.notified = false;
        std::mem::take(&mut g.seceded)
    }
}

/// How the pool's threads share its `nthreads` slots.
#[derive(Debug, Default)]
struct SlotCounts {
    /// Threads alive (idle, running or seceded).
    threads: u32,
    /// Threads running a task and holding a slot.
    active: u32,
    /// Threads whose task is seceded (holding no slot).
    seceded: u32,
    /// Seceded threads waiting for a slot to go on: served before new jobs.
    rejoining: u32,
    /// Threads blocked on `slot_freed` (new jobs and rejoining ones): the
    /// condition variable is signalled only when one waits, since std's
    /// `notify_all` is a futex system call even with no waiter, and one per
    /// task was the largest per-task cost a paired benchmark found
    /// (docs/benchmarks.md).
    waiting: u32,
    /// Lane numbers of threads that exited, reused lowest first. Each
    /// thread holds a lane number (its `thread` in `TaskFinished`, a lane
    /// of the dashboard's task stream) for its life, so lanes stay few
    /// however many threads seceding tasks start and stop.
    free_lanes: std::collections::BTreeSet<u32>,
    /// The next lane number never used.
    next_lane: u32,
}

/// What the threads of one pool share.
struct Shared {
    nthreads: u32,
    name: String,
    rx: crossbeam_channel::Receiver<Job>,
    done: DoneList,
    notify: Recipient<ResultsReady>,
    slots: Mutex<SlotCounts>,
    slot_freed: Condvar,
    /// The scheduler, for [`crate::worker_client`].
    scheduler: OnceLock<SchedulerContact>,
    /// The worker's actors, where an actor's constructor task puts it.
    actors: OnceLock<ActorTable>,
    /// The worker's p2p shuffle buffer, where unpack tasks take shards.
    shuffles: OnceLock<crate::shuffle::ShuffleReceiver>,
}

/// How a task reaches its worker's scheduler (for
/// [`crate::worker_client()`]).
#[derive(Clone, Debug)]
pub struct SchedulerContact {
    /// The scheduler's address.
    pub address: String,
    /// The worker's TLS and token settings, which a client needs too.
    pub security: Security,
    /// The worker's name, for the client's name.
    pub worker: String,
}

impl Shared {
    fn slots(&self) -> MutexGuard<'_, SlotCounts> {
        self.slots.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks on `slot_freed`, counted in `waiting`.
    fn wait_for_slot<'a>(&self, mut g: MutexGuard<'a, SlotCounts>) -> MutexGuard<'a, SlotCounts> {
        g.waiting += 1;
        let mut g = self.slot_freed.wait(g).unwrap_or_else(|e| e.into_inner());
        g.waiting -= 1;
        g
    }

    /// Wakes the threads waiting for a slot, if any (see `waiting`).
    fn wake_slot_waiters(&self, g: &SlotCounts) {
        if g.waiting > 0 {
            self.slot_freed.notify_all();
        }
    }

    /// Waits for a slot to run a new job (seceded threads going on first).
    fn take_slot(&self) {
        let mut g = self.slots();
        while g.active + g.rejoining >= self.nthreads {
            g = self.wait_for_slot(g);
        }
        g.active += 1;
    }

    /// A lane number for a starting thread.
    fn take_lane(&self) -> u32 {
        let mut g = self.slots();
        if let Some(l) = g.free_lanes.pop_first() {
            return l;
        }
        g.next_lane += 1;
        g.next_lane - 1
    }

    /// Gives back the lane number of an exiting thread.
    fn give_lane(&self, lane: u32) {
        self.slots().free_lanes.insert(lane);
    }

    /// Gives the slot back after a job; returns whether this thread is
    /// surplus (more threads than slots plus seceded tasks) and must exit.
    fn give_slot(&self) -> bool {
        let mut g = self.slots();
        g.active -= 1;
        self.wake_slot_waiters(&g);
        if g.threads > self.nthreads + g.seceded {
            g.threads -= 1;
            return true;
        }
        false
    }
}

/// The task running on this thread, if it is a pool thread.
struct TaskContext {
    shared: Arc<Shared>,
    key: Key,
    /// Seceded now (a nested wait does not secede twice).
    seceded: bool,
    /// Seceded at least once (the actor is told only once).
    reported: bool,
}

thread_local! {
    static CONTEXT: RefCell<Option<TaskContext>> = const { RefCell::new(None) };
}

/// Runs `wait` with this thread seceded from its pool, if it is running a
/// task: the pool may start another task meanwhile (Dask's `secede`), and
/// when `wait` returns the thread waits for a slot before going on (Dask's
/// `rejoin`). Outside a task (or already seceded) it just runs `wait`.
///
/// The client's blocking waits call this, so a task waiting on tasks it
/// submitted never holds up the worker.
pub fn seceded<R>(wait: impl FnOnce() -> R) -> R {
    let shared = CONTEXT.with(|c| {
        let mut c = c.borrow_mut();
        let ctx = c.as_mut().filter(|ctx| !ctx.seceded)?;
        ctx.seceded = true;
        if !std::mem::replace(&mut ctx.reported, true) {
            ctx.shared.done.lock().seceded.push(ctx.key.clone());
            ctx.shared.done.notify(&ctx.shared.notify);
        }
        Some(ctx.shared.clone())
    });
    let Some(shared) = shared else {
        return wait();
    };
    let spawn = {
        let mut g = shared.slots();
        g.active -= 1;
        g.seceded += 1;
        shared.wake_slot_waiters(&g);
        // Keep `nthreads` threads that are not seceded, so an idle one is
        // there to take the slot just given back.
        let spawn = g.threads - g.seceded < shared.nthreads;
        g.threads += u32::from(spawn);
        spawn
    };
    if spawn {
        if let Err(e) = spawn_runner(&shared) {
            // The slot stays free for the existing threads; the pool only
            // runs fewer tasks at once than it could.
            tracing::warn!(worker = %shared.name, "cannot start a task thread while a task secedes: {e}");
            shared.slots().threads -= 1;
        }
    }
    // Rejoins when dropped, so a wait that unwinds still gives the slot
    // counts back before the pool's thread reports the task.
    let _rejoin = Rejoin(shared);
    wait()
}

/// Takes a slot again for a seceded thread (Dask's `rejoin`), ahead of
/// queued jobs.
struct Rejoin(Arc<Shared>);

impl Drop for Rejoin {
    fn drop(&mut self) {
        let shared = &self.0;
        {
            let mut g = shared.slots();
            g.rejoining += 1;
            while g.active >= shared.nthreads {
                g = shared.wait_for_slot(g);
            }
            g.rejoining -= 1;
            g.seceded -= 1;
            g.active += 1;
        }
        CONTEXT.with(|c| {
            if let Some(ctx) = c.borrow_mut().as_mut() {
                ctx.seceded = false;
            }
        });
    }
}

/// The scheduler of the worker whose task runs on this thread, if any.
pub fn task_scheduler() -> Option<SchedulerContact> {
    CONTEXT.with(|c| c.borrow().as_ref().and_then(|ctx| ctx.shared.scheduler.get().cloned()))
}

/// The p2p shuffle buffer of the worker whose task runs on this thread.
pub fn task_shuffle_receiver() -> Option<crate::shuffle::ShuffleReceiver> {
    CONTEXT.with(|c| c.borrow().as_ref().and_then(|ctx| ctx.shared.shuffles.get().cloned()))
}

/// The actor table of the worker whose task runs on this thread, and the
/// task's key: where an actor's constructor task puts the actor.
pub fn task_actor_slot() -> Option<(ActorTable, Key)> {
    CONTEXT.with(|c| {
        let c = c.borrow();
        let ctx = c.as_ref()?;
        Some((ctx.shared.actors.get()?.clone(), ctx.key.clone()))
    })
}

/// Logs a failed run at WARN, so that a worker's log shows every task
/// that erred or panicked here and why (the client sees the message too;
/// the operator otherwise would not), with the panic's backtrace when
/// `RUST_BACKTRACE=1`. Runs on the task's thread, right after the run, where
/// the backtrace was taken.
fn log_failure(worker: &str, key: &str, function: &str, failure: &TaskFailure) {
    let (kind, message) = (failure.kind, &failure.message);
    match take_panic_backtrace() {
        Some(backtrace) => {
            warn!(
                worker,
                "task {key} ({function}) failed, {kind:?}: {message}\nbacktrace:\n{backtrace}"
            )
        }
        None => warn!(worker, "task {key} ({function}) failed, {kind:?}: {message}"),
    }
}

/// Starts one more thread taking jobs.
fn spawn_runner(shared: &Arc<Shared>) -> std::io::Result<()> {
    let shared = shared.clone();
    let name = format!("{}-task", shared.name);
    std::thread::Builder::new().name(name).spawn(move || run_jobs(shared))?;
    Ok(())
}

/// A task thread's loop; ends when the pool (the sender) is dropped or the
/// thread is surplus after seceded tasks rejoined.
fn run_jobs(shared: Arc<Shared>) {
    let lane = shared.take_lane();
    let mut previous: Option<TaskFn> = None;
    while let Ok(mut job) = shared.rx.recv() {
        // Results kept back from the actor (below) must not wait behind a
        // task of another function, which may be long.
        if previous.is_some_and(|p| !std::ptr::fn_addr_eq(p, job.call)) {
            shared.done.notify(&shared.notify);
        }
        previous = Some(job.call);
        shared.take_slot();
        // The key moves into the context and back out after the run (no
        // copy per task); the thread's `Arc` is cloned once, not per task.
        CONTEXT.with(|c| {
            let mut c = c.borrow_mut();
            let shared = match c.take() {
                Some(previous) => previous.shared,
                None => shared.clone(),
            };
            *c = Some(TaskContext {
                shared,
                key: std::mem::take(&mut job.key),
                seceded: false,
                reported: false,
            })
        });
        // The arguments (a spilled one read back may be large) are freed
        // at the end of the closure, before the result is handed over.
        let mut elapsed = std::time::Duration::ZERO;
        let result = load_args(job.args).and_then(|args| {
            let slices: Vec<&[u8]> = args.iter().map(|b| &b[..]).collect();
            let start = Instant::now();
            let result = match job.shared {
                Some(shared) => run_task(shared, &slices),
                None => run_task(job.call, &slices).map(Bytes::from),
            };
            elapsed = start.elapsed();
            result
        });
        CONTEXT.with(|c| {
            if let Some(ctx) = c.borrow_mut().as_mut() {
                job.key = std::mem::take(&mut ctx.key);
            }
        });
        if let Err(failure) = &result {
            log_failure(&shared.name, &job.key, &job.function, failure);
        }
        let surplus = shared.give_slot();
        let buffered = shared.done.push(TaskDone {
            key: job.key,
            result,
            duration_us: elapsed.as_micros() as u64,
            thread: lane,
        });
        // A short task with more queued behind it: keep its result back so
        // the actor is woken once per batch, not once per task. Otherwise
        // report now.
        let hold = elapsed < HOLD_RESULTS_OF_TASKS_SHORTER_THAN
            && !shared.rx.is_empty()
            && buffered < MAX_HELD_RESULTS
            && !surplus;
        if !hold {
            shared.done.notify(&shared.notify);
        }
        if surplus {
            shared.give_lane(lane);
            return;
        }
    }
    shared.give_lane(lane);
}

impl TaskPool {
    /// Starts `nthreads` threads named after the worker; `notify` is told
    /// when results are waiting.
    ///
    /// A job handed to the pool always runs, paused or not: the worker
    /// reported it started, and a queued job may hold stored values in
    /// memory that only running it frees. A paused worker hands no new job
    /// to the pool instead ([`crate::worker::state::WorkerState::set_paused`]).
    pub fn new(nthreads: u32, name: &str, notify: Recipient<ResultsReady>) -> std::io::Result<TaskPool> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        crate::task::install_panic_hook();
        let nthreads = nthreads.max(1);
        let shared = Arc::new(Shared {
            nthreads,
            name: name.to_string(),
            rx,
            done: DoneList::default(),
            notify,
            slots: Mutex::new(SlotCounts {
                threads: nthreads,
                ..SlotCounts::default()
            }),
            slot_freed: Condvar::new(),
            scheduler: OnceLock::new(),
            actors: OnceLock::new(),
            shuffles: OnceLock::new(),
        });
        for _ in 0..nthreads {
            spawn_runner(&shared)?;
        }
        Ok(TaskPool { tx, shared })
    }

    /// Lets tasks on this pool reach the scheduler (for
    /// [`crate::worker_client`]); the first call wins.
    pub fn with_scheduler(self, contact: SchedulerContact) -> TaskPool {
        let _ = self.shared.scheduler.set(contact);
        self
    }

    /// Lets actor constructors on this pool put their actor in `table`
    /// (see [`task_actor_slot`]); the first call wins.
    pub fn with_actors(self, table: ActorTable) -> TaskPool {
        let _ = self.shared.actors.set(table);
        self
    }

    /// Lets unpack tasks on this pool take shards from `receiver` (see
    /// [`task_shuffle_receiver`]); the first call wins.
    pub fn with_shuffles(self, receiver: crate::shuffle::ShuffleReceiver) -> TaskPool {
        let _ = self.shared.shuffles.set(receiver);
        self
    }

    /// Queues a job.
    pub fn submit(&self, job: Job) {
        // Fails only if every thread is gone, i.e. during shutdown.
        let _ = self.tx.send(job);
    }

    /// Takes every finished run so far.
    pub fn take_done(&self) -> Vec<TaskDone> {
        self.shared.done.take()
    }

    /// Takes the tasks that seceded (for the first time) since the last
    /// call; take these before [`take_done`](Self::take_done).
    pub fn take_seceded(&self) -> Vec<Key> {
        self.shared.done.take_seceded()
    }
}

#[cfg(test)]
mod secede_tests {
    use super::*;
    use crate::wire::messages::ErrorKind;
    use std::time::Duration;

    /// Receives the pool's wake-ups; the test polls `take_done` itself.
    struct Sink;
    impl Actor for Sink {
        type Context = Context<Self>;
    }
    impl Handler<ResultsReady> for Sink {
        type Result = ();
        fn handle(&mut self, _: ResultsReady, _: &mut Self::Context) {}
    }

    fn job(key: &str, call: TaskFn) -> Job {
        Job {
            key: key.into(),
            function: "f".into(),
            call,
            shared: None,
            args: Vec::new(),
        }
    }

    /// Collects `n` results, failing after a deadline.
    fn results(pool: &TaskPool, n: usize) -> Vec<TaskDone> {
        let deadline = Instant::now() + Duration::from_secs(30);
        let mut done = Vec::new();
        while done.len() < n {
            assert!(Instant::now() < deadline, "only {} of {n} tasks finished", done.len());
            done.extend(pool.take_done());
            std::thread::sleep(Duration::from_millis(5));
        }
        done
    }

    #[test]
    fn a_seceded_wait_lets_another_task_run_and_a_panicking_one_still_rejoins() {
        actix::System::new().block_on(async {
            let pool = TaskPool::new(1, "t", Sink.start().recipient()).expect("pool");
            // The first task waits, seceded, until the second one has run
            // on the single slot: without seceding this never ends.
            static SECOND_RAN: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);
            pool.submit(job("waits", |_| {
                seceded(|| {
                    while !SECOND_RAN.load(std::sync::atomic::Ordering::SeqCst) {
                        std::thread::sleep(Duration::from_millis(1));
                    }
                });
                Ok(vec![0xc0])
            }));
            pool.submit(job("second", |_| {
                SECOND_RAN.store(true, std::sync::atomic::Ordering::SeqCst);
                Ok(vec![0xc0])
            }));
            assert_eq!(results(&pool, 2).len(), 2);
            assert_eq!(pool.take_seceded(), vec!["waits".to_string()]);
            // A wait that panics is a task error, and the slot accounting
            // survives it: later tasks still run.
            pool.submit(job("panics", |_| seceded(|| panic!("in the wait"))));
            pool.submit(job("after", |_| Ok(vec![0xc0])));
            let done = results(&pool, 2);
            let panicked = done.iter().find(|d| d.key == "panics").expect("reported");
            assert_eq!(panicked.result.as_ref().map_err(|f| f.kind), Err(ErrorKind::Panicked));
            assert!(done.iter().any(|d| d.key == "after" && d.result.is_ok()));
            let g = pool.shared.slots();
            assert_eq!((g.active, g.seceded, g.rejoining, g.waiting), (0, 0, 0, 0));
        });
    }
}
