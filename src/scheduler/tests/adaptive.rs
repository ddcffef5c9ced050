//! `adaptive_target` and `workers_to_close` (Dask's rules) on a state with
//! fake workers.

use super::helpers::*;

/// Name of the worker `key` is processing on.
fn processing_on(h: &H, key: &str) -> Option<String> {
    let t = h.s.task_id(key)?;
    let w = h.s.slot(t).processing_on?;
    Some(h.s.worker(w).name.clone())
}

/// Keys processing on worker `id`.
fn keys_on(h: &H, id: u64) -> Vec<String> {
    let w = h.s.worker_ids[&WorkerId(id)];
    h.s.worker(w)
        .processing
        .keys()
        .map(|&t| h.s.slot(t).key.clone())
        .collect()
}

fn many(n: usize) -> Vec<TaskSpec> {
    (0..n).map(|i| spec(&format!("t{i}"), "sleep", &[])).collect()
}

#[test]
fn idle_cluster_wants_its_minimum() {
    let mut h = H::new();
    h.worker(1, "a", &["sleep"]);
    h.worker(2, "b", &["sleep"]);
    let a = h.s.adaptive_target(5.0, 1, 4);
    assert_eq!(a.target, 1);
    assert_eq!(a.to_close.len(), 1, "{a:?}");
    assert_eq!(a.workers, ["a", "b"]);
    // The minimum wins over an idle cluster.
    assert_eq!(h.s.adaptive_target(5.0, 2, 4).target, 2);
    assert!(h.s.adaptive_target(5.0, 2, 4).to_close.is_empty());
}

#[test]
fn queued_work_scales_with_measured_durations() {
    let mut h = H::new();
    h.worker(1, "a", &["sleep"]);
    h.submit(C1, many(1), &["t0"]);
    // One task measured at 1 s.
    h.finish_in(1, "t0", 1_000_000);
    let keys: Vec<String> = (1..=200).map(|i| format!("t{i}")).collect();
    let wanted: Vec<&str> = keys.iter().map(String::as_str).collect();
    let tasks = keys.iter().map(|k| spec(k, "sleep", &[])).collect();
    h.submit(C1, tasks, &wanted);
    // 200 tasks × ~1 s = 200 s of work over 5 s per worker: 40 workers,
    // capped at the maximum.
    assert_eq!(h.s.adaptive_target(5.0, 1, 8).target, 8);
    let big = h.s.adaptive_target(5.0, 1, 100).target;
    assert!((35..=45).contains(&big), "{big}");
    // A longer target duration needs fewer workers.
    let fewer = h.s.adaptive_target(50.0, 1, 100).target;
    assert!((3..=5).contains(&fewer), "{fewer}");
}

#[test]
fn few_long_tasks_ask_no_more_workers_than_tasks() {
    let mut h = H::new();
    h.worker(1, "a", &["sleep"]);
    h.submit(C1, many(1), &["t0"]);
    h.finish_in(1, "t0", 100_000_000); // 100 s each
    let tasks = vec![spec("x", "sleep", &[]), spec("y", "sleep", &[])];
    h.submit(C1, tasks, &["x", "y"]);
    assert_eq!(h.s.adaptive_target(5.0, 1, 10).target, 2);
}

#[test]
fn busy_workers_are_not_closed() {
    let mut h = H::new();
    h.worker(1, "a", &["sleep"]);
    h.worker(2, "b", &["sleep"]);
    h.worker(3, "c", &["sleep"]);
    h.submit(C1, many(1), &["t0"]);
    let running = h.s.adaptive_target(5.0, 1, 3);
    // One task (unmeasured, 0.5 s by default): one worker is enough, and
    // the two idle ones may go, not the busy one.
    assert_eq!(running.target, 1);
    assert_eq!(running.to_close.len(), 2);
    let busy = processing_on(&h, "t0").expect("t0 runs somewhere");
    assert!(!running.to_close.contains(&busy), "{running:?}");
}

#[test]
fn memory_pressure_doubles_and_data_must_fit() {
    let mut h = H::new();
    let mut o = Outbox::default();
    for (id, name) in [(1, "a"), (2, "b")] {
        let r = WorkerRegistration {
            memory_limit: 100,
            ..reg(name, &["sleep"])
        };
        h.s.add_worker(WorkerId(id), r, &mut o).unwrap();
    }
    h.submit(C1, many(2), &["t0", "t1"]);
    for w in [1, 2] {
        let key = keys_on(&h, w).pop().expect("a task each");
        h.worker_sends(w, finished(&key, 70, 10));
    }
    // 140 bytes held of 200 allowed: past 60 %, twice the workers.
    assert_eq!(h.s.adaptive_target(5.0, 1, 10).target, 4);
    // Neither may leave: the other could not hold all 140 bytes.
    assert!(h.s.workers_to_close(1).is_empty());
}

#[test]
fn work_waiting_for_a_worker_with_none_connected_asks_for_one() {
    let mut h = H::new();
    h.submit(C1, many(3), &["t0", "t1", "t2"]);
    let a = h.s.adaptive_target(5.0, 0, 4);
    assert_eq!(a.target, 1);
    assert!(a.workers.is_empty());
}
