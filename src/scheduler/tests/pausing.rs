//! Paused workers (`WorkerStatus`): no new tasks, tasks moved off after
//! the paused-worker timeout, clients told when only paused workers could
//! run a task.

use super::helpers::*;
use crate::wire::messages::WorkerStatus;

fn status(h: &mut H, w: u64, status: WorkerStatus) {
    h.worker_sends(w, FromWorker::WorkerStatus { status, reason: None });
}

/// The paused-worker timer firing for worker `w`'s current pause.
fn timer_fires(h: &mut H, w: u64) -> Option<crate::scheduler::PausedMoves> {
    let serial = h.s.pause_serial(WorkerId(w))?;
    let mut o = Outbox::default();
    let moves = h.s.move_off_paused_worker(WorkerId(w), serial, &mut o);
    h.absorb(o);
    moves
}

fn steal_requests(out: &[Outgoing], w: u64) -> Vec<String> {
    out.iter()
        .filter_map(|m| match m {
            Outgoing::Worker(id, ToWorker::StealRequest { key }) if id.0 == w => Some(key.clone()),
            _ => None,
        })
        .collect()
}

fn statuses(h: &H) -> Vec<(String, WorkerStatus)> {
    h.s.info().workers.into_iter().map(|w| (w.name, w.status)).collect()
}

#[test]
fn a_paused_worker_gets_no_new_task_until_it_resumes() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    status(&mut h, 1, WorkerStatus::Paused);
    assert_eq!(
        statuses(&h),
        [("a".into(), WorkerStatus::Paused), ("b".into(), WorkerStatus::Running)]
    );
    // Roots and a dependent of a result a holds: all go to b or wait.
    let ts: Vec<TaskSpec> = (0..6).map(|i| spec(&format!("t{i}"), "inc", &[])).collect();
    h.submit(C1, ts, &["t0", "t1", "t2", "t3", "t4", "t5"]);
    let out = h.take();
    assert!(
        out.iter()
            .all(|m| !matches!(m, Outgoing::Worker(WorkerId(1), ToWorker::ComputeTask { .. }))),
        "{out:?}"
    );
    let on_b = out
        .iter()
        .filter(|m| matches!(m, Outgoing::Worker(WorkerId(2), ToWorker::ComputeTask { .. })))
        .count();
    assert!(on_b > 0);
    assert_eq!(h.s.info().tasks_by_state[3], ("queued".into(), 6 - on_b as u64));
    // Resumed, a takes queued tasks again.
    status(&mut h, 1, WorkerStatus::Running);
    assert!(!h.computes(1).is_empty());
    assert_eq!(statuses(&h)[0].1, WorkerStatus::Running);
    // A repeated status changes nothing.
    status(&mut h, 1, WorkerStatus::Running);
    assert!(h.take().is_empty());
}

#[test]
fn a_task_only_paused_workers_could_run_waits_in_no_worker_with_the_reason() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    status(&mut h, 1, WorkerStatus::Paused);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    match h.to_client(C1)[..] {
        [ToClient::NoWorker { key, reason: why, .. }] => {
            assert_eq!(key, "x");
            assert!(why.contains("is paused") && why.ends_with(": a"), "{why}");
        }
        ref other => panic!("{other:?}"),
    }
    h.take();
    status(&mut h, 1, WorkerStatus::Running);
    assert_eq!(h.computes(1), vec!["x".to_string()]);
    // A task restricted to a paused worker, while a running one has the
    // function, is not blamed on the pause.
    h.worker(2, "b", &["inc"]);
    status(&mut h, 1, WorkerStatus::Paused);
    h.take();
    h.submit(C1, vec![restricted("y", "inc", &[], "a")], &["y"]);
    assert_eq!(h.state("y"), Some(TaskState::NoWorker));
    assert!(matches!(
        h.to_client(C1)[..],
        [ToClient::NoWorker { reason, .. }] if !reason.contains("paused") && reason.contains("restrictions")
    ));
}

#[test]
fn after_the_timeout_the_tasks_a_paused_worker_has_not_started_move_elsewhere() {
    let mut h = H::new();
    h.worker(1, "a", &["inc", "slow"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.worker_sends(1, finished("x", 8, 10));
    h.take();
    // Dependents of x go to a, which holds it.
    let ts: Vec<TaskSpec> = (0..4).map(|i| spec(&format!("t{i}"), "slow", &["x"])).collect();
    h.submit(C1, ts, &["t0", "t1", "t2", "t3"]);
    assert_eq!(h.computes(1).len(), 4);
    h.worker_sends(
        1,
        FromWorker::TasksStarted {
            keys: vec!["t0".into()],
            run_ids: Vec::new(),
        },
    );
    h.worker(2, "b", &["inc", "slow"]);
    status(&mut h, 1, WorkerStatus::Paused);
    h.take();
    let moves = timer_fires(&mut h, 1).expect("still paused");
    assert_eq!((moves.worker.as_str(), moves.asked, moves.kept), ("a", 3, 1));
    let asked = steal_requests(&h.take(), 1);
    assert_eq!(asked, ["t1", "t2", "t3"]);
    // a gave up t1 and t2; t3 was already on a thread.
    for (key, stolen) in [("t1", true), ("t2", true), ("t3", false)] {
        h.worker_sends(
            1,
            FromWorker::StealResponse {
                key: key.into(),
                stolen,
            },
        );
    }
    assert_eq!(h.computes(2), ["t1", "t2"]);
    assert_eq!(h.state("t3"), Some(TaskState::Processing));
    // Once a reports t3 started, nothing is left to move.
    h.worker_sends(
        1,
        FromWorker::TasksStarted {
            keys: vec!["t3".into()],
            run_ids: Vec::new(),
        },
    );
    let again = timer_fires(&mut h, 1).expect("still paused");
    assert_eq!((again.asked, again.kept), (0, 2));
}

#[test]
fn with_no_running_worker_the_moved_tasks_wait_in_no_worker_and_clients_are_told() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    assert_eq!(h.computes(1), ["x"]);
    status(&mut h, 1, WorkerStatus::Paused);
    timer_fires(&mut h, 1).expect("paused");
    assert_eq!(steal_requests(&h.take(), 1), ["x"]);
    h.worker_sends(
        1,
        FromWorker::StealResponse {
            key: "x".into(),
            stolen: true,
        },
    );
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    assert!(matches!(
        h.to_client(C1)[..],
        [ToClient::NoWorker { reason, .. }] if reason.contains("paused")
    ));
    h.take();
    status(&mut h, 1, WorkerStatus::Running);
    assert_eq!(h.computes(1), ["x"]);
}

#[test]
fn a_timer_of_an_earlier_pause_does_nothing() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.take();
    status(&mut h, 1, WorkerStatus::Paused);
    let first = h.s.pause_serial(WorkerId(1)).expect("paused");
    status(&mut h, 1, WorkerStatus::Running);
    assert_eq!(h.s.pause_serial(WorkerId(1)), None);
    let mut o = Outbox::default();
    assert_eq!(h.s.move_off_paused_worker(WorkerId(1), first, &mut o), None);
    status(&mut h, 1, WorkerStatus::Paused);
    assert_eq!(h.s.move_off_paused_worker(WorkerId(1), first, &mut o), None);
    assert!(o.messages.is_empty());
    // Nor for a worker that left.
    let current = h.s.pause_serial(WorkerId(1)).expect("paused again");
    h.kill(1);
    assert_eq!(h.s.move_off_paused_worker(WorkerId(1), current, &mut o), None);
}

#[test]
fn a_paused_worker_can_retire_and_does_not_offer_functions_again() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    status(&mut h, 1, WorkerStatus::Paused);
    h.client(
        C1,
        FromClient::RetireWorkers {
            request_id: 1,
            workers: vec!["a".into()],
        },
    );
    // It held nothing: closed at once. A status from a retiring worker
    // still connected would be ignored; here it is gone.
    assert_eq!(h.s.worker_count(), 1);
    // Retiring while paused and with work: its functions stay dropped.
    h.worker(3, "c", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    let on = h
        .take()
        .into_iter()
        .find_map(|m| match m {
            Outgoing::Worker(id, ToWorker::ComputeTask { .. }) => Some(id.0),
            _ => None,
        })
        .expect("x assigned");
    status(&mut h, on, WorkerStatus::Paused);
    let name = if on == 2 { "b" } else { "c" };
    h.client(
        C1,
        FromClient::RetireWorkers {
            request_id: 2,
            workers: vec![name.into()],
        },
    );
    status(&mut h, on, WorkerStatus::Running);
    assert_eq!(h.s.pause_serial(WorkerId(on)), None);
    // The invariants (checked after every event) hold: a retiring worker
    // offers no function, resumed or not.
    h.submit(C1, vec![spec("y", "inc", &[])], &["y"]);
    assert!(h.computes(on).is_empty());
}
