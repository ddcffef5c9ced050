//! Run ids: a completion counts only for the run the scheduler waits for
//! (`ComputeTask::run_id` echoed in `TaskFinished` / `TaskErred`), so stale
//! completions are refused exactly, with no guessing from who sent them.

use super::helpers::*;

fn finished_run(key: &str, run_id: u64) -> FromWorker {
    FromWorker::TaskFinished {
        key: key.into(),
        nbytes: 8,
        inline: None,
        duration_us: 10,
        thread: 0,
        run_id,
    }
}

fn in_memory_news(h: &H, c: ClientId, key: &str) -> usize {
    h.to_client(c)
        .iter()
        .filter(|m| matches!(m, ToClient::KeyInMemory { key: k, .. } if k == key))
        .count()
}

/// A steals `t` from `a` (confirmed); a's late completion of its old run,
/// and a completion carrying that old run id from anywhere, are refused.
#[test]
fn steal_then_late_completion_from_the_old_worker_is_rejected() {
    let mut h = H::new();
    h.worker(1, "a", &["inc", "slow"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.finish(1, "x");
    h.take();
    // Not root tasks: all four go to a at once.
    let ts: Vec<TaskSpec> = (0..4).map(|i| spec(&format!("t{i}"), "slow", &["x"])).collect();
    h.submit(C1, ts, &["t0", "t1", "t2", "t3"]);
    assert_eq!(h.computes(1).len(), 4);
    h.worker(2, "b", &["inc", "slow"]);
    h.take();
    let mut o = Outbox::default();
    h.s.balance(&mut o);
    let asked = o.messages.iter().find_map(|m| match m {
        Outgoing::Worker(WorkerId(1), ToWorker::StealRequest { key }) => Some(key.clone()),
        _ => None,
    });
    let t = asked.expect("a steal request to a");
    let old = h.run_on(1, &t);
    assert_ne!(old, 0);
    h.worker_sends(
        1,
        FromWorker::StealResponse {
            key: t.clone(),
            stolen: true,
        },
    );
    assert_eq!(h.computes(2), vec![t.clone()]);
    let new = h.run_on(2, &t);
    assert!(new > old, "a new run id for the thief: {old} then {new}");
    // a's completion of the old run arrives late: refused, a drops it.
    h.worker_sends(1, finished_run(&t, old));
    assert_eq!(h.state(&t), Some(TaskState::Processing));
    assert_eq!(h.freed(1), vec![t.clone()]);
    // The old run id from the thief itself is not its run either.
    h.take();
    h.worker_sends(2, finished_run(&t, old));
    assert_eq!(h.state(&t), Some(TaskState::Processing));
    assert!(h.freed(2).is_empty(), "the thief's run is not cancelled");
    assert_eq!(in_memory_news(&h, C1, &t), 0);
    // The thief's report of its run is the result.
    h.worker_sends(2, finished_run(&t, new));
    assert_eq!(h.state(&t), Some(TaskState::Memory));
    assert_eq!(in_memory_news(&h, C1, &t), 1);
}

/// Released, then submitted again onto the same worker: the completion of
/// the first run (sent before the worker read its `FreeKeys`) must not be
/// taken for the second run's, whose data the `FreeKeys` is about to delete.
#[test]
fn release_then_recompute_then_stale_completion_is_rejected() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    assert_eq!(h.computes(1), vec!["x".to_string()]);
    let first = h.run_on(1, "x");
    h.release(C1, &["x"]);
    assert_eq!(h.freed(1), vec!["x".to_string()]);
    assert_eq!(h.state("x"), None);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    assert_eq!(h.computes(1), vec!["x".to_string()]);
    let second = h.run_on(1, "x");
    assert_ne!(first, second);
    // The first run's report, sent before the worker read the FreeKeys.
    h.worker_sends(1, finished_run("x", first));
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert!(h.freed(1).is_empty(), "the second run is not cancelled: {:?}", h.out);
    assert_eq!(in_memory_news(&h, C1, "x"), 0);
    // A stale failure of the first run changes nothing either.
    h.worker_sends(
        1,
        FromWorker::TaskErred {
            key: "x".into(),
            failure: failure("the first run failed"),
            run_id: first,
        },
    );
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert!(h.to_client(C1).is_empty(), "{:?}", h.to_client(C1));
    // The second run's report is the result.
    h.worker_sends(1, finished_run("x", second));
    assert_eq!(h.state("x"), Some(TaskState::Memory));
    assert_eq!(in_memory_news(&h, C1, "x"), 1);
    // A repeat of it from the holder changes nothing.
    h.take();
    h.worker_sends(1, finished_run("x", second));
    assert!(h.take().is_empty());
}

/// Every `ComputeTask` gets a run id of its own, also the same key sent
/// to the same worker again after `MissingData`.
#[test]
fn a_resent_compute_task_gets_a_new_run_id() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    let xw = if h.computes(1).is_empty() { 2 } else { 1 };
    h.finish(xw, "x");
    h.submit(C1, vec![spec("y", "inc", &["x"])], &["y"]);
    let yw = if h.computes(1).is_empty() { 2 } else { 1 };
    let before = h.run_on(yw, "y");
    // x is held by xw only; a replica appears on the other worker too,
    // then yw reports xw's copy missing: y is sent again.
    let other = 3 - xw;
    h.worker_sends(
        other,
        FromWorker::AddKeys {
            keys: vec![("x".into(), 8)],
        },
    );
    h.worker_sends(
        yw,
        FromWorker::MissingData {
            key: "x".into(),
            errant_worker: format!("tcp://{}:1", if xw == 1 { "a" } else { "b" }),
        },
    );
    let after_w = if h.run_on(1, "y") > before { 1 } else { 2 };
    let after = h.run_on(after_w, "y");
    assert!(after > before, "resent with a new run id: {before} then {after}");
    assert_eq!(h.state("y"), Some(TaskState::Processing));
    h.worker_sends(after_w, finished_run("y", before));
    assert_eq!(h.state("y"), Some(TaskState::Processing));
    h.worker_sends(after_w, finished_run("y", after));
    assert_eq!(h.state("y"), Some(TaskState::Memory));
}

/// A run id names its task's slot (so a completion skips the key
/// lookup), but only together with its key: once the slot holds another
/// task, a late completion of the old run is told by its key, and a run
/// id naming no slot at all falls back to the key.
#[test]
fn a_run_id_whose_slot_holds_another_task_now_is_told_by_its_key() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    let old = h.run_on(1, "x");
    let x_slot = h.s.task_id("x").expect("x is a task");
    h.release(C1, &["x"]);
    assert_eq!(h.freed(1), vec!["x".to_string()]);
    h.submit(C1, vec![spec("y", "inc", &[])], &["y"]);
    assert_eq!(h.s.task_id("y"), Some(x_slot), "y takes x's freed slot");
    let y_run = h.run_on(1, "y");
    assert_eq!(y_run as u32, old as u32, "both run ids name the slot");
    h.take();
    // x's late completion: not y's, and a holds a copy of x nobody wants.
    h.worker_sends(1, finished_run("x", old));
    assert_eq!(h.state("y"), Some(TaskState::Processing));
    assert_eq!(h.state("x"), None);
    assert_eq!(h.freed(1), vec!["x".to_string()]);
    // y's run id with x's key is no completion of y either.
    h.take();
    h.worker_sends(1, finished_run("x", y_run));
    assert_eq!(h.state("y"), Some(TaskState::Processing));
    assert_eq!(in_memory_news(&h, C1, "y"), 0);
    // A run id naming a slot past the arena: found by key, and stale.
    h.worker_sends(1, finished_run("y", u64::from(u32::MAX)));
    assert_eq!(h.state("y"), Some(TaskState::Processing));
    h.worker_sends(1, finished_run("y", y_run));
    assert_eq!(h.state("y"), Some(TaskState::Memory));
    assert_eq!(in_memory_news(&h, C1, "y"), 1);
}

/// `TasksStarted` naming runs by id marks exactly those runs executing: a
/// run id of a run that is over (the task stolen, or finished) marks
/// nothing, so the worker's death does not blame a task it no longer runs.
#[test]
fn tasks_started_by_run_id_count_only_the_current_run() {
    let mut h = H::with(SchedulerConfig {
        allowed_failures: 0,
        ..Default::default()
    });
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &[])], &["x", "y"]);
    assert_eq!(h.computes(1), vec!["x", "y"]);
    let (rx, ry) = (h.run_on(1, "x"), h.run_on(1, "y"));
    // y's report carries a run id one off from its real one: ignored.
    h.worker_sends(
        1,
        FromWorker::TasksStarted {
            keys: Vec::new(),
            run_ids: vec![rx, ry ^ (1 << 40)],
        },
    );
    h.worker(2, "b", &["inc"]);
    h.take();
    h.kill(1);
    assert_eq!(
        h.state("x"),
        Some(TaskState::Erred),
        "x was reported started by its run id"
    );
    assert_eq!(
        h.state("y"),
        Some(TaskState::Processing),
        "y's report named no current run"
    );
    assert!(matches!(
        h.to_client(C1)[..],
        [ToClient::TaskErred { ref key, .. }] if key == "x"
    ));
}
