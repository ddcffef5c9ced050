//! The worker's pool of task threads.
//!
//! Task functions are CPU-bound user code: they run on `nthreads` plain OS
//! threads, never on an actor's thread, so a slow or panicking task cannot
//! stall heartbeats or data transfers. Each finished run is posted back to
//! the worker actor as a [`TaskDone`] message.

use std::time::Instant;

use actix::prelude::*;
use bytes::Bytes;
use tracing::warn;

use crate::task::{run_task, TaskFn};
use crate::wire::messages::{Key, TaskFailure};

/// A task run finished on the pool.
#[derive(Message)]
#[rtype(result = "()")]
pub struct TaskDone {
    /// The task.
    pub key: Key,
    /// Its serialized result, or why it failed.
    pub result: Result<Vec<u8>, TaskFailure>,
    /// How long the function ran.
    pub duration_us: u64,
}

/// One task to run.
pub struct Job {
    /// The task's key, echoed in [`TaskDone`].
    pub key: Key,
    /// The registered function.
    pub call: TaskFn,
    /// Its msgpack-encoded arguments.
    pub args: Vec<Bytes>,
    /// Where to post the outcome.
    pub reply: Recipient<TaskDone>,
}

/// A fixed set of threads taking jobs from one queue.
pub struct TaskPool {
    tx: crossbeam_channel::Sender<Job>,
}

impl TaskPool {
    /// Starts `nthreads` threads named after the worker.
    pub fn new(nthreads: u32, name: &str) -> std::io::Result<TaskPool> {
        let (tx, rx) = crossbeam_channel::unbounded::<Job>();
        crate::task::install_panic_hook();
        for i in 0..nthreads.max(1) {
            let rx = rx.clone();
            std::thread::Builder::new()
                .name(format!("{name}-task-{i}"))
                .spawn(move || {
                    // The loop ends when the pool (the sender) is dropped.
                    while let Ok(job) = rx.recv() {
                        let slices: Vec<&[u8]> = job.args.iter().map(|b| &b[..]).collect();
                        let start = Instant::now();
                        let result = run_task(job.call, &slices);
                        let duration_us = start.elapsed().as_micros() as u64;
                        drop(slices);
                        if job
                            .reply
                            .try_send(TaskDone {
                                key: job.key,
                                result,
                                duration_us,
                            })
                            .is_err()
                        {
                            warn!("worker actor is gone; dropping a task result");
                        }
                    }
                })?;
        }
        Ok(TaskPool { tx })
    }

    /// Queues a job.
    pub fn submit(&self, job: Job) {
        // Fails only if every thread is gone, i.e. during shutdown.
        let _ = self.tx.send(job);
    }
}
