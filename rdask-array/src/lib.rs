//! Chunked n-dimensional arrays on rdask: Dask's `dask.array`, with
//! [`ndarray`] arrays as chunks and `rdask::delayed` graphs underneath.
//!
//! ```
//! use rdask_array::{self as da, ndarray};
//!
//! // x = da.random.random((400, 300), chunks=(100, 100)); x - x.mean(axis=1, keepdims=True)
//! let x = da::random(&[400, 300], &[100, 100], 42)?;
//! let centered = (&x - &x.mean_axes(&[1], true)?)?;
//! let rows = centered.sum_axes(&[1], false)?.compute_local()?;
//! assert!(rows.iter().all(|r| r.abs() < 1e-9));
//! # let _ = ndarray::arr1(&[1.0]);
//! # Ok::<(), rdask_array::Error>(())
//! ```
//!
//! An [`Array`] is a grid of blocks (Dask's `chunks`: per axis, the block
//! lengths, the last one possibly shorter), each a
//! `Delayed<`[`Chunk`]`>`, a lazy `ArrayD<f64>`. Operations add calls of
//! this crate's `#[rdask::task]` kernels to the graph; computing submits the
//! whole graph at once, culled and chain-fused like any lazy graph
//! (`x + 1` then `* 2` is one task per block), and a reduction takes in
//! the element-wise operation of two arrays just before it (`(x - m).std()`
//! makes no `x - m` blocks). Blocks travel as raw little-endian bytes plus
//! their shape ([`Chunk`]'s serde form).
//!
//! Workers must link this crate to run the kernels (an example worker
//! binary: `examples/array_worker.rs`, `use rdask_array as _;
//! rdask::cli::main()`).
//!
//! What NumPy and `dask.array` calls map to here, and what is missing:
//! `docs/collections.md`.
//!
//! # Layout
//! `lib.rs` (the [`Array`] type, compute and persist), `grid` (chunk grid
//! arithmetic), `create` (sources, `.npy` stacks), `ops` (element-wise
//! operations, broadcasting, `map_blocks`), `reduce` (reductions as trees),
//! `linalg` (`dot`, `transpose`), `index` (slicing, `rechunk`), `zarr`
//! (Zarr stores both ways); the worker
//! side: `kernels` and `partial` (reductions); `chunk` (the wire form),
//! `view` (a block read in place, for kernels that only read it),
//! `buffer` (fresh block memory, huge pages).

#![warn(missing_docs)]

pub mod buffer;
mod chunk;
mod create;
pub mod grid;
mod index;
pub mod kernels;
mod linalg;
mod ops;
pub mod partial;
mod reduce;
mod view;
mod zarr;

pub use chunk::Chunk;
pub use create::{arange, from_array, from_fn, from_npy_stack, full, ones, random, zeros};
pub use grid::ChunkLens;
pub use kernels::{BinOp, UnOp};
pub use ndarray;
pub use rdask::delayed::ComputeOptions;
pub use view::{ChunkView, ROWS_RUN_BYTES};
pub use zarr::from_zarr;

use std::sync::Arc;

use ndarray::ArrayD;
use rdask::delayed::{compute_all, compute_all_local, delayed, persist_all, task_count_all, Delayed};
use rdask::{Client, Future};

/// Dask's default `split_every` for array reductions: at most this many
/// partials are merged by one task.
pub const DEFAULT_SPLIT_EVERY: usize = 16;

/// What can go wrong building or computing an array.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// Shapes, chunks or axes that do not fit.
    #[error("shape: {0}")]
    Shape(String),
    /// A file next to the blocks (`info.json` of an `.npy` stack).
    #[error("{path}: {message}")]
    File {
        /// The file.
        path: String,
        /// What failed.
        message: String,
    },
    /// From the runtime: a failed task, a lost connection…
    #[error(transparent)]
    Rdask(#[from] rdask::Error),
}

/// A lazy chunked array of `f64` (Dask's `dask.array.Array`).
#[derive(Clone)]
pub struct Array {
    shape: Vec<usize>,
    chunks: ChunkLens,
    /// In C order of the block grid.
    blocks: Vec<Delayed<Chunk>>,
    split_every: usize,
    /// The computed blocks, in the order of `blocks`, when this array is
    /// the result of [`Array::persist`]: persisting it again, or handing
    /// its blocks to an iterative algorithm, then reuses them instead of
    /// copying each block into a new result (see `persisted_blocks`).
    persisted: Option<Vec<Future<Chunk>>>,
    /// When the blocks are `op(a, b)` of [`Array::binary_op`]: per block,
    /// the operation and its operands, so a reduction right after it
    /// reduces them in the same task (see [`partial::reduce_binary`]).
    made_by: Option<Arc<Vec<Elementwise>>>,
}

/// How one block of an element-wise result is made.
#[derive(Clone)]
struct Elementwise {
    op: BinOp,
    a: Delayed<Chunk>,
    b: Delayed<Chunk>,
}

impl std::fmt::Debug for Array {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Array(shape={:?}, chunks={:?})", self.shape, self.chunks)
    }
}

impl Array {
    /// An array of the given blocks (Dask's `from_delayed` of a grid):
    /// `chunks` gives the block lengths per axis and `blocks` the blocks in
    /// C order of the grid; each block must have the shape the grid says.
    pub fn from_delayed(shape: &[usize], chunks: ChunkLens, blocks: Vec<Delayed<Chunk>>) -> Result<Array, Error> {
        grid::check(shape, &chunks)?;
        let n: usize = grid::nblocks(&chunks).iter().product();
        if n != blocks.len() {
            return Err(Error::Shape(format!("{} blocks for a grid of {n}", blocks.len())));
        }
        Ok(Array {
            shape: shape.to_vec(),
            chunks,
            blocks,
            split_every: DEFAULT_SPLIT_EVERY,
            made_by: None,
            persisted: None,
        })
    }

    /// Like [`from_delayed`](Self::from_delayed), for grids built here
    /// (consistent by construction).
    pub(crate) fn build(&self, shape: Vec<usize>, chunks: ChunkLens, blocks: Vec<Delayed<Chunk>>) -> Array {
        Array {
            shape,
            chunks,
            blocks,
            split_every: self.split_every,
            made_by: None,
            persisted: None,
        }
    }

    /// Its shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of axes.
    pub fn ndim(&self) -> usize {
        self.shape.len()
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.shape.iter().product()
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    /// Block lengths per axis (Dask's `chunks`).
    pub fn chunks(&self) -> &ChunkLens {
        &self.chunks
    }

    /// Number of blocks per axis (Dask's `numblocks`).
    pub fn numblocks(&self) -> Vec<usize> {
        grid::nblocks(&self.chunks)
    }

    /// Its blocks, in C order of the grid (Dask's `to_delayed().ravel()`).
    pub fn to_delayed(&self) -> Vec<Delayed<Chunk>> {
        self.blocks.clone()
    }

    /// The block at grid position `idx` (Dask's `x.blocks[i, j]`).
    pub fn block(&self, idx: &[usize]) -> Option<&Delayed<Chunk>> {
        let dims = self.numblocks();
        if idx.len() != dims.len() || idx.iter().zip(&dims).any(|(i, d)| i >= d) {
            return None;
        }
        self.blocks.get(grid::linear(idx, &dims))
    }

    /// Sets how many partials one task of a reduction tree (or of `dot`'s
    /// sums) merges, at least 2 (Dask's `split_every`).
    pub fn split_every(mut self, n: usize) -> Self {
        self.split_every = n.max(2);
        self
    }

    fn refs(&self) -> Vec<&Delayed<Chunk>> {
        self.blocks.iter().collect()
    }

    fn join(&self, parts: Vec<Chunk>) -> Result<ArrayD<f64>, Error> {
        let parts = parts.into_iter().map(Chunk::into_inner).collect();
        kernels::concat_grid(parts, &self.numblocks()).map_err(Error::Shape)
    }

    /// Runs its graph on the cluster (one submission) and joins the blocks
    /// here (Dask's `compute()`).
    pub fn compute(&self, client: &Client) -> Result<ArrayD<f64>, Error> {
        self.compute_with(client, &ComputeOptions::default())
    }

    /// [`compute`](Self::compute) with options.
    pub fn compute_with(&self, client: &Client, opts: &ComputeOptions) -> Result<ArrayD<f64>, Error> {
        let parts = compute_all(client, &self.refs(), opts)?;
        self.join(parts)
    }

    /// Runs its graph on a thread pool in this process (Dask's threaded
    /// scheduler).
    pub fn compute_local(&self) -> Result<ArrayD<f64>, Error> {
        self.compute_local_with(&ComputeOptions::default())
    }

    /// [`compute_local`](Self::compute_local) with options.
    pub fn compute_local_with(&self, opts: &ComputeOptions) -> Result<ArrayD<f64>, Error> {
        let parts = compute_all_local(&self.refs(), opts)?;
        self.join(parts)
    }

    /// Number of tasks computing it submits (after fusion as `opts` says).
    pub fn task_count(&self, opts: &ComputeOptions) -> Result<usize, Error> {
        Ok(task_count_all(&self.refs(), opts)?)
    }

    /// Computes its blocks on the cluster and keeps them there (Dask's
    /// `persist()`): the returned array's blocks are the results, read
    /// where they are by whatever uses them next (through one cheap
    /// pass-through task per block, since a lazy graph names a computed
    /// result only as an argument).
    ///
    /// Persisting an array that is already persisted returns it as it is
    /// (Dask's `persist` of a persisted collection): persisting its
    /// pass-through blocks would copy every block into a second result on
    /// the workers, twice the memory, with the copies placed wherever
    /// each worker was free rather than where the block was.
    pub fn persist(&self, client: &Client) -> Result<Array, Error> {
        if self.persisted.is_some() {
            return Ok(self.clone());
        }
        let futures = persist_all(client, &self.refs(), &ComputeOptions::default())?;
        let blocks = futures.iter().map(|f| delayed(kernels::from_chunk, (f,))).collect();
        let mut out = self.build(self.shape.clone(), self.chunks.clone(), blocks);
        out.persisted = Some(futures);
        Ok(out)
    }

    /// The computed blocks of an array returned by [`persist`](Self::persist),
    /// in C order of the block grid (as [`to_delayed`](Self::to_delayed)),
    /// for code that passes them by key to its own tasks; `None` for an
    /// array not persisted (any operation on a persisted array gives a new,
    /// lazy one).
    pub fn persisted_blocks(&self) -> Option<&[Future<Chunk>]> {
        self.persisted.as_deref()
    }
}

/// Every kernel of this crate, for a worker that wants to register them by
/// hand (they also register themselves through `inventory`).
pub const TASKS: &[rdask::task::TaskEntry] = &[
    rdask::task::TaskEntry::of::<kernels::from_chunk>(),
    rdask::task::TaskEntry::of::<kernels::full>(),
    rdask::task::TaskEntry::of::<kernels::random>(),
    rdask::task::TaskEntry::of::<kernels::arange>(),
    rdask::task::TaskEntry::of::<kernels::binary>(),
    rdask::task::TaskEntry::of::<kernels::scalar>(),
    rdask::task::TaskEntry::of::<kernels::unary>(),
    rdask::task::TaskEntry::of::<kernels::matmul>(),
    rdask::task::TaskEntry::of::<kernels::add_all>(),
    rdask::task::TaskEntry::of::<kernels::transpose>(),
    rdask::task::TaskEntry::of::<kernels::slice>(),
    rdask::task::TaskEntry::of::<kernels::assemble>(),
    rdask::task::TaskEntry::of::<kernels::write_npy>(),
    rdask::task::TaskEntry::of::<kernels::read_npy>(),
    rdask::task::TaskEntry::of::<kernels::paths>(),
    rdask::task::TaskEntry::of::<partial::reduce_block>(),
    rdask::task::TaskEntry::of::<partial::reduce_binary>(),
    rdask::task::TaskEntry::of::<partial::reduce_combine>(),
    rdask::task::TaskEntry::of::<partial::reduce_finalize>(),
    rdask::task::TaskEntry::of::<zarr::read_zarr>(),
    rdask::task::TaskEntry::of::<zarr::write_zarr>(),
];
