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

use std::sync::{Arc, Condvar, Mutex};
use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;

use crate::task::{run_task, TaskFn};
use crate::wire::messages::{ErrorKind, Key, TaskFailure};

/// A task run finished on the pool.
#[derive(Debug)]
pub struct TaskDone {
    /// The task.
    pub key: Key,
    /// Its serialized result, or why it failed.
    pub result: Result<Vec<u8>, TaskFailure>,
    /// How long the function ran.
    pub duration_us: u64,
}

/// Tells the worker actor that finished runs wait in [`TaskPool::take_done`].
#[derive(Message)]
#[rtype(result = "()")]
pub struct ResultsReady;

/// One task to run.
pub struct Job {
    /// The task's key, echoed in [`TaskDone`].
    pub key: Key,
    /// The registered function.
    pub call: TaskFn,
    /// Its msgpack-encoded arguments.
    pub args: Vec<Bytes>,
    /// Arguments spilled to disk: (index in `args`, file). The task's thread
    /// reads each into `args[index]` just before running it, so a queued job
    /// holds no spilled value in memory.
    pub spilled: Vec<(usize, std::path::PathBuf)>,
}

/// Holds the task threads back from starting tasks while the worker is
/// paused (process memory past its `pause` threshold). A thread checks it
/// before each task; a task already running finishes.
#[derive(Debug, Default)]
pub struct PauseGate {
    paused: Mutex<bool>,
    changed: Condvar,
}

impl PauseGate {
    /// Pauses or resumes.
    pub fn set(&self, paused: bool) {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner()) = paused;
        self.changed.notify_all();
    }

    /// Whether paused.
    pub fn is_paused(&self) -> bool {
        *self.paused.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Blocks the calling (task) thread while paused.
    fn wait_while_paused(&self) {
        let mut g = self.paused.lock().unwrap_or_else(|e| e.into_inner());
        while *g {
            g = self.changed.wait(g).unwrap_or_else(|e| e.into_inner());
        }
    }
}

/// Reads a job's spilled arguments into place; a file that cannot be read
/// fails the task as lost data.
fn load_spilled(job: &mut Job) -> Result<(), TaskFailure> {
    for (index, path) in std::mem::take(&mut job.spilled) {
        let data = std::fs::read(&path).map_err(|e| TaskFailure {
            kind: ErrorKind::DataLost,
            message: format!("cannot read spilled argument {}: {e}", path.display()),
        })?;
        match job.args.get_mut(index) {
            Some(slot) => *slot = Bytes::from(data),
            None => {
                return Err(TaskFailure {
                    kind: ErrorKind::DataLost,
                    message: format!("spilled argument {index} is out of range"),
                })
            }
        }
    }
    Ok(())
}

/// A fixed set of threads taking jobs from one queue.
pub struct TaskPool {
    tx: crossbeam_channel::Sender<Job>,
    done: Arc<DoneList>,
}

/// A task shorter than this, with more tasks queued behind it, does not
/// wake the actor by itself: its result goes with the next batch.
pub const HOLD_RESULTS_OF_TASKS_SHORTER_THAN: std::time::Duration = std::time::Duration::from_micros(200);
/// At most this many results are held back before the actor is woken.
pub const MAX_HELD_RESULTS: usize = 256;

/// Finished runs waiting for the actor, and whether it has been told.
#[derive(Default)]
struct DoneList {
    inner: Mutex<DoneInner>,
}

#[derive(Default)]
struct DoneInner {
    results: Vec<TaskDone>,
    notified: bool,
}

impl DoneList {
    /// Adds a result; returns how many are waiting.
    fn push(&self, d: TaskDone) -> usize {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.results.push(d);
        g.results.len()
    }

    /// Wakes the actor if results wait and it has not been told yet.
    fn notify(&self, notify: &Recipient<ResultsReady>) {
        let tell = {
            let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            let tell = !g.results.is_empty() && !g.notified;
            g.notified |= tell;
            tell
        };
        if tell {
            notify.do_send(ResultsReady);
        }
    }

    fn take(&self) -> Vec<TaskDone> {
        let mut g = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        g.notified = false;
        std::mem::take(&mut g.results)
    }
}

impl TaskPool {
    /// Starts `nthreads` threads named after the worker; `notify` is told
    /// when results are waiting.
    pub fn new(nthreads: u32, name: &str, notify: Recipient<ResultsReady>) -> std::io::Result<TaskPool> {
        Self::with_gate(nthreads, name, notify, Arc::default())
    }

    /// As [`TaskPool::new`], with threads that start no task while `gate`
    /// is paused.
    pub fn with_gate(
        nthreads: u32,
        name: &str,
        notify: Recipient<ResultsReady>,
        gate: Arc<PauseGate>,
    ) -> std::io::Result<TaskPool> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        let done: Arc<DoneList> = Arc::default();
        crate::task::install_panic_hook();
        for i in 0..nthreads.max(1) {
            let rx = rx.clone();
            let done = done.clone();
            let notify = notify.clone();
            let gate = gate.clone();
            std::thread::Builder::new()
                .name(format!("{name}-task-{i}"))
                .spawn(move || {
                    let mut previous: Option<TaskFn> = None;
                    // The loop ends when the pool (the sender) is dropped.
                    while let Ok(mut job) = rx.recv() {
                        gate.wait_while_paused();
                        // Results kept back from the actor (below) must not wait
                        // behind a task of another function, which may be long.
                        if previous.is_some_and(|p| !std::ptr::fn_addr_eq(p, job.call)) {
                            done.notify(&notify);
                        }
                        previous = Some(job.call);
                        let loaded = load_spilled(&mut job);
                        let slices: Vec<&[u8]> = job.args.iter().map(|b| &b[..]).collect();
                        let start = Instant::now();
                        let result = loaded.and_then(|()| run_task(job.call, &slices));
                        let elapsed = start.elapsed();
                        drop(slices);
                        // Free the arguments (a spilled one read back may be
                        // large) before the result is handed over.
                        job.args = Vec::new();
                        let buffered = done.push(TaskDone {
                            key: job.key,
                            result,
                            duration_us: elapsed.as_micros() as u64,
                        });
                        // A short task with more queued behind it: keep its
                        // result back so the actor is woken once per batch, not
                        // once per task. Otherwise report now.
                        let hold = elapsed < HOLD_RESULTS_OF_TASKS_SHORTER_THAN
                            && !rx.is_empty()
                            && buffered < MAX_HELD_RESULTS;
                        if !hold {
                            done.notify(&notify);
                        }
                    }
                })?;
        }
        Ok(TaskPool { tx, done })
    }

    /// Queues a job.
    pub fn submit(&self, job: Job) {
        // Fails only if every thread is gone, i.e. during shutdown.
        let _ = self.tx.send(job);
    }

    /// Takes every finished run so far.
    pub fn take_done(&self) -> Vec<TaskDone> {
        self.done.take()
    }
}

#[cfg(test)]
mod gate_tests {
    use super::*;
    use std::sync::atomic::{AtomicBool, Ordering};

    #[test]
    fn a_paused_gate_holds_a_thread_until_resumed() {
        let gate = Arc::new(PauseGate::default());
        gate.set(true);
        assert!(gate.is_paused());
        let passed = Arc::new(AtomicBool::new(false));
        let t = {
            let (gate, passed) = (gate.clone(), passed.clone());
            std::thread::spawn(move || {
                gate.wait_while_paused();
                passed.store(true, Ordering::SeqCst);
            })
        };
        // A working gate never lets the thread through while paused, so this
        // cannot fail spuriously; a broken one lets it through within 50 ms.
        std::thread::sleep(std::time::Duration::from_millis(50));
        assert!(!passed.load(Ordering::SeqCst), "went through a paused gate");
        gate.set(false);
        t.join().expect("thread");
        assert!(passed.load(Ordering::SeqCst));
    }

    #[test]
    fn a_spilled_argument_is_read_in_place_and_a_missing_file_is_lost_data() {
        let path = std::env::temp_dir().join(format!("rdask-pool-spilled-{}", std::process::id()));
        std::fs::write(&path, b"spilled").expect("write");
        let mut job = Job {
            key: "k".into(),
            call: |_| Ok(Vec::new()),
            args: vec![Bytes::from_static(b"a"), Bytes::new()],
            spilled: vec![(1, path.clone())],
        };
        load_spilled(&mut job).expect("reads");
        assert_eq!(&job.args[1][..], b"spilled");
        std::fs::remove_file(&path).expect("remove");
        job.spilled = vec![(1, path)];
        let err = load_spilled(&mut job).expect_err("file is gone");
        assert_eq!(err.kind, ErrorKind::DataLost);
    }
}
