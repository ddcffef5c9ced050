//! Linear fusion (Dask's `fuse`): a chain of calls where each result is used
//! only by the next call, and that call depends on nothing else lazy, runs
//! as one scheduled task on one worker, through the built-in
//! [`FUSED`](FUSED_NAME) function. It saves the scheduler a round trip and
//! the store a value per link.
//!
//! The fused task keeps the key of the chain's last call. Its first argument
//! is the plan (the steps, msgpack); the others are the chain's inputs from
//! outside (the first call's arguments, then keys that later calls name),
//! passed as ordinary task arguments so the scheduler sees every dependency.
//! Every function of the chain must be linked into the worker that runs it:
//! in a cluster of one binary that always holds; otherwise turn fusion off
//! ([`super::ComputeOptions::fuse`]).

use std::collections::HashSet;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::graph::{DArg, Graph};
use crate::registry::Registry;
use crate::task::{TaskEntry, TaskFn};
use crate::wire::messages::{Arg, ErrorKind, Key, TaskFailure, TaskSpec};

/// Registered name of the function that runs a fused chain.
pub const FUSED_NAME: &str = "rdask::delayed::fused";

/// The registry entry of [`FUSED_NAME`] (every worker has it).
pub const FUSED_ENTRY: TaskEntry = TaskEntry {
    name: FUSED_NAME,
    call: run_fused as TaskFn,
    shared: None,
};

/// One call of a fused chain.
#[derive(Debug, Serialize, Deserialize)]
struct Step {
    function: String,
    args: Vec<StepArg>,
}

/// Where a step's argument comes from.
#[derive(Debug, Serialize, Deserialize)]
enum StepArg {
    /// The fused task's argument at this index (1 = the first after the plan).
    Input(u32),
    /// The previous step's result.
    Prev,
    /// An encoded value.
    Value(ByteBuf),
}

/// Task specs for `graph`, chains fused when `fuse` is on. Outputs are
/// never fused away (their keys must exist), though a chain may end in one.
pub(crate) fn to_specs(graph: &Graph, outputs: &HashSet<&str>, fuse: bool) -> Vec<TaskSpec> {
    let n = graph.nodes.len();
    // The one lazy dependency of each node, when it has exactly one and
    // takes it as a plain argument (not inside a list or map).
    let parent: Vec<Option<usize>> = graph
        .nodes
        .iter()
        .map(|node| {
            let mut deps = node.args.iter().flat_map(DArg::nodes);
            let first = deps.next()?;
            if deps.next().is_some() {
                return None;
            }
            let plain = node
                .args
                .iter()
                .any(|a| matches!(a, DArg::Node(d) if d.key == first.key));
            plain.then(|| graph.index[&first.key])
        })
        .collect();
    let dependents = graph.dependents();
    // A node folds into its dependent when that dependent is its only user
    // and takes it as its only lazy input.
    let mut folds = vec![false; n];
    if fuse {
        for p in parent.iter().flatten() {
            let key = &graph.nodes[*p].key;
            // The p2p shuffle's tasks keep their own keys (the scheduler
            // finds them by key): never folded into a dependent. (An input
            // folded into a transfer keeps the transfer's key.)
            let shuffle = crate::shuffle::is_shuffle_function(graph.nodes[*p].function);
            if dependents[*p] == 1 && !outputs.contains(key.as_str()) && !shuffle {
                folds[*p] = true;
            }
        }
    }
    let mut specs = Vec::with_capacity(n);
    for (i, node) in graph.nodes.iter().enumerate() {
        if folds[i] {
            continue;
        }
        let mut chain = vec![i];
        while let Some(p) = parent[*chain.last().unwrap_or(&i)].filter(|&p| folds[p]) {
            chain.push(p);
        }
        if chain.len() == 1 {
            specs.push(spec(
                node.key.clone(),
                node.function.to_string(),
                node.args.iter().map(DArg::to_wire).collect(),
            ));
            continue;
        }
        chain.reverse();
        specs.push(fused_spec(graph, &chain));
    }
    specs
}

fn spec(key: Key, function: String, args: Vec<Arg>) -> TaskSpec {
    TaskSpec {
        key,
        function,
        args,
        priority: 0,
        workers: Vec::new(),
        allow_other_workers: false,
        retries: 0,
        resources: Vec::new(),
    }
}

/// The fused task of `chain` (node indices, first call first).
fn fused_spec(graph: &Graph, chain: &[usize]) -> TaskSpec {
    let mut inputs: Vec<Arg> = Vec::new();
    let mut steps = Vec::with_capacity(chain.len());
    for (pos, &i) in chain.iter().enumerate() {
        let node = &graph.nodes[i];
        let prev_key = (pos > 0).then(|| &graph.nodes[chain[pos - 1]].key);
        let args = node
            .args
            .iter()
            .map(|a| match a {
                DArg::Node(d) if Some(&d.key) == prev_key => StepArg::Prev,
                DArg::Wire(Arg::Value(v)) if pos > 0 => StepArg::Value(ByteBuf::from(v.clone())),
                other => {
                    inputs.push(other.to_wire());
                    StepArg::Input(inputs.len() as u32)
                }
            })
            .collect();
        steps.push(Step {
            function: node.function.to_string(),
            args,
        });
    }
    // Encoding strings, numbers and byte strings into a Vec cannot fail.
    let plan = rmp_serde::to_vec_named(&steps).unwrap_or_default();
    let mut args = Vec::with_capacity(inputs.len() + 1);
    args.push(Arg::Value(plan));
    args.extend(inputs);
    let last = &graph.nodes[chain[chain.len() - 1]];
    spec(last.key.clone(), FUSED_NAME.to_string(), args)
}

fn bad(message: String) -> TaskFailure {
    TaskFailure {
        kind: ErrorKind::BadArguments,
        message,
    }
}

/// Runs a fused chain (the worker side of [`FUSED_NAME`]): each step's
/// function from this process's registry, in order, each result handed to
/// the next step.
pub fn run_fused(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let plan = args
        .first()
        .ok_or_else(|| bad("a fused task without its plan".into()))?;
    let steps: Vec<Step> =
        rmp_serde::from_slice(plan).map_err(|e| bad(format!("a fused task's plan cannot be decoded: {e}")))?;
    let mut prev: Vec<u8> = Vec::new();
    for (n, step) in steps.iter().enumerate() {
        let call = Registry::global().get(&step.function).ok_or_else(|| TaskFailure {
            kind: ErrorKind::UnknownFunction,
            message: format!(
                "step {n} of a fused chain calls `{}`, which this worker does not have; link it into the worker \
                 or compute without fusion (ComputeOptions::fuse(false))",
                step.function
            ),
        })?;
        let mut slices: Vec<&[u8]> = Vec::with_capacity(step.args.len());
        for a in &step.args {
            slices.push(match a {
                StepArg::Input(i) => args
                    .get(*i as usize)
                    .copied()
                    .ok_or_else(|| bad(format!("a fused task lacks its input {i}")))?,
                StepArg::Prev if n > 0 => &prev,
                StepArg::Prev => return Err(bad("the first step of a fused chain names a previous one".into())),
                StepArg::Value(v) => v,
            });
        }
        let out = call(&slices)?;
        prev = out;
    }
    Ok(prev)
}
