//! Computing a graph without a cluster (Dask's threaded scheduler): the
//! same task specs run on a pool of threads in the calling process, through
//! the same registry and argument encoding as on a worker, so results are
//! the same.
//!
//! One coordinating thread (the caller) owns all state: it hands ready
//! tasks to the pool over a channel and takes results back, so no lock is
//! needed; a value is dropped once every task that needs it has run.

use std::collections::HashMap;

use bytes::Bytes;

use crate::client::Error;
use crate::registry::Registry;
use crate::task::run_task;
use crate::wire::messages::{ErrorKind, Key, TaskFailure, TaskSpec};
use crate::worker::args::{job_args, load_args, JobArg};

type Job = (usize, crate::task::TaskFn, Vec<Bytes>);
type Done = (usize, Result<Vec<u8>, TaskFailure>);

/// Runs `tasks` (dependencies first or not: any order) on `nthreads`
/// threads; returns the values of `outputs`.
pub(crate) fn run(tasks: Vec<TaskSpec>, outputs: &[Key], nthreads: usize) -> Result<HashMap<Key, Bytes>, Error> {
    let n = tasks.len();
    let index: HashMap<&str, usize> = tasks.iter().enumerate().map(|(i, t)| (t.key.as_str(), i)).collect();
    let mut waiting_on = vec![0usize; n];
    let mut dependents: Vec<Vec<usize>> = vec![Vec::new(); n];
    // Uses left of each value: its dependents, plus one if it is an output.
    let mut uses = vec![0usize; n];
    for (i, t) in tasks.iter().enumerate() {
        for a in &t.args {
            for k in a.keys() {
                let Some(&d) = index.get(k.as_str()) else {
                    return Err(Error::Refused(format!(
                        "task {} needs {k}, a future of a cluster: compute this graph with that cluster's client",
                        t.key
                    )));
                };
                waiting_on[i] += 1;
                dependents[d].push(i);
                uses[d] += 1;
            }
        }
    }
    for k in outputs {
        if let Some(&i) = index.get(k.as_str()) {
            uses[i] += 1;
        }
    }
    let registry = Registry::global();
    let mut functions = Vec::with_capacity(n);
    for t in &tasks {
        let f = registry.get(&t.function).ok_or_else(|| Error::Task {
            key: t.key.clone(),
            failure: TaskFailure {
                kind: ErrorKind::UnknownFunction,
                message: format!("function {:?} is not registered in this process", t.function),
            },
        })?;
        functions.push(f);
    }

    let (done_tx, done_rx) = crossbeam_channel::unbounded::<Done>();
    let mut values: Vec<Option<Bytes>> = vec![None; n];
    let mut results = HashMap::new();
    std::thread::scope(|scope| -> Result<(), Error> {
        // Created in the scope and dropped before it ends (whatever the
        // outcome), so the pool's threads see the channel close and exit.
        let (job_tx, job_rx) = crossbeam_channel::unbounded::<Job>();
        for _ in 0..nthreads.max(1) {
            let (job_rx, done_tx) = (job_rx.clone(), done_tx.clone());
            scope.spawn(move || {
                for (i, f, args) in job_rx {
                    let slices: Vec<&[u8]> = args.iter().map(|b| &b[..]).collect();
                    if done_tx.send((i, run_task(f, &slices))).is_err() {
                        break;
                    }
                }
            });
        }
        drop(done_tx);
        let mut drive = || -> Result<(), Error> {
            let send = |i: usize, values: &mut Vec<Option<Bytes>>| -> Result<(), Error> {
                let args = tasks[i].args.clone();
                let stored = args
                    .iter()
                    .flat_map(|a| a.keys())
                    .map(|k| {
                        index
                            .get(k.as_str())
                            .and_then(|&d| values[d].clone())
                            .map(JobArg::Ready)
                    })
                    .collect::<Vec<_>>();
                let args = job_args(args, stored.into_iter())
                    .map_err(|k| Error::Refused(format!("{k} was dropped too early")))?;
                let args = load_args(args).map_err(|failure| Error::Task {
                    key: tasks[i].key.clone(),
                    failure,
                })?;
                job_tx
                    .send((i, functions[i], args))
                    .map_err(|_| Error::Refused("the local thread pool stopped".into()))
            };
            let mut running = 0usize;
            let ready: Vec<usize> = (0..n).filter(|&i| waiting_on[i] == 0).collect();
            for i in ready {
                send(i, &mut values)?;
                running += 1;
            }
            let mut finished = 0usize;
            while running > 0 {
                let Ok((i, result)) = done_rx.recv() else {
                    return Err(Error::Refused("the local thread pool stopped".into()));
                };
                running -= 1;
                finished += 1;
                let value = Bytes::from(result.map_err(|failure| Error::Task {
                    key: tasks[i].key.clone(),
                    failure,
                })?);
                // Free the inputs no other task needs.
                for a in &tasks[i].args {
                    for k in a.keys() {
                        if let Some(&d) = index.get(k.as_str()) {
                            uses[d] -= 1;
                            if uses[d] == 0 {
                                values[d] = None;
                            }
                        }
                    }
                }
                if uses[i] > 0 {
                    values[i] = Some(value);
                }
                for &j in &dependents[i] {
                    waiting_on[j] -= 1;
                    if waiting_on[j] == 0 {
                        send(j, &mut values)?;
                        running += 1;
                    }
                }
            }
            if finished < n {
                return Err(Error::Refused(format!(
                    "{} of {n} tasks could not run: the graph has a cycle",
                    n - finished
                )));
            }
            for k in outputs {
                if let Some(v) = index.get(k.as_str()).and_then(|&i| values[i].clone()) {
                    results.insert(k.clone(), v);
                }
            }
            Ok(())
        };
        let outcome = drive();
        drop(job_tx);
        outcome
    })?;
    Ok(results)
}
