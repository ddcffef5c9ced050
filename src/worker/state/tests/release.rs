//! Freeing keys, cancelled work, stored data, and stale input.

use super::*;
use WorkerTaskState::*;

#[test]
fn freeing_an_executing_task_drops_its_result() {
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("a", &[], 0, 0));
    send(&mut ws, compute("b", &[], 0, 1));
    assert!(free(&mut ws, &["a"]).is_empty());
    assert_eq!(ws.task_state("a"), Some(Cancelled));
    assert_eq!(ws.executing_count(), 1);
    let out = finish(&mut ws, "a", Ok(b("late")));
    assert_eq!(executes(&out), keys(&["b"]));
    assert_eq!(started(&out), vec![vec![run_of(1)]]);
    assert_eq!(out.len(), 2, "no StorePut or TaskFinished for a: {out:?}");
    assert_eq!(ws.task_state("a"), None);
    // A failure of a cancelled run is dropped too.
    free(&mut ws, &["b"]);
    let out = finish(
        &mut ws,
        "b",
        Err(TaskFailure {
            kind: ErrorKind::Failed,
            message: "x".into(),
        }),
    );
    assert!(out.is_empty());
    assert_eq!(ws.ntasks(), 0);
}

#[test]
fn cancelled_task_resumes_when_asked_again() {
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("a", &[], 0, 0));
    free(&mut ws, &["a"]);
    assert!(send(&mut ws, compute("a", &[], 0, 1)).is_empty());
    assert_eq!(ws.task_state("a"), Some(Executing));
    let out = finish(&mut ws, "a", Ok(b("v")));
    assert_eq!(sent(&out).len(), 1);
}

#[test]
fn freeing_memory_deletes_in_one_effect() {
    let mut ws = WorkerState::new(cfg(2));
    send(&mut ws, compute("a", &[], 0, 0));
    send(&mut ws, compute("b", &[], 0, 1));
    finish(&mut ws, "a", Ok(b("1")));
    finish(&mut ws, "b", Ok(b("2")));
    let out = free(&mut ws, &["a", "b", "unknown"]);
    assert_eq!(
        out,
        vec![WorkerEffect::StoreDelete {
            keys: keys(&["a", "b"])
        }]
    );
    assert_eq!((ws.ntasks(), ws.nkeys_in_memory(), ws.nbytes_in_memory()), (0, 0, 0));
}

#[test]
fn dependency_freed_early_is_kept_until_its_reader_finishes() {
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("blocker", &[], 0, 0));
    send(
        &mut ws,
        ToWorker::StoreData {
            data: vec![("d".into(), Payload(b("dd")))],
        },
    );
    send(&mut ws, compute("t", &[("d", &["tcp://me"])], 0, 1));
    assert_eq!(ws.task_state("t"), Some(Ready));
    assert!(free(&mut ws, &["d"]).is_empty());
    assert_eq!(ws.task_state("d"), Some(Memory));
    let out = finish(&mut ws, "blocker", Ok(b("x")));
    assert_eq!(executes(&out), keys(&["t"]));
    let out = finish(&mut ws, "t", Ok(b("y")));
    assert!(out.contains(&WorkerEffect::StoreDelete { keys: keys(&["d"]) }));
    assert_eq!(ws.task_state("d"), None);
}

#[test]
fn freeing_a_reader_drops_its_fetches_and_flights() {
    let mut ws = WorkerState::new(WorkerStateConfig {
        max_concurrent_fetches: 1,
        ..cfg(1)
    });
    send(
        &mut ws,
        compute("t", &[("f1", &["tcp://a"]), ("f2", &["tcp://b"])], 0, 0),
    );
    let (in_flight, queued) = if ws.task_state("f1") == Some(Flight) {
        ("f1", "f2")
    } else {
        ("f2", "f1")
    };
    assert_eq!(ws.task_state(queued), Some(Fetch));
    free(&mut ws, &["t"]);
    assert_eq!(ws.task_state(queued), None);
    assert_eq!(ws.task_state(in_flight), Some(Cancelled));
    let w = if in_flight == "f1" { "tcp://a" } else { "tcp://b" };
    let out = fetched(&mut ws, w, &[(in_flight, Some("late"))]);
    assert!(out.is_empty(), "arriving data dropped: {out:?}");
    assert_eq!(ws.ntasks(), 0);
}

#[test]
fn store_data_puts_and_wakes_waiters() {
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("t", &[("d", &["tcp://p"])], 0, 0));
    let out = send(
        &mut ws,
        ToWorker::StoreData {
            data: vec![("d".into(), Payload(b("abc")))],
        },
    );
    assert_eq!(
        out[0],
        WorkerEffect::StorePut {
            key: "d".into(),
            data: b("abc")
        }
    );
    assert_eq!(executes(&out), keys(&["t"]));
    // Confirmed to the scheduler, which answers the scatter only then.
    assert_eq!(
        sent(&out),
        vec![FromWorker::AddKeys {
            keys: vec![("d".into(), 3)]
        }]
    );
    // The outstanding fetch's answer is stale now and ignored.
    let out = fetched(&mut ws, "tcp://p", &[("d", Some("old"))]);
    assert!(out.is_empty());
    assert_eq!(ws.nbytes_in_memory(), 3);
}

#[test]
fn stale_and_foreign_input_is_ignored() {
    let mut ws = WorkerState::new(cfg(1));
    let mut out = Vec::new();
    ws.task_finished("nope".into(), Ok(b("x")), 1, 0, &mut out);
    ws.fetch_finished("tcp://x", vec![("nope".into(), Some(b("x")))], &mut out);
    ws.fetch_failed("tcp://x", keys(&["nope"]), &mut out);
    ws.handle_scheduler(ToWorker::FreeKeys { keys: keys(&["nope"]) }, &mut out)
        .unwrap();
    assert!(out.is_empty());
    assert!(ws
        .handle_scheduler(ToWorker::Close { reason: String::new() }, &mut out)
        .is_err());
    assert!(ws
        .handle_scheduler(
            ToWorker::Registered {
                worker_id: 1,
                heartbeat_ms: 1
            },
            &mut out
        )
        .is_err());
    // A task finishing twice frees one slot only.
    send(&mut ws, compute("a", &[], 0, 0));
    finish(&mut ws, "a", Ok(b("x")));
    finish(&mut ws, "a", Ok(b("y")));
    assert_eq!(ws.executing_count(), 0);
}

#[test]
fn nothing_leaks_after_freeing_everything() {
    let mut ws = WorkerState::new(cfg(1));
    send(
        &mut ws,
        ToWorker::StoreData {
            data: vec![("s".into(), Payload(b("s")))],
        },
    );
    send(&mut ws, compute("a", &[("s", &["tcp://me"])], 0, 0));
    send(&mut ws, compute("b", &[("a", &[]), ("r", &["tcp://p"])], 0, 1));
    send(&mut ws, compute("c", &[("b", &[])], 0, 2));
    send(&mut ws, compute("e", &[("lost", &[])], 0, 3));
    fetched(&mut ws, "tcp://p", &[("r", Some("r"))]);
    finish(&mut ws, "a", Ok(b("a")));
    // Free in an unhelpful order, mid-run: b is on a thread, and keeps
    // what it reads until it returns.
    let out = free(&mut ws, &["s", "r", "a", "c", "b", "e", "lost"]);
    assert_eq!(out, vec![WorkerEffect::StoreDelete { keys: keys(&["s"]) }]);
    assert_eq!(ws.task_state("b"), Some(Cancelled));
    assert_eq!(ws.ntasks(), 3);
    let out = finish(&mut ws, "b", Ok(b("b")));
    assert_eq!(
        out,
        vec![WorkerEffect::StoreDelete {
            keys: keys(&["a", "r"])
        }]
    );
    assert_eq!(ws.ntasks(), 0);
    assert!(ws.ready.is_empty() && ws.fetch_queue.by_worker.is_empty());
    assert!(ws.in_flight.is_empty());
}

#[test]
fn losing_the_scheduler_keeps_results_and_drops_everything_else() {
    let mut ws = WorkerState::new(cfg(1));
    send(&mut ws, compute("a", &[], 0, 0));
    finish(&mut ws, "a", Ok(b("va")));
    // b runs; c waits for a thread; d waits for a dependency from a peer.
    send(&mut ws, compute("b", &[], 0, 1));
    send(&mut ws, compute("c", &[("a", &[])], 0, 2));
    send(&mut ws, compute("d", &[("x", &["tcp://peer:1"])], 0, 3));
    let mut out = Vec::new();
    ws.scheduler_lost(&mut out);
    ws.check_invariants();
    assert_eq!(ws.held_keys(), vec![("a".to_string(), 2)]);
    assert_eq!(ws.task_state("b"), Some(Cancelled), "a thread cannot be recalled");
    assert_eq!(ws.task_state("c"), None);
    assert_eq!(ws.task_state("d"), None);
    // The run that was under way ends; its result is not kept or sent.
    let out = finish(&mut ws, "b", Ok(b("vb")));
    assert!(sent(&out).is_empty(), "{out:?}");
    assert_eq!(ws.held_keys(), vec![("a".to_string(), 2)]);
}
