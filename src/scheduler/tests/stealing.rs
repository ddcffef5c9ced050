//! Work stealing by confirmed hand-over.

use super::helpers::*;

#[test]
fn stealing_moves_a_task_only_when_the_victim_confirms() {
    let mut h = H::new();
    h.worker(1, "a", &["inc", "slow"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.worker_sends(1, finished("x", 8, 10));
    h.take();
    let ts: Vec<TaskSpec> = (0..10).map(|i| spec(&format!("t{i}"), "slow", &["x"])).collect();
    let keys: Vec<String> = ts.iter().map(|t| t.key.clone()).collect();
    let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    h.submit(C1, ts, &wanted);
    assert_eq!(h.computes(1).len(), 10);
    h.worker_sends(
        1,
        FromWorker::TasksStarted {
            keys: vec!["t0".into()],
            run_ids: Vec::new(),
        },
    );
    h.worker(2, "b", &["inc", "slow"]);
    h.take();
    let mut o = Outbox::default();
    h.s.balance(&mut o);
    let asked: Vec<String> = o
        .messages
        .iter()
        .filter_map(|m| match m {
            Outgoing::Worker(WorkerId(1), ToWorker::StealRequest { key }) => Some(key.clone()),
            _ => None,
        })
        .collect();
    // b's capacity: ceil(1 × 1.1) = 2; latest submitted first; never
    // the task a reported started.
    assert_eq!(asked, vec!["t9".to_string(), "t8".to_string()]);
    assert_eq!(o.messages.len(), 2);
    // Requests pending: a second round asks nothing more.
    let mut o = Outbox::default();
    h.s.balance(&mut o);
    assert!(o.messages.is_empty(), "{:?}", o.messages);
    // t9 had not started: it moves to b. t8 had: it stays on a.
    h.worker_sends(
        1,
        FromWorker::StealResponse {
            key: "t9".into(),
            stolen: true,
        },
    );
    assert_eq!(h.computes(2), vec!["t9".to_string()]);
    h.worker_sends(
        1,
        FromWorker::StealResponse {
            key: "t8".into(),
            stolen: false,
        },
    );
    assert!(h.take().is_empty());
    assert_eq!(h.state("t8"), Some(TaskState::Processing));
    assert!(h.s.worker(WIdx(0)).processing.keys().any(|&t| h.s.slot(t).key == "t8"));
    // An answer nobody asked for changes nothing.
    h.worker_sends(
        1,
        FromWorker::StealResponse {
            key: "t7".into(),
            stolen: true,
        },
    );
    assert!(h.take().is_empty());
    assert!(h.s.worker(WIdx(0)).processing.keys().any(|&t| h.s.slot(t).key == "t7"));
    // A late report from a about t9 (now b's) is refused.
    h.worker_sends(1, finished("t9", 8, 10));
    assert_eq!(h.freed(1), vec!["t9".to_string()]);
    assert_eq!(h.state("t9"), Some(TaskState::Processing));
    h.worker_sends(2, finished("t9", 8, 10));
    assert_eq!(h.state("t9"), Some(TaskState::Memory));
}

#[test]
fn stealing_skips_tasks_whose_inputs_cost_more_to_move_than_to_wait_for() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    // 100 MB: 0.1 s to move, tasks measured at 10 µs.
    h.worker_sends(1, finished("x", 100_000_000, 10));
    h.take();
    let ts: Vec<TaskSpec> = (0..10).map(|i| spec(&format!("t{i}"), "inc", &["x"])).collect();
    let keys: Vec<String> = ts.iter().map(|t| t.key.clone()).collect();
    let wanted: Vec<&str> = keys.iter().map(|k| k.as_str()).collect();
    // Wanted, so they are really processing on a (a graph nobody wants is
    // not run, and would pass this test for no reason).
    h.submit(C1, ts, &wanted);
    assert_eq!(h.computes(1).len(), 10);
    h.worker(2, "b", &["inc"]);
    h.take();
    let mut o = Outbox::default();
    h.s.balance(&mut o);
    assert!(o.messages.is_empty(), "{:?}", o.messages);
}

/// The thief's transfer cost is its inputs' fetch alone, whatever the
/// thief already runs: a two-thread thief with one thread on a long task
/// must not look as if moving 1 s of bytes were free (the fetch was once
/// taken as the start estimate minus the thief's whole occupancy, though
/// the estimate counts occupancy per thread).
#[test]
fn a_busy_thiefs_occupancy_does_not_make_a_transfer_look_free() {
    let mut h = H::new();
    h.worker(1, "a", &["inc", "mid", "long"]);
    let mut o = Outbox::default();
    h.s.add_worker(WorkerId(2), reg_with("b", &["inc", "mid", "long"], 2, &[]), &mut o)
        .unwrap();
    h.absorb(o);
    // `long` measured at 20 s, and one running on b: b has a thread free
    // and 20 s of occupancy.
    h.submit(C1, vec![restricted("l0", "long", &[], "b")], &["l0"]);
    h.worker_sends(2, finished("l0", 8, 20_000_000));
    h.submit(C1, vec![restricted("l1", "long", &[], "b")], &["l1"]);
    // `mid` measured at 1.5 s; its input x takes 1 s to move.
    h.submit(C1, vec![restricted("m0", "mid", &[], "a")], &["m0"]);
    h.worker_sends(1, finished("m0", 8, 1_500_000));
    let one_second = h.s.bandwidth as u64;
    h.submit(C1, vec![restricted("x", "inc", &[], "a")], &["x"]);
    h.worker_sends(1, finished("x", one_second, 10));
    let ts: Vec<TaskSpec> = (0..6)
        .map(|i| restricted(&format!("t{i}"), "mid", &["x"], "a"))
        .collect();
    let ts: Vec<TaskSpec> = ts
        .into_iter()
        .map(|t| TaskSpec {
            workers: Vec::new(),
            ..t
        })
        .collect();
    h.take();
    h.submit(C1, ts, &["t0", "t1", "t2", "t3", "t4", "t5"]);
    assert_eq!(h.computes(1).len(), 6, "the mid tasks queue where x is");
    h.take();
    let mut o = Outbox::default();
    h.s.balance(&mut o);
    assert!(
        o.messages.is_empty(),
        "1.5 s of compute stolen over 1 s of transfer: {:?}",
        o.messages
    );
}
