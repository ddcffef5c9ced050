//! Graceful retirement of workers.

use super::helpers::*;

#[test]
fn retirement_moves_unique_data_then_closes() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    let tasks = vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])];
    h.submit(C1, tasks, &["x", "y"]);
    let on_a = |h: &mut H| h.computes(1);
    assert_eq!(on_a(&mut h), vec!["x"]);
    h.finish(1, "x");
    // y runs next to its data, on a.
    assert_eq!(on_a(&mut h), vec!["y"]);
    h.client(
        C1,
        FromClient::RetireWorkers {
            request_id: 7,
            workers: vec!["a".into(), "nope".into()],
        },
    );
    // a still runs y: nothing moves yet, no new task goes to a.
    assert!(h
        .take()
        .iter()
        .all(|m| !matches!(m, Outgoing::Worker(_, ToWorker::AcquireReplicas { .. }))));
    h.submit(C1, vec![spec("z", "inc", &[])], &["z"]);
    let out = h.take();
    assert!(out
        .iter()
        .any(|m| matches!(m, Outgoing::Worker(WorkerId(2), ToWorker::ComputeTask { key, .. }) if key == "z")));
    h.finish(1, "y");
    // x and y are only on a: b is asked to copy them.
    let out = h.take();
    let asked: Vec<_> = out
        .iter()
        .filter_map(|m| match m {
            Outgoing::Worker(id, ToWorker::AcquireReplicas { keys }) => Some((id.0, keys.clone())),
            _ => None,
        })
        .collect();
    assert_eq!(asked.len(), 1, "{out:?}");
    assert_eq!(asked[0].0, 2);
    assert_eq!(
        asked[0].1.iter().map(|d| d.key.as_str()).collect::<Vec<_>>(),
        ["x", "y"]
    );
    assert_eq!(asked[0].1[0].who_has, vec!["tcp://a:1".to_string()]);
    h.worker_sends(
        2,
        FromWorker::AddKeys {
            keys: vec![("x".into(), 8)],
        },
    );
    // Not before every unique key has a copy; nothing asked twice.
    assert_eq!(h.s.worker_count(), 2);
    assert!(h.take().is_empty());
    h.worker_sends(
        2,
        FromWorker::AddKeys {
            keys: vec![("y".into(), 8)],
        },
    );
    let out = h.take();
    assert!(out
        .iter()
        .any(|m| matches!(m, Outgoing::Worker(WorkerId(1), ToWorker::Close { .. }))));
    assert!(
        out.iter().any(|m| matches!(
            m,
            Outgoing::Client(C1, ToClient::RetireWorkersDone { request_id: 7, retired, error: Some(e) })
                if retired == &["a".to_string()] && e.contains("nope")
        )),
        "{out:?}"
    );
    assert_eq!(h.s.worker_count(), 1);
    // Nothing lost, nothing recomputed.
    assert_eq!(h.state("x"), Some(TaskState::Memory));
    assert_eq!(h.state("y"), Some(TaskState::Memory));
    assert!(!out
        .iter()
        .any(|m| matches!(m, Outgoing::Client(_, ToClient::KeyLost { .. }))));
    h.release(C1, &["x", "y", "z"]);
    h.finish(2, "z");
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn the_last_worker_holding_data_is_not_retired() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.finish(1, "x");
    h.take();
    h.client(
        C1,
        FromClient::RetireWorkers {
            request_id: 1,
            workers: vec!["a".into()],
        },
    );
    match h.to_client(C1)[..] {
        [ToClient::RetireWorkersDone {
            retired,
            error: Some(e),
            ..
        }] => {
            assert!(retired.is_empty());
            assert!(e.contains("no other worker"), "{e}");
        }
        ref other => panic!("{other:?}"),
    }
    assert_eq!(h.s.worker_count(), 1);
    // It still runs tasks.
    h.take();
    h.submit(C1, vec![spec("y", "inc", &[])], &["y"]);
    assert_eq!(h.computes(1), vec!["y"]);
}

#[test]
fn a_worker_retiring_itself_with_nothing_unique_closes_at_once() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.take();
    h.worker_sends(1, FromWorker::RetireMe);
    assert!(h
        .take()
        .iter()
        .any(|m| matches!(m, Outgoing::Worker(WorkerId(1), ToWorker::Close { .. }))));
    assert_eq!(h.s.worker_count(), 1);
}

/// Issue 9 §6: after a rebalance moved a key from a to b (a told to free
/// its copy), retiring b asks a to take the key back; a's `AddKeys` must be
/// accepted (the `AcquireReplicas` follows the `FreeKeys` on a's connection),
/// or the retirement never completes.
#[test]
fn retiring_the_receiver_of_a_rebalance_moves_its_keys_back() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    let ks: Vec<TaskSpec> = (0..2).map(|i| restricted(&format!("k{i}"), "inc", &[], "a")).collect();
    h.submit(C1, ks, &["k0", "k1"]);
    for i in 0..2 {
        h.worker_sends(1, finished(&format!("k{i}"), 1000, 10));
    }
    h.take();
    h.client(
        C1,
        FromClient::Rebalance {
            request_id: 1,
            keys: Vec::new(),
        },
    );
    let moved: Vec<String> = h
        .take()
        .into_iter()
        .filter_map(|m| match m {
            Outgoing::Worker(WorkerId(2), ToWorker::AcquireReplicas { keys }) => Some(keys),
            _ => None,
        })
        .flatten()
        .map(|d| d.key)
        .collect();
    assert_eq!(moved.len(), 1, "{moved:?}");
    let key = moved[0].clone();
    h.worker_sends(
        2,
        FromWorker::AddKeys {
            keys: vec![(key.clone(), 1000)],
        },
    );
    assert_eq!(h.freed(1), vec![key.clone()]);
    h.take();
    // Retire b, the only holder of `key` now: a is asked to fetch it back.
    h.client(
        C1,
        FromClient::RetireWorkers {
            request_id: 2,
            workers: vec!["b".into()],
        },
    );
    let asked: Vec<String> = h
        .take()
        .into_iter()
        .filter_map(|m| match m {
            Outgoing::Worker(WorkerId(1), ToWorker::AcquireReplicas { keys }) => Some(keys),
            _ => None,
        })
        .flatten()
        .map(|d| d.key)
        .collect();
    assert_eq!(asked, vec![key.clone()]);
    h.worker_sends(
        1,
        FromWorker::AddKeys {
            keys: vec![(key.clone(), 1000)],
        },
    );
    assert!(h.freed(1).is_empty(), "a's copy refused: {:?}", h.out);
    assert!(
        h.out.iter().any(|m| matches!(m,
            Outgoing::Client(C1, ToClient::RetireWorkersDone { request_id: 2, retired, error: None })
                if retired == &["b".to_string()])),
        "{:?}",
        h.out
    );
    assert_eq!(h.s.worker_count(), 1);
    let t = h.s.task_id(&key).expect("a known key");
    assert_eq!(h.s.addresses(&h.s.slot(t).who_has), vec!["tcp://a:1".to_string()]);
}
