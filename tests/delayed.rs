//! Lazy graphs (`rdask::delayed`): the seed's load/process/summarize loop,
//! shared sub-graphs run once, chain fusion (on and off give the same
//! results; fused graphs submit fewer tasks), the local thread-pool
//! executor against a sequential reference on random graphs, futures and
//! maps as arguments, `visualize`, and a graph computed by real
//! `rdask scheduler` / `rdask worker` processes.

use std::collections::BTreeMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use proptest::prelude::*;
use rdask::builtins::{add, inc, sum};
use rdask::delayed::{compute, delayed, ComputeOptions, Delayed};
use rdask::{Client, LocalCluster};

mod common;
use common::*;

#[rdask::task]
fn load(name: String) -> Vec<u8> {
    name.into_bytes()
}

#[rdask::task]
fn process(data: Vec<u8>) -> usize {
    data.len()
}

#[rdask::task]
fn summarize(parts: Vec<usize>) -> usize {
    parts.iter().sum()
}

static EXPENSIVE_RUNS: AtomicUsize = AtomicUsize::new(0);

#[rdask::task]
fn expensive(x: i64) -> i64 {
    EXPENSIVE_RUNS.fetch_add(1, Ordering::SeqCst);
    x * 10
}

#[rdask::task]
fn weigh(named: BTreeMap<String, i64>) -> String {
    named
        .iter()
        .map(|(k, v)| format!("{k}={v}"))
        .collect::<Vec<_>>()
        .join(",")
}

fn cluster(workers: usize) -> LocalCluster {
    let c = LocalCluster::new(workers).expect("cluster starts");
    assert!(c.wait_for_workers(workers, Duration::from_secs(10)));
    c
}

#[test]
fn the_seeds_loop_runs_lazily_then_in_one_compute() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    let filenames = ["a.json", "bb.json", "ccc.json"];
    let mut parts = Vec::new();
    for fname in filenames {
        let data = delayed(load, (fname,));
        parts.push(delayed(process, (&data,)));
    }
    let result = delayed(summarize, (parts,));
    // Nothing was sent while building.
    assert_eq!(client.scheduler_info()?.ntasks, 0);
    assert_eq!(result.graph_len(), 7);
    let summary = result.compute(&client)?;
    assert_eq!(summary, filenames.iter().map(|f| f.len()).sum::<usize>());
    assert_eq!(result.compute_local()?, summary);
    Ok(())
}

#[test]
fn shared_sub_graphs_run_once_across_outputs_and_keys_are_deterministic() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    let x = delayed(expensive, (7i64,));
    // Built twice, the same call is the same task.
    assert_eq!(x.key(), delayed(expensive, (7i64,)).key());
    assert_ne!(x.key(), delayed(expensive, (8i64,)).key());
    let a = delayed(inc, (&x,));
    let b = delayed(add, (&x, 1i64));
    let before = EXPENSIVE_RUNS.load(Ordering::SeqCst);
    let (ra, rb) = compute(&client, (&a, &b))?;
    assert_eq!((ra, rb), (71, 71));
    assert_eq!(
        EXPENSIVE_RUNS.load(Ordering::SeqCst) - before,
        1,
        "the shared call ran more than once"
    );
    Ok(())
}

#[test]
fn a_fused_chain_is_one_task_and_gives_the_same_result_as_without_fusion() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    let mut x: Delayed<i64> = delayed(inc, (0i64,));
    for _ in 1..100 {
        x = delayed(inc, (&x,));
    }
    assert_eq!(x.task_count(&ComputeOptions::default())?, 1);
    assert_eq!(x.task_count(&ComputeOptions::default().fuse(false))?, 100);
    assert_eq!(x.compute(&client)?, 100);
    assert_eq!(x.compute_with(&client, &ComputeOptions::default().fuse(false))?, 100);
    // A chain feeding a fan-in: the branches fuse, the fan-in stays.
    let branches: Vec<Delayed<i64>> = (0..10i64).map(|i| delayed(inc, (delayed(inc, (i,)),))).collect();
    let total = delayed(sum, &branches);
    assert_eq!(total.task_count(&ComputeOptions::default())?, 11);
    assert_eq!(total.compute(&client)?, (0..10).map(|i| i + 2).sum::<i64>());
    Ok(())
}

#[test]
fn futures_maps_and_lists_are_arguments_of_lazy_calls() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let f = client.submit(inc, (41i64,))?;
    let lazy = delayed(add, (&f, 1i64));
    assert_eq!(lazy.compute(&client)?, 43);
    let mut named = BTreeMap::new();
    named.insert("a".to_string(), delayed(inc, (1i64,)));
    named.insert("b".to_string(), delayed(add, (2i64, 3i64)));
    let w = delayed(weigh, (&named,));
    assert_eq!(w.compute(&client)?, "a=2,b=5");
    assert_eq!(w.compute_local()?, "a=2,b=5");
    // A graph that needs a cluster's future cannot run locally, and says so.
    let err = lazy.compute_local().unwrap_err().to_string();
    assert!(err.contains("future of a cluster"), "{err}");
    Ok(())
}

#[test]
fn a_failing_call_fails_the_compute_with_its_key() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let bad = delayed(rdask::builtins::fail, ("boom",));
    let err = bad.compute(&client).unwrap_err().to_string();
    assert!(err.contains("boom"), "{err}");
    let err = bad.compute_local().unwrap_err().to_string();
    assert!(err.contains("boom") && err.contains(bad.key()), "{err}");
    Ok(())
}

#[test]
fn visualize_writes_the_graph_as_dot() -> anyhow::Result<()> {
    let dir = TempDir::new("dot");
    let a = delayed(inc, (1i64,));
    let b = delayed(add, (&a, &a));
    let path = dir.0.join("g.dot");
    b.visualize(&path)?;
    let text = std::fs::read_to_string(&path)?;
    assert!(text.starts_with("digraph"), "{text}");
    assert!(
        text.contains("label=\"inc\"") && text.contains("label=\"add\""),
        "{text}"
    );
    assert_eq!(text.matches("->").count(), 2, "{text}");
    Ok(())
}

#[test]
fn a_graph_runs_on_real_scheduler_and_worker_processes_fused_or_not() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (_w1, _) = worker_with(&addr, "w1", &["--nthreads", "1"]);
    let (_w2, _) = worker_with(&addr, "w2", &["--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let chains: Vec<Delayed<i64>> = (0..20i64)
        .map(|i| {
            let mut x = delayed(inc, (i,));
            for _ in 0..5 {
                x = delayed(inc, (&x,));
            }
            x
        })
        .collect();
    let total = delayed(sum, &chains);
    let expected: i64 = (0..20).map(|i| i + 6).sum();
    assert_eq!(total.compute(&client)?, expected);
    assert_eq!(
        total.compute_with(&client, &ComputeOptions::default().fuse(false))?,
        expected
    );
    Ok(())
}

/// A random DAG over `inc`/`add`/`sum`, built lazily and evaluated
/// directly by a sequential reference.
fn build(ops: &[(u8, usize, usize, i64)]) -> (Vec<Delayed<i64>>, Vec<i64>) {
    let mut lazy: Vec<Delayed<i64>> = Vec::new();
    let mut want: Vec<i64> = Vec::new();
    for &(op, a, b, v) in ops {
        if lazy.is_empty() || op % 4 == 0 {
            lazy.push(delayed(inc, (v,)));
            want.push(v + 1);
            continue;
        }
        let (a, b) = (a % lazy.len(), b % lazy.len());
        match op % 4 {
            1 => {
                lazy.push(delayed(inc, (&lazy[a],)));
                want.push(want[a] + 1);
            }
            2 => {
                lazy.push(delayed(add, (&lazy[a], &lazy[b])));
                want.push(want[a] + want[b]);
            }
            _ => {
                let parts = vec![lazy[a].clone(), lazy[b].clone(), lazy[a].clone()];
                lazy.push(delayed(sum, parts));
                want.push(2 * want[a] + want[b]);
            }
        }
    }
    (lazy, want)
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(64))]
    #[test]
    fn the_local_executor_matches_a_sequential_reference_fused_or_not(
        ops in prop::collection::vec((0u8..8, 0usize..64, 0usize..64, -100i64..100), 1..60),
    ) {
        let (lazy, want) = build(&ops);
        let last = lazy.len() - 1;
        let all = delayed(sum, &lazy);
        let expected: i64 = want.iter().sum();
        for fuse in [true, false] {
            let opts = ComputeOptions { fuse, local_threads: 3 };
            prop_assert_eq!(lazy[last].compute_local_with(&opts).map_err(|e| TestCaseError::fail(e.to_string()))?, want[last]);
            prop_assert_eq!(all.compute_local_with(&opts).map_err(|e| TestCaseError::fail(e.to_string()))?, expected);
        }
    }
}
