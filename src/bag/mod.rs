//! Bags (Dask's `dask.bag`): a lazy collection of elements in partitions,
//! built on [`crate::delayed`]. Each partition is a `Delayed<Vec<T>>`;
//! operations add calls to the graph, and computing a bag or a reduction
//! submits the whole graph at once (culled and chain-fused like any lazy
//! graph).
//!
//! ```
//! use rdask::bag::{self, Bag};
//! use rdask::builtins::inc;
//!
//! let b: Bag<i64> = bag::from_sequence(0..10i64, 3)?;
//! let total = b.map(inc).sum();            // a Delayed<i64>
//! assert_eq!(total.compute_local()?, 55);
//! # Ok::<(), rdask::Error>(())
//! ```
//!
//! **Element functions.** Closures cannot cross processes, so `map`,
//! `filter`, `flat_map`, `foldby`… take `#[rdask::task]` functions. The
//! user writes the element function only: the built-in partition runner
//! `rdask::bag::pipeline` (see `pipeline`) takes the registered names of a
//! chain of element operations and a partition, splits the partition's
//! msgpack array into element byte slices and passes each through the
//! functions' `call_encoded`, one element at a time. So any registered function works on any worker
//! without generic code on the worker side, while on the client
//! `Bag<T>::map<F: Task<Args = (T,)>>` returns `Bag<F::Output>`: the
//! compiler checks the element types through the chain.
//!
//! **Reductions** (`count`, `sum`, `frequencies`, `topk`, `fold`, `foldby`,
//! …) run a per-partition runner, then combine the partials in a tree,
//! `split_every` of them per task ([`Bag::split_every`], default
//! [`DEFAULT_SPLIT_EVERY`]), as Dask's `reduction` does: no task ever
//! holds more than `split_every` partials, and partitions stream through
//! workers as the scheduler runs them.
//!
//! What Dask's bag offers and how it maps here: `docs/collections.md`.
//!
//! # Layout
//! `mod.rs` (the `Bag` type, sources, element-wise operations, compute),
//! `reduce` (reductions and the combining tree), `pipeline` (element-wise
//! operations, both sides), `json_pluck` (the pipeline's shortcut for
//! `map(json_loads).pluck(name)`), `repartition` (`repartition` and `zip`,
//! both sides), `shuffle` (`groupby`, both sides), `runners`
//! (the worker side of the others), `text` (`read_text` / `to_textfiles`, compression),
//! `msgpack` (splitting, comparing and reading fields of untyped msgpack).

mod json_pluck;
mod msgpack;
mod pipeline;
mod reduce;
mod repartition;
mod runners;
mod shuffle;
mod text;

use std::marker::PhantomData;

use rdask_macros::task;
use serde::de::DeserializeOwned;
use serde::Serialize;

pub use reduce::{sqrt, Numeric, DEFAULT_SPLIT_EVERY};
pub use repartition::{zip, MAX_SPLIT};
pub(crate) use runners::RUNNERS;
pub use shuffle::MAX_SHUFFLE_PARTITIONS;
pub use text::read_to_string;

use crate::client::{Client, Error};
use crate::delayed::graph::DArg;
use crate::delayed::{
    compute_each, compute_each_local, persist_each, raw_call, visualize_each, ComputeOptions, Delayed,
};
use crate::task::{encode_value, Task};
use crate::wire::messages::Arg;
use pipeline::{Op, PIPELINE};

/// A lazy collection of `T`s in partitions (Dask's `Bag`).
pub struct Bag<T> {
    parts: Vec<Delayed<Vec<T>>>,
    split_every: usize,
    _type: PhantomData<fn() -> T>,
}

impl<T> Clone for Bag<T> {
    fn clone(&self) -> Self {
        Bag {
            parts: self.parts.clone(),
            split_every: self.split_every,
            _type: PhantomData,
        }
    }
}

impl<T> std::fmt::Debug for Bag<T> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "Bag<{}>({} partitions)",
            std::any::type_name::<T>(),
            self.parts.len()
        )
    }
}

/// A field of an element, for [`Bag::pluck`], [`Bag::topk_by`] and
/// [`Bag::foldby_field`]: a name (a struct's field, a JSON object's
/// member, a map's string key) or an index (of a tuple, `Vec` or array).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Field {
    /// By name.
    Name(String),
    /// By position.
    Index(u64),
}

impl From<&str> for Field {
    fn from(s: &str) -> Self {
        Field::Name(s.to_string())
    }
}

impl From<String> for Field {
    fn from(s: String) -> Self {
        Field::Name(s)
    }
}

impl From<usize> for Field {
    fn from(i: usize) -> Self {
        Field::Index(i as u64)
    }
}

impl Field {
    fn encoded(&self) -> Vec<u8> {
        // Strings and integers always encode.
        match self {
            Field::Name(n) => encode_value(n),
            Field::Index(i) => encode_value(i),
        }
        .unwrap_or_default()
    }
}

/// An encoded parameter of a runner.
pub(crate) fn value<V: Serialize + ?Sized>(v: &V) -> Result<DArg, Error> {
    encode_value(v)
        .map(|b| DArg::Wire(Arg::Value(b)))
        .map_err(|e| Error::Encode(e.to_string()))
}

/// The bags' `#[task]` built-ins, registered explicitly as `builtins`'
/// are (the linker may drop an rlib's `inventory` entries).
pub(crate) const TASKS: &[crate::task::TaskEntry] = &[
    crate::task::TaskEntry::of::<json_loads>(),
    crate::task::TaskEntry::of::<reduce::sqrt>(),
];

/// Parses a line of JSON (Dask's `json.loads` in `b.map(json.loads)`).
#[task(crate = "crate")]
pub fn json_loads(line: String) -> Result<serde_json::Value, String> {
    serde_json::from_str(&line).map_err(|e| format!("not JSON ({e}): {line:.80}"))
}

/// A bag of `items` in `npartitions` partitions of nearly equal length
/// (at least one partition; fewer when there are fewer items).
pub fn from_sequence<T: Serialize>(items: impl IntoIterator<Item = T>, npartitions: usize) -> Result<Bag<T>, Error> {
    let items: Vec<T> = items.into_iter().collect();
    let n = npartitions.clamp(1, items.len().max(1));
    let (size, extra) = (items.len() / n, items.len() % n);
    let mut parts = Vec::with_capacity(n);
    let mut rest = &items[..];
    for i in 0..n {
        let (chunk, tail) = rest.split_at(size + usize::from(i < extra));
        rest = tail;
        parts.push(raw_call("rdask::bag::from_values", Ok(vec![value(chunk)?])));
    }
    Ok(Bag::from_delayed(parts))
}

/// A bag of the lines of the files `pattern` matches (a glob; `.gz`,
/// `.zst`, `.bz2` and `.xz` files decompressed), one partition per file, in
/// path order. A
/// call's key includes each file's size and modification time, so a
/// changed file is read anew. Lines lose their
/// `\n` / `\r\n` (Dask keeps them; Rust has no `str.strip` to map).
pub fn read_text(pattern: &str) -> Result<Bag<String>, Error> {
    read_text_blocks(pattern, 0)
}

/// [`read_text`] with a partition per `blocksize` bytes of each
/// uncompressed file (0: one per file; compressed files are never split).
/// Block boundaries are line-aligned: each line is in exactly one block.
pub fn read_text_blocks(pattern: &str, blocksize: u64) -> Result<Bag<String>, Error> {
    let blocks = text::plan_blocks(pattern, (blocksize > 0).then_some(blocksize))?;
    let parts = blocks
        .iter()
        .map(|b| {
            raw_call(
                "rdask::bag::read_text",
                (|| {
                    Ok(vec![
                        value(&b.path)?,
                        value(&b.start)?,
                        value(&b.end)?,
                        value(&b.version)?,
                    ])
                })(),
            )
        })
        .collect();
    Ok(Bag::from_delayed(parts))
}

impl<T> Bag<T> {
    /// A bag whose partitions are lazy lists (Dask's `from_delayed`).
    pub fn from_delayed(parts: Vec<Delayed<Vec<T>>>) -> Bag<T> {
        Bag {
            parts,
            split_every: DEFAULT_SPLIT_EVERY,
            _type: PhantomData,
        }
    }

    /// Its partitions as lazy lists (Dask's `to_delayed`).
    pub fn to_delayed(&self) -> Vec<Delayed<Vec<T>>> {
        self.parts.clone()
    }

    /// Number of partitions.
    pub fn npartitions(&self) -> usize {
        self.parts.len()
    }

    /// Number of tasks that computing it submits (after fusion as `opts`
    /// says).
    pub fn task_count(&self, opts: &ComputeOptions) -> Result<usize, Error> {
        let refs: Vec<&Delayed<Vec<T>>> = self.parts.iter().collect();
        crate::delayed::task_count_each(&refs, opts)
    }

    /// Sets how many partials one task of a reduction tree combines (at
    /// least 2; Dask's `split_every`).
    pub fn split_every(mut self, n: usize) -> Self {
        self.split_every = n.max(2);
        self
    }

    /// Adds an element operation to each partition's pipeline (a new
    /// pipeline over a partition that is not one).
    fn then<U>(&self, op: Op) -> Bag<U> {
        let parts = self
            .parts
            .iter()
            .map(|p| {
                let (mut ops, source) = pipeline::parts_of(&p.node).unwrap_or_else(|| (Vec::new(), p.node.clone()));
                ops.push(op.clone());
                raw_call(PIPELINE, value(&ops).map(|a| vec![a, DArg::Node(source)]))
            })
            .collect();
        Bag {
            parts,
            split_every: self.split_every,
            _type: PhantomData,
        }
    }

    /// `f` of each element (Dask's `map`).
    pub fn map<F: Task<Args = (T,)>>(&self, _f: F) -> Bag<F::Output> {
        self.then(Op::Map(F::NAME.to_string()))
    }

    /// `f(element, extra)` of each element (Dask's `map(f, extra)` with a
    /// constant second argument): `extra` is encoded once, into the graph.
    /// Fails at compute if `extra` cannot be encoded.
    pub fn map_with<E: Serialize, F: Task<Args = (T, E)>>(&self, _f: F, extra: E) -> Bag<F::Output> {
        match encode_value(&extra) {
            Ok(b) => self.then(Op::MapWith(F::NAME.to_string(), serde_bytes::ByteBuf::from(b))),
            Err(e) => Bag {
                parts: self
                    .parts
                    .iter()
                    .map(|_| raw_call(PIPELINE, Err(Error::Encode(e.to_string()))))
                    .collect(),
                split_every: self.split_every,
                _type: PhantomData,
            },
        }
    }

    /// `f(a, b, …)` of each element `(a, b, …)` (Dask's `starmap`): the
    /// element type is `f`'s parameters as a tuple.
    pub fn starmap<F: Task<Args = T>>(&self, _f: F) -> Bag<F::Output> {
        self.then(Op::StarMap(F::NAME.to_string()))
    }

    /// The elements for which `f` is true (Dask's `filter`).
    pub fn filter<F: Task<Args = (T,), Output = bool>>(&self, _f: F) -> Bag<T> {
        self.then(Op::Filter(F::NAME.to_string()))
    }

    /// The elements for which `f` is false (Dask's `remove`).
    pub fn remove<F: Task<Args = (T,), Output = bool>>(&self, _f: F) -> Bag<T> {
        self.then(Op::Remove(F::NAME.to_string()))
    }

    /// The elements of the lists `f` returns for each element (Dask's
    /// `map(f).flatten()`).
    pub fn flat_map<U, F: Task<Args = (T,), Output = Vec<U>>>(&self, _f: F) -> Bag<U> {
        self.then(Op::FlatMap(F::NAME.to_string()))
    }

    /// `f` of each whole partition (Dask's `map_partitions`).
    pub fn map_partitions<U, F: Task<Args = (Vec<T>,), Output = Vec<U>>>(&self, f: F) -> Bag<U> {
        Bag {
            parts: self.parts.iter().map(|p| crate::delayed::delayed(f, (p,))).collect(),
            split_every: self.split_every,
            _type: PhantomData,
        }
    }

    /// The field `field` of each element (Dask's `pluck`). `U` is the
    /// field's type as the caller states it: a field name is not a path the
    /// compiler can follow, so a wrong `U` fails when the values are
    /// decoded, and an element without the field fails its task.
    pub fn pluck<U>(&self, field: impl Into<Field>) -> Bag<U> {
        self.then(Op::Pluck(serde_bytes::ByteBuf::from(field.into().encoded())))
    }

    /// The first `n` elements of the first partition (Dask's `take(n)`,
    /// which also looks only at the first partition by default).
    pub fn take(&self, n: usize) -> Delayed<Vec<T>> {
        self.take_from(n, 1)
    }

    /// The first `n` elements of the first `npartitions` partitions
    /// together (Dask's `take(n, npartitions)`).
    pub fn take_from(&self, n: usize, npartitions: usize) -> Delayed<Vec<T>> {
        let heads: Vec<_> = self
            .parts
            .iter()
            .take(npartitions.max(1))
            .map(|p| p.node.clone())
            .collect();
        let joined: Delayed<Vec<T>> = raw_call("rdask::bag::concat", Ok(vec![DArg::Nodes(heads)]));
        raw_call(
            "rdask::bag::take",
            value(&(n as u64)).map(|a| vec![a, DArg::Node(joined.node.clone())]),
        )
    }

    /// Writes the graph of all its partitions as one Graphviz DOT file
    /// (Dask's `visualize`); `.svg` / `.png` are rendered as
    /// [`Delayed::visualize`] renders them.
    pub fn visualize(&self, path: impl AsRef<std::path::Path>) -> Result<(), Error> {
        let refs: Vec<&Delayed<Vec<T>>> = self.parts.iter().collect();
        visualize_each(&refs, path.as_ref())
    }

    /// One partition of all elements, in order (Dask's `repartition(1)`).
    pub fn concat(&self) -> Delayed<Vec<T>> {
        let all = self.parts.iter().map(|p| p.node.clone()).collect();
        raw_call("rdask::bag::concat", Ok(vec![DArg::Nodes(all)]))
    }
}

impl<U> Bag<Vec<U>> {
    /// The elements of its lists, in order (Dask's `flatten`).
    pub fn flatten(&self) -> Bag<U> {
        self.then(Op::Flatten)
    }
}

impl<T> crate::client::progress::FuturesOf for Bag<T> {
    /// The futures of its partitions when it was persisted (or of the
    /// persisted bag it was built from).
    fn futures_of(&self) -> Result<Vec<crate::client::progress::Followed>, Error> {
        let held = crate::delayed::held_futures(self.parts.iter().map(|p| &p.node));
        if held.is_empty() {
            return Err(crate::client::progress::nothing_to_follow("bag"));
        }
        Ok(held)
    }
}

impl<T: 'static> Bag<T> {
    /// Computes every partition on the cluster (one submission) and keeps
    /// them there (Dask's `persist`): the bag returned reads the held
    /// partitions, which stay on the workers while it (or anything built
    /// from it) lives.
    pub fn persist(&self, client: &Client) -> Result<Bag<T>, Error> {
        self.persist_with(client, &ComputeOptions::default())
    }

    /// [`persist`](Self::persist) with options.
    pub fn persist_with(&self, client: &Client, opts: &ComputeOptions) -> Result<Bag<T>, Error> {
        let refs: Vec<&Delayed<Vec<T>>> = self.parts.iter().collect();
        let parts = persist_each(client, &refs, opts)?
            .into_iter()
            .map(|f| {
                let held = DArg::Future(f.key.clone(), std::sync::Arc::new(f));
                // `from_values` passes its partition on as it is.
                raw_call("rdask::bag::from_values", Ok(vec![held]))
            })
            .collect();
        Ok(Bag::from_delayed(parts).split_every(self.split_every))
    }
}

impl<T: DeserializeOwned> Bag<T> {
    /// Computes every partition on the cluster (one submission) and returns
    /// all elements in partition order (Dask's `compute()`).
    pub fn compute(&self, client: &Client) -> Result<Vec<T>, Error> {
        self.compute_with(client, &ComputeOptions::default())
    }

    /// [`compute`](Self::compute) with options.
    pub fn compute_with(&self, client: &Client, opts: &ComputeOptions) -> Result<Vec<T>, Error> {
        let refs: Vec<&Delayed<Vec<T>>> = self.parts.iter().collect();
        Ok(compute_each(client, &refs, opts)?.into_iter().flatten().collect())
    }

    /// Computes it on a thread pool in this process, without a cluster.
    pub fn compute_local(&self) -> Result<Vec<T>, Error> {
        self.compute_local_with(&ComputeOptions::default())
    }

    /// [`compute_local`](Self::compute_local) with options.
    pub fn compute_local_with(&self, opts: &ComputeOptions) -> Result<Vec<T>, Error> {
        let refs: Vec<&Delayed<Vec<T>>> = self.parts.iter().collect();
        Ok(compute_each_local(&refs, opts)?.into_iter().flatten().collect())
    }
}

impl Bag<String> {
    /// Writes each partition to a text file, one element per line (Dask's
    /// `to_textfiles`): `pattern`'s `*` is replaced by the partition's
    /// number, or without a `*` the files are `pattern/<n>.part`; a `.gz`,
    /// `.zst`, `.bz2` or `.xz` name is compressed that way. Lazy: computing the result writes the files and
    /// gives their paths.
    pub fn to_textfiles(&self, pattern: &str) -> Delayed<Vec<String>> {
        let written: Vec<_> = self
            .parts
            .iter()
            .enumerate()
            .map(|(i, p)| {
                let path = text::part_path(pattern, i);
                let d: Delayed<String> = raw_call(
                    "rdask::bag::to_textfile",
                    value(&path).map(|a| vec![a, DArg::Node(p.node.clone())]),
                );
                d.node
            })
            .collect();
        // `from_values` returns its list argument as it is.
        raw_call("rdask::bag::from_values", Ok(vec![DArg::Nodes(written)]))
    }
}
