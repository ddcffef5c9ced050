//! Running tasks: priorities, resources, results and failures.

use super::*;
use WorkerTaskState::*;

#[test]
fn resources_limit_how_many_tasks_run_at_once() {
    let mut ws = WorkerState::new(cfg(4)).with_resources(vec![("GPU".into(), 2.0)]);
    let gpu = |key: &str, seq: u64| match compute(key, &[], 0, seq) {
        ToWorker::ComputeTask {
            key,
            function,
            args,
            dependencies,
            priority,
            sequence,
            run_id,
            ..
        } => ToWorker::ComputeTask {
            key,
            function,
            args,
            dependencies,
            priority,
            sequence,
            resources: vec![("GPU".into(), 1.0)],
            run_id,
        },
        other => other,
    };
    let mut ran = Vec::new();
    for (i, k) in ["g0", "g1", "g2"].iter().enumerate() {
        ran.extend(executes(&send(&mut ws, gpu(k, i as u64))));
    }
    // A task without resources is not held up behind them.
    ran.extend(executes(&send(&mut ws, compute("plain", &[], 0, 9))));
    assert_eq!(ran, keys(&["g0", "g1", "plain"]));
    assert_eq!(ws.task_state("g2"), Some(WorkerTaskState::Ready));
    // g2 starts when a GPU is given back.
    assert!(executes(&finish(&mut ws, "plain", Ok(b("p")))).is_empty());
    assert_eq!(executes(&finish(&mut ws, "g0", Ok(b("0")))), keys(&["g2"]));
    // And it can be stolen while it waits; not once it runs.
    assert_eq!(steal(&mut ws, "g2"), steal_answer("g2", false));
}

#[test]
fn started_tasks_are_reported_once_per_event() {
    let mut ws = WorkerState::new(cfg(2));
    let mut out = Vec::new();
    for (i, k) in ["a", "b", "c"].iter().enumerate() {
        ws.handle_scheduler(compute(k, &[], 0, i as u64), &mut out).unwrap();
    }
    // Two threads: a and b start (one report per event), c waits.
    assert_eq!(started(&out), vec![vec![run_of(0)], vec![run_of(1)]]);
    let out = finish(&mut ws, "a", Ok(b("1")));
    assert_eq!(started(&out), vec![vec![run_of(2)]]);
    // The report follows the Execute it describes, in one event.
    let out = finish(&mut ws, "b", Ok(b("2")));
    assert!(started(&out).is_empty());
}

#[test]
fn root_task_runs_and_reports_inline_only_when_small() {
    let mut ws = WorkerState::new(cfg(2));
    let out = send(&mut ws, compute("a", &[], 0, 0));
    assert_eq!(
        out,
        vec![
            WorkerEffect::Execute {
                key: "a".into(),
                function: "f".into(),
                args: vec![Arg::Value(vec![0x2a])],
            },
            WorkerEffect::Send(FromWorker::TasksStarted {
                keys: Vec::new(),
                run_ids: vec![run_of(0)]
            })
        ]
    );
    assert_eq!(ws.task_state("a"), Some(Executing));
    assert_eq!(ws.executing_count(), 1);
    let out = finish(&mut ws, "a", Ok(b("small")));
    assert_eq!(
        out,
        vec![
            WorkerEffect::StorePut {
                key: "a".into(),
                data: b("small")
            },
            WorkerEffect::Send(FromWorker::TaskFinished {
                key: "a".into(),
                nbytes: 5,
                inline: Some(Payload(b("small"))),
                duration_us: 7,
                thread: 0,
                run_id: run_of(0),
            }),
        ]
    );
    assert_eq!(ws.task_state("a"), Some(Memory));
    assert_eq!((ws.nkeys_in_memory(), ws.nbytes_in_memory()), (1, 5));

    send(&mut ws, compute("big", &[], 0, 1));
    let large = "x".repeat(17);
    let out = finish(&mut ws, "big", Ok(b(&large)));
    assert_eq!(
        sent(&out),
        vec![FromWorker::TaskFinished {
            key: "big".into(),
            nbytes: 17,
            inline: None,
            duration_us: 7,
            thread: 0,
            run_id: run_of(1),
        }]
    );
    assert_eq!(
        ws.heartbeat(),
        FromWorker::Heartbeat {
            nkeys: 2,
            nbytes: 22,
            executing: 0,
            ready: 0,
            spilled_bytes: 0,
            rss_bytes: 0,
            cpu_percent: 0.0,
            bytes_fetched: 0,
            bytes_served: 0,
            spills: Vec::new(),
            log: Vec::new(),
        }
    );
}

#[test]
fn one_thread_runs_by_priority_then_sequence() {
    let mut ws = WorkerState::new(cfg(1));
    let mut order = executes(&send(&mut ws, compute("first", &[], 0, 0)));
    for (k, p, s) in [("low", -1, 1), ("hi-late", 5, 9), ("hi-early", 5, 3), ("mid", 0, 2)] {
        assert!(send(&mut ws, compute(k, &[], p, s)).is_empty());
    }
    assert_eq!(ws.ready_count(), 4);
    while let Some(k) = order.last().cloned() {
        let next = executes(&finish(&mut ws, &k, Ok(b("v"))));
        if next.is_empty() {
            break;
        }
        order.extend(next);
    }
    assert_eq!(order, keys(&["first", "hi-early", "hi-late", "mid", "low"]));
}

#[test]
fn failure_is_reported() {
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("a", &[], 0, 0));
    let failure = TaskFailure {
        kind: ErrorKind::Panicked,
        message: "boom".into(),
    };
    let out = finish(&mut ws, "a", Err(failure.clone()));
    assert_eq!(
        sent(&out),
        vec![FromWorker::TaskErred {
            key: "a".into(),
            failure,
            run_id: run_of(0),
        }]
    );
    assert_eq!(ws.task_state("a"), Some(Error));
    assert_eq!(ws.executing_count(), 0);
    // A retry reruns it.
    assert_eq!(executes(&send(&mut ws, compute("a", &[], 0, 1))), keys(&["a"]));
    free(&mut ws, &["a"]);
    finish(&mut ws, "a", Ok(b("x")));
    assert_eq!(ws.ntasks(), 0);
}

#[test]
fn duplicate_compute_task() {
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("a", &[], 0, 0));
    send(&mut ws, compute("w", &[("a", &[])], 0, 1));
    assert!(send(&mut ws, compute("a", &[], 0, 0)).is_empty());
    assert!(send(&mut ws, compute("w", &[("a", &[])], 0, 1)).is_empty());
    let out = finish(&mut ws, "a", Ok(b("v")));
    assert_eq!(executes(&out), keys(&["w"]));
    assert_eq!(
        sent(&send(&mut ws, compute("a", &[], 0, 0))),
        vec![FromWorker::TaskFinished {
            key: "a".into(),
            nbytes: 1,
            inline: None,
            duration_us: 0,
            thread: 0,
            run_id: run_of(0),
        }]
    );
}

/// The worker reports the run id of the latest `ComputeTask` of a key,
/// also for a run that began under an earlier assignment (cancelled, then
/// wanted again while still on its thread).
#[test]
fn completion_carries_the_latest_run_id() {
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("a", &[], 0, 0));
    free(&mut ws, &["a"]);
    assert_eq!(ws.task_state("a"), Some(Cancelled));
    assert!(sent(&send(&mut ws, compute("a", &[], 0, 5))).is_empty());
    let out = finish(&mut ws, "a", Ok(b("v")));
    assert_eq!(
        sent(&out),
        vec![FromWorker::TaskFinished {
            key: "a".into(),
            nbytes: 1,
            inline: Some(Payload(b("v"))),
            duration_us: 7,
            thread: 0,
            run_id: run_of(5),
        }]
    );
}

#[test]
fn a_seceded_task_frees_its_thread_and_is_reported_once() {
    let mut ws = WorkerState::new(cfg(1));
    assert_eq!(
        executes(&send(&mut ws, compute("parent", &[], 0, 0))),
        keys(&["parent"])
    );
    assert!(executes(&send(&mut ws, compute("child", &[], 0, 1))).is_empty());
    // The parent's thread secedes: the child starts, the scheduler is told.
    let mut out = Vec::new();
    ws.task_seceded("parent", &mut out);
    ws.check_invariants();
    assert_eq!(executes(&out), keys(&["child"]));
    assert_eq!(sent(&out), vec![FromWorker::LongRunning { key: "parent".into() }]);
    // Seceding again (another wait of the same run) changes nothing.
    let mut again = Vec::new();
    ws.task_seceded("parent", &mut again);
    assert!(again.is_empty());
    assert!(executes(&send(&mut ws, compute("next", &[], 0, 2))).is_empty());
    // The parent finishing gives back no thread it no longer held; the
    // child finishing does.
    assert!(executes(&finish(&mut ws, "parent", Ok(b("p")))).is_empty());
    assert_eq!(executes(&finish(&mut ws, "child", Ok(b("c")))), keys(&["next"]));
    // A task not on a thread cannot secede.
    let mut none = Vec::new();
    ws.task_seceded("parent", &mut none);
    ws.task_seceded("unknown", &mut none);
    assert!(none.is_empty());
    ws.check_invariants();
}

/// A run the scheduler gave no id (0) is reported started by its key; the
/// others by their run ids, in one report.
#[test]
fn a_run_without_an_id_is_reported_started_by_key() {
    let mut ws = WorkerState::new(cfg(2));
    let mut out = Vec::new();
    let mut no_id = compute("a", &[], 0, 0);
    if let ToWorker::ComputeTask { run_id, .. } = &mut no_id {
        *run_id = 0;
    }
    let batch = [no_id, compute("b", &[], 0, 1)];
    for m in batch {
        ws.handle_scheduler(m, &mut out).unwrap();
    }
    let reports: Vec<(Vec<Key>, Vec<u64>)> = out
        .iter()
        .filter_map(|e| match e {
            WorkerEffect::Send(FromWorker::TasksStarted { keys, run_ids }) => Some((keys.clone(), run_ids.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(reports, vec![(keys(&["a"]), vec![]), (vec![], vec![run_of(1)])]);
}
