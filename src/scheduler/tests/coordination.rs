//! The coordination primitives glued to the task state: keys a queue,
//! variable, dataset or fire-and-forget holds stay alive (and are
//! recomputed) after their clients go, the key's news follows the answer
//! that hands a future over, and a closing client's lock goes to a waiter.

use super::helpers::*;
use crate::wire::messages::{CoordItem, CoordOp, CoordResult};

fn coordinate(h: &mut H, c: ClientId, request_id: u64, op: CoordOp) {
    h.client(c, FromClient::Coordinate { request_id, op });
}

fn answers(h: &H, c: ClientId) -> Vec<(u64, CoordResult)> {
    h.to_client(c)
        .into_iter()
        .filter_map(|m| match m {
            ToClient::CoordReply { request_id, result } => Some((*request_id, result.clone())),
            _ => None,
        })
        .collect()
}

#[test]
fn a_future_in_a_queue_outlives_its_client_and_reaches_the_getter_after_the_answer() {
    let mut h = H::new();
    h.worker(1, "w1", &["f"]);
    h.submit(C1, vec![spec("x", "f", &[])], &["x"]);
    h.finish(1, "x");
    let put = CoordOp::QueuePut {
        name: "q".into(),
        item: CoordItem::Future("x".into()),
    };
    coordinate(&mut h, C1, 1, put);
    assert_eq!(answers(&h, C1), [(1, CoordResult::Done)]);
    // The putting client drops its future and leaves: the queue holds x.
    h.release(C1, &["x"]);
    let mut o = Outbox::default();
    h.s.remove_client(C1, &mut o);
    h.absorb(o);
    assert_eq!(h.state("x"), Some(TaskState::Memory));
    assert!(h.freed(1).is_empty());
    assert_eq!(h.s.client_count(), 1, "the holder is not counted as a client");
    // Its worker dies: x is recomputed for the queue.
    h.worker(2, "w2", &["f"]);
    h.take();
    h.kill(1);
    assert_eq!(h.computes(2), ["x"]);
    h.finish(2, "x");
    coordinate(
        &mut h,
        C2,
        2,
        CoordOp::QueueGet {
            name: "q".into(),
            timeout_ms: 0,
        },
    );
    let to_c2 = h.to_client(C2);
    let reply = to_c2.iter().position(|m| matches!(m, ToClient::CoordReply { .. }));
    let news = to_c2
        .iter()
        .position(|m| matches!(m, ToClient::KeyInMemory { key, .. } if key == "x"));
    assert!(reply.is_some() && news.is_some() && reply < news, "{to_c2:?}");
    // Taken out, it is C2's alone: released when C2 releases it.
    h.release(C2, &["x"]);
    assert_eq!(h.state("x"), None);
}

#[test]
fn a_fire_and_forget_task_runs_after_its_client_left_and_is_released_when_done() {
    let mut h = H::new();
    h.worker(1, "w1", &["f"]);
    h.submit(C1, vec![spec("a", "f", &[]), spec("b", "f", &["a"])], &["b"]);
    h.client(C1, FromClient::FireAndForget { keys: vec!["b".into()] });
    let mut o = Outbox::default();
    h.s.remove_client(C1, &mut o);
    h.absorb(o);
    assert_eq!(h.state("b"), Some(TaskState::Waiting));
    h.finish(1, "a");
    assert_eq!(h.state("b"), Some(TaskState::Processing));
    h.finish(1, "b");
    assert_eq!((h.state("a"), h.state("b")), (None, None), "released once done");
    // Fire-and-forget of a key already done, or unknown, holds nothing.
    h.submit(C2, vec![spec("c", "f", &[])], &["c"]);
    h.finish(1, "c");
    h.client(
        C2,
        FromClient::FireAndForget {
            keys: vec!["c".into(), "nope".into()],
        },
    );
    h.release(C2, &["c"]);
    assert_eq!(h.state("c"), None);
}

#[test]
fn a_dataset_keeps_its_keys_until_unpublished_and_refuses_unknown_keys() {
    let mut h = H::new();
    h.worker(1, "w1", &["f"]);
    h.submit(C1, vec![spec("x", "f", &[])], &["x"]);
    h.finish(1, "x");
    let publish = |keys: &[&str]| CoordOp::PublishDataset {
        name: "d".into(),
        keys: keys.iter().map(|k| k.to_string()).collect(),
        overwrite: false,
    };
    coordinate(&mut h, C1, 1, publish(&["nope"]));
    assert!(matches!(&answers(&h, C1)[..], [(1, CoordResult::Error(e))] if e.contains("nope")));
    coordinate(&mut h, C1, 2, publish(&["x"]));
    h.release(C1, &["x"]);
    assert_eq!(h.state("x"), Some(TaskState::Memory));
    coordinate(&mut h, C2, 3, CoordOp::GetDataset { name: "d".into() });
    assert!(h
        .to_client(C2)
        .iter()
        .any(|m| matches!(m, ToClient::KeyInMemory { key, .. } if key == "x")));
    coordinate(&mut h, C2, 4, CoordOp::UnpublishDataset { name: "d".into() });
    assert_eq!(h.state("x"), Some(TaskState::Memory), "C2 got it and holds it");
    h.release(C2, &["x"]);
    assert_eq!(h.state("x"), None);
}

#[test]
fn a_client_closing_hands_its_lock_to_the_next_waiter() {
    let mut h = H::new();
    let acquire = |lease: &str, timeout_ms| CoordOp::LockAcquire {
        name: "l".into(),
        lease_id: lease.into(),
        timeout_ms,
    };
    coordinate(&mut h, C1, 1, acquire("a", 0));
    coordinate(&mut h, C2, 2, acquire("b", 60_000));
    assert_eq!(answers(&h, C2), []);
    h.client(C1, FromClient::CloseClient);
    assert_eq!(answers(&h, C2), [(2, CoordResult::Bool(true))]);
    assert_eq!(h.s.coordination_leases(), 1);
}
