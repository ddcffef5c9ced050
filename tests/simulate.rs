//! `rdask simulate` as a user runs it: one JSON line per run, and a clear
//! error for a bad flag.

use std::process::Command;

#[test]
fn simulate_prints_a_json_line_per_run() {
    let out = Command::new(env!("CARGO_BIN_EXE_rdask"))
        .args(["simulate", "--shape", "tree", "--tasks", "2000", "--workers", "2,16"])
        .output()
        .expect("run rdask simulate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let lines: Vec<serde_json::Value> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| serde_json::from_str(l).expect("a JSON line"))
        .collect();
    assert_eq!(lines.len(), 2);
    for (l, workers) in lines.iter().zip([2, 16]) {
        assert_eq!(l["workers"], workers);
        assert_eq!(l["executed"], l["tasks"], "{l}");
        assert_eq!(l["errors"], 0);
        assert!(l["makespan_ratio"].as_f64().expect("ratio") >= 0.999, "{l}");
        assert!(l["scheduler_us_per_task"].as_f64().expect("cost") > 0.0, "{l}");
    }
}

#[test]
fn simulate_refuses_an_unknown_shape_and_a_replay_without_a_graph() {
    for (args, says) in [
        (vec!["--shape", "star"], "unknown shape"),
        (vec!["--shape", "replay"], "needs --graph"),
        (vec!["--kill", "soon"], "SECONDS@WORKER"),
    ] {
        let out = Command::new(env!("CARGO_BIN_EXE_rdask"))
            .arg("simulate")
            .args(&args)
            .output()
            .expect("run rdask simulate");
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
}

/// Runs `rdask simulate` with `args`; its one JSON line.
fn simulate_once(args: &[&str]) -> serde_json::Value {
    let out = Command::new(env!("CARGO_BIN_EXE_rdask"))
        .arg("simulate")
        .args(args)
        .output()
        .expect("run rdask simulate");
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    serde_json::from_str(String::from_utf8_lossy(&out.stdout).trim()).expect("a JSON line")
}

#[test]
fn simulate_runs_stage_functions_with_and_without_first_sight_placement() {
    // A pipeline whose stages call their own functions, 30 MB results:
    // with first-sight placement no input moves; with it off (Dask's
    // rule) the 0.5 s guess moves some.
    let args = [
        "--shape",
        "pipeline",
        "--stages",
        "4",
        "--stage-functions",
        "--tasks",
        "400",
        "--workers",
        "8",
        "--threads",
        "2",
        "--duration",
        "0.01",
        "--exponential",
        "--nbytes",
        "30000000",
        "--scheduler-time-scale",
        "0",
    ];
    let on = simulate_once(&args);
    let mut off_args = args.to_vec();
    off_args.push("--no-first-sight-locality");
    let off = simulate_once(&off_args);
    for l in [&on, &off] {
        assert_eq!(l["executed"], 400, "{l}");
        assert_eq!(l["errors"], 0, "{l}");
    }
    assert_eq!(on["transfers"], 0, "{on}");
    assert!(off["transfers"].as_u64().expect("transfers") > 0, "{off}");
}
