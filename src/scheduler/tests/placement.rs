//! Placement: queuing, no-worker, restrictions, resources, data locality,
//! measured durations and bandwidth, worker saturation.

use super::helpers::*;

#[test]
fn queued_when_saturated_then_drained() {
    // Pinned, so that the figures below do not move with the default.
    // One task at a time (no runs: `root_runs_keep_neighbours_together`).
    let mut h = H::with(SchedulerConfig {
        default_task_duration_s: 0.0005,
        root_run_length: 1,
        ..Default::default()
    });
    h.worker(1, "a", &["inc"]); // 1 thread
    h.take();
    let tasks: Vec<TaskSpec> = (0..30).map(|i| spec(&format!("t{i}"), "inc", &[])).collect();
    let keys: Vec<String> = tasks.iter().map(|t| t.key.clone()).collect();
    let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    h.submit(C1, tasks, &wanted);
    // Not measured yet: ceil(1 thread × worker_saturation 1.1) = 2.
    let sent = h.computes(1);
    assert_eq!(sent, vec!["t0".to_string(), "t1".to_string()]);
    assert_eq!(h.state("t2"), Some(TaskState::Queued));
    assert_eq!(h.s.info().tasks_by_state[3], ("queued".to_string(), 28));
    // A higher priority root task jumps the queue.
    let mut p = spec("urgent", "inc", &[]);
    p.priority = 5;
    h.submit(C1, vec![p], &["urgent"]);
    assert_eq!(h.state("urgent"), Some(TaskState::Queued));
    // Measured short (0.5 ms) with small results: the pipeline deepens
    // to queue_target_s (5 ms) of work, the urgent task first.
    h.finish_in(1, "t0", 500);
    let next = h.computes(1);
    assert_eq!(next.len(), 9, "{next:?}");
    assert_eq!(next[0], "urgent");
    assert_eq!(next[8], "t9");
    h.finish_in(1, "t1", 500);
    assert_eq!(h.computes(1), vec!["t10".to_string()]);
    // A new worker takes queued tasks.
    h.worker(2, "b", &["inc"]);
    assert!(h.computes(2).len() >= 2);
    // Everything runs to completion.
    for _ in 0..100 {
        let pending: Vec<(u64, String)> = (1..=2)
            .flat_map(|w| {
                h.s.worker_ids
                    .get(&WorkerId(w))
                    .map(|&x| {
                        let mut v: Vec<String> =
                            h.s.worker(x)
                                .processing
                                .keys()
                                .map(|&t| h.s.slot(t).key.clone())
                                .collect();
                        v.sort();
                        v.into_iter().map(|k| (w, k)).collect::<Vec<_>>()
                    })
                    .unwrap_or_default()
            })
            .collect();
        if pending.is_empty() {
            break;
        }
        for (w, k) in pending {
            h.finish_in(w, &k, 500);
        }
    }
    for k in &keys {
        assert_eq!(h.state(k), Some(TaskState::Memory), "{k}");
    }
    let mut all = wanted.clone();
    all.push("urgent");
    h.release(C1, &all);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn no_worker_then_runs_when_worker_joins() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "double", &[])], &["x"]);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    assert!(matches!(
        h.to_client(C1)[..],
        [ToClient::NoWorker { key, function, reason }]
            if key == "x" && function == "double" && reason.contains("none of the 1 connected worker(s) has the function `double`")
    ));
    h.take();
    // A second wanter is told too.
    h.submit(C2, vec![], &["x"]);
    assert!(matches!(h.to_client(C2)[..], [ToClient::NoWorker { .. }]));
    h.worker(2, "b", &["double"]);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert_eq!(h.computes(2), vec!["x".to_string()]);
    // It leaves: back to no-worker.
    h.kill(2);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    h.remove_both(&["x"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn restrictions() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.take();
    let mut x = spec("x", "inc", &[]);
    x.workers = vec!["tcp://b:1".into()];
    let mut y = spec("y", "inc", &[]);
    y.workers = vec!["c".into()];
    let mut z = spec("z", "inc", &[]);
    z.workers = vec!["c".into()];
    z.allow_other_workers = true;
    h.submit(C1, vec![x, y, z], &["x", "y", "z"]);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert_eq!(h.state("y"), Some(TaskState::NoWorker));
    assert_eq!(h.state("z"), Some(TaskState::Processing));
    assert_eq!(h.computes(2), vec!["x".to_string()]);
    h.worker(3, "c", &["inc"]);
    assert_eq!(h.computes(3), vec!["y".to_string()]);
    h.release(C1, &["x", "y", "z"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn placement_prefers_data_locality_and_low_occupancy() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    // Ties: fewest processing, then lowest id.
    assert_eq!(h.computes(1), vec!["x".to_string()]);
    h.worker_sends(
        1,
        FromWorker::TaskFinished {
            key: "x".into(),
            nbytes: 100_000_000,
            inline: None,
            duration_us: 10,
            thread: 0,
            run_id: LATEST,
        },
    );
    h.take();
    h.submit(C1, vec![spec("y", "inc", &["x"])], &["y"]);
    assert_eq!(h.computes(1), vec!["y".to_string()]);
    // A root task goes to the idle worker.
    h.submit(C1, vec![spec("r", "inc", &[])], &["r"]);
    assert_eq!(h.computes(2), vec!["r".to_string()]);
}

#[test]
fn placement_weighs_measured_bandwidth_against_measured_occupancy() {
    let mut h = H::new();
    h.worker(1, "a", &["inc", "slow"]);
    h.worker(2, "b", &["inc", "slow"]);
    // x: 100 MB on a.
    h.submit(C1, vec![restricted("x", "inc", &[], "a")], &["x"]);
    h.worker_sends(1, finished("x", 100_000_000, 10));
    // a is busy: two tasks of a function measured at 100 ms.
    h.submit(C1, vec![restricted("m", "slow", &[], "a")], &["m"]);
    h.worker_sends(1, finished("m", 8, 100_000));
    let busy: Vec<TaskSpec> = (0..2).map(|i| restricted(&format!("s{i}"), "slow", &[], "a")).collect();
    h.submit(C1, busy, &["s0", "s1"]);
    h.take();
    // Default bandwidth (1 GB/s): fetching x (0.1 s) beats waiting
    // 0.2 s for a, so its dependent goes to the idle worker.
    h.submit(C1, vec![spec("y1", "inc", &["x"])], &["y1"]);
    assert_eq!(h.computes(2), vec!["y1".to_string()]);
    // Workers measure 100 MB/s: fetching x now takes 1 s, so the next
    // dependent waits for a, which holds the big dependency.
    for _ in 0..40 {
        h.worker_sends(
            2,
            FromWorker::TransferStats {
                bytes: 10_000_000,
                duration_us: 100_000,
            },
        );
    }
    assert!((h.s.bandwidth - 1e8).abs() < 1e6, "{}", h.s.bandwidth);
    h.submit(C1, vec![spec("y2", "inc", &["x"])], &["y2"]);
    assert_eq!(h.computes(1), vec!["y2".to_string()]);
    // A small dependency on the busy worker: its dependent goes to the
    // idle one.
    h.submit(C1, vec![restricted("z", "inc", &[], "a")], &["z"]);
    h.worker_sends(1, finished("z", 100, 10));
    h.take();
    h.submit(C1, vec![spec("w", "inc", &["z"])], &["w"]);
    assert_eq!(h.computes(2), vec!["w".to_string()]);
}

#[test]
fn root_tasks_of_heavy_functions_are_capped_by_worker_saturation() {
    let mut h = H::with(SchedulerConfig {
        default_task_duration_s: 0.0005,
        ..Default::default()
    });
    let mut o = Outbox::default();
    h.s.add_worker(WorkerId(1), reg_with("a", &["blob", "tiny"], 4, &[]), &mut o)
        .unwrap();
    let blobs: Vec<TaskSpec> = (0..100).map(|i| spec(&format!("b{i}"), "blob", &[])).collect();
    let keys: Vec<String> = blobs.iter().map(|t| t.key.clone()).collect();
    let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    h.submit(C1, blobs, &wanted);
    // Unmeasured: ceil(4 × 1.1) = 5.
    assert_eq!(h.computes(1).len(), 5);
    // Measured short but with 1 MB results: still 5 at a time.
    for i in 0..3 {
        h.worker_sends(1, finished(&format!("b{i}"), 1_000_000, 100));
        assert_eq!(h.computes(1).len(), 1);
    }
    assert_eq!(h.s.worker(WIdx(0)).processing.len(), 5);
    // A short function with small results pipelines deeper (a higher
    // priority puts it ahead of the queued blobs).
    let tiny: Vec<TaskSpec> = (0..100)
        .map(|i| TaskSpec {
            priority: 1,
            ..spec(&format!("t{i}"), "tiny", &[])
        })
        .collect();
    let keys: Vec<String> = tiny.iter().map(|t| t.key.clone()).collect();
    let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    h.submit(C1, tiny, &wanted);
    h.take();
    // Not measured yet: held back by the cap too.
    assert_eq!(h.s.worker(WIdx(0)).processing.len(), 5);
    h.worker_sends(1, finished("b3", 1_000_000, 100));
    let sent = h.computes(1);
    assert!(sent.iter().any(|k| k.starts_with('t')), "{sent:?}");
    let t = sent.iter().find(|k| k.starts_with('t')).cloned().unwrap_or_default();
    h.worker_sends(1, finished(&t, 8, 100));
    assert!(h.computes(1).len() > 5);
    assert!(h.s.worker(WIdx(0)).processing.len() > 10);
}

#[test]
fn resources_choose_workers_and_wait_in_no_worker_for_one() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    let gpu = TaskSpec {
        resources: vec![("GPU".into(), 1.0)],
        ..spec("g", "inc", &[])
    };
    let big = TaskSpec {
        resources: vec![("GPU".into(), 3.0)],
        ..spec("g3", "inc", &[])
    };
    h.submit(C1, vec![gpu, big], &["g", "g3"]);
    assert_eq!(h.state("g"), Some(TaskState::NoWorker));
    assert_eq!(h.state("g3"), Some(TaskState::NoWorker));
    h.take();
    let mut o = Outbox::default();
    h.s.add_worker(WorkerId(2), reg_with("b", &["inc"], 4, &[("GPU", 2.0)]), &mut o)
        .unwrap();
    h.out.extend(o.messages);
    let sent: Vec<(String, Vec<(String, f64)>)> = h
        .take()
        .into_iter()
        .filter_map(|m| match m {
            Outgoing::Worker(WorkerId(2), ToWorker::ComputeTask { key, resources, .. }) => Some((key, resources)),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![("g".to_string(), vec![("GPU".to_string(), 1.0)])]);
    assert_eq!(h.state("g3"), Some(TaskState::NoWorker));
    // A dependent asking for GPU goes to b even though a holds its input.
    h.submit(C1, vec![restricted("x", "inc", &[], "a")], &["x"]);
    h.worker_sends(1, finished("x", 100_000_000, 10));
    h.take();
    let dep = TaskSpec {
        resources: vec![("GPU".into(), 1.0)],
        ..spec("gx", "inc", &["x"])
    };
    h.submit(C1, vec![dep], &["gx"]);
    assert_eq!(h.computes(2), vec!["gx".to_string()]);
}

#[test]
fn a_new_batch_of_a_light_function_does_not_follow_the_last_run() {
    // inc is measured light, so its root tasks go out in runs; but once
    // none is queued or processing, the next one is a new batch and goes
    // to the idle worker, not behind a long task on the last run's.
    let mut h = H::new();
    h.worker(1, "a", &["inc", "sleep"]);
    h.worker(2, "b", &["inc", "sleep"]);
    h.take();
    h.submit(C1, vec![spec("i1", "inc", &[])], &["i1"]);
    let (first, name, other) = if h.computes(1) == vec!["i1".to_string()] {
        (1, "a", 2)
    } else {
        (2, "b", 1)
    };
    h.finish(first, "i1");
    h.take();
    let mut long = spec("long", "sleep", &[]);
    long.workers = vec![name.to_string()];
    h.submit(C1, vec![long], &["long"]);
    assert_eq!(h.computes(first), vec!["long".to_string()]);
    h.submit(C1, vec![spec("i2", "inc", &[])], &["i2"]);
    assert_eq!(
        h.computes(other),
        vec!["i2".to_string()],
        "i2 queued behind the long task"
    );
}
