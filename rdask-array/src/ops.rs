//! Element-wise operations: with a scalar, with another array under
//! NumPy's broadcasting, element-wise functions, `map_blocks`, and the
//! operators (`&x - &y` gives a `Result`, since shapes may not broadcast;
//! `&x * 2.0` an `Array`).

use std::ops::{Add, Div, Mul, Neg, Sub};
use std::sync::Arc;

use rdask::delayed::delayed;
use rdask::task::Task;

use crate::kernels::{self, BinOp, UnOp};
use crate::{grid, Array, Chunk, ChunkLens, Elementwise, Error};

impl Array {
    /// `op(x, s)` for each element `x` (`op(s, x)` when `scalar_first`).
    pub fn scalar_op(&self, op: BinOp, s: f64, scalar_first: bool) -> Array {
        let blocks = self
            .blocks
            .iter()
            .map(|b| delayed(kernels::scalar, (op, b, s, scalar_first)))
            .collect();
        self.build(self.shape.clone(), self.chunks.clone(), blocks)
    }

    /// `op(x)` for each element (NumPy's ufuncs of one argument).
    pub fn map(&self, op: UnOp) -> Array {
        let blocks = self.blocks.iter().map(|b| delayed(kernels::unary, (op, b))).collect();
        self.build(self.shape.clone(), self.chunks.clone(), blocks)
    }

    /// `op(x, y)` element by element with NumPy's broadcasting (Dask's
    /// `elemwise`). Where both have an axis of the same length but
    /// different chunks, `other` is rechunked to `self`'s.
    pub fn binary_op(&self, op: BinOp, other: &Array) -> Result<Array, Error> {
        let n = self.ndim().max(other.ndim());
        let pad = |a: &Array| -> (Vec<usize>, ChunkLens) {
            let extra = n - a.ndim();
            let mut shape = vec![1; extra];
            shape.extend_from_slice(&a.shape);
            let mut chunks = vec![vec![1]; extra];
            chunks.extend(a.chunks.iter().cloned());
            (shape, chunks)
        };
        let ((sa, ca), (sb, cb)) = (pad(self), pad(other));
        let mut out_shape = Vec::with_capacity(n);
        let mut out_chunks = Vec::with_capacity(n);
        let mut other_chunks = other.chunks.clone();
        for k in 0..n {
            match (sa[k], sb[k]) {
                (x, y) if x == y => {
                    out_shape.push(x);
                    out_chunks.push(ca[k].clone());
                    if k >= n - other.ndim() {
                        other_chunks[k + other.ndim() - n] = ca[k].clone();
                    }
                }
                (1, y) => {
                    out_shape.push(y);
                    out_chunks.push(cb[k].clone());
                }
                (x, 1) => {
                    out_shape.push(x);
                    out_chunks.push(ca[k].clone());
                }
                _ => {
                    return Err(Error::Shape(format!(
                        "shapes {:?} and {:?} do not broadcast",
                        self.shape, other.shape
                    )))
                }
            }
        }
        let other = if other_chunks == other.chunks {
            other.clone()
        } else {
            other.rechunk_to(other_chunks)?
        };
        let (da, db) = (self.numblocks(), other.numblocks());
        // A block index of an operand: its own axes, 0 along a broadcast one.
        let source = |idx: &[usize], dims: &[usize], shape: &[usize]| -> usize {
            let skip = n - dims.len();
            let own: Vec<usize> = (0..dims.len())
                .map(|k| {
                    if shape[k] == 1 && out_shape[k + skip] != 1 {
                        0
                    } else {
                        idx[k + skip]
                    }
                })
                .collect();
            grid::linear(&own, dims)
        };
        let made_by: Vec<Elementwise> = grid::indices(&grid::nblocks(&out_chunks))
            .iter()
            .map(|idx| Elementwise {
                op,
                a: self.blocks[source(idx, &da, &self.shape)].clone(),
                b: other.blocks[source(idx, &db, &other.shape)].clone(),
            })
            .collect();
        let blocks = made_by
            .iter()
            .map(|e| delayed(kernels::binary, (e.op, &e.a, &e.b)))
            .collect();
        let mut out = self.build(out_shape, out_chunks, blocks);
        out.made_by = Some(Arc::new(made_by));
        Ok(out)
    }

    /// Applies the registered function `f` to every block (Dask's
    /// `map_blocks`); `f` must keep each block's shape (otherwise use
    /// [`map_blocks_to`](Self::map_blocks_to)).
    pub fn map_blocks<F: Task<Args = (Chunk,), Output = Chunk> + Copy>(&self, f: F) -> Array {
        let blocks = self.blocks.iter().map(|b| delayed(f, (b,))).collect();
        self.build(self.shape.clone(), self.chunks.clone(), blocks)
    }

    /// [`map_blocks`](Self::map_blocks) for a function that changes block
    /// shapes: `chunks` are the output's block lengths (Dask's `chunks=`),
    /// with as many blocks per axis as the input.
    pub fn map_blocks_to<F: Task<Args = (Chunk,), Output = Chunk> + Copy>(
        &self,
        f: F,
        chunks: ChunkLens,
    ) -> Result<Array, Error> {
        if grid::nblocks(&chunks) != self.numblocks() {
            return Err(Error::Shape(format!(
                "chunks {chunks:?} do not keep the grid {:?}",
                self.numblocks()
            )));
        }
        let shape: Vec<usize> = chunks.iter().map(|c| c.iter().sum()).collect();
        let blocks = self.blocks.iter().map(|b| delayed(f, (b,))).collect();
        Array::from_delayed(&shape, chunks, blocks).map(|a| a.split_every(self.split_every))
    }
}

macro_rules! operators {
    ($($trait:ident, $method:ident, $op:expr;)+) => {$(
        impl $trait<&Array> for &Array {
            type Output = Result<Array, Error>;
            fn $method(self, rhs: &Array) -> Result<Array, Error> {
                self.binary_op($op, rhs)
            }
        }
        impl $trait<f64> for &Array {
            type Output = Array;
            fn $method(self, rhs: f64) -> Array {
                self.scalar_op($op, rhs, false)
            }
        }
        impl $trait<&Array> for f64 {
            type Output = Array;
            fn $method(self, rhs: &Array) -> Array {
                rhs.scalar_op($op, self, true)
            }
        }
    )+};
}

operators! {
    Add, add, BinOp::Add;
    Sub, sub, BinOp::Sub;
    Mul, mul, BinOp::Mul;
    Div, div, BinOp::Div;
}

impl Neg for &Array {
    type Output = Array;
    fn neg(self) -> Array {
        self.map(UnOp::Neg)
    }
}
