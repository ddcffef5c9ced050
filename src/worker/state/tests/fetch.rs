//! Fetching dependencies and replicas from peers.

use super::*;
use WorkerTaskState::*;

#[test]
fn replicas_are_fetched_held_and_announced() {
    let mut ws = WorkerState::new(cfg(1));
    let loc = |k: &str| DependencyLocation {
        key: k.into(),
        who_has: vec!["tcp://old:1".into()],
        nbytes: 1,
    };
    let mut out = Vec::new();
    ws.handle_scheduler(
        ToWorker::StoreData {
            data: vec![("here".into(), Payload(b("h")))],
        },
        &mut out,
    )
    .unwrap();
    let out = send(
        &mut ws,
        ToWorker::AcquireReplicas {
            keys: vec![loc("x"), loc("here")],
        },
    );
    assert_eq!(fetches(&out), vec![("tcp://old:1".to_string(), keys(&["x"]))]);
    assert_eq!(
        sent(&out),
        vec![FromWorker::AddKeys {
            keys: vec![("here".into(), 1)]
        }]
    );
    let out = fetched(&mut ws, "tcp://old:1", &[("x", Some("xx"))]);
    assert_eq!(
        sent(&out),
        vec![FromWorker::AddKeys {
            keys: vec![("x".into(), 2)]
        }]
    );
    // Held: kept with no local reader until the scheduler frees it.
    assert_eq!(ws.task_state("x"), Some(WorkerTaskState::Memory));
    free(&mut ws, &["x", "here"]);
    assert_eq!(ws.ntasks(), 0);
}

#[test]
fn dependency_is_fetched_stored_reported_then_task_runs() {
    let mut ws = WorkerState::new(cfg(1));
    let out = send(&mut ws, compute("t", &[("d", &["tcp://p"])], 0, 0));
    assert_eq!(fetches(&out), vec![("tcp://p".to_string(), keys(&["d"]))]);
    assert_eq!(ws.task_state("t"), Some(Waiting));
    assert_eq!(ws.task_state("d"), Some(Flight));
    let out = fetched(&mut ws, "tcp://p", &[("d", Some("dval"))]);
    assert_eq!(
        out[0],
        WorkerEffect::StorePut {
            key: "d".into(),
            data: b("dval")
        }
    );
    assert_eq!(executes(&out), keys(&["t"]));
    assert_eq!(
        sent(&out),
        vec![FromWorker::AddKeys {
            keys: vec![("d".into(), 4)]
        }]
    );
    assert_eq!(ws.task_state("d"), Some(Memory));
    finish(&mut ws, "t", Ok(b("r")));
    // The scheduler decides when the fetched copy goes.
    assert_eq!(ws.task_state("d"), Some(Memory));
}

#[test]
fn keys_held_by_one_peer_come_in_one_request() {
    let mut ws = WorkerState::new(cfg(1));
    let out = send(
        &mut ws,
        compute("t", &[("d1", &["tcp://a", "tcp://b"]), ("d2", &["tcp://b"])], 0, 0),
    );
    assert_eq!(fetches(&out), vec![("tcp://b".to_string(), keys(&["d1", "d2"]))]);
    // Both keys are in flight: a second task reading them fetches nothing.
    let out = send(
        &mut ws,
        compute("u", &[("d1", &["tcp://a"]), ("d2", &["tcp://a"])], 0, 1),
    );
    assert!(fetches(&out).is_empty());
    let out = fetched(&mut ws, "tcp://b", &[("d1", Some("1")), ("d2", Some("2"))]);
    assert_eq!(executes(&out), keys(&["t"]));
    assert_eq!(ws.ready_count(), 1);
}

#[test]
fn missing_data_is_reported_and_other_holder_tried() {
    let mut ws = WorkerState::new(cfg(1));
    let out = send(&mut ws, compute("t", &[("d", &["tcp://a", "tcp://b"])], 0, 0));
    let (w1, _) = fetches(&out).remove(0);
    let other = if w1 == "tcp://a" { "tcp://b" } else { "tcp://a" };
    let out = fetched(&mut ws, &w1, &[("d", None)]);
    assert_eq!(sent(&out), vec![missing("d", &w1)]);
    assert_eq!(fetches(&out), vec![(other.to_string(), keys(&["d"]))]);
    // The last holder lacks it too: stay in fetch and wait, no spinning.
    let out = fetched(&mut ws, other, &[]);
    assert_eq!(sent(&out), vec![missing("d", other)]);
    assert!(fetches(&out).is_empty());
    assert_eq!(ws.task_state("d"), Some(Fetch));
    // The scheduler reschedules: frees the dependent, which drops d.
    free(&mut ws, &["t"]);
    assert_eq!(ws.ntasks(), 0);
}

#[test]
fn fetch_failure_reports_every_key_and_moves_on() {
    let mut ws = WorkerState::new(cfg(1));
    let out = send(
        &mut ws,
        compute(
            "t",
            &[("d1", &["tcp://dead", "tcp://ok"]), ("d2", &["tcp://dead"])],
            0,
            0,
        ),
    );
    assert_eq!(fetches(&out), vec![("tcp://dead".to_string(), keys(&["d1", "d2"]))]);
    let mut out = Vec::new();
    ws.fetch_failed("tcp://dead", keys(&["d1", "d2"]), &mut out);
    ws.check_invariants();
    assert_eq!(
        sent(&out),
        vec![missing("d1", "tcp://dead"), missing("d2", "tcp://dead")]
    );
    assert_eq!(fetches(&out), vec![("tcp://ok".to_string(), keys(&["d1"]))]);
    assert_eq!(ws.task_state("d2"), Some(Fetch));
    // New holders named by a later ComputeTask are used.
    let out = send(&mut ws, compute("u", &[("d2", &["tcp://new"])], 0, 1));
    assert_eq!(fetches(&out), vec![("tcp://new".to_string(), keys(&["d2"]))]);
}

#[test]
fn concurrent_fetches_are_capped() {
    let mut ws = WorkerState::new(WorkerStateConfig {
        max_concurrent_fetches: 2,
        ..cfg(1)
    });
    let out = send(
        &mut ws,
        compute(
            "t",
            &[("a", &["tcp://1"]), ("b", &["tcp://2"]), ("c", &["tcp://3"])],
            0,
            0,
        ),
    );
    assert_eq!(fetches(&out).len(), 2);
    let (w, ks) = fetches(&out).remove(0);
    let out = fetched(&mut ws, &w, &[(&ks[0], Some("x"))]);
    assert_eq!(fetches(&out), vec![("tcp://3".to_string(), keys(&["c"]))]);
}
