//! The coordination state alone, without sockets or tasks: each primitive's
//! answers, waits and deadlines, leases of clients that leave or fall
//! silent, and which keys are held.

use std::time::{Duration, Instant};

use serde_bytes::ByteBuf;

use super::*;

const A: ClientId = ClientId(1);
const B: ClientId = ClientId(2);
const C: ClientId = ClientId(3);

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn value(b: u8) -> CoordItem {
    CoordItem::Value(ByteBuf::from(vec![b]))
}

fn future(k: &str) -> CoordItem {
    CoordItem::Future(k.to_string())
}

fn reply(c: ClientId, id: u64, r: CoordResult) -> Effect {
    Effect::Reply(c, id, r)
}

fn sem(name: &str, max: u32, lease: &str, timeout_ms: u64) -> CoordOp {
    CoordOp::SemaphoreAcquire {
        name: name.into(),
        max_leases: max,
        lease_id: lease.into(),
        timeout_ms,
    }
}

fn release(name: &str, lease: &str) -> CoordOp {
    CoordOp::SemaphoreRelease {
        name: name.into(),
        lease_id: lease.into(),
    }
}

fn lock(name: &str, lease: &str, timeout_ms: u64) -> CoordOp {
    CoordOp::LockAcquire {
        name: name.into(),
        lease_id: lease.into(),
        timeout_ms,
    }
}

#[test]
fn a_semaphore_grants_at_most_max_leases_and_hands_a_released_one_to_the_first_waiter() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    assert_eq!(
        co.handle(A, 1, sem("s", 2, "a", 0), t0),
        [reply(A, 1, CoordResult::Bool(true))]
    );
    assert_eq!(
        co.handle(B, 2, sem("s", 2, "b", 0), t0),
        [reply(B, 2, CoordResult::Bool(true))]
    );
    // Full: without a timeout, refused at once; with one, waits.
    assert_eq!(
        co.handle(C, 3, sem("s", 2, "c", 0), t0),
        [reply(C, 3, CoordResult::Bool(false))]
    );
    assert!(co.handle(C, 4, sem("s", 2, "c2", 1000), t0).is_empty());
    assert!(co.handle(A, 5, sem("s", 2, "a2", 1000), t0).is_empty());
    assert_eq!(co.leases(), 2);
    // A release goes to the first waiter only.
    assert_eq!(
        co.handle(B, 6, release("s", "b"), t0),
        [
            reply(B, 6, CoordResult::Bool(true)),
            reply(C, 4, CoordResult::Bool(true))
        ]
    );
    // Releasing a lease not held says so.
    assert_eq!(
        co.handle(B, 7, release("s", "b"), t0),
        [reply(B, 7, CoordResult::Bool(false))]
    );
    // The other waiter times out at its deadline, not before.
    assert!(co.expire(t0 + ms(999)).is_empty());
    assert_eq!(co.expire(t0 + ms(1000)), [reply(A, 5, CoordResult::Bool(false))]);
    assert_eq!(co.leases(), 2);
}

#[test]
fn a_semaphore_refuses_another_max_leases_and_a_lease_id_already_held() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    co.handle(A, 1, sem("s", 2, "a", 0), t0);
    assert!(matches!(
        co.handle(B, 2, sem("s", 3, "b", 0), t0)[..],
        [Effect::Reply(B, 2, CoordResult::Error(_))]
    ));
    assert!(matches!(
        co.handle(A, 3, sem("s", 2, "a", 0), t0)[..],
        [Effect::Reply(A, 3, CoordResult::Error(_))]
    ));
    // Once unused, the name may come back with another size.
    co.handle(A, 4, release("s", "a"), t0);
    assert_eq!(
        co.handle(B, 5, sem("s", 3, "b", 0), t0),
        [reply(B, 5, CoordResult::Bool(true))]
    );
}

#[test]
fn a_client_that_leaves_frees_its_leases_for_waiters_and_its_own_waits_are_dropped() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    co.handle(A, 1, lock("l", "a", 0), t0);
    assert!(co.handle(B, 2, lock("l", "b", 5000), t0).is_empty());
    assert!(co
        .handle(
            A,
            3,
            CoordOp::QueueGet {
                name: "q".into(),
                timeout_ms: 5000
            },
            t0
        )
        .is_empty());
    assert_eq!(co.client_gone(A, t0), [reply(B, 2, CoordResult::Bool(true))]);
    // A's queue get is gone: an item put now waits for the next get.
    assert_eq!(
        co.handle(
            C,
            4,
            CoordOp::QueuePut {
                name: "q".into(),
                item: value(7)
            },
            t0
        ),
        [reply(C, 4, CoordResult::Done)]
    );
    assert_eq!(co.queues.size("q"), 1);
    // A lock and a semaphore of one name do not meet.
    assert_eq!(
        co.handle(C, 5, sem("l", 1, "c", 0), t0),
        [reply(C, 5, CoordResult::Bool(true))]
    );
}

#[test]
fn leases_of_a_client_silent_past_the_lease_timeout_are_taken_back() {
    let t0 = Instant::now();
    let mut co = Coordination::new(ms(500));
    co.handle(A, 1, sem("s", 1, "a", 0), t0);
    assert!(co.handle(B, 2, sem("s", 1, "b", 10_000), t0).is_empty());
    // B keeps talking, A does not.
    co.client_seen(B, t0 + ms(400));
    co.client_seen(A, t0 + ms(100));
    assert!(co.expire(t0 + ms(550)).is_empty());
    assert_eq!(co.expire(t0 + ms(601)), [reply(B, 2, CoordResult::Bool(true))]);
    // A's release afterwards says its lease was no longer held.
    assert_eq!(
        co.handle(A, 3, release("s", "a"), t0 + ms(700)),
        [reply(A, 3, CoordResult::Bool(false))]
    );
}

#[test]
fn a_multilock_takes_all_its_locks_or_none() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    co.handle(A, 1, lock("x", "a", 0), t0);
    let multi = CoordOp::MultiLockAcquire {
        names: vec!["x".into(), "y".into()],
        lease_id: "b".into(),
        timeout_ms: 1000,
    };
    assert!(co.handle(B, 2, multi, t0).is_empty());
    // y is free, and nobody took it while B waited for x.
    assert_eq!(
        co.handle(C, 3, lock("y", "c", 0), t0),
        [reply(C, 3, CoordResult::Bool(true))]
    );
    co.handle(
        C,
        4,
        CoordOp::LockRelease {
            name: "y".into(),
            lease_id: "c".into(),
        },
        t0,
    );
    let effects = co.handle(
        A,
        5,
        CoordOp::LockRelease {
            name: "x".into(),
            lease_id: "a".into(),
        },
        t0,
    );
    assert_eq!(
        effects,
        [
            reply(A, 5, CoordResult::Bool(true)),
            reply(B, 2, CoordResult::Bool(true))
        ]
    );
    assert_eq!(co.leases(), 2);
    let effects = co.handle(
        B,
        6,
        CoordOp::MultiLockRelease {
            names: vec!["x".into(), "y".into()],
            lease_id: "b".into(),
        },
        t0,
    );
    assert_eq!(effects, [reply(B, 6, CoordResult::Bool(true))]);
    assert_eq!(co.leases(), 0);
}

#[test]
fn a_queue_is_first_in_first_out_and_hands_items_to_waiting_getters_in_order() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    let put = |b| CoordOp::QueuePut {
        name: "q".into(),
        item: value(b),
    };
    let get = |t| CoordOp::QueueGet {
        name: "q".into(),
        timeout_ms: t,
    };
    co.handle(A, 1, put(1), t0);
    co.handle(A, 2, put(2), t0);
    assert_eq!(
        co.handle(B, 3, CoordOp::QueueSize { name: "q".into() }, t0),
        [reply(B, 3, CoordResult::Count(2))]
    );
    assert_eq!(co.handle(B, 4, get(0), t0), [reply(B, 4, CoordResult::Item(value(1)))]);
    assert_eq!(co.handle(B, 5, get(0), t0), [reply(B, 5, CoordResult::Item(value(2)))]);
    assert_eq!(co.handle(B, 6, get(0), t0), [reply(B, 6, CoordResult::TimedOut)]);
    assert!(co.handle(B, 7, get(100), t0).is_empty());
    assert!(co.handle(C, 8, get(100), t0).is_empty());
    assert_eq!(
        co.handle(A, 9, put(3), t0),
        [reply(B, 7, CoordResult::Item(value(3))), reply(A, 9, CoordResult::Done)]
    );
    assert_eq!(co.expire(t0 + ms(100)), [reply(C, 8, CoordResult::TimedOut)]);
}

#[test]
fn a_future_in_a_queue_is_held_until_a_getter_wants_it() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    let effects = co.handle(
        A,
        1,
        CoordOp::QueuePut {
            name: "q".into(),
            item: future("k"),
        },
        t0,
    );
    assert_eq!(effects, [Effect::Hold("k".into()), reply(A, 1, CoordResult::Done)]);
    assert_eq!(co.hold_count("k"), 1);
    let effects = co.handle(
        B,
        2,
        CoordOp::QueueGet {
            name: "q".into(),
            timeout_ms: 0,
        },
        t0,
    );
    // The getter wants the key before the queue lets it go.
    assert_eq!(
        effects,
        [
            reply(B, 2, CoordResult::Item(future("k"))),
            Effect::Want(B, "k".into()),
            Effect::Unhold("k".into()),
        ]
    );
    assert_eq!(co.hold_count("k"), 0);
}

#[test]
fn a_variable_waits_until_set_and_holds_only_its_latest_future() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    let get = |t| CoordOp::VariableGet {
        name: "v".into(),
        timeout_ms: t,
    };
    let set = |item| CoordOp::VariableSet { name: "v".into(), item };
    assert_eq!(co.handle(A, 1, get(0), t0), [reply(A, 1, CoordResult::TimedOut)]);
    assert!(co.handle(A, 2, get(1000), t0).is_empty());
    assert_eq!(
        co.handle(B, 3, set(future("k1")), t0),
        [
            Effect::Hold("k1".into()),
            reply(A, 2, CoordResult::Item(future("k1"))),
            Effect::Want(A, "k1".into()),
            reply(B, 3, CoordResult::Done),
        ]
    );
    assert_eq!(
        co.handle(B, 4, set(value(5)), t0),
        [Effect::Unhold("k1".into()), reply(B, 4, CoordResult::Done)]
    );
    assert_eq!(co.handle(C, 5, get(0), t0), [reply(C, 5, CoordResult::Item(value(5)))]);
    co.handle(B, 6, CoordOp::VariableDelete { name: "v".into() }, t0);
    assert_eq!(co.handle(C, 7, get(0), t0), [reply(C, 7, CoordResult::TimedOut)]);
}

#[test]
fn an_event_wakes_every_waiter_when_set_and_waits_time_out_false() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    let wait = |t| CoordOp::EventWait {
        name: "e".into(),
        timeout_ms: t,
    };
    assert!(co.handle(A, 1, wait(1000), t0).is_empty());
    assert!(co.handle(B, 2, wait(1000), t0).is_empty());
    assert!(co.handle(C, 3, wait(10), t0).is_empty());
    assert_eq!(co.expire(t0 + ms(10)), [reply(C, 3, CoordResult::Bool(false))]);
    assert_eq!(
        co.handle(C, 4, CoordOp::EventSet { name: "e".into() }, t0),
        [
            reply(A, 1, CoordResult::Bool(true)),
            reply(B, 2, CoordResult::Bool(true)),
            reply(C, 4, CoordResult::Done)
        ]
    );
    assert_eq!(co.handle(A, 5, wait(0), t0), [reply(A, 5, CoordResult::Bool(true))]);
    co.handle(A, 6, CoordOp::EventClear { name: "e".into() }, t0);
    assert_eq!(
        co.handle(A, 7, CoordOp::EventIsSet { name: "e".into() }, t0),
        [reply(A, 7, CoordResult::Bool(false))]
    );
}

#[test]
fn a_dataset_holds_its_keys_until_unpublished_whoever_published_it() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    let publish = |overwrite| CoordOp::PublishDataset {
        name: "d".into(),
        keys: vec!["k1".into(), "k2".into()],
        overwrite,
    };
    let effects = co.handle(A, 1, publish(false), t0);
    assert_eq!(
        effects,
        [
            Effect::Hold("k1".into()),
            Effect::Hold("k2".into()),
            reply(A, 1, CoordResult::Done)
        ]
    );
    assert!(matches!(
        co.handle(A, 2, publish(false), t0)[..],
        [Effect::Reply(A, 2, CoordResult::Error(_))]
    ));
    assert!(co.client_gone(A, t0).is_empty());
    assert_eq!(
        co.handle(B, 3, CoordOp::GetDataset { name: "d".into() }, t0),
        [
            reply(B, 3, CoordResult::Keys(vec!["k1".into(), "k2".into()])),
            Effect::Want(B, "k1".into()),
            Effect::Want(B, "k2".into()),
        ]
    );
    assert_eq!(
        co.handle(B, 4, CoordOp::ListDatasets, t0),
        [reply(B, 4, CoordResult::Names(vec!["d".into()]))]
    );
    assert_eq!(
        co.handle(B, 5, CoordOp::UnpublishDataset { name: "d".into() }, t0),
        [
            Effect::Unhold("k1".into()),
            Effect::Unhold("k2".into()),
            reply(B, 5, CoordResult::Done)
        ]
    );
    assert!(matches!(
        co.handle(B, 6, CoordOp::GetDataset { name: "d".into() }, t0)[..],
        [Effect::Reply(B, 6, CoordResult::Error(_))]
    ));
}

#[test]
fn fire_and_forget_holds_a_key_until_it_is_done_even_if_held_otherwise_too() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    assert_eq!(co.fire_and_forget(&["k".into()]), [Effect::Hold("k".into())]);
    co.handle(
        A,
        1,
        CoordOp::QueuePut {
            name: "q".into(),
            item: future("k"),
        },
        t0,
    );
    assert_eq!(co.hold_count("k"), 2);
    assert!(co.has_fired());
    assert!(co.task_done(&"k".to_string()).is_empty());
    assert_eq!(co.hold_count("k"), 1);
    assert!(!co.has_fired());
}

#[test]
fn a_topic_reaches_the_clients_subscribed_at_that_moment() {
    let t0 = Instant::now();
    let mut co = Coordination::new(Duration::ZERO);
    let publish = |b| CoordOp::TopicPublish {
        topic: "t".into(),
        value: ByteBuf::from(vec![b]),
    };
    assert_eq!(co.handle(A, 1, publish(1), t0), [reply(A, 1, CoordResult::Count(0))]);
    co.handle(B, 2, CoordOp::TopicSubscribe { topic: "t".into() }, t0);
    co.handle(C, 3, CoordOp::TopicSubscribe { topic: "t".into() }, t0);
    co.client_gone(C, t0);
    assert_eq!(
        co.handle(A, 4, publish(2), t0),
        [
            Effect::Topic(B, "t".into(), ByteBuf::from(vec![2])),
            reply(A, 4, CoordResult::Count(1))
        ]
    );
}

#[test]
fn a_stalled_scheduler_does_not_count_the_stall_as_its_clients_silence() {
    let t0 = Instant::now();
    let mut co = Coordination::new(ms(500));
    co.handle(A, 1, sem("s", 1, "a", 0), t0);
    assert!(co.expire(t0 + ms(20)).is_empty());
    // Nothing ran for 5 s: A's keep-alives are unread, not missing.
    assert!(co.expire(t0 + ms(5020)).is_empty());
    assert_eq!(co.leases(), 1);
    // Silent for the lease timeout after the stall, it loses the lease.
    let mut now = t0 + ms(5020);
    while now < t0 + ms(5700) {
        now += ms(20);
        co.expire(now);
    }
    assert_eq!(co.leases(), 0);
}
