//! Task failures: erred and dependency-failed tasks, retries, workers
//! killed while running a task.

use super::helpers::*;

#[test]
fn erred_and_dependency_failed_then_retry() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(
        C1,
        vec![
            spec("x", "inc", &[]),
            spec("y", "inc", &["x"]),
            spec("z", "inc", &["y"]),
        ],
        &["x", "z"],
    );
    h.take();
    h.worker_sends(
        1,
        FromWorker::TaskErred {
            key: "x".into(),
            failure: failure("boom"),
            run_id: LATEST,
        },
    );
    assert_eq!(h.state("x"), Some(TaskState::Erred));
    assert_eq!(h.state("y"), Some(TaskState::Erred));
    assert_eq!(h.state("z"), Some(TaskState::Erred));
    let msgs = h.to_client(C1);
    assert_eq!(msgs.len(), 2);
    match msgs[1] {
        ToClient::TaskErred { key, failure } => {
            assert_eq!(key, "z");
            assert_eq!(failure.kind, ErrorKind::DependencyFailed);
            assert_eq!(failure.message, "dependency \"x\" failed: boom");
        }
        other => panic!("{other:?}"),
    }
    // A new task on an erred key errs at once; a late wanter is told.
    h.take();
    h.submit(C2, vec![spec("w", "inc", &["z"])], &["w", "x"]);
    assert_eq!(h.state("w"), Some(TaskState::Erred));
    assert_eq!(h.to_client(C2).len(), 2);
    h.release(C2, &["w", "x"]);
    assert_eq!(h.state("w"), None);
    h.take();
    // Retry the leaf: x reruns, y and z wait again.
    h.client(C1, FromClient::Retry { keys: vec!["z".into()] });
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert_eq!(h.state("y"), Some(TaskState::Waiting));
    assert_eq!(h.state("z"), Some(TaskState::Waiting));
    h.finish(1, "x");
    h.finish(1, "y");
    h.finish(1, "z");
    assert_eq!(h.state("z"), Some(TaskState::Memory));
    h.release(C1, &["x", "z"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn retry_of_root_resets_dependents() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["y"]);
    h.worker_sends(
        1,
        FromWorker::TaskErred {
            key: "x".into(),
            failure: failure("boom"),
            run_id: LATEST,
        },
    );
    // x is unwanted but kept erred: y depends on it.
    assert_eq!(h.state("x"), Some(TaskState::Erred));
    h.client(C1, FromClient::Retry { keys: vec!["x".into()] });
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert_eq!(h.state("y"), Some(TaskState::Waiting));
    h.finish(1, "x");
    h.finish(1, "y");
    assert_eq!(h.state("y"), Some(TaskState::Memory));
    h.release(C1, &["y"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn task_retries() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    let mut x = spec("x", "inc", &[]);
    x.retries = 1;
    h.submit(C1, vec![x], &["x"]);
    h.take();
    h.worker_sends(
        1,
        FromWorker::TaskErred {
            key: "x".into(),
            failure: failure("flaky"),
            run_id: LATEST,
        },
    );
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert_eq!(h.computes(1), vec!["x".to_string()]);
    h.worker_sends(
        1,
        FromWorker::TaskErred {
            key: "x".into(),
            failure: failure("flaky"),
            run_id: LATEST,
        },
    );
    assert_eq!(h.state("x"), Some(TaskState::Erred));
}

#[test]
fn killed_worker_after_allowed_failures() {
    let mut h = H::with(SchedulerConfig {
        allowed_failures: 1,
        ..Default::default()
    });
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    h.worker(1, "a", &["inc"]);
    h.kill(1);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    h.worker(2, "b", &["inc"]);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    h.take();
    h.kill(2);
    assert_eq!(h.state("x"), Some(TaskState::Erred));
    match h.to_client(C1)[..] {
        [ToClient::TaskErred { failure, .. }] => {
            assert_eq!(failure.kind, ErrorKind::KilledWorker);
            assert!(failure.message.contains("\"x\""));
            assert!(failure.message.contains("a, b"), "{}", failure.message);
        }
        ref other => panic!("{other:?}"),
    }
    h.release(C1, &["x"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn only_tasks_reported_started_count_as_suspicious() {
    let mut h = H::with(SchedulerConfig {
        allowed_failures: 0,
        ..Default::default()
    });
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &[])], &["x", "y"]);
    assert_eq!(h.computes(1), vec!["x", "y"]);
    // x runs on the worker's one thread; y only waits for it.
    let started = FromWorker::TasksStarted {
        keys: vec!["x".into()],
        run_ids: Vec::new(),
    };
    h.worker_sends(1, started);
    h.worker(2, "b", &["inc"]);
    h.take();
    h.kill(1);
    assert_eq!(h.state("x"), Some(TaskState::Erred));
    assert_eq!(h.state("y"), Some(TaskState::Processing));
    match h.to_client(C1)[..] {
        [ToClient::TaskErred { key, failure }] => {
            assert_eq!((key.as_str(), failure.kind), ("x", ErrorKind::KilledWorker));
        }
        ref other => panic!("{other:?}"),
    }
    // A finished task leaves the executing set: the worker's death later
    // does not count it.
    h.worker_sends(
        2,
        FromWorker::TasksStarted {
            keys: vec!["y".into()],
            run_ids: Vec::new(),
        },
    );
    h.finish(2, "y");
    assert_eq!(h.state("y"), Some(TaskState::Memory));
    h.release(C1, &["x", "y"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn a_worker_that_never_reports_starts_has_every_processing_task_counted() {
    let mut h = H::with(SchedulerConfig {
        allowed_failures: 0,
        ..Default::default()
    });
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &[])], &["x", "y"]);
    h.kill(1);
    assert_eq!(h.state("x"), Some(TaskState::Erred));
    assert_eq!(h.state("y"), Some(TaskState::Erred));
}
