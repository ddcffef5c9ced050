//! The diagnostics the scheduler records: task-stream records, per-function
//! progress, the event log, and the ring's bound.

use super::helpers::*;
use crate::scheduler::diagnostics::{Diagnostics, TASK_STREAM_CAPACITY};
use crate::scheduler::worker_load::{LOG_PAGE_LINES_PER_WORKER, WORKER_LOG_CAPACITY};
use crate::wire::messages::{SpillEvent, StreamKind};

#[test]
fn finished_tasks_become_stream_records_with_function_worker_and_thread() {
    let mut h = H::new();
    h.worker(1, "a", &["inc", "dec"]);
    h.submit(C1, vec![spec("x", "inc", &[]), spec("y", "dec", &["x"])], &["y"]);
    h.worker_sends(
        1,
        FromWorker::TaskFinished {
            key: "x".into(),
            nbytes: 8,
            inline: None,
            duration_us: 1500,
            thread: 3,
            run_id: LATEST,
        },
    );
    h.finish(1, "y");
    let records = h.s.task_stream(0);
    assert_eq!(records.len(), 2);
    let x = &records[0];
    assert_eq!((x.seq, x.key.as_str(), x.function.as_str()), (0, "x", "inc"));
    assert_eq!((x.worker.as_str(), x.thread, x.kind), ("a", 3, StreamKind::Compute));
    assert_eq!(x.stop_us - x.start_us, 1500);
    assert_eq!(records[1].function, "dec");
    // Reading from a sequence number skips what was read.
    let rest = h.s.task_stream(1);
    assert_eq!(rest.len(), 1);
    assert_eq!(rest[0].key, "y");
    assert!(h.s.task_stream(2).is_empty());
    // A live view asks for the newest only.
    let newest = h.s.task_stream_newest(0, 1);
    assert_eq!((newest.len(), newest[0].key.as_str()), (1, "y"));
}

#[test]
fn stale_reports_are_not_recorded() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.finish(1, "unknown");
    assert!(h.s.task_stream(0).is_empty());
}

#[test]
fn transfers_are_recorded_on_the_fetching_worker() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    h.worker_sends(
        1,
        FromWorker::TransferStats {
            bytes: 1 << 20,
            duration_us: 900,
        },
    );
    let r = h.s.task_stream(0);
    assert_eq!(r.len(), 1);
    assert_eq!(
        (r[0].kind, r[0].function.as_str(), r[0].worker.as_str()),
        (StreamKind::Transfer, "transfer", "a")
    );
    assert_eq!(r[0].stop_us - r[0].start_us, 900);
}

#[test]
fn progress_counts_tasks_by_function_and_state() {
    let mut h = H::new();
    h.submit(
        C1,
        vec![spec("x", "inc", &[]), spec("y", "inc", &["x"]), spec("z", "dec", &[])],
        &["y", "z"],
    );
    // No worker yet: the roots wait for one.
    let p = h.s.function_progress();
    assert_eq!(
        p.iter().map(|f| f.function.as_str()).collect::<Vec<_>>(),
        ["dec", "inc"]
    );
    assert_eq!((p[1].no_worker + p[1].queued, p[1].waiting), (1, 1));
    h.worker(1, "a", &["inc", "dec"]);
    h.finish(1, "x");
    h.finish(1, "y");
    h.worker_sends(
        1,
        FromWorker::TaskErred {
            key: "z".into(),
            failure: failure("boom"),
            run_id: LATEST,
        },
    );
    let p = h.s.function_progress();
    assert_eq!((p[0].function.as_str(), p[0].erred), ("dec", 1));
    // x is forgotten once y, its only dependent, is in memory.
    assert_eq!((p[1].function.as_str(), p[1].memory, p[1].processing), ("inc", 1, 0));
    // Forgotten tasks leave the counts; a function with none left is not listed.
    h.release(C1, &["y", "z"]);
    assert!(h.s.function_progress().is_empty());
}

#[test]
fn event_log_records_membership_failures_and_retries() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    let mut x = spec("x", "inc", &[]);
    x.retries = 1;
    h.submit(C1, vec![x], &["x"]);
    for _ in 0..2 {
        h.worker_sends(
            1,
            FromWorker::TaskErred {
                key: "x".into(),
                failure: failure("boom"),
                run_id: LATEST,
            },
        );
    }
    h.kill(1);
    let kinds: Vec<String> = h.s.events(0).into_iter().map(|e| e.kind).collect();
    assert_eq!(kinds, ["worker-joined", "retry", "task-erred", "worker-left"]);
    let events = h.s.events(0);
    assert!(events[1].text.contains("boom"), "{:?}", events[1]);
    assert_eq!(h.s.events(3).len(), 1);
}

#[test]
fn killed_worker_is_logged() {
    let mut h = H::with(SchedulerConfig {
        allowed_failures: 0,
        ..Default::default()
    });
    h.submit(C1, vec![spec("x", "inc", &[])], &["x"]);
    h.worker(1, "a", &["inc"]);
    h.kill(1);
    assert_eq!(h.state("x"), Some(TaskState::Erred));
    let e = h.s.events(0);
    assert!(
        e.iter().any(|e| e.kind == "killed-worker" && e.text.contains("a")),
        "{e:?}"
    );
}

#[test]
fn the_stream_keeps_only_the_last_records() {
    let mut d = Diagnostics::default();
    d.name_worker(WIdx(0), "a");
    for _ in 0..TASK_STREAM_CAPACITY + 10 {
        d.transfer(WIdx(0), 1);
    }
    let r = d.records(0, 1000, |_| "f");
    assert_eq!(r.len(), 1000);
    assert_eq!(r[0].seq, 10, "the oldest ten fell off the ring");
    let tail = d.records(TASK_STREAM_CAPACITY as u64 + 5, 1000, |_| "f");
    assert_eq!(tail.len(), 5);
    assert_eq!(d.next_seq(), TASK_STREAM_CAPACITY as u64 + 10);
}

#[test]
fn the_task_graph_has_nodes_by_state_and_edges_up_to_its_bound() {
    let mut h = H::new();
    h.worker(1, "a", &["inc", "dec"]);
    h.submit(
        C1,
        vec![
            spec("x", "inc", &[]),
            spec("y", "dec", &["x"]),
            spec("z", "dec", &["x", "y"]),
        ],
        &["z"],
    );
    h.finish(1, "x");
    let g = h.s.task_graph(10);
    assert!(!g.too_large);
    assert_eq!(g.ntasks, 3);
    let node = |k: &str| g.nodes.iter().position(|n| n.key == k).expect("node");
    assert_eq!(g.nodes[node("x")].state, "memory");
    assert_eq!(g.nodes[node("x")].function, "inc");
    let mut edges = g.edges.clone();
    edges.sort();
    let mut want = vec![
        (node("x") as u32, node("y") as u32),
        (node("x") as u32, node("z") as u32),
        (node("y") as u32, node("z") as u32),
    ];
    want.sort();
    assert_eq!(edges, want);
    // Past the bound: the size only.
    let small = h.s.task_graph(2);
    assert!(small.too_large);
    assert_eq!((small.ntasks, small.nodes.len(), small.edges.len()), (3, 0, 0));
}

fn heartbeat(spilled_bytes: u64, bytes_moved: u64, spills: Vec<SpillEvent>, log: Vec<String>) -> FromWorker {
    FromWorker::Heartbeat {
        nkeys: 1,
        nbytes: 100,
        executing: 0,
        ready: 0,
        spilled_bytes,
        rss_bytes: 5_000,
        cpu_percent: 42.0,
        bytes_fetched: bytes_moved,
        bytes_served: 0,
        spills,
        log,
    }
}

#[test]
fn heartbeats_give_load_figures_spill_records_and_bounded_logs() {
    let mut h = H::new();
    h.worker(1, "a", &["inc"]);
    let spill = |unspill| SpillEvent {
        unspill,
        bytes: 1 << 20,
        duration_us: 700,
        ago_us: 2_000,
    };
    let lines: Vec<String> = (0..250).map(|i| format!("line {i}")).collect();
    h.worker_sends(1, heartbeat(300, 0, vec![spill(false), spill(true)], lines));
    let r = h.s.task_stream(0);
    assert_eq!(r.len(), 2);
    assert_eq!((r[0].kind, r[0].function.as_str()), (StreamKind::Spill, "spill"));
    assert_eq!((r[1].kind, r[1].function.as_str()), (StreamKind::Unspill, "unspill"));
    assert_eq!(r[0].stop_us - r[0].start_us, 700);
    let loads = h.s.worker_loads();
    assert_eq!(loads.len(), 1);
    assert_eq!((loads[0].1.spilled_bytes, loads[0].1.rss_bytes), (300, 5_000));
    assert_eq!(loads[0].1.cpu_percent, 42.0);
    assert_eq!(loads[0].1.bandwidth, 0.0, "one heartbeat: no rate yet");
    let info = h.s.info();
    assert_eq!((info.workers[0].spilled_bytes, info.workers[0].cpu_percent), (300, 42));
    std::thread::sleep(std::time::Duration::from_millis(5));
    h.worker_sends(1, heartbeat(300, 1_000_000, Vec::new(), Vec::new()));
    assert!(h.s.worker_loads()[0].1.bandwidth > 0.0);
    // The scheduler keeps the newest WORKER_LOG_CAPACITY lines; a read of
    // all workers gets fewer per worker, one asked by name all of them.
    let all = h.s.worker_logs(None);
    assert_eq!((all.workers.len(), all.more_workers), (1, 0));
    assert_eq!(all.workers[0].lines.len(), LOG_PAGE_LINES_PER_WORKER);
    assert_eq!(all.workers[0].lines.last().map(String::as_str), Some("line 249"));
    let one = h.s.worker_logs(Some("a"));
    assert_eq!(one.workers[0].lines.len(), WORKER_LOG_CAPACITY);
    assert_eq!(one.workers[0].lines[0], format!("line {}", 250 - WORKER_LOG_CAPACITY));
    let none = h.s.worker_logs(Some("nobody"));
    assert_eq!((none.workers.len(), none.more_workers), (0, 1));
}
