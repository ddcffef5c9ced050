//! `dot` / `matmul` of 2-d arrays (a product per pair of blocks, summed in
//! a tree of `split_every`) and `transpose`.

use rdask::delayed::{delayed, Delayed};

use crate::kernels::{self, is_permutation};
use crate::{grid, Array, Chunk, Error};

impl Array {
    /// The matrix product of two 2-d arrays (NumPy's `a @ b`). Block `(i,
    /// j)` of the result sums the products of `self`'s blocks `(i, l)` and
    /// `other`'s `(l, j)` over `l`, `split_every` per task; `other`'s rows
    /// are rechunked to `self`'s columns where they differ.
    pub fn matmul(&self, other: &Array) -> Result<Array, Error> {
        if self.ndim() != 2 || other.ndim() != 2 || self.shape[1] != other.shape[0] {
            return Err(Error::Shape(format!(
                "matmul of shapes {:?} and {:?}",
                self.shape, other.shape
            )));
        }
        let other = if other.chunks[0] == self.chunks[1] {
            other.clone()
        } else {
            other.rechunk_to(vec![self.chunks[1].clone(), other.chunks[1].clone()])?
        };
        let (da, db) = (self.numblocks(), other.numblocks());
        let mut blocks = Vec::with_capacity(da[0] * db[1]);
        for i in 0..da[0] {
            for j in 0..db[1] {
                let mut terms: Vec<Delayed<Chunk>> = (0..da[1])
                    .map(|l| {
                        delayed(
                            kernels::matmul,
                            (
                                &self.blocks[grid::linear(&[i, l], &da)],
                                &other.blocks[grid::linear(&[l, j], &db)],
                            ),
                        )
                    })
                    .collect();
                while terms.len() > 1 {
                    terms = terms
                        .chunks(self.split_every)
                        .map(|g| {
                            if g.len() == 1 {
                                g[0].clone()
                            } else {
                                delayed(kernels::add_all, (g,))
                            }
                        })
                        .collect();
                }
                blocks.push(
                    terms
                        .pop()
                        .unwrap_or_else(|| delayed(kernels::full, (vec![0usize, 0], 0.0))),
                );
            }
        }
        let shape = vec![self.shape[0], other.shape[1]];
        Ok(self.build(shape, vec![self.chunks[0].clone(), other.chunks[1].clone()], blocks))
    }

    /// [`matmul`](Self::matmul) (NumPy's `dot` of 2-d arrays).
    pub fn dot(&self, other: &Array) -> Result<Array, Error> {
        self.matmul(other)
    }

    /// Its axes permuted: axis `i` of the result is axis `axes[i]` of this
    /// array (NumPy's `transpose(axes)`).
    pub fn permute(&self, axes: &[usize]) -> Result<Array, Error> {
        if !is_permutation(axes, self.ndim()) {
            return Err(Error::Shape(format!(
                "{axes:?} is not a permutation of {} axes",
                self.ndim()
            )));
        }
        let dims = self.numblocks();
        let new_dims: Vec<usize> = axes.iter().map(|&a| dims[a]).collect();
        let blocks = grid::indices(&new_dims)
            .iter()
            .map(|idx| {
                let mut old = vec![0; idx.len()];
                for (i, &a) in axes.iter().enumerate() {
                    old[a] = idx[i];
                }
                delayed(
                    kernels::transpose,
                    (&self.blocks[grid::linear(&old, &dims)], axes.to_vec()),
                )
            })
            .collect();
        let shape = axes.iter().map(|&a| self.shape[a]).collect();
        let chunks = axes.iter().map(|&a| self.chunks[a].clone()).collect();
        Ok(self.build(shape, chunks, blocks))
    }

    /// Its axes reversed (NumPy's `x.T`).
    pub fn t(&self) -> Array {
        let axes: Vec<usize> = (0..self.ndim()).rev().collect();
        // A reversal is always a permutation.
        self.permute(&axes).unwrap_or_else(|_| self.clone())
    }
}
