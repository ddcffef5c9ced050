//! Lazy task graphs (Dask's `dask.delayed`): build calls of `#[rdask::task]`
//! functions without running them, then run the whole graph with one
//! submission to a cluster ([`Delayed::compute`], [`Delayed::persist`],
//! [`compute`] for several outputs), or on a local thread pool without
//! any cluster ([`Delayed::compute_local`]).
//!
//! ```
//! use rdask::delayed::delayed;
//! use rdask::builtins::{inc, sum};
//!
//! let parts: Vec<_> = (0..4i64).map(|i| delayed(inc, (i,))).collect();
//! let total = delayed(sum, parts); // a Vec of lazy values as one argument
//! assert_eq!(total.compute_local()?, 1 + 2 + 3 + 4);
//! # Ok::<(), rdask::Error>(())
//! ```
//!
//! A call's key is derived from its function and arguments, so the same
//! call built twice is one task, and sub-graphs shared by several outputs
//! run once. Before submission the graph is culled (only what the outputs
//! need is walked) and linear chains are fused into one task
//! ([`ComputeOptions::fuse`]; see `fuse`). What Dask's `delayed` offers and
//! how it maps here: `docs/collections.md`.
//!
//! # Layout
//! `graph` (nodes, keys, the walk), `args` (typed arguments), `fuse` (chain
//! fusion and the worker's runner of fused chains), `local` (the thread-pool
//! executor), `dot` (Graphviz output).

mod args;
mod dot;
pub mod fuse;
#[doc(hidden)]
pub mod graph;
mod local;

use std::collections::HashSet;
use std::marker::PhantomData;
use std::path::Path;
use std::sync::Arc;

use serde::de::DeserializeOwned;

pub use args::{IntoDelayedArg, IntoDelayedArgs};
use graph::{node_key, Graph, Node};

use crate::client::progress::{nothing_to_follow, Followed, FuturesOf};
use crate::client::{Client, Error, Future};
use crate::task::{decode_value, Task};
use crate::wire::messages::{Key, TaskSpec};

/// A lazy call whose result is a `T`: nothing runs until it is computed.
pub struct Delayed<T> {
    pub(crate) node: Arc<Node>,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Delayed<T> {
    fn clone(&self) -> Self {
        Delayed {
            node: self.node.clone(),
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Delayed<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Delayed({})", self.node.key)
    }
}

/// A lazy call of `task` with `args` (values, [`Delayed`]s, [`Future`]s,
/// and `Vec`s or maps of them, checked against the task's parameters):
/// Dask's `delayed(f)(*args)`.
pub fn delayed<T: Task, A: IntoDelayedArgs<T::Args>>(task: T, args: A) -> Delayed<T::Output> {
    try_delayed(task, args).unwrap_or_else(|e| Delayed {
        // Only an argument that cannot be encoded fails; the node keeps the
        // error, and computing anything that needs it reports it.
        node: Arc::new(Node {
            key: format!("{}-unencodable-{}", T::NAME, uuid::Uuid::new_v4().simple()),
            function: T::NAME,
            args: Vec::new(),
            error: Some(e.to_string()),
        }),
        _type: PhantomData,
    })
}

/// [`delayed`], failing at once if an argument cannot be encoded.
pub fn try_delayed<T: Task, A: IntoDelayedArgs<T::Args>>(_task: T, args: A) -> Result<Delayed<T::Output>, Error> {
    let args = args.into_delayed_args()?;
    Ok(Delayed {
        node: Arc::new(Node {
            key: node_key(T::NAME, &args),
            function: T::NAME,
            args,
            error: None,
        }),
        _type: PhantomData,
    })
}

/// A lazy call of a built-in runner by name (the bags' partition runners,
/// which are raw registry entries, not `Task` types).
/// An argument that failed to encode is kept in the node, as [`delayed`]
/// does, and reported by whatever computes it.
pub(crate) fn raw_call<T>(function: &'static str, args: Result<Vec<graph::DArg>, Error>) -> Delayed<T> {
    let node = match args {
        Ok(args) => Node {
            key: node_key(function, &args),
            function,
            args,
            error: None,
        },
        Err(e) => Node {
            key: format!("{function}-unencodable-{}", uuid::Uuid::new_v4().simple()),
            function,
            args: Vec::new(),
            error: Some(e.to_string()),
        },
    };
    Delayed {
        node: Arc::new(node),
        _type: PhantomData,
    }
}

/// A lazy call of a built-in runner under a fixed key (the p2p shuffle's
/// tasks, which the scheduler finds by key; `crate::shuffle`).
pub(crate) fn keyed_call<T>(key: Key, function: &'static str, args: Vec<graph::DArg>) -> Delayed<T> {
    Delayed {
        node: Arc::new(Node {
            key,
            function,
            args,
            error: None,
        }),
        _type: PhantomData,
    }
}

/// The values of several lazy results of one type, in order, computed with
/// one submission (a result named twice is computed once).
pub(crate) fn compute_each<V: DeserializeOwned>(
    client: &Client,
    outputs: &[&Delayed<V>],
    opts: &ComputeOptions,
) -> Result<Vec<V>, Error> {
    persist_each(client, outputs, opts)?
        .iter()
        .map(Future::result)
        .collect()
}

/// The futures of several lazy results of one type, in order, submitted
/// together (a result named twice is one future).
pub(crate) fn persist_each<V>(
    client: &Client,
    outputs: &[&Delayed<V>],
    opts: &ComputeOptions,
) -> Result<Vec<Future<V>>, Error> {
    if outputs.is_empty() {
        // Nothing to submit (a bag of no partitions).
        return Ok(Vec::new());
    }
    let nodes: Vec<&Arc<Node>> = outputs.iter().map(|d| &d.node).collect();
    let tasks = plan(&nodes, opts)?;
    let mut distinct: Vec<Key> = Vec::new();
    let mut position = std::collections::HashMap::new();
    for n in &nodes {
        position.entry(n.key.clone()).or_insert_with(|| {
            distinct.push(n.key.clone());
            distinct.len() - 1
        });
    }
    let keys = crate::client::submit::submit_graph(&client.inner.core, tasks, distinct)?;
    let futures: Vec<Future<V>> = keys
        .into_iter()
        .map(|k| Future::new(k, client.inner.core.clone()))
        .collect();
    Ok(nodes.iter().map(|n| futures[position[&n.key]].clone()).collect())
}

/// Writes the graph of several lazy results as one Graphviz DOT file (see
/// [`Delayed::visualize`]).
pub(crate) fn visualize_each<V>(outputs: &[&Delayed<V>], path: &Path) -> Result<(), Error> {
    dot::write(&Graph::collect(outputs.iter().map(|d| &d.node)), path)
}

/// Number of tasks that computing `outputs` together submits.
pub(crate) fn task_count_each<V>(outputs: &[&Delayed<V>], opts: &ComputeOptions) -> Result<usize, Error> {
    let nodes: Vec<&Arc<Node>> = outputs.iter().map(|d| &d.node).collect();
    plan(&nodes, opts).map(|t| t.len())
}

/// [`compute_each`] on the local thread pool.
pub(crate) fn compute_each_local<V: DeserializeOwned>(
    outputs: &[&Delayed<V>],
    opts: &ComputeOptions,
) -> Result<Vec<V>, Error> {
    let nodes: Vec<&Arc<Node>> = outputs.iter().map(|d| &d.node).collect();
    let tasks = plan(&nodes, opts)?;
    let keys: Vec<Key> = nodes.iter().map(|n| n.key.clone()).collect();
    let values = local::run(tasks, &keys, opts.local_threads)?;
    keys.into_iter()
        .map(|key| {
            let bytes = values.get(&key).cloned().unwrap_or_default();
            decode_value(&bytes).map_err(|e| Error::Decode {
                key,
                message: e.to_string(),
            })
        })
        .collect()
}

/// The values of many lazy results of one type, in order, computed with
/// one submission (shared parts run once; a result named twice is computed
/// once): what a collection of many lazy parts (an array's chunks) needs.
pub fn compute_all<V: DeserializeOwned>(
    client: &Client,
    outputs: &[&Delayed<V>],
    opts: &ComputeOptions,
) -> Result<Vec<V>, Error> {
    compute_each(client, outputs, opts)
}

/// [`compute_all`] on the local thread pool.
pub fn compute_all_local<V: DeserializeOwned>(outputs: &[&Delayed<V>], opts: &ComputeOptions) -> Result<Vec<V>, Error> {
    compute_each_local(outputs, opts)
}

/// Submits the graph of many lazy results of one type as one message and
/// returns their futures, in order (Dask's `persist` of a collection).
pub fn persist_all<V>(
    client: &Client,
    outputs: &[&Delayed<V>],
    opts: &ComputeOptions,
) -> Result<Vec<Future<V>>, Error> {
    if outputs.is_empty() {
        return Ok(Vec::new());
    }
    let nodes: Vec<&Arc<Node>> = outputs.iter().map(|d| &d.node).collect();
    let tasks = plan(&nodes, opts)?;
    // Each distinct key is submitted and referenced once; a result named
    // twice gets clones of one future.
    let mut distinct: Vec<Key> = Vec::new();
    let mut position = std::collections::HashMap::new();
    for n in &nodes {
        position.entry(n.key.clone()).or_insert_with(|| {
            distinct.push(n.key.clone());
            distinct.len() - 1
        });
    }
    let keys = crate::client::submit::submit_graph(&client.inner.core, tasks, distinct)?;
    let futures: Vec<Future<V>> = keys
        .into_iter()
        .map(|k| Future::new(k, client.inner.core.clone()))
        .collect();
    Ok(nodes.iter().map(|n| futures[position[&n.key]].clone()).collect())
}

/// [`Delayed::task_count`] for many outputs computed together.
pub fn task_count_all<V>(outputs: &[&Delayed<V>], opts: &ComputeOptions) -> Result<usize, Error> {
    task_count_each(outputs, opts)
}

/// How a graph is computed.
#[derive(Clone, Debug)]
pub struct ComputeOptions {
    /// Fuse linear chains into one task each (default on; Dask's
    /// `optimize_graph`).
    pub fuse: bool,
    /// Threads of [`Delayed::compute_local`] (default: the machine's CPUs).
    pub local_threads: usize,
}

impl Default for ComputeOptions {
    fn default() -> Self {
        ComputeOptions {
            fuse: true,
            local_threads: std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
        }
    }
}

impl ComputeOptions {
    /// Turns fusion on or off.
    pub fn fuse(mut self, on: bool) -> Self {
        self.fuse = on;
        self
    }
}

/// The task specs of what `outputs` need, optimized as `opts` says.
fn plan(outputs: &[&Arc<Node>], opts: &ComputeOptions) -> Result<Vec<TaskSpec>, Error> {
    let graph = Graph::collect(outputs.iter().copied());
    if let Some(message) = graph.nodes.iter().find_map(|n| n.error.clone()) {
        return Err(Error::Encode(message));
    }
    let keys: HashSet<&str> = outputs.iter().map(|n| n.key.as_str()).collect();
    Ok(fuse::to_specs(&graph, &keys, opts.fuse))
}

/// The futures the graphs of `outputs` hold (persisted parts, futures
/// passed as arguments), each key once: what [`progress`](crate::progress)
/// follows for a lazy result or collection.
pub(crate) fn held_futures<'a>(outputs: impl IntoIterator<Item = &'a Arc<Node>>) -> Vec<Followed> {
    let graph = Graph::collect(outputs);
    let mut seen: HashSet<&str> = HashSet::new();
    let mut out = Vec::new();
    for n in &graph.nodes {
        for a in &n.args {
            if let graph::DArg::Future(key, held) = a {
                if seen.insert(key.as_str()) {
                    out.push(held.followed());
                }
            }
        }
    }
    out
}

impl<T> FuturesOf for Delayed<T> {
    fn futures_of(&self) -> Result<Vec<Followed>, Error> {
        let held = held_futures([&self.node]);
        if held.is_empty() {
            return Err(nothing_to_follow("lazy result"));
        }
        Ok(held)
    }
}

impl<T> Delayed<T> {
    /// The key its result will have.
    pub fn key(&self) -> &str {
        &self.node.key
    }

    /// Number of calls in its graph (before fusion).
    pub fn graph_len(&self) -> usize {
        Graph::collect([&self.node]).nodes.len()
    }

    /// Number of tasks that computing it submits (after fusion as `opts`
    /// says).
    pub fn task_count(&self, opts: &ComputeOptions) -> Result<usize, Error> {
        plan(&[&self.node], opts).map(|t| t.len())
    }

    /// The tasks that computing it submits, dependencies first, exactly as
    /// sent (to capture a graph for `rdask simulate`:
    /// [`crate::simulate::shapes::capture`]).
    pub fn task_specs(&self, opts: &ComputeOptions) -> Result<Vec<TaskSpec>, Error> {
        plan(&[&self.node], opts)
    }

    /// Submits its graph (one message) and returns the future of its result;
    /// the graph's other results are released as soon as they are used.
    pub fn persist(&self, client: &Client) -> Result<Future<T>, Error> {
        self.persist_with(client, &ComputeOptions::default())
    }

    /// [`persist`](Self::persist) with options.
    pub fn persist_with(&self, client: &Client, opts: &ComputeOptions) -> Result<Future<T>, Error> {
        let tasks = plan(&[&self.node], opts)?;
        let mut keys = crate::client::submit::submit_graph(&client.inner.core, tasks, vec![self.node.key.clone()])?;
        let key = keys.pop().unwrap_or_default();
        Ok(Future::new(key, client.inner.core.clone()))
    }

    /// Writes its graph as Graphviz DOT to `path`; with a `.svg` or `.png`
    /// extension, renders it with Graphviz's `dot` (an error says so if it
    /// is not installed).
    pub fn visualize(&self, path: impl AsRef<Path>) -> Result<(), Error> {
        dot::write(&Graph::collect([&self.node]), path.as_ref())
    }
}

impl<T: DeserializeOwned> Delayed<T> {
    /// Runs its graph on the cluster and returns the result (Dask's
    /// `compute()`).
    pub fn compute(&self, client: &Client) -> Result<T, Error> {
        self.persist(client)?.result()
    }

    /// [`compute`](Self::compute) with options.
    pub fn compute_with(&self, client: &Client, opts: &ComputeOptions) -> Result<T, Error> {
        self.persist_with(client, opts)?.result()
    }

    /// Runs its graph on a thread pool in this process, without a cluster
    /// (Dask's threaded scheduler).
    pub fn compute_local(&self) -> Result<T, Error> {
        self.compute_local_with(&ComputeOptions::default())
    }

    /// [`compute_local`](Self::compute_local) with options.
    pub fn compute_local_with(&self, opts: &ComputeOptions) -> Result<T, Error> {
        let tasks = plan(&[&self.node], opts)?;
        let key: Key = self.node.key.clone();
        let mut values = local::run(tasks, std::slice::from_ref(&key), opts.local_threads)?;
        let bytes = values.remove(&key).unwrap_or_default();
        decode_value(&bytes).map_err(|e| Error::Decode {
            key,
            message: e.to_string(),
        })
    }
}

/// Several lazy values computed together (one submission; shared parts run
/// once): `rdask::delayed::compute(&client, (&a, &b))` returns `(A, B)`.
pub fn compute<O: Outputs>(client: &Client, outputs: O) -> Result<O::Values, Error> {
    let nodes = outputs.nodes();
    let refs: Vec<&Arc<Node>> = nodes.iter().collect();
    let tasks = plan(&refs, &ComputeOptions::default())?;
    let keys: Vec<Key> = nodes.iter().map(|n| n.key.clone()).collect();
    let keys = crate::client::submit::submit_graph(&client.inner.core, tasks, keys)?;
    O::gather(client, keys)
}

/// A tuple of `&Delayed` outputs for [`compute`].
pub trait Outputs {
    /// The tuple of their values.
    type Values;
    #[doc(hidden)]
    fn nodes(&self) -> Vec<Arc<Node>>;
    #[doc(hidden)]
    fn gather(client: &Client, keys: Vec<Key>) -> Result<Self::Values, Error>;
}

macro_rules! outputs {
    ($(($t:ident, $v:ident)),+) => {
        impl<$($t: DeserializeOwned),+> Outputs for ($(&Delayed<$t>,)+) {
            type Values = ($($t,)+);
            fn nodes(&self) -> Vec<Arc<Node>> {
                let ($($v,)+) = self;
                vec![$($v.node.clone()),+]
            }
            fn gather(client: &Client, keys: Vec<Key>) -> Result<Self::Values, Error> {
                let mut keys = keys.into_iter();
                $(let $v: Future<$t> = Future::new(keys.next().unwrap_or_default(), client.inner.core.clone());)+
                Ok(($($v.result()?,)+))
            }
        }
    };
}

outputs!((A, a));
outputs!((A, a), (B, b));
outputs!((A, a), (B, b), (C, c));
outputs!((A, a), (B, b), (C, c), (D, d));
