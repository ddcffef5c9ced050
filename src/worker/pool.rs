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
use crate::wire::messages::{Arg, ErrorKind, Key, TaskFailure};

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
    /// Its arguments; spilled or composite ones are put together by the
    /// task's thread just before it runs the task (see [`JobArg`]), so a
    /// queued job holds no spilled value in memory.
    pub args: Vec<JobArg>,
}

/// One argument of a [`Job`], as the task's thread will decode it.
#[derive(Clone, Debug)]
pub enum JobArg {
    /// msgpack bytes ready to decode.
    Ready(Bytes),
    /// A stored value spilled to this file.
    Spilled(std::path::PathBuf),
    /// A list or map of stored values ([`Arg::Keys`], [`Arg::KeyMap`]): the
    /// concatenation of these pieces (a msgpack header, then the values,
    /// each map value preceded by its encoded map key) is the argument.
    Joined(Vec<JobArg>),
}

/// Builds a job's arguments from the task's `args` and the stored values of
/// their keys, given in the order of [`Arg::keys`] over all arguments
/// (`None` where the store has no value). Fails with the first key whose
/// value is missing.
pub fn job_args(args: Vec<Arg>, mut values: impl Iterator<Item = Option<JobArg>>) -> Result<Vec<JobArg>, Key> {
    let mut next = |k: &Key| values.next().flatten().ok_or_else(|| k.clone());
    let mut out = Vec::with_capacity(args.len());
    for a in args {
        out.push(match a {
            Arg::Value(v) => JobArg::Ready(Bytes::from(v)),
            Arg::Key(k) => next(&k)?,
            Arg::Keys(keys) => {
                let mut header = Vec::with_capacity(5);
                // Writing to a Vec cannot fail.
                let _ = rmp::encode::write_array_len(&mut header, keys.len() as u32);
                let mut pieces = Vec::with_capacity(keys.len() + 1);
                pieces.push(JobArg::Ready(Bytes::from(header)));
                for k in &keys {
                    pieces.push(next(k)?);
                }
                JobArg::Joined(pieces)
            }
            Arg::KeyMap(entries) => {
                let mut header = Vec::with_capacity(5);
                let _ = rmp::encode::write_map_len(&mut header, entries.len() as u32);
                let mut pieces = Vec::with_capacity(2 * entries.len() + 1);
                pieces.push(JobArg::Ready(Bytes::from(header)));
                for (map_key, k) in entries {
                    pieces.push(JobArg::Ready(Bytes::from(map_key.into_vec())));
                    pieces.push(next(&k)?);
                }
                JobArg::Joined(pieces)
            }
        });
    }
    Ok(out)
}

/// Reads a spilled value; a file that cannot be read fails the task as
/// lost data.
fn read_spilled(path: &std::path::Path) -> Result<Vec<u8>, TaskFailure> {
    std::fs::read(path).map_err(|e| TaskFailure {
        kind: ErrorKind::DataLost,
        message: format!("cannot read spilled argument {}: {e}", path.display()),
    })
}

/// Puts a job's arguments together: spilled values read back, composite
/// ones joined into one buffer.
fn load_args(args: Vec<JobArg>) -> Result<Vec<Bytes>, TaskFailure> {
    fn append(piece: JobArg, buf: &mut Vec<u8>) -> Result<(), TaskFailure> {
        match piece {
            JobArg::Ready(b) => buf.extend_from_slice(&b),
            JobArg::Spilled(path) => buf.extend_from_slice(&read_spilled(&path)?),
            JobArg::Joined(pieces) => {
                for p in pieces {
                    append(p, buf)?;
                }
            }
        }
        Ok(())
    }
    args.into_iter()
        .map(|a| match a {
            JobArg::Ready(b) => Ok(b),
            JobArg::Spilled(path) => read_spilled(&path).map(Bytes::from),
            JobArg::Joined(pieces) => {
                let len = pieces
                    .iter()
                    .map(|p| match p {
                        JobArg::Ready(b) => b.len(),
                        _ => 0,
                    })
                    .sum();
                let mut buf = Vec::with_capacity(len);
                for p in pieces {
                    append(p, &mut buf)?;
                }
                Ok(Bytes::from(buf))
            }
        })
        .collect()
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
                    while let Ok(job) = rx.recv() {
                        gate.wait_while_paused();
                        // Results kept back from the actor (below) must not wait
                        // behind a task of another function, which may be long.
                        if previous.is_some_and(|p| !std::ptr::fn_addr_eq(p, job.call)) {
                            done.notify(&notify);
                        }
                        previous = Some(job.call);
                        // The arguments (a spilled one read back may be
                        // large) are freed at the end of the closure, before
                        // the result is handed over.
                        let mut elapsed = std::time::Duration::ZERO;
                        let result = load_args(job.args).and_then(|args| {
                            let slices: Vec<&[u8]> = args.iter().map(|b| &b[..]).collect();
                            let start = Instant::now();
                            let result = run_task(job.call, &slices);
                            elapsed = start.elapsed();
                            result
                        });
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
        let file = tempfile::NamedTempFile::new().expect("temp file");
        let path = file.path().to_path_buf();
        std::fs::write(&path, b"spilled").expect("write");
        let args = vec![JobArg::Ready(Bytes::from_static(b"a")), JobArg::Spilled(path.clone())];
        let loaded = load_args(args.clone()).expect("reads");
        assert_eq!(&loaded[1][..], b"spilled");
        std::fs::remove_file(&path).expect("remove");
        let err = load_args(args).expect_err("file is gone");
        assert_eq!(err.kind, ErrorKind::DataLost);
    }

    #[test]
    fn lists_and_maps_of_keys_are_joined_into_one_msgpack_value() {
        let path = std::env::temp_dir().join(format!("rdask-pool-joined-{}", std::process::id()));
        std::fs::write(&path, crate::task::encode_value(&2i64).expect("encodes")).expect("write");
        let enc = |v: i64| {
            Some(JobArg::Ready(Bytes::from(
                crate::task::encode_value(&v).expect("encodes"),
            )))
        };
        let name = |s: &str| serde_bytes::ByteBuf::from(crate::task::encode_value(s).expect("encodes"));
        let args = vec![
            Arg::Keys(vec!["a".into(), "b".into(), "c".into()]),
            Arg::Value(crate::task::encode_value(&7i64).expect("encodes")),
            Arg::KeyMap(vec![(name("x"), "a".into()), (name("y"), "d".into())]),
            Arg::Keys(Vec::new()),
        ];
        let values = vec![enc(1), Some(JobArg::Spilled(path.clone())), enc(3), enc(1), enc(4)];
        let loaded = load_args(job_args(args, values.into_iter()).expect("all found")).expect("loads");
        let list: Vec<i64> = crate::task::decode_value(&loaded[0]).expect("a list");
        assert_eq!(list, [1, 2, 3]);
        assert_eq!(crate::task::decode_value::<i64>(&loaded[1]).expect("a value"), 7);
        let map: std::collections::BTreeMap<String, i64> = crate::task::decode_value(&loaded[2]).expect("a map");
        assert_eq!(map, [("x".to_string(), 1), ("y".to_string(), 4)].into());
        assert!(crate::task::decode_value::<Vec<i64>>(&loaded[3])
            .expect("empty")
            .is_empty());
        std::fs::remove_file(&path).expect("remove");

        let missing = job_args(
            vec![Arg::Keys(vec!["a".into(), "gone".into()])],
            vec![enc(1), None].into_iter(),
        );
        assert_eq!(missing.expect_err("one is missing"), "gone");
    }
}
