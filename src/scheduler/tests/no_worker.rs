//! Tasks no worker can run: the reason sent to clients, and the bounds
//! (`no_worker_timeout_s`, `empty_cluster_timeout_s`) after which they err.

use std::time::{Duration, Instant};

use super::helpers::*;

impl H {
    fn expire(&mut self, now: Instant) {
        let mut o = Outbox::default();
        self.s.expire_no_worker(now, &mut o);
        self.absorb(o);
    }
}

fn erred_with(h: &H, c: ClientId, key: &str) -> Option<TaskFailure> {
    h.to_client(c).into_iter().find_map(|m| match m {
        ToClient::TaskErred { key: k, failure } if k == key => Some(failure.clone()),
        _ => None,
    })
}

#[test]
fn a_task_no_connected_worker_has_errs_after_the_no_worker_timeout_with_its_dependents() {
    let mut h = H::with(SchedulerConfig {
        no_worker_timeout_s: 10.0,
        ..SchedulerConfig::default()
    });
    h.worker(1, "a", &["inc"]);
    h.submit(
        C1,
        vec![spec("x", "missing", &[]), spec("y", "inc", &["x"])],
        &["x", "y"],
    );
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    let t0 = Instant::now();
    h.expire(t0);
    h.expire(t0 + Duration::from_secs(9));
    assert_eq!(h.state("x"), Some(TaskState::NoWorker), "erred before its bound");
    assert!(erred_with(&h, C1, "x").is_none());
    h.expire(t0 + Duration::from_secs(11));
    assert_eq!(h.state("x"), Some(TaskState::Erred));
    let f = erred_with(&h, C1, "x").expect("the client is told");
    assert_eq!(f.kind, ErrorKind::NoWorker);
    assert!(f.message.contains("`missing`"), "{}", f.message);
    assert!(f.message.contains("scheduler.no_worker_timeout_s"), "{}", f.message);
    let g = erred_with(&h, C1, "y").expect("the dependent errs too");
    assert_eq!(g.kind, ErrorKind::DependencyFailed);
    assert_eq!(h.state("y"), Some(TaskState::Erred));
}

#[test]
fn a_task_placed_before_its_bound_does_not_err() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "double", &[])], &["x"]);
    let t0 = Instant::now();
    h.expire(t0);
    h.worker(2, "b", &["double"]);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    // Back in no-worker much later: its wait starts again from then.
    h.kill(2);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    let t1 = t0 + Duration::from_secs(100);
    h.expire(t1);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    h.expire(t1 + Duration::from_secs(5));
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    h.expire(t1 + Duration::from_secs(11));
    assert_eq!(h.state("x"), Some(TaskState::Erred));
}

#[test]
fn an_empty_cluster_uses_its_own_longer_bound_and_zero_means_never() {
    let mut h = H::with(SchedulerConfig {
        no_worker_timeout_s: 10.0,
        empty_cluster_timeout_s: 300.0,
        ..SchedulerConfig::default()
    });
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    assert!(matches!(
        h.to_client(C1)[..],
        [ToClient::NoWorker { reason, .. }] if reason.contains("no worker is connected")
    ));
    let t0 = Instant::now();
    h.expire(t0);
    h.expire(t0 + Duration::from_secs(60));
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    h.expire(t0 + Duration::from_secs(301));
    let f = erred_with(&h, C1, "x").expect("erred");
    assert!(f.message.contains("scheduler.empty_cluster_timeout_s"), "{}", f.message);

    let mut never = H::with(SchedulerConfig {
        no_worker_timeout_s: 0.0,
        empty_cluster_timeout_s: 0.0,
        ..SchedulerConfig::default()
    });
    never.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    never.expire(t0);
    never.expire(t0 + Duration::from_secs(1_000_000));
    assert_eq!(never.state("x"), Some(TaskState::NoWorker));
}

#[test]
fn the_reason_names_unmet_restrictions() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![restricted("x", "inc", &[], "elsewhere")], &["x"]);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    assert!(matches!(
        h.to_client(C1)[..],
        [ToClient::NoWorker { reason, .. }] if reason.contains("restrictions") && reason.contains("elsewhere")
    ));
}

#[test]
fn a_task_only_paused_workers_could_run_waits_the_paused_cluster_bound() {
    let mut h = H::with(SchedulerConfig {
        no_worker_timeout_s: 10.0,
        paused_cluster_timeout_s: 120.0,
        ..SchedulerConfig::default()
    });
    h.worker(1, "a", &["inc"]);
    h.worker_sends(
        1,
        FromWorker::WorkerStatus {
            status: crate::wire::messages::WorkerStatus::Paused,
            reason: Some("cannot spill to /x: File exists (os error 17)".into()),
        },
    );
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    assert_eq!(h.state("x"), Some(TaskState::NoWorker));
    let t0 = Instant::now();
    h.expire(t0);
    h.expire(t0 + Duration::from_secs(60));
    assert_eq!(
        h.state("x"),
        Some(TaskState::NoWorker),
        "a pause is given longer than no_worker_timeout_s"
    );
    h.expire(t0 + Duration::from_secs(121));
    let f = erred_with(&h, C1, "x").expect("erred");
    assert_eq!(f.kind, ErrorKind::NoWorker);
    assert!(
        f.message.contains("a (cannot spill to /x: File exists (os error 17))")
            && f.message.contains("scheduler.paused_cluster_timeout_s"),
        "{}",
        f.message
    );
}
