//! Lost data: worker deaths, missing data, scattered data, and stale
//! messages about keys.

use super::helpers::*;

#[test]
fn worker_death_reschedules_and_recomputes() {
    // No fetch latency counted: z is to go to the idle worker however
    // short the tasks are measured, so that the death below strands it.
    let mut h = H::with(SchedulerConfig {
        fetch_latency_s: 0.0,
        ..Default::default()
    });
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.submit(
        C1,
        vec![
            spec("x", "inc", &[]),
            spec("y", "inc", &["x"]),
            spec("z", "inc", &["x"]),
        ],
        &["x", "y", "z"],
    );
    assert_eq!(h.computes(1), vec!["x".to_string()]);
    h.finish(1, "x");
    // y goes to worker 1 (data locality), z to the idle worker 2 (x is
    // tiny, worker 1 is busy with y).
    let msgs = h.take();
    let sent: Vec<(u64, String)> = msgs
        .into_iter()
        .filter_map(|m| match m {
            Outgoing::Worker(w, ToWorker::ComputeTask { key, .. }) => Some((w.0, key)),
            _ => None,
        })
        .collect();
    assert_eq!(sent, vec![(1, "y".to_string()), (2, "z".to_string())]);
    h.finish(1, "y");
    h.take();
    // Worker 1 dies: x and y were only there; z, processing on worker 2,
    // needs x: it is cancelled there and waits again.
    h.kill(1);
    let lost: Vec<&ToClient> = h.to_client(C1);
    assert_eq!(lost.iter().filter(|m| matches!(m, ToClient::KeyLost { .. })).count(), 2);
    assert_eq!(h.freed(2), vec!["z".to_string()]);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert_eq!(h.state("y"), Some(TaskState::Waiting));
    assert_eq!(h.state("z"), Some(TaskState::Waiting));
    assert_eq!(h.computes(2), vec!["x".to_string()]);
    h.finish(2, "x");
    let mut sent = h.computes(2);
    sent.sort();
    assert_eq!(sent, vec!["y".to_string(), "z".to_string()]);
    h.finish(2, "y");
    h.finish(2, "z");
    h.release(C1, &["x", "y", "z"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn lost_dependency_resets_processing_dependent() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.finish(1, "x");
    h.take();
    // y must run on b, fetching x from a.
    let mut y = spec("y", "inc", &["x"]);
    y.workers = vec!["b".into()];
    h.submit(C1, vec![y], &["y"]);
    assert_eq!(h.computes(2), vec!["y".to_string()]);
    h.kill(1);
    // y is cancelled on b, x recomputed on b, then y again.
    assert_eq!(h.freed(2), vec!["y".to_string()]);
    assert_eq!(h.state("y"), Some(TaskState::Waiting));
    assert_eq!(h.computes(2), vec!["x".to_string()]);
    h.finish(2, "x");
    assert_eq!(h.computes(2), vec!["y".to_string()]);
}

#[test]
fn missing_data_recomputes() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["y"]);
    h.finish(1, "x");
    h.take();
    let y = h.s.task_id("y").expect("a known key");
    assert_eq!(h.s.slot(y).processing_on, Some(h.s.worker_ids[&WorkerId(1)]));
    h.worker_sends(
        1,
        FromWorker::MissingData {
            key: "x".into(),
            errant_worker: "tcp://a:1".into(),
        },
    );
    assert_eq!(h.freed(1), vec!["y".to_string()]);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert_eq!(h.state("y"), Some(TaskState::Waiting));
    // Unknown key / address: ignored.
    h.worker_sends(
        1,
        FromWorker::MissingData {
            key: "nope".into(),
            errant_worker: "tcp://zz:1".into(),
        },
    );
}

#[test]
fn scatter_and_data_lost() {
    let mut h = H::new();
    h.client(
        C1,
        FromClient::Scatter {
            request_id: 7,
            data: vec![("s".into(), Payload::new(vec![1]))],
            workers: vec![],
            broadcast: false,
        },
    );
    assert!(matches!(
        h.to_client(C1)[..],
        [ToClient::ScatterDone {
            request_id: 7,
            error: Some(_)
        }]
    ));
    assert_eq!(h.s.ntasks(), 0);
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.take();
    h.client(
        C1,
        FromClient::Scatter {
            request_id: 8,
            data: vec![
                ("s1".into(), Payload::new(vec![1])),
                ("s2".into(), Payload::new(vec![2, 2])),
            ],
            workers: vec![],
            broadcast: false,
        },
    );
    let stores: Vec<u64> = h
        .out
        .iter()
        .filter_map(|m| match m {
            Outgoing::Worker(w, ToWorker::StoreData { .. }) => Some(w.0),
            _ => None,
        })
        .collect();
    assert_eq!(stores, vec![1, 2]);
    // Answered only once both holders confirm (their AddKeys): until then
    // a peer's fetch could overtake the StoreData.
    let done = |h: &H| {
        h.to_client(C1).iter().any(|m| {
            matches!(
                m,
                ToClient::ScatterDone {
                    request_id: 8,
                    error: None
                }
            )
        })
    };
    assert!(!done(&h), "answered before any holder confirmed");
    h.worker_sends(
        1,
        FromWorker::AddKeys {
            keys: vec![("s1".into(), 1)],
        },
    );
    assert!(!done(&h), "answered before b confirmed");
    h.worker_sends(
        2,
        FromWorker::AddKeys {
            keys: vec![("s2".into(), 2)],
        },
    );
    assert!(done(&h), "not answered once both confirmed");
    assert_eq!(h.state("s1"), Some(TaskState::Memory));
    h.take();
    h.client(
        C1,
        FromClient::WhoHas {
            request_id: 3,
            keys: vec!["s2".into(), "zz".into()],
        },
    );
    match h.to_client(C1)[..] {
        [ToClient::WhoHasReply { request_id: 3, who_has }] => {
            assert_eq!(who_has[0].workers, vec!["tcp://b:1".to_string()]);
            assert_eq!(who_has[0].nbytes, 2);
            assert!(who_has[1].workers.is_empty());
        }
        ref other => panic!("{other:?}"),
    }
    // A task on scattered data, then the holder dies.
    h.submit(C1, vec![spec("t", "inc", &["s2"])], &["t"]);
    assert_eq!(h.computes(2), vec!["t".to_string()]);
    h.kill(2);
    assert_eq!(h.state("s2"), Some(TaskState::Erred));
    assert_eq!(h.state("t"), Some(TaskState::Erred));
    let errs: Vec<&TaskFailure> = h
        .to_client(C1)
        .into_iter()
        .filter_map(|m| match m {
            ToClient::TaskErred { failure, .. } => Some(failure),
            _ => None,
        })
        .collect();
    assert_eq!(errs.len(), 2);
    assert_eq!(errs[0].kind, ErrorKind::DataLost);
    assert!(errs[0].message.contains("lost with worker b"));
    assert_eq!(errs[1].kind, ErrorKind::DependencyFailed);
    h.remove_client_all();
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn add_keys_and_stale_messages() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.finish(1, "x");
    h.take();
    h.worker_sends(
        2,
        FromWorker::AddKeys {
            keys: vec![("x".into(), 8), ("gone".into(), 1)],
        },
    );
    assert_eq!(h.freed(2), vec!["gone".to_string()]);
    // A stale finish from a worker that was not running it.
    h.take();
    h.finish(2, "zzz");
    h.worker_sends(
        2,
        FromWorker::TaskErred {
            key: "x".into(),
            failure: failure("late"),
            run_id: LATEST,
        },
    );
    assert_eq!(h.state("x"), Some(TaskState::Memory));
    assert_eq!(h.freed(2), vec!["zzz".to_string()]);
    h.worker_sends(
        2,
        FromWorker::Heartbeat {
            nkeys: 5,
            nbytes: 50,
            executing: 0,
            ready: 0,
            spilled_bytes: 0,
            rss_bytes: 0,
            cpu_percent: 0.0,
            bytes_fetched: 0,
            bytes_served: 0,
            spills: Vec::new(),
            log: Vec::new(),
        },
    );
    let info = h.s.info();
    assert_eq!(info.workers[1].nkeys, 5);
    assert_eq!(info.nclients, 2);
    h.take();
    h.release(C1, &["x"]);
    let mut f = h.freed(1);
    f.extend(h.freed(2));
    assert_eq!(f, vec!["x".to_string(), "x".to_string()]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn a_broadcast_scatter_stores_a_copy_on_every_allowed_worker_and_answers_once_all_confirm() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker(2, "b", &["inc"]);
    h.worker(3, "c", &["inc"]);
    h.take();
    h.client(
        C1,
        FromClient::Scatter {
            request_id: 9,
            data: vec![("s".into(), Payload::new(vec![1, 2, 3]))],
            workers: vec!["a".into(), "b".into()],
            broadcast: true,
        },
    );
    let mut stores: Vec<(u64, Vec<String>)> = h
        .out
        .iter()
        .filter_map(|m| match m {
            Outgoing::Worker(w, ToWorker::StoreData { data }) => {
                Some((w.0, data.iter().map(|(k, _)| k.clone()).collect()))
            }
            _ => None,
        })
        .collect();
    stores.sort();
    assert_eq!(stores, vec![(1, vec!["s".to_string()]), (2, vec!["s".to_string()])]);
    let done = |h: &H| {
        h.to_client(C1).iter().any(|m| {
            matches!(
                m,
                ToClient::ScatterDone {
                    request_id: 9,
                    error: None
                }
            )
        })
    };
    h.worker_sends(
        1,
        FromWorker::AddKeys {
            keys: vec![("s".into(), 3)],
        },
    );
    assert!(!done(&h), "answered before the second copy was confirmed");
    h.worker_sends(
        2,
        FromWorker::AddKeys {
            keys: vec![("s".into(), 3)],
        },
    );
    assert!(done(&h), "not answered once both copies were confirmed");
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
            assert_eq!(who_has[0].nbytes, 3);
        }
        ref other => panic!("{other:?}"),
    }
    // Either copy may die: the other still serves it.
    h.kill(1);
    assert_eq!(h.state("s"), Some(TaskState::Memory));
    // Broadcast again: only the worker without a copy (c) is sent one.
    h.take();
    h.client(
        C1,
        FromClient::Scatter {
            request_id: 10,
            data: vec![("s".into(), Payload::new(vec![1, 2, 3]))],
            workers: vec![],
            broadcast: true,
        },
    );
    let stores: Vec<u64> = h
        .out
        .iter()
        .filter_map(|m| match m {
            Outgoing::Worker(w, ToWorker::StoreData { .. }) => Some(w.0),
            _ => None,
        })
        .collect();
    assert_eq!(stores, vec![3]);
    h.worker_sends(
        3,
        FromWorker::AddKeys {
            keys: vec![("s".into(), 3)],
        },
    );
    assert!(h.to_client(C1).iter().any(|m| matches!(
        m,
        ToClient::ScatterDone {
            request_id: 10,
            error: None
        }
    )));
}
