//! `Client::restart` in the state machine (`scheduler::restart`): every
//! task forgotten and every future erred, nanny workers restarted and the
//! others closed, the answer once the workers are back or at the timeout.

use std::time::{Duration, Instant};

use super::helpers::*;
use crate::scheduler::restart::RESTART_MESSAGE;
use crate::wire::messages::{CoordItem, CoordOp};

fn nanny_worker(h: &mut H, id: u64, name: &str) {
    let mut o = Outbox::default();
    let r = WorkerRegistration {
        nanny: true,
        ..reg(name, &["inc"])
    };
    h.s.add_worker(WorkerId(id), r, &mut o).unwrap();
    h.absorb(o);
}

fn restart(h: &mut H, c: ClientId, timeout_ms: u64) {
    h.client(
        c,
        FromClient::RestartCluster {
            request_id: 9,
            timeout_ms,
        },
    );
}

/// The restart answers sent to `c`: (workers back, closed, error).
fn answers(h: &H, c: ClientId) -> Vec<(Vec<String>, Vec<String>, Option<String>)> {
    h.to_client(c)
        .into_iter()
        .filter_map(|m| match m {
            ToClient::RestartDone {
                request_id: 9,
                workers,
                closed,
                error,
            } => Some((workers.clone(), closed.clone(), error.clone())),
            _ => None,
        })
        .collect()
}

/// Keys erred for `c` with the restart error.
fn erred_by_restart(h: &H, c: ClientId) -> Vec<String> {
    let mut keys: Vec<String> = h
        .to_client(c)
        .into_iter()
        .filter_map(|m| match m {
            ToClient::TaskErred { key, failure }
                if failure.kind == ErrorKind::Cancelled && failure.message.contains(RESTART_MESSAGE) =>
            {
                Some(key.clone())
            }
            _ => None,
        })
        .collect();
    keys.sort();
    keys
}

#[test]
fn restart_forgets_every_task_errs_every_future_and_restarts_the_nanny_workers() {
    let mut h = H::new();
    nanny_worker(&mut h, 1, "a");
    nanny_worker(&mut h, 2, "b");
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["x", "y"]);
    h.submit(C2, vec![spec("z", "inc", &[])], &["z"]);
    let xw = if h.computes(1).contains(&"x".to_string()) { 1 } else { 2 };
    h.finish(xw, "x");
    assert_eq!(h.state("x"), Some(TaskState::Memory));
    h.take();

    restart(&mut h, C1, 10_000);
    assert_eq!(erred_by_restart(&h, C1), ["x", "y"]);
    assert_eq!(erred_by_restart(&h, C2), ["z"]);
    let restarted: Vec<u64> = h
        .out
        .iter()
        .filter_map(|m| match m {
            Outgoing::Worker(id, ToWorker::RestartWorker { reason }) => {
                assert_eq!(reason, "restart requested by a client");
                Some(id.0)
            }
            _ => None,
        })
        .collect();
    assert_eq!(restarted, [1, 2]);
    assert!(h.s.keys.is_empty(), "every task forgotten");
    assert_eq!(h.s.worker_count(), 0, "the old workers are forgotten at once");
    assert!(answers(&h, C1).is_empty(), "no answer before the workers are back");

    // The old processes go, the new ones register under the same names.
    h.kill(1);
    h.kill(2);
    nanny_worker(&mut h, 3, "a");
    assert!(answers(&h, C1).is_empty());
    nanny_worker(&mut h, 4, "b");
    assert_eq!(
        answers(&h, C1),
        [(vec!["a".to_string(), "b".to_string()], vec![], None)]
    );
    // New tasks (the same keys too) run.
    h.take();
    h.submit(C2, vec![spec("x", "inc", &[])], &["x"]);
    let placed = h.computes(3).len() + h.computes(4).len();
    assert_eq!(placed, 1);
}

#[test]
fn a_worker_without_a_nanny_is_closed_and_named() {
    let mut h = H::new();
    nanny_worker(&mut h, 1, "a");
    h.worker(2, "plain", &["inc"]);
    restart(&mut h, C1, 10_000);
    assert_eq!(h.s.worker_count(), 0, "both are forgotten at once");
    assert!(h.out.iter().any(|m| matches!(
        m,
        Outgoing::Worker(WorkerId(2), ToWorker::Close { reason }) if reason.contains("no nanny")
    )));
    assert!(h
        .out
        .iter()
        .any(|m| matches!(m, Outgoing::Worker(WorkerId(1), ToWorker::RestartWorker { .. }))));
    h.kill(1);
    nanny_worker(&mut h, 3, "a");
    let a = answers(&h, C1);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].0, ["a"]);
    assert_eq!(a[0].1, ["plain"]);
    let e = a[0].2.as_deref().expect("an error");
    assert!(e.contains("plain") && e.contains("no nanny"), "{e}");
}

#[test]
fn workers_that_do_not_come_back_in_time_are_counted_in_the_error() {
    let mut h = H::new();
    nanny_worker(&mut h, 1, "a");
    nanny_worker(&mut h, 2, "b");
    let start = Instant::now();
    restart(&mut h, C1, 1_000);
    h.kill(1);
    h.kill(2);
    nanny_worker(&mut h, 3, "a");
    let mut o = Outbox::default();
    h.s.expire_restarts(start, &mut o);
    h.absorb(o);
    assert!(answers(&h, C1).is_empty(), "not yet at the deadline");
    assert!(h.s.restart_pending());
    let mut o = Outbox::default();
    h.s.expire_restarts(start + Duration::from_secs(2), &mut o);
    h.absorb(o);
    let a = answers(&h, C1);
    assert_eq!(a.len(), 1);
    assert_eq!(a[0].0, ["a"]);
    let e = a[0].2.as_deref().expect("an error");
    assert!(e.contains("only 1 of the 2"), "{e}");
    assert!(!h.s.restart_pending());
}

#[test]
fn an_empty_cluster_restarts_at_once() {
    let mut h = H::new();
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    restart(&mut h, C1, 1_000);
    assert_eq!(erred_by_restart(&h, C1), ["x"]);
    assert_eq!(answers(&h, C1), [(vec![], vec![], None)]);
}

#[test]
fn a_scheduler_with_in_process_workers_refuses_and_forgets_nothing() {
    let mut h = H::with(SchedulerConfig {
        in_process_workers: true,
        ..SchedulerConfig::default()
    });
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.take();
    restart(&mut h, C1, 1_000);
    let a = answers(&h, C1);
    assert_eq!(a.len(), 1);
    assert!(a[0].2.as_deref().is_some_and(|e| e.contains("LocalCluster")), "{a:?}");
    assert!(erred_by_restart(&h, C1).is_empty());
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert!(h.out.iter().all(|m| !matches!(
        m,
        Outgoing::Worker(_, ToWorker::Close { .. } | ToWorker::RestartWorker { .. })
    )));
}

#[test]
fn a_future_held_by_a_variable_fails_once_read_after_a_restart() {
    let mut h = H::new();
    nanny_worker(&mut h, 1, "a");
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.client(
        C1,
        FromClient::Coordinate {
            request_id: 1,
            op: CoordOp::VariableSet {
                name: "v".into(),
                item: CoordItem::Future("x".into()),
            },
        },
    );
    restart(&mut h, C1, 1_000);
    assert!(h.s.keys.is_empty(), "the variable no longer keeps x");
    h.take();
    h.client(
        C2,
        FromClient::Coordinate {
            request_id: 2,
            op: CoordOp::VariableGet {
                name: "v".into(),
                timeout_ms: 0,
            },
        },
    );
    assert_eq!(erred_by_restart(&h, C2), ["x"]);
}
