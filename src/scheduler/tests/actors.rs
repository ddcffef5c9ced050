//! Actors at the scheduler: an actor's key (its constructor task's) is
//! never recomputed, copied or moved; its worker's death errs it with
//! `ActorLost` naming the actor and the worker.

use super::helpers::*;

const CTOR: &str = "actor:app::Counter";

#[test]
fn actor_lost_with_its_worker_is_not_recomputed() {
    let mut h = H::new();
    h.worker(1, "a", &[CTOR]);
    h.worker(2, "b", &[CTOR]);
    h.submit(C1, vec![spec("counter", CTOR, &[])], &["counter"]);
    let a = h.computes(1);
    let b = h.computes(2);
    assert_eq!(a.len() + b.len(), 1, "{a:?} {b:?}");
    let (actor_w, other_w) = if a.is_empty() { (2, 1) } else { (1, 2) };
    h.finish(actor_w, "counter");
    h.take();
    h.kill(actor_w);
    assert_eq!(h.state("counter"), Some(TaskState::Erred));
    let name = if actor_w == 1 { "a" } else { "b" };
    let lost: Vec<_> = h
        .to_client(C1)
        .into_iter()
        .filter_map(|m| match m {
            ToClient::TaskErred { key, failure } => Some((key.clone(), failure.clone())),
            ToClient::KeyLost { key } => panic!("{key} reported lost, as if recomputed"),
            _ => None,
        })
        .collect();
    assert_eq!(lost.len(), 1, "{lost:?}");
    let (key, failure) = &lost[0];
    assert_eq!((key.as_str(), failure.kind), ("counter", ErrorKind::ActorLost));
    assert!(
        failure.message.contains("\"counter\"")
            && failure.message.contains("app::Counter")
            && failure.message.contains(&format!("worker {name}")),
        "{}",
        failure.message
    );
    assert!(h.computes(other_w).is_empty(), "the actor is not created again");
}

#[test]
fn actors_are_never_replicated_or_moved_off_a_retiring_worker() {
    let mut h = H::new();
    h.worker(1, "a", &[CTOR]);
    h.submit(C1, vec![spec("counter", CTOR, &[])], &["counter"]);
    assert_eq!(h.computes(1), vec!["counter"]);
    h.finish(1, "counter");
    h.worker(2, "b", &[CTOR]);
    h.take();
    h.client(
        C1,
        FromClient::Replicate {
            request_id: 1,
            keys: vec!["counter".into()],
            n: 2,
        },
    );
    h.client(
        C1,
        FromClient::RetireWorkers {
            request_id: 2,
            workers: vec!["a".into()],
        },
    );
    let out = h.take();
    assert!(
        !out.iter()
            .any(|m| matches!(m, Outgoing::Worker(_, ToWorker::AcquireReplicas { .. }))),
        "{out:?}"
    );
    // a had nothing movable: it is closed, and the actor lost with it.
    assert_eq!(h.s.worker_count(), 1);
    assert_eq!(h.state("counter"), Some(TaskState::Erred));
}
