//! Task lifecycle: submit, compute, release, forget; graph intake (dedup,
//! unknown dependencies, cycles, graph order); refused events.

use super::helpers::*;

#[test]
fn names_and_refused_events() {
    assert_eq!(TaskState::NoWorker.name(), "no-worker");
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    let mut o = Outbox::default();
    // A client's message on a worker's connection, or the reverse, cannot
    // reach these handlers: the types differ, and the session refuses it
    // when decoding (tested in wire/messages/to_scheduler_tests.rs).
    let err =
        h.s.handle_worker_message(
            WorkerId(1),
            FromWorker::RegisterWorker {
                name: "b".into(),
                address: "tcp://b:1".into(),
                nthreads: 1,
                memory_limit: 0,
                functions: vec![],
                resources: vec![],
                restarted: None,
                nanny: false,
                keys: vec![],
            },
            &mut o,
        )
        .unwrap_err();
    assert!(matches!(err, SchedulerError::RegisteredAgain));
    assert_eq!(err.to_string(), "message RegisterWorker is not valid from a worker");
    assert!(o.messages.is_empty());
    assert!(matches!(
        h.s.handle_worker_message(WorkerId(9), FromWorker::RetireMe, &mut o),
        Err(SchedulerError::UnknownWorker(WorkerId(9)))
    ));
    assert!(matches!(
        h.s.handle_client_message(ClientId(9), FromClient::CloseClient, &mut o),
        Err(SchedulerError::UnknownClient(ClientId(9)))
    ));
    let mut o = Outbox::default();
    assert!(matches!(
        h.s.add_worker(WorkerId(2), reg("a", &[]), &mut o),
        Err(SchedulerError::DuplicateWorkerName(_))
    ));
    assert_eq!(h.s.worker_count(), 1);
    assert_eq!(h.s.client_count(), 2);
}

#[test]
fn submit_compute_memory_release_forget() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.take();
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["y"]);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    assert_eq!(h.state("y"), Some(TaskState::Waiting));
    let msgs = h.take();
    match &msgs[..] {
        [Outgoing::Worker(WorkerId(1), ToWorker::ComputeTask { key, sequence, .. })] => {
            assert_eq!(key, "x");
            assert_eq!(*sequence, 0);
        }
        other => panic!("{other:?}"),
    }
    h.finish(1, "x");
    assert_eq!(h.state("x"), Some(TaskState::Memory));
    assert_eq!(h.state("y"), Some(TaskState::Processing));
    let msgs = h.take();
    match &msgs[..] {
        [Outgoing::Worker(
            WorkerId(1),
            ToWorker::ComputeTask {
                key,
                dependencies,
                sequence,
                ..
            },
        )] => {
            assert_eq!(key, "y");
            // Graph order: it inherits its dependency's sequence.
            assert_eq!(*sequence, 0);
            assert_eq!(dependencies[0].key, "x");
            assert_eq!(dependencies[0].who_has, vec!["tcp://a:1".to_string()]);
        }
        other => panic!("{other:?}"),
    }
    h.worker_sends(
        1,
        FromWorker::TaskFinished {
            key: "y".into(),
            nbytes: 3,
            inline: Some(Payload::new(vec![1, 2, 3])),
            duration_us: 5,
            thread: 0,
            run_id: LATEST,
        },
    );
    // x is no longer needed: freed and kept released (y could need it).
    assert_eq!(h.state("x"), Some(TaskState::Released));
    assert_eq!(h.freed(1), vec!["x".to_string()]);
    assert!(matches!(
        h.to_client(C1)[..],
        [ToClient::KeyInMemory { key, inline: Some(_), .. }] if key == "y"
    ));
    // A late wanter gets the inline value at once.
    h.take();
    h.submit(C2, vec![], &["y"]);
    assert!(matches!(
        h.to_client(C2)[..],
        [ToClient::KeyInMemory { key, inline: Some(_), .. }] if key == "y"
    ));
    h.release(C1, &["y"]);
    assert_eq!(h.state("y"), Some(TaskState::Memory));
    h.release(C2, &["y"]);
    assert_eq!(h.s.ntasks(), 0);
    assert!(h.freed(1).contains(&"y".to_string()));
    let info = h.s.info();
    assert_eq!(info.ntasks, 0);
    assert_eq!(info.workers[0].nkeys, 0);
}

#[test]
fn same_key_dedupes_and_two_clients() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.submit(C2, vec![spec("x", "other", &[])], &["x", "x"]);
    assert_eq!(h.computes(1), vec!["x".to_string()]);
    h.finish(1, "x");
    let n = h
        .to_client(C1)
        .iter()
        .chain(h.to_client(C2).iter())
        .filter(|m| matches!(m, ToClient::KeyInMemory { .. }))
        .count();
    assert_eq!(n, 2);
    h.take();
    h.release(C1, &["x"]);
    assert_eq!(h.state("x"), Some(TaskState::Memory));
    assert!(h.freed(1).is_empty());
    h.release(C2, &["x"]);
    assert_eq!(h.state("x"), None);
    assert_eq!(h.freed(1), vec!["x".to_string()]);
}

#[test]
fn release_while_processing_cancels() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["y"]);
    h.take();
    h.release(C1, &["y"]);
    assert_eq!(h.s.ntasks(), 0);
    assert_eq!(h.freed(1), vec!["x".to_string()]);
    // The late result is dropped.
    h.take();
    h.finish(1, "x");
    assert_eq!(h.freed(1), vec!["x".to_string()]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn close_client_releases() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "inc", &["x"])], &["x", "y"]);
    h.submit(C2, vec![], &["x"]);
    h.client(C1, FromClient::CloseClient);
    assert_eq!(h.state("y"), None);
    assert_eq!(h.state("x"), Some(TaskState::Processing));
    let mut o = Outbox::default();
    h.s.remove_client(C2, &mut o);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn unknown_dependency_errs() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("y", "inc", &["nope"])], &["y"]);
    assert_eq!(h.state("y"), Some(TaskState::Erred));
    match h.to_client(C1)[..] {
        [ToClient::TaskErred { failure, .. }] => {
            assert_eq!(failure.kind, ErrorKind::DataLost);
            assert!(failure.message.contains("\"nope\""));
        }
        ref other => panic!("{other:?}"),
    }
    h.release(C1, &["y"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn cycles_err_and_are_forgotten() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(
        C1,
        vec![
            spec("a", "inc", &["b"]),
            spec("b", "inc", &["a"]),
            spec("c", "inc", &["c"]),
            spec("d", "inc", &["a"]),
        ],
        &["a", "c", "d"],
    );
    for k in ["a", "c", "d"] {
        assert_eq!(h.state(k), Some(TaskState::Erred), "{k}");
    }
    // b erred too, but nobody wants it and nothing depends on it anymore.
    assert_eq!(h.state("b"), None);
    h.release(C1, &["a", "c", "d"]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn graph_order_puts_a_reduction_right_after_its_inputs() {
    let mut h = H::new();
    h.worker(1, "a", &["inc", "add"]);
    let mut tasks: Vec<TaskSpec> = (0..4).map(|i| spec(&format!("l{i}"), "inc", &[])).collect();
    tasks.push(spec("r0", "add", &["l0", "l1"]));
    tasks.push(spec("r1", "add", &["l2", "l3"]));
    tasks.push(spec("total", "add", &["r0", "r1"]));
    h.submit(C1, tasks, &["total"]);
    let seq = |h: &H, k: &str| h.s.slot(h.s.task_id(k).expect("a known key")).sequence;
    assert_eq!(seq(&h, "r0"), seq(&h, "l1"));
    assert!(seq(&h, "r0") < seq(&h, "l2"));
    assert_eq!(seq(&h, "r1"), seq(&h, "l3"));
    assert_eq!(seq(&h, "total"), seq(&h, "l3"));
    // So r0, ready once l0 and l1 are done, sorts ahead of l2 and l3
    // at the worker (and in the scheduler's queues).
    let r0 = h.s.task_id("r0").expect("a known key");
    let l2 = h.s.task_id("l2").expect("a known key");
    assert!(h.s.slot(r0).queue_key(r0) < h.s.slot(l2).queue_key(l2));
}

#[test]
fn deep_chain_and_wide_fan_in() {
    let mut h = H::new();
    h.check = false;
    h.worker(1, "a", &["inc"]);
    let n = 20_000;
    let mut tasks = vec![spec("k0", "inc", &[])];
    for i in 1..n {
        tasks.push(spec(&format!("k{i}"), "inc", &[&format!("k{}", i - 1)]));
    }
    let last = format!("k{}", n - 1);
    h.submit(C1, tasks, &[&last]);
    for i in 0..n {
        h.finish(1, &format!("k{i}"));
        h.take();
    }
    assert_eq!(h.state(&last), Some(TaskState::Memory));
    // Intermediate data was freed as it went.
    assert_eq!(h.s.counts[TaskState::Memory.index()], 1);
    h.s.check_invariants().unwrap();
    h.release(C1, &[&last]);
    assert_eq!(h.s.ntasks(), 0);
}

#[test]
fn slot_size() {
    // Keep an eye on the per-task footprint. 264 since the arguments went
    // inline (`Args`: 16 bytes more here, one 48-byte allocation less per
    // task) and the failure moved to `Extra` (8 less).
    assert!(
        std::mem::size_of::<TaskSlot>() <= 264,
        "{}",
        std::mem::size_of::<TaskSlot>()
    );
}

/// `cargo test --release -- --ignored --nocapture bench_`: rough cost
/// per task through submit, compute, finish and release.
#[test]
#[ignore]
fn bench_throughput() {
    let n: usize = std::env::var("BENCH_N")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(200_000);
    for &(n, width) in &[(n, 1usize), (n, 100)] {
        let mut s = SchedulerState::new(SchedulerConfig::default());
        let mut out = Outbox::default();
        s.add_client(C1, &mut out);
        for w in 0..8 {
            let mut r = reg(&format!("w{w}"), &["inc"]);
            r.nthreads = 4;
            s.add_worker(WorkerId(w), r, &mut out).unwrap();
        }
        // `width` independent chains of n / width tasks, all wanted.
        let specs: Vec<TaskSpec> = (0..n)
            .map(|i| {
                if i < width {
                    spec(&format!("t{i}"), "inc", &[])
                } else {
                    spec(&format!("t{i}"), "inc", &[&format!("t{}", i - width)])
                }
            })
            .collect();
        let keys: Vec<String> = specs.iter().map(|t| t.key.clone()).collect();
        out.messages.clear();
        let start = std::time::Instant::now();
        s.handle_client_message(
            C1,
            FromClient::UpdateGraph {
                tasks: specs,
                wanted: keys.clone(),
            },
            &mut out,
        )
        .unwrap();
        let submitted = start.elapsed();
        let mut done = 0;
        while !out.messages.is_empty() {
            let msgs = std::mem::take(&mut out.messages);
            for m in msgs {
                if let Outgoing::Worker(w, ToWorker::ComputeTask { key, run_id, .. }) = m {
                    done += 1;
                    s.handle_worker_message(
                        w,
                        FromWorker::TaskFinished {
                            key,
                            nbytes: 8,
                            inline: Some(Payload::new(vec![0u8; 8])),
                            duration_us: 100,
                            thread: 0,
                            run_id,
                        },
                        &mut out,
                    )
                    .unwrap();
                }
            }
        }
        let computed = start.elapsed();
        assert_eq!(done, n);
        let start = std::time::Instant::now();
        s.handle_client_message(C1, FromClient::ReleaseKeys { keys }, &mut out)
            .unwrap();
        let released = start.elapsed();
        assert_eq!(s.ntasks(), 0);
        eprintln!(
            "{n} tasks in {width} chains: submit {:.0} ns/task, submit+compute {:.0} ns/task, release {:.0} ns/task",
            submitted.as_nanos() as f64 / n as f64,
            computed.as_nanos() as f64 / n as f64,
            released.as_nanos() as f64 / n as f64
        );
    }
    eprintln!("TaskSlot: {} bytes", std::mem::size_of::<TaskSlot>());
}

#[test]
fn invariants_catch_a_corrupted_state() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    assert_eq!(h.s.check_invariants(), Ok(()));
    h.s.worker_mut(WIdx(0)).occupancy_ns += 1;
    let err = h.s.check_invariants().unwrap_err();
    assert!(err.contains("occupancy"), "{err}");
}
