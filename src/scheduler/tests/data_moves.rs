//! Replicate and rebalance.

use super::helpers::*;

#[test]
fn replicate_and_rebalance_move_data_between_workers() {
    let mut h = H::new();
    for (i, n) in ["a", "b", "c"].iter().enumerate() {
        h.worker(i as u64 + 1, n, &["inc"]);
    }
    let ks: Vec<TaskSpec> = (0..4).map(|i| restricted(&format!("k{i}"), "inc", &[], "a")).collect();
    h.submit(C1, ks, &["k0", "k1", "k2", "k3"]);
    for i in 0..4 {
        h.worker_sends(1, finished(&format!("k{i}"), 1000, 10));
    }
    h.take();
    // Replicate k0 to 3 workers: b and c fetch it from a.
    h.client(
        C1,
        FromClient::Replicate {
            request_id: 1,
            keys: vec!["k0".into()],
            n: 3,
        },
    );
    let msgs = h.take();
    let acquire: Vec<u64> = msgs
        .iter()
        .filter_map(|m| match m {
            Outgoing::Worker(w, ToWorker::AcquireReplicas { keys }) => {
                assert_eq!(keys[0].who_has, vec!["tcp://a:1".to_string()]);
                Some(w.0)
            }
            _ => None,
        })
        .collect();
    assert_eq!(acquire, vec![2, 3]);
    assert!(msgs.iter().any(|m| matches!(m,
        Outgoing::Client(C1, ToClient::DataMoves { request_id: 1, moves }) if moves.len() == 2)));
    for w in [2, 3] {
        h.worker_sends(
            w,
            FromWorker::AddKeys {
                keys: vec![("k0".into(), 1000)],
            },
        );
    }
    let k0 = h.s.task_id("k0").expect("a known key");
    assert_eq!(h.s.slot(k0).who_has.len(), 3);
    // Rebalance: a holds 4000 bytes, b and c 1000 each (mean 2000).
    h.client(
        C1,
        FromClient::Rebalance {
            request_id: 2,
            keys: Vec::new(),
        },
    );
    let msgs = h.take();
    let moves = msgs
        .iter()
        .find_map(|m| match m {
            Outgoing::Client(C1, ToClient::DataMoves { request_id: 2, moves }) => Some(moves.clone()),
            _ => None,
        })
        .expect("answered");
    // a sheds a key to b and one to c (2000 each after), then stops at
    // the mean; k0, held everywhere, does not move.
    assert_eq!(moves.len(), 2, "{moves:?}");
    assert!(moves.iter().all(|m| m.from == "tcp://a:1" && m.key != "k0"));
    assert_eq!(moves[0].to, "tcp://b:1");
    assert_eq!(moves[1].to, "tcp://c:1");
    let key = moves[0].key.clone();
    assert!(h.freed(1).is_empty());
    h.worker_sends(
        2,
        FromWorker::AddKeys {
            keys: vec![(key.clone(), 1000)],
        },
    );
    assert_eq!(h.freed(1), vec![key.clone()]);
    let t = h.s.task_id(&key).expect("a known key");
    assert_eq!(h.s.addresses(&h.s.slot(t).who_has), vec!["tcp://b:1".to_string()]);
    // a's late AddKeys of it (crossing the free) is refused.
    h.take();
    h.worker_sends(
        1,
        FromWorker::AddKeys {
            keys: vec![(key.clone(), 1000)],
        },
    );
    assert_eq!(h.freed(1), vec![key]);
}
