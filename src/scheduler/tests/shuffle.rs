//! Peer-to-peer shuffles in the state machine (`scheduler::shuffle`): the
//! run a transfer asks for, unpack tasks pinned to their owners, and a
//! restart (new run, transfers and barrier run again) when an owner dies.

use super::helpers::*;
use crate::shuffle::{barrier_key, transfer_key, unpack_key};
use crate::wire::messages::{CoordOp, CoordResult, ShuffleRunSpec};

const S: &str = "5eed";

fn graph(h: &mut H) {
    let (t0, t1, b) = (transfer_key(S, 0), transfer_key(S, 1), barrier_key(S));
    let (u0, u1) = (unpack_key(S, 0), unpack_key(S, 1));
    h.submit(
        C1,
        vec![
            spec(&t0, "f", &[]),
            spec(&t1, "f", &[]),
            spec(&b, "f", &[&t0, &t1]),
            spec(&u0, "f", &[&b]),
            spec(&u1, "f", &[&b]),
        ],
        &[&u0, &u1],
    );
}

/// Asks for the run as a transfer task's client does; its answer.
fn ask(h: &mut H, request_id: u64) -> ShuffleRunSpec {
    h.client(
        C2,
        FromClient::Coordinate {
            request_id,
            op: CoordOp::ShuffleGetOrCreate {
                shuffle_id: S.into(),
                ninputs: 2,
                npartitions: 2,
            },
        },
    );
    let answer = h.to_client(C2).into_iter().rev().find_map(|m| match m {
        ToClient::CoordReply {
            request_id: r,
            result: CoordResult::ShuffleRun(spec),
        } if *r == request_id => Some(spec.clone()),
        _ => None,
    });
    answer.expect("a ShuffleRun answer")
}

/// Where each task was sent to run (drains the outbox).
fn placed(h: &mut H) -> Vec<(u64, String)> {
    h.take()
        .into_iter()
        .filter_map(|m| match m {
            Outgoing::Worker(id, ToWorker::ComputeTask { key, .. }) => Some((id.0, key)),
            _ => None,
        })
        .collect()
}

#[test]
fn unpacks_run_on_their_owners() {
    let mut h = H::new();
    h.worker(1, "a", &["f"]);
    h.worker(2, "b", &["f"]);
    graph(&mut h);
    let run = ask(&mut h, 1);
    assert_eq!(run.run_id, 1);
    assert_eq!(run.owners, ["tcp://a:1", "tcp://b:1"]);
    assert_eq!(ask(&mut h, 2), run, "asked again: the same run");
    let sent = placed(&mut h);
    for (w, k) in &sent {
        h.finish(*w, k);
    }
    let sent = placed(&mut h);
    assert_eq!(sent.len(), 1, "the barrier: {sent:?}");
    h.finish(sent[0].0, &sent[0].1);
    let mut sent = placed(&mut h);
    sent.sort();
    assert_eq!(sent, [(1, unpack_key(S, 0)), (2, unpack_key(S, 1))]);
}

#[test]
fn an_owner_dying_restarts_the_shuffle() {
    let mut h = H::new();
    h.worker(1, "a", &["f"]);
    h.worker(2, "b", &["f"]);
    graph(&mut h);
    let first = ask(&mut h, 1);
    // One transfer finishes on worker 1, the other still runs on 2.
    let sent = placed(&mut h);
    let (w, k) = sent
        .iter()
        .find(|(w, _)| *w == 1)
        .cloned()
        .expect("a transfer on worker 1");
    h.finish(w, &k);
    assert_eq!(h.state(&k), Some(TaskState::Memory));
    let _ = placed(&mut h); // the other transfer, if it was queued on worker 1
    h.kill(2);
    // Worker 1 is told to drop the finished transfer, and both run again
    // (one running on worker 1 is stopped and sent again).
    assert!(h.s.shuffles.is_empty(), "the run ended");
    assert!(h.freed(1).contains(&k), "{:?}", h.freed(1));
    let again = placed(&mut h);
    let mut keys: Vec<&str> = again.iter().map(|(_, k)| k.as_str()).collect();
    keys.sort();
    assert_eq!(keys, [transfer_key(S, 0), transfer_key(S, 1)]);
    assert!(again.iter().all(|(w, _)| *w == 1));
    // The new run: a larger id, worker 1 owning everything.
    let second = ask(&mut h, 2);
    assert!(second.run_id > first.run_id);
    assert_eq!(second.owners, ["tcp://a:1", "tcp://a:1"]);
    for (w, k) in again {
        h.finish(w, &k);
    }
    let b = placed(&mut h);
    h.finish(b[0].0, &b[0].1);
    let mut sent = placed(&mut h);
    sent.sort();
    assert_eq!(sent, [(1, unpack_key(S, 0)), (1, unpack_key(S, 1))]);
}

/// A paused worker owns outputs as a running one does (it takes shards
/// while paused); a shuffle asked for while every worker is paused gets a
/// run instead of an error.
#[test]
fn paused_workers_own_outputs() {
    let mut h = H::new();
    h.worker(1, "a", &["f"]);
    h.worker(2, "b", &["f"]);
    for w in [1, 2] {
        h.worker_sends(
            w,
            FromWorker::WorkerStatus {
                status: crate::wire::messages::WorkerStatus::Paused,
                reason: None,
            },
        );
    }
    graph(&mut h);
    let run = ask(&mut h, 1);
    assert_eq!(run.owners, ["tcp://a:1", "tcp://b:1"]);
}

#[test]
fn a_shuffle_without_workers_is_refused() {
    let mut h = H::new();
    h.client(
        C1,
        FromClient::Coordinate {
            request_id: 7,
            op: CoordOp::ShuffleGetOrCreate {
                shuffle_id: S.into(),
                ninputs: 1,
                npartitions: 1,
            },
        },
    );
    let refused = h.to_client(C1).into_iter().any(|m| {
        matches!(m, ToClient::CoordReply { request_id: 7, result: CoordResult::Error(e) } if e.contains("no running worker"))
    });
    assert!(refused);
}
