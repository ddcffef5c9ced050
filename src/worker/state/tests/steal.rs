//! Steal requests: what a worker gives up.

use super::*;

#[test]
fn only_tasks_not_on_a_thread_are_given_up_to_a_steal() {
    use WorkerTaskState::*;
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("a", &[], 0, 0));
    send(&mut ws, compute("b", &[], 0, 1));
    send(&mut ws, compute("c", &[("d", &["tcp://p:1"])], 0, 2));
    assert_eq!(ws.task_state("a"), Some(Executing));
    assert_eq!(ws.task_state("b"), Some(Ready));
    assert_eq!(ws.task_state("c"), Some(Waiting));
    // On a thread: kept.
    assert_eq!(steal(&mut ws, "a"), steal_answer("a", false));
    assert_eq!(ws.task_state("a"), Some(Executing));
    // Ready: forgotten, never executed.
    assert_eq!(steal(&mut ws, "b"), steal_answer("b", true));
    assert_eq!(ws.task_state("b"), None);
    // Waiting on a fetch in flight: forgotten; the fetch's result is
    // dropped when it lands.
    assert_eq!(steal(&mut ws, "c"), steal_answer("c", true));
    assert_eq!(ws.task_state("c"), None);
    let out = fetched(&mut ws, "tcp://p:1", &[("d", Some("v"))]);
    assert!(executes(&out).is_empty());
    assert_eq!(ws.task_state("d"), None);
    // Unknown, or done: kept (false).
    assert_eq!(steal(&mut ws, "zz"), steal_answer("zz", false));
    let out = finish(&mut ws, "a", Ok(b("1")));
    assert!(executes(&out).is_empty(), "b was given up: {out:?}");
    assert_eq!(steal(&mut ws, "a"), steal_answer("a", false));
    assert_eq!(ws.task_state("a"), Some(Memory));
}

#[test]
fn a_paused_worker_hands_no_task_to_a_thread_so_the_scheduler_can_take_them_back() {
    use WorkerTaskState::*;
    let mut ws = WorkerState::new(cfg(1));
    let mut out = Vec::new();
    ws.set_paused(true, None, &mut out);
    assert_eq!(
        out,
        [WorkerEffect::Send(FromWorker::WorkerStatus {
            status: WorkerStatus::Paused,
            reason: None
        })]
    );
    // Told twice, it reports once.
    let mut out = Vec::new();
    ws.set_paused(true, None, &mut out);
    assert!(out.is_empty());
    // A reason found while paused (its spill directory fails) is reported.
    let why = "cannot spill to /x: Read-only file system (os error 30)".to_string();
    ws.set_paused(true, Some(why.clone()), &mut out);
    assert_eq!(
        out,
        [WorkerEffect::Send(FromWorker::WorkerStatus {
            status: WorkerStatus::Paused,
            reason: Some(why)
        })]
    );
    let out = send(&mut ws, compute("a", &[], 0, 0));
    assert!(executes(&out).is_empty(), "{out:?}");
    send(&mut ws, compute("b", &[], 0, 1));
    assert_eq!((ws.task_state("a"), ws.task_state("b")), (Some(Ready), Some(Ready)));
    // Not on a thread: the scheduler's request after the paused-worker
    // timeout gets it back.
    assert_eq!(steal(&mut ws, "b"), steal_answer("b", true));
    let mut out = Vec::new();
    ws.set_paused(false, None, &mut out);
    ws.check_invariants();
    assert_eq!(
        out[0],
        WorkerEffect::Send(FromWorker::WorkerStatus {
            status: WorkerStatus::Running,
            reason: None
        })
    );
    assert_eq!(executes(&out), ["a"]);
    assert_eq!(ws.task_state("a"), Some(Executing));
}
