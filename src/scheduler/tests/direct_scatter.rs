//! Direct scatters (`ScatterDirect`): the scheduler places the values and
//! waits for the holders' `AddKeys`, never seeing the bytes.

use super::helpers::*;

fn direct(h: &mut H, request_id: u64, key: &str, workers: &[&str], broadcast: bool) {
    h.client(
        C1,
        FromClient::ScatterDirect {
            request_id,
            done_id: request_id + 1000,
            keys: vec![(key.into(), 3)],
            workers: workers.iter().map(|w| w.to_string()).collect(),
            broadcast,
        },
    );
}

/// `(address, keys)` of the targets of the answer to `request_id`.
fn targets(h: &H, request_id: u64) -> Vec<(String, Vec<String>)> {
    let mut t: Vec<(String, Vec<String>)> = h
        .to_client(C1)
        .into_iter()
        .find_map(|m| match m {
            ToClient::ScatterTargets {
                request_id: r,
                targets,
                error: None,
            } if *r == request_id => Some(targets.iter().map(|t| (t.address.clone(), t.keys.clone())).collect()),
            _ => None,
        })
        .unwrap_or_else(|| panic!("no ScatterTargets {request_id}: {:?}", h.to_client(C1)));
    t.sort();
    t
}

fn done(h: &H, done_id: u64) -> bool {
    h.to_client(C1)
        .iter()
        .any(|m| matches!(m, ToClient::ScatterDone { request_id, error: None } if *request_id == done_id))
}

fn add_keys(h: &mut H, w: u64, key: &str) {
    h.worker_sends(
        w,
        FromWorker::AddKeys {
            keys: vec![(key.into(), 3)],
        },
    );
}

#[test]
fn a_direct_broadcast_names_every_allowed_worker_and_answers_once_all_confirm() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.worker(3, "c", &["inc"]);
    h.take();
    direct(&mut h, 9, "s", &["a", "b"], true);
    assert_eq!(
        targets(&h, 9),
        vec![
            ("tcp://a:1".to_string(), vec!["s".to_string()]),
            ("tcp://b:1".to_string(), vec!["s".to_string()])
        ]
    );
    // The scheduler never sends the bytes itself.
    assert!(!h
        .out
        .iter()
        .any(|m| matches!(m, Outgoing::Worker(_, ToWorker::StoreData { .. }))));
    // Until a holder confirms, nobody has the bytes: the key is not in memory.
    assert_eq!(h.state("s"), Some(TaskState::Released));
    // A copy from a worker not named (c) is not taken for one: it is freed.
    add_keys(&mut h, 3, "s");
    assert!(h.freed(3).contains(&"s".to_string()));
    assert_eq!(h.state("s"), Some(TaskState::Released));
    add_keys(&mut h, 1, "s");
    assert_eq!(h.state("s"), Some(TaskState::Memory));
    assert!(!done(&h, 1009), "answered before the second copy was confirmed");
    add_keys(&mut h, 2, "s");
    assert!(done(&h, 1009), "not answered once both copies were confirmed");
    h.take();
    h.client(
        C1,
        FromClient::WhoHas {
            request_id: 4,
            keys: vec!["s".into()],
        },
    );
    match h.to_client(C1)[..] {
        [ToClient::WhoHasReply { request_id: 4, who_has }] => {
            let mut holders = who_has[0].workers.clone();
            holders.sort();
            assert_eq!(holders, vec!["tcp://a:1".to_string(), "tcp://b:1".to_string()]);
        }
        ref other => panic!("{other:?}"),
    }
    // The key is the client's: a task on it runs on a holder, and it stays
    // while wanted.
    h.submit(C1, vec![spec("y", "inc", &["s"])], &["y"]);
    let mut ran = h.computes(1);
    ran.extend(h.computes(2));
    assert_eq!(ran, vec!["y".to_string()]);
    h.release(C1, &["s"]);
    assert_eq!(h.state("s"), Some(TaskState::Memory), "y still needs it");
}

#[test]
fn a_direct_scatter_whose_holder_dies_before_confirming_is_answered_and_its_key_errs() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.take();
    direct(&mut h, 5, "s", &[], false);
    assert_eq!(targets(&h, 5), vec![("tcp://a:1".to_string(), vec!["s".to_string()])]);
    h.kill(1);
    assert!(done(&h, 1005), "a scatter whose holder died must still be answered");
    assert_eq!(h.state("s"), Some(TaskState::Erred));
}

#[test]
fn a_direct_scatter_with_no_worker_says_why_and_a_vanished_client_leaves_nothing() {
    let mut h = H::new();
    direct(&mut h, 1, "s", &[], false);
    let refused = h.to_client(C1).into_iter().any(|m| {
        matches!(m, ToClient::ScatterTargets { request_id: 1, targets, error: Some(e) }
            if targets.is_empty() && e.contains("no workers"))
    });
    assert!(refused, "{:?}", h.to_client(C1));
    h.worker(1, "a", &["inc"]);
    direct(&mut h, 2, "t", &[], false);
    assert_eq!(targets(&h, 2).len(), 1);
    // The client leaves before the holder confirms: the key is forgotten,
    // and the late copy is freed.
    h.take();
    let mut o = Outbox::default();
    h.s.remove_client(C1, &mut o);
    h.absorb(o);
    add_keys(&mut h, 1, "t");
    assert!(h.freed(1).contains(&"t".to_string()));
    assert_eq!(h.state("t"), None);
}
