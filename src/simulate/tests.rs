//! Small simulations: the real scheduler finishes each shape, survives a
//! killed worker, stays near the lower bound where placement is easy, and
//! a replayed graph is the graph written.

use super::shapes::{build, lower_bounds, read_graph, write_graph};
use super::*;

/// A free scheduler (its real time not counted), so virtual times are exact
/// and the same on every machine.
fn cfg(shape: Shape, ntasks: usize, workers: u32) -> SimConfig {
    SimConfig {
        shape,
        ntasks,
        workers,
        scheduler_time_scale: 0.0,
        ..SimConfig::default()
    }
}

#[test]
fn every_shape_finishes_with_every_result() {
    for shape in [
        Shape::Map,
        Shape::Tree { fanin: 8 },
        Shape::Shuffle { fanin: 8 },
        Shape::Random {
            max_deps: 4,
            window: 100,
        },
        Shape::Pipeline { stages: 3 },
    ] {
        let r = run(&cfg(shape.clone(), 3_000, 4)).expect("runs");
        assert_eq!(r.executed, r.tasks, "{shape:?}: every task ran once");
        assert_eq!(r.errors, 0, "{shape:?}");
        assert!(r.wanted > 0 && r.makespan_s > 0.0, "{shape:?}: {r:?}");
        assert!(
            r.makespan_s >= r.lower_bound_s * 0.999,
            "{shape:?}: below the lower bound: {r:?}"
        );
        assert_eq!(r.tasks_left, 0, "{shape:?}: released results are forgotten");
    }
}

#[test]
fn map_and_tree_stay_near_the_lower_bound() {
    // 1 ms tasks, 0.1 ms latency: the makespan is within the 1.3×.
    for shape in [Shape::Map, Shape::Tree { fanin: 8 }] {
        let r = run(&cfg(shape.clone(), 20_000, 8)).expect("runs");
        assert!(r.makespan_ratio < 1.3, "{shape:?}: ratio {} ({r:?})", r.makespan_ratio);
    }
}

#[test]
fn a_killed_worker_costs_reruns_not_results() {
    let mut c = cfg(Shape::Tree { fanin: 4 }, 4_000, 4);
    c.kills = vec![(0.3, 1)];
    let r = run(&c).expect("runs");
    assert_eq!(r.workers_killed, 1);
    assert_eq!(r.errors, 0, "{r:?}");
    assert!(r.executed > r.tasks, "lost results ran again: {r:?}");
}

#[test]
fn killing_every_worker_is_reported_not_a_hang() {
    let mut c = cfg(Shape::Map, 1_000, 2);
    c.kills = vec![(0.01, 0), (0.01, 1)];
    match run(&c) {
        Err(SimError::Stuck(why)) => assert!(why.contains("not reported"), "{why}"),
        other => panic!("expected a stuck run, got {other:?}"),
    }
}

#[test]
fn the_event_bound_stops_a_run() {
    let mut c = cfg(Shape::Map, 1_000, 2);
    c.max_events = 100;
    assert!(matches!(run(&c), Err(SimError::Stuck(_))));
}

#[test]
fn lower_bounds_are_the_critical_path_and_the_spread_work() {
    let t = |deps: Vec<u32>, d: f64| SimTask {
        deps,
        duration_s: d,
        nbytes: 1,
        func: 0,
    };
    let g = vec![t(vec![], 1.0), t(vec![], 2.0), t(vec![0, 1], 3.0), t(vec![], 4.0)];
    let (critical, work) = lower_bounds(&g, 2);
    assert_eq!(critical, 5.0);
    assert_eq!(work, 5.0);
    let (critical, work) = lower_bounds(&g, 1);
    assert_eq!((critical, work), (5.0, 10.0));
}

#[test]
fn a_written_graph_replays_as_written() {
    let costs = Costs {
        mean_duration_s: 0.002,
        exponential: true,
        nbytes: 100,
        seed: 7,
        stage_functions: true,
    };
    let g = build(
        &Shape::Random {
            max_deps: 3,
            window: 50,
        },
        500,
        &costs,
    )
    .expect("builds");
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("graph.jsonl");
    write_graph(&path, &g).expect("writes");
    let back = read_graph(&path).expect("reads");
    assert_eq!(back.len(), g.len());
    for (x, y) in back.iter().zip(&g) {
        assert_eq!((&x.deps, x.nbytes, x.func), (&y.deps, y.nbytes, y.func));
        // JSON keeps a float to within its last bit.
        assert!(
            (x.duration_s - y.duration_s).abs() <= 1e-15,
            "{} vs {}",
            x.duration_s,
            y.duration_s
        );
    }
    let a = run_graph(&cfg(Shape::Map, 0, 3), &g).expect("runs");
    let b = run(&cfg(Shape::Replay(path), 0, 3)).expect("replays");
    assert_eq!(a.executed, b.executed);
    assert!(
        (a.makespan_s - b.makespan_s).abs() < 1e-9,
        "a free scheduler makes the run deterministic: {} vs {}",
        a.makespan_s,
        b.makespan_s
    );
}

#[test]
fn a_graph_file_naming_a_later_task_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let path = dir.path().join("bad.jsonl");
    std::fs::write(&path, "{\"deps\":[1],\"duration_s\":0.1,\"nbytes\":1}\n").expect("write");
    let e = read_graph(&path).expect_err("refused");
    assert!(e.to_string().contains("not before it"), "{e}");
}

#[test]
fn a_captured_graph_keeps_edges_in_the_list_and_measured_durations() {
    use crate::wire::messages::{Arg, StreamKind, TaskSpec, TaskStreamRecord};
    let spec = |key: &str, args: Vec<Arg>| TaskSpec {
        key: key.into(),
        function: "f".into(),
        args,
        priority: 0,
        workers: Vec::new(),
        allow_other_workers: false,
        retries: 0,
        resources: Vec::new(),
    };
    let specs = vec![
        spec("a", vec![Arg::Value(vec![1])]),
        spec("b", vec![Arg::Key("outside-future".into())]),
        TaskSpec {
            function: "g".into(),
            ..spec("c", vec![Arg::Keys(vec!["a".into(), "b".into(), "a".into()])])
        },
    ];
    let rec = |key: &str, start_us: u64, stop_us: u64| TaskStreamRecord {
        seq: 0,
        key: key.into(),
        function: "f".into(),
        worker: "w".into(),
        thread: 0,
        start_us,
        stop_us,
        kind: StreamKind::Compute,
    };
    let g = super::shapes::capture(&specs, &[rec("a", 0, 2_000), rec("c", 10, 4_010)], 16);
    assert_eq!(g[0].deps, Vec::<u32>::new());
    assert_eq!(g[1].deps, Vec::<u32>::new(), "a future's key is outside the graph");
    assert_eq!(g[2].deps, vec![0, 1]);
    assert_eq!((g[0].duration_s, g[2].duration_s), (0.002, 0.004));
    assert!((g[1].duration_s - 0.003).abs() < 1e-12, "unseen tasks count the mean");
    assert!(g.iter().all(|t| t.nbytes == 16));
    assert_eq!(
        g.iter().map(|t| t.func).collect::<Vec<_>>(),
        vec![0, 0, 1],
        "functions in order of first use"
    );
}

#[test]
fn root_runs_keep_a_reductions_siblings_on_one_worker() {
    // 10 µs leaves summed by eights on two workers: one root task at a
    // time alternates neighbours between the workers, so about half of
    // the sums' inputs move; runs of root tasks keep them in place.
    let with_runs = |len: u32| {
        let mut c = cfg(Shape::Tree { fanin: 8 }, 8_000, 2);
        c.costs.mean_duration_s = 1e-5;
        c.scheduler.root_run_length = len;
        run(&c).expect("runs")
    };
    let single = with_runs(1);
    let runs = with_runs(crate::scheduler::SchedulerConfig::default().root_run_length);
    assert_eq!(runs.executed, runs.tasks);
    assert!(single.transfers > 2_000, "one at a time moves many inputs: {single:?}");
    assert!(
        runs.transfers * 10 < single.transfers,
        "runs: {} inputs moved, one at a time: {}",
        runs.transfers,
        single.transfers
    );
    assert!(
        runs.makespan_s <= single.makespan_s * 1.05,
        "runs cost makespan: {} s against {} s",
        runs.makespan_s,
        single.makespan_s
    );
}

#[test]
fn first_sight_placement_keeps_large_inputs_in_place_without_costing_makespan() {
    // Issue 15: each stage of a pipeline calls its own function, so each
    // stage's first tasks are placed before any is measured (0.5 s each
    // on a guess); results are 30 MB (30 ms to move). Counting the guess
    // as measured work, some of them moved their input to an idle worker.
    let stages = |locality: bool| {
        let mut c = cfg(Shape::Pipeline { stages: 4 }, 400, 8);
        c.threads_per_worker = 2;
        c.costs.mean_duration_s = 0.01;
        c.costs.exponential = true;
        c.costs.nbytes = 30_000_000;
        c.costs.stage_functions = true;
        c.scheduler.first_sight_locality = locality;
        run(&c).expect("runs")
    };
    let guess_moves = stages(false);
    let first_sight = stages(true);
    assert_eq!(first_sight.executed, first_sight.tasks);
    assert!(guess_moves.transfers > 10, "the guess moved inputs: {guess_moves:?}");
    assert_eq!(first_sight.transfers, 0, "{first_sight:?}");
    assert!(
        first_sight.makespan_s <= guess_moves.makespan_s,
        "first sight: {} s, the guess: {} s",
        first_sight.makespan_s,
        guess_moves.makespan_s
    );
}

/// A worker fetches each input once, however many of its tasks want it
/// (a real worker's fetches are per key): in an all-to-all shuffle on two
/// workers every reduce wants every map's result, so without that each
/// worker would move each remote result once per reduce it runs.
#[test]
fn a_worker_fetches_an_input_once_for_all_its_tasks() {
    let (maps, workers) = (50u64, 2u64);
    let r = run(&cfg(Shape::Shuffle { fanin: 8 }, 2 * maps as usize, workers as u32)).expect("runs");
    assert_eq!(r.errors, 0, "{r:?}");
    assert!(r.transfers > 0, "a shuffle over two workers moves results: {r:?}");
    assert!(
        r.transfers <= workers * maps,
        "{} transfers: more than one per (worker, map result) ({r:?})",
        r.transfers
    );
}
