//! Unit and property tests of the worker state machine, by concern, with
//! the fixtures they share.

mod execute;
mod fetch;
mod random_dags;
mod release;
mod steal;

use super::*;
use crate::wire::messages::{DependencyLocation, ErrorKind, TaskFailure};

fn cfg(nthreads: u32) -> WorkerStateConfig {
    WorkerStateConfig {
        nthreads,
        inline_limit: 16,
        max_concurrent_fetches: 8,
    }
}

fn b(s: &str) -> Bytes {
    Bytes::copy_from_slice(s.as_bytes())
}

fn keys(ks: &[&str]) -> Vec<Key> {
    ks.iter().map(|k| k.to_string()).collect()
}

/// The run id `compute` gives a task of this sequence number.
fn run_of(sequence: u64) -> u64 {
    sequence + 100
}

/// A task reading each dependency, then one literal argument.
fn compute(key: &str, deps: &[(&str, &[&str])], priority: i32, sequence: u64) -> ToWorker {
    let mut args: Vec<Arg> = deps.iter().map(|(k, _)| Arg::Key(k.to_string())).collect();
    args.push(Arg::Value(vec![0x2a]));
    ToWorker::ComputeTask {
        key: key.into(),
        function: "f".into(),
        args,
        dependencies: deps
            .iter()
            .map(|(k, w)| DependencyLocation {
                key: k.to_string(),
                who_has: keys(w),
                nbytes: 8,
            })
            .collect(),
        priority,
        sequence,
        resources: Vec::new(),
        run_id: run_of(sequence),
    }
}

fn send(ws: &mut WorkerState, msg: ToWorker) -> Vec<WorkerEffect> {
    let mut out = Vec::new();
    ws.handle_scheduler(msg, &mut out).unwrap();
    ws.check_invariants();
    out
}

fn finish(ws: &mut WorkerState, key: &str, r: Result<Bytes, TaskFailure>) -> Vec<WorkerEffect> {
    let mut out = Vec::new();
    ws.task_finished(key.into(), r, 7, 0, &mut out);
    ws.check_invariants();
    out
}

fn fetched(ws: &mut WorkerState, w: &str, data: &[(&str, Option<&str>)]) -> Vec<WorkerEffect> {
    let mut out = Vec::new();
    let data = data.iter().map(|(k, v)| (k.to_string(), v.map(b))).collect();
    ws.fetch_finished(w, data, &mut out);
    ws.check_invariants();
    out
}

fn free(ws: &mut WorkerState, ks: &[&str]) -> Vec<WorkerEffect> {
    send(ws, ToWorker::FreeKeys { keys: keys(ks) })
}

fn executes(out: &[WorkerEffect]) -> Vec<Key> {
    out.iter()
        .filter_map(|e| match e {
            WorkerEffect::Execute { key, .. } => Some(key.clone()),
            _ => None,
        })
        .collect()
}

/// Messages to the scheduler, without the `TasksStarted` reports (see
/// `started_tasks_are_reported_once_per_event`).
fn sent(out: &[WorkerEffect]) -> Vec<FromWorker> {
    out.iter()
        .filter_map(|e| match e {
            WorkerEffect::Send(FromWorker::TasksStarted { .. }) => None,
            WorkerEffect::Send(m) => Some(m.clone()),
            _ => None,
        })
        .collect()
}

fn steal(ws: &mut WorkerState, key: &str) -> Vec<FromWorker> {
    sent(&send(ws, ToWorker::StealRequest { key: key.into() }))
}

fn steal_answer(key: &str, stolen: bool) -> Vec<FromWorker> {
    vec![FromWorker::StealResponse {
        key: key.into(),
        stolen,
    }]
}

/// The `TasksStarted` reports, each as the run ids it names (by run id or
/// by key).
fn started(out: &[WorkerEffect]) -> Vec<Vec<u64>> {
    out.iter()
        .filter_map(|e| match e {
            WorkerEffect::Send(FromWorker::TasksStarted { keys, run_ids }) => {
                assert!(
                    keys.is_empty(),
                    "runs with an id are reported by it, not by key: {keys:?}"
                );
                Some(run_ids.clone())
            }
            _ => None,
        })
        .collect()
}

fn fetches(out: &[WorkerEffect]) -> Vec<(String, Vec<Key>)> {
    out.iter()
        .filter_map(|e| match e {
            WorkerEffect::Fetch { worker, keys } => Some((worker.clone(), keys.clone())),
            _ => None,
        })
        .collect()
}

fn missing(key: &str, w: &str) -> FromWorker {
    FromWorker::MissingData {
        key: key.into(),
        errant_worker: w.into(),
    }
}
