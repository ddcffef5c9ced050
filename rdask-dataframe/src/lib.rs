//! Partitioned data frames on rdask: Dask's `dask.dataframe`, with
//! [Polars](polars) `DataFrame`s as partitions and `rdask::delayed` graphs
//! underneath.
//!
//! ```
//! use rdask_dataframe::{self as dd, polars::prelude::*};
//!
//! let df = df!("user_id" => [1, 2, 1, 3], "value" => [1.0, 2.0, 3.0, 4.0])?;
//! let ddf = dd::from_polars(&df, 2)?.filter(col("value").gt(lit(1.5)));
//! let means = ddf.groupby(&["user_id"]).agg(&[col("value").mean()])?.compute_local()?;
//! assert_eq!(means.height(), 3);
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```
//!
//! A [`DataFrame`] is a list of partitions, each a
//! `Delayed<`[`Partition`]`>`, a lazy Polars frame. Operations add calls of
//! this crate's `#[rdask::task]` kernels to the graph; `select`,
//! `with_columns` and `filter` ship their Polars expressions to the workers
//! (serialized, [`plan`]) and run as one lazy Polars query per partition.
//! Computing submits the whole graph at once, culled and chain-fused like
//! any lazy graph. Partitions travel as Arrow IPC ([`Partition`]'s serde
//! form).
//!
//! Workers must link this crate to run the kernels: the `rdask-dataframe`
//! binary is the `rdask` command line with them linked in
//! (`rdask-dataframe worker tcp://…`).
//!
//! What pandas and `dask.dataframe` calls map to here, and what is missing:
//! `docs/collections.md`.
//!
//! # Layout
//! `lib.rs` (the [`DataFrame`] type, compute, persist, `len`, `head`),
//! `io` (sources and sinks), `datasets` (synthetic frames made on the workers), `csv_blocks` (`read_csv_blocks`, both sides), `describe` and `join` (both sides), `groupby` (the client side of aggregations:
//! splitting each into partial, combine and final steps, the tree);
//! `sort` (`sort_values`, `set_index`: divisions, then a shuffle);
//! the worker side: `kernels`, `agg` (aggregation kernels), `shuffle`
//! (hash split and unpack functions for rdask's peer-to-peer shuffle, Arrow
//! IPC shards), `sort_keys` (the sort order, composite keys, the range
//! split and sorted unpack); `plan` (shipped expressions); `partition` (the wire form).

#![warn(missing_docs)]

pub mod agg;
mod csv_blocks;
pub mod datasets;
pub mod describe;
mod groupby;
mod io;
pub mod join;
pub mod kernels;
mod partition;
pub mod plan;
pub mod shuffle;
mod sort;
pub mod sort_keys;

pub use csv_blocks::{read_csv_blocks, SCHEMA_INFER_ROWS};
pub use groupby::GroupBy;
pub use io::{from_polars, read_csv, read_parquet};
pub use join::How;
pub use partition::Partition;
pub use polars;
pub use rdask::delayed::ComputeOptions;
pub use sort::SAMPLES_PER_PARTITION;
pub use sort_keys::{SortBy, SAMPLE_POOL_PER_ROW};

use plan::{Dsl, Op};
use polars::prelude::Expr;
use rdask::delayed::{compute_all, compute_all_local, delayed, persist_all, task_count_all, Delayed, IntoDelayedArgs};
use rdask::task::Task;
use rdask::Client;

/// Dask's default `split_every` for data frame aggregations: at most this
/// many partial results are combined by one task.
pub const DEFAULT_SPLIT_EVERY: usize = 8;

/// What can go wrong building or computing a data frame.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A bad argument: a pattern matching no file, an expression that is no
    /// supported aggregation, zero partitions…
    #[error("{0}")]
    Invalid(String),
    /// A file the client reads while building the graph (Parquet metadata).
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// From Polars, on the client (joining computed partitions).
    #[error("polars: {0}")]
    Polars(String),
    /// From the runtime: a failed task, a lost connection…
    #[error(transparent)]
    Rdask(#[from] rdask::Error),
}

/// A lazy partitioned data frame (Dask's `dask.dataframe.DataFrame`).
#[derive(Clone)]
pub struct DataFrame {
    /// The partitions before `pending`.
    parts: Vec<Delayed<Partition>>,
    /// Row-wise steps not yet in the graph: consecutive `select` /
    /// `with_columns` / `filter` calls become one task per partition.
    pending: Vec<Op>,
    split_every: usize,
    /// Where `parts` come from, when a reader there can skip columns (see
    /// [`DataFrame::to_delayed_columns`]); `None` once anything else made
    /// the partitions.
    source: Option<Source>,
}

/// A source whose reader reads only the columns asked for (Dask's
/// projection pushdown into `read_csv(usecols=…)`).
#[derive(Clone, Debug)]
pub(crate) enum Source {
    /// One CSV file per partition, in order.
    Csv(Vec<String>),
}

impl std::fmt::Debug for DataFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "DataFrame(npartitions={})", self.parts.len())
    }
}

impl DataFrame {
    /// A data frame of the given partitions (Dask's `from_delayed`); there
    /// must be at least one.
    pub fn from_delayed(parts: Vec<Delayed<Partition>>) -> Result<DataFrame, Error> {
        if parts.is_empty() {
            return Err(Error::Invalid("a data frame needs at least one partition".into()));
        }
        Ok(DataFrame {
            parts,
            pending: Vec::new(),
            split_every: DEFAULT_SPLIT_EVERY,
            source: None,
        })
    }

    /// One with new partitions and this one's settings.
    pub(crate) fn with_parts(&self, parts: Vec<Delayed<Partition>>) -> DataFrame {
        DataFrame {
            parts,
            pending: Vec::new(),
            split_every: self.split_every,
            source: None,
        }
    }

    /// Number of partitions (Dask's `npartitions`).
    pub fn npartitions(&self) -> usize {
        self.parts.len()
    }

    /// Sets how many partial results one task of an aggregation tree
    /// combines, at least 2 (Dask's `split_every`).
    pub fn split_every(mut self, n: usize) -> Self {
        self.split_every = n.max(2);
        self
    }

    /// Its partitions with every pending step in the graph (Dask's
    /// `to_delayed()`).
    pub fn to_delayed(&self) -> Vec<Delayed<Partition>> {
        if self.pending.is_empty() {
            return self.parts.clone();
        }
        self.parts
            .iter()
            .map(|p| delayed(kernels::apply, (p, Dsl(self.pending.clone()))))
            .collect()
    }

    /// Its partitions reduced to `columns` (in the partition's own order),
    /// for a step that reads no other: read from the source with only
    /// those columns parsed when the frame is a source not yet changed
    /// (`read_csv`), otherwise [`to_delayed`](Self::to_delayed) in full
    /// (the step selects its columns itself).
    pub(crate) fn to_delayed_columns(&self, columns: &[String]) -> Vec<Delayed<Partition>> {
        match (&self.source, self.pending.is_empty()) {
            (Some(Source::Csv(files)), true) => files
                .iter()
                .map(|f| delayed(kernels::read_csv_columns, (f.clone(), columns.to_vec())))
                .collect(),
            _ => self.to_delayed(),
        }
    }

    /// The same frame, noted as read from `source`.
    pub(crate) fn with_source(mut self, source: Source) -> DataFrame {
        self.source = Some(source);
        self
    }

    fn then(&self, op: Op) -> DataFrame {
        let mut out = self.clone();
        out.pending.push(op);
        out
    }

    /// The columns `exprs` (Polars' `select`), computed on the workers.
    pub fn select<E: AsRef<[Expr]>>(&self, exprs: E) -> DataFrame {
        self.then(Op::Select(exprs.as_ref().to_vec()))
    }

    /// Adds or replaces the columns `exprs` (Polars' `with_columns`, Dask's
    /// `assign`).
    pub fn with_columns<E: AsRef<[Expr]>>(&self, exprs: E) -> DataFrame {
        self.then(Op::WithColumns(exprs.as_ref().to_vec()))
    }

    /// The rows where `predicate` holds (Dask's `df[df.x > 0]`).
    pub fn filter(&self, predicate: Expr) -> DataFrame {
        self.then(Op::Filter(predicate))
    }

    /// `task` on every partition (Dask's `map_partitions`): a
    /// `#[rdask::task] fn(Partition) -> Partition` (or returning
    /// `Result<Partition, E>`), linked into the workers.
    pub fn map_partitions<T>(&self, task: T) -> DataFrame
    where
        T: Task<Output = Partition>,
        (Delayed<Partition>,): IntoDelayedArgs<T::Args>,
    {
        let parts = self.to_delayed().into_iter().map(|p| delayed(task, (p,))).collect();
        self.with_parts(parts)
    }

    /// `npartitions` partitions (Dask's `repartition(npartitions=…)`):
    /// fewer by joining neighbours, more by cutting each partition into
    /// nearly equal row ranges. Row order is kept.
    pub fn repartition(&self, npartitions: usize) -> Result<DataFrame, Error> {
        let parts = self.to_delayed();
        let n = parts.len();
        if npartitions == 0 {
            return Err(Error::Invalid("repartition to 0 partitions".into()));
        }
        let out = if npartitions <= n {
            // Output j joins inputs [j*n/k, (j+1)*n/k).
            (0..npartitions)
                .map(|j| {
                    let group: Vec<&Delayed<Partition>> =
                        parts[j * n / npartitions..(j + 1) * n / npartitions].iter().collect();
                    if group.len() == 1 {
                        group[0].clone()
                    } else {
                        delayed(kernels::concat, (group,))
                    }
                })
                .collect()
        } else {
            // Input i gives pieces [i*k/n, (i+1)*k/n) of the output.
            parts
                .iter()
                .enumerate()
                .flat_map(|(i, p)| {
                    let k = (i + 1) * npartitions / n - i * npartitions / n;
                    (0..k).map(move |j| delayed(kernels::split, (p, j, k)))
                })
                .collect()
        };
        Ok(self.with_parts(out))
    }

    /// Distinct rows, or rows distinct on `subset` (keeping the first),
    /// in no particular order (Dask's `drop_duplicates`): per partition,
    /// then combined as a tree of `split_every`.
    pub fn drop_duplicates(&self, subset: Option<&[&str]>) -> DataFrame {
        let subset: Option<Vec<String>> = subset.map(|s| s.iter().map(|c| c.to_string()).collect());
        let mut level: Vec<Delayed<Partition>> = self
            .to_delayed()
            .iter()
            .map(|p| delayed(kernels::unique, (vec![p], subset.clone())))
            .collect();
        while level.len() > 1 {
            level = level
                .chunks(self.split_every)
                .map(|g| delayed(kernels::unique, (g.to_vec(), subset.clone())))
                .collect();
        }
        self.with_parts(level)
    }

    fn join(parts: Vec<Partition>) -> Result<polars::prelude::DataFrame, Error> {
        kernels::concat_frames(parts.into_iter().map(Partition::into_inner).collect()).map_err(Error::Polars)
    }

    /// Runs its graph on the cluster (one submission) and stacks the
    /// partitions here (Dask's `compute()`).
    pub fn compute(&self, client: &Client) -> Result<polars::prelude::DataFrame, Error> {
        self.compute_with(client, &ComputeOptions::default())
    }

    /// [`compute`](Self::compute) with options.
    pub fn compute_with(&self, client: &Client, opts: &ComputeOptions) -> Result<polars::prelude::DataFrame, Error> {
        let parts = self.to_delayed();
        Self::join(compute_all(client, &parts.iter().collect::<Vec<_>>(), opts)?)
    }

    /// Runs its graph on a thread pool in this process (Dask's threaded
    /// scheduler).
    pub fn compute_local(&self) -> Result<polars::prelude::DataFrame, Error> {
        let parts = self.to_delayed();
        Self::join(compute_all_local(
            &parts.iter().collect::<Vec<_>>(),
            &ComputeOptions::default(),
        )?)
    }

    /// Number of tasks computing it submits (after fusion as `opts` says).
    pub fn task_count(&self, opts: &ComputeOptions) -> Result<usize, Error> {
        let parts = self.to_delayed();
        Ok(task_count_all(&parts.iter().collect::<Vec<_>>(), opts)?)
    }

    /// Computes its partitions on the cluster and keeps them there (Dask's
    /// `persist()`): the returned frame's partitions are the results, read
    /// where they are by whatever uses them next (through one cheap
    /// pass-through task per partition, since a lazy graph names a
    /// computed result only as an argument).
    pub fn persist(&self, client: &Client) -> Result<DataFrame, Error> {
        let parts = self.to_delayed();
        let futures = persist_all(client, &parts.iter().collect::<Vec<_>>(), &ComputeOptions::default())?;
        let parts = futures.iter().map(|f| delayed(kernels::from_partition, (f,))).collect();
        Ok(self.with_parts(parts))
    }

    /// Its number of rows, lazily (one task per partition and a sum).
    pub fn len_delayed(&self) -> Delayed<u64> {
        let lens: Vec<Delayed<u64>> = self
            .to_delayed()
            .iter()
            .map(|p| delayed(kernels::length, (p,)))
            .collect();
        delayed(kernels::total, (lens,))
    }

    /// Its number of rows, computed on the cluster (Dask's `len(df)`).
    pub fn len(&self, client: &Client) -> Result<usize, Error> {
        Ok(self.len_delayed().compute(client)? as usize)
    }

    /// The first `n` rows (Dask's `head(n, npartitions=-1)`): partitions are
    /// computed in order, one submission each, until `n` rows are found, so
    /// only the partitions needed run.
    pub fn head(&self, client: &Client, n: usize) -> Result<polars::prelude::DataFrame, Error> {
        let mut got: Vec<Partition> = Vec::new();
        let mut have = 0;
        for p in self.to_delayed() {
            if have >= n && !got.is_empty() {
                break;
            }
            let part = delayed(kernels::head, (&p, n - have)).compute(client)?;
            have += part.height();
            got.push(part);
        }
        Self::join(got)
    }
}

/// Every kernel of this crate, for a worker that wants to register them by
/// hand (they also register themselves through `inventory`).
pub const TASKS: &[rdask::task::TaskEntry] = &[
    rdask::task::TaskEntry::of::<kernels::from_partition>(),
    rdask::task::TaskEntry::of::<kernels::read_csv_file>(),
    rdask::task::TaskEntry::of::<csv_blocks::read_csv_block>(),
    rdask::task::TaskEntry::of::<kernels::read_parquet_rows>(),
    rdask::task::TaskEntry::of::<kernels::write_parquet>(),
    rdask::task::TaskEntry::of::<kernels::write_csv>(),
    rdask::task::TaskEntry::of::<kernels::paths>(),
    rdask::task::TaskEntry::of::<kernels::apply>(),
    rdask::task::TaskEntry::of::<kernels::length>(),
    rdask::task::TaskEntry::of::<kernels::total>(),
    rdask::task::TaskEntry::of::<kernels::head>(),
    rdask::task::TaskEntry::of::<kernels::concat>(),
    rdask::task::TaskEntry::of::<kernels::split>(),
    rdask::task::TaskEntry::of::<kernels::unique>(),
    rdask::task::TaskEntry::of::<agg::partial>(),
    rdask::task::TaskEntry::of::<agg::combine>(),
    rdask::task::TaskEntry::of::<agg::finalize>(),
    rdask::task::TaskEntry::of::<datasets::random_partition>(),
    rdask::task::TaskEntry::of::<shuffle::split_hash>(),
    rdask::task::TaskEntry::of::<shuffle::unpack_concat>(),
    rdask::task::TaskEntry::of::<sort_keys::split_range>(),
    rdask::task::TaskEntry::of::<sort_keys::unpack_sorted>(),
    rdask::task::TaskEntry::of::<sort_keys::sample_keys>(),
    rdask::task::TaskEntry::of::<kernels::read_csv_columns>(),
    rdask::task::TaskEntry::of::<join::join_parts>(),
    rdask::task::TaskEntry::of::<describe::describe_partial>(),
    rdask::task::TaskEntry::of::<describe::describe_combine>(),
    rdask::task::TaskEntry::of::<describe::describe_finalize>(),
];
