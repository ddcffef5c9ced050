//! Reductions as trees (Dask's `reduction`): a partial per block, merged
//! `split_every` at a time along the reduced axes, then a final step per
//! output block. No task holds more than `split_every` partials.

use rdask::delayed::{delayed, Delayed};

use crate::partial::{self, Partial, Reduction};
use crate::{grid, Array, Error};

/// Blocks merged per reduced axis per task, so that one task merges at
/// most `split_every` partials in all (at least 2 per axis, as Dask's
/// `split_every ** (1 / len(axes))`).
fn per_axis(split_every: usize, naxes: usize) -> usize {
    let mut s = 2;
    while naxes > 0 && (s + 1usize).checked_pow(naxes as u32).is_some_and(|p| p <= split_every) {
        s += 1;
    }
    s
}

impl Array {
    fn axes(&self, axes: Option<&[usize]>) -> Result<Vec<usize>, Error> {
        let mut axes = match axes {
            None => (0..self.ndim()).collect(),
            Some(a) => a.to_vec(),
        };
        axes.sort_unstable();
        axes.dedup();
        if let Some(bad) = axes.iter().find(|&&k| k >= self.ndim()) {
            return Err(Error::Shape(format!("axis {bad} of an array of {} axes", self.ndim())));
        }
        Ok(axes)
    }

    /// The reduction `kind` over `axes` (all axes for `None`).
    pub fn reduction(&self, kind: Reduction, axes: Option<&[usize]>, keepdims: bool) -> Result<Array, Error> {
        let axes = self.axes(axes)?;
        if matches!(kind, Reduction::ArgMin | Reduction::ArgMax) && axes.len() != 1 && axes.len() != self.ndim() {
            return Err(Error::Shape(format!(
                "arg-reductions take one axis or all, not {axes:?}"
            )));
        }
        let offs: Vec<Vec<usize>> = self.chunks.iter().map(|l| grid::offsets(l)).collect();
        let mut dims = self.numblocks();
        let mut parts: Vec<Delayed<Partial>> = grid::indices(&dims)
            .iter()
            .enumerate()
            .map(|(i, idx)| {
                let offset: Vec<usize> = idx.iter().enumerate().map(|(k, &i)| offs[k][i]).collect();
                match &self.made_by {
                    // Blockwise fusion: the element-wise operation's block
                    // is made inside the reduction's first task.
                    Some(made_by) => {
                        let e = &made_by[i];
                        delayed(
                            partial::reduce_binary,
                            ((kind, e.op), &e.a, &e.b, axes.clone(), offset, self.shape.clone()),
                        )
                    }
                    None => delayed(
                        partial::reduce_block,
                        (kind, &self.blocks[i], axes.clone(), offset, self.shape.clone()),
                    ),
                }
            })
            .collect();
        let s = per_axis(self.split_every, axes.len());
        while axes.iter().any(|&k| dims[k] > 1) {
            let new_dims: Vec<usize> = (0..dims.len())
                .map(|k| {
                    if axes.contains(&k) {
                        dims[k].div_ceil(s)
                    } else {
                        dims[k]
                    }
                })
                .collect();
            parts = grid::indices(&new_dims)
                .iter()
                .map(|idx| {
                    // The old blocks of this group: up to `s` along each
                    // reduced axis, the same position along the others.
                    let ranges: Vec<(usize, usize)> = (0..dims.len())
                        .map(|k| {
                            if axes.contains(&k) {
                                (idx[k] * s, (idx[k] * s + s).min(dims[k]))
                            } else {
                                (idx[k], idx[k] + 1)
                            }
                        })
                        .collect();
                    let sizes: Vec<usize> = ranges.iter().map(|r| r.1 - r.0).collect();
                    let group: Vec<&Delayed<Partial>> = grid::indices(&sizes)
                        .iter()
                        .map(|o| {
                            let old: Vec<usize> = o.iter().zip(&ranges).map(|(i, r)| r.0 + i).collect();
                            &parts[grid::linear(&old, &dims)]
                        })
                        .collect();
                    if group.len() == 1 {
                        group[0].clone()
                    } else {
                        delayed(partial::reduce_combine, (kind, group))
                    }
                })
                .collect();
            dims = new_dims;
        }
        let blocks = parts
            .iter()
            .map(|p| delayed(partial::reduce_finalize, (kind, p, axes.clone(), keepdims)))
            .collect();
        let (mut shape, mut chunks) = (Vec::new(), Vec::new());
        for k in 0..self.ndim() {
            if !axes.contains(&k) {
                shape.push(self.shape[k]);
                chunks.push(self.chunks[k].clone());
            } else if keepdims {
                shape.push(1);
                chunks.push(vec![1]);
            }
        }
        Ok(self.build(shape, chunks, blocks))
    }

    /// Sum of all elements (a 0-d array).
    pub fn sum(&self) -> Array {
        self.all_axes(Reduction::Sum)
    }

    /// Sum over `axes` (`x.sum(axis=axes, keepdims=…)`).
    pub fn sum_axes(&self, axes: &[usize], keepdims: bool) -> Result<Array, Error> {
        self.reduction(Reduction::Sum, Some(axes), keepdims)
    }

    /// Mean of all elements (NaN for none).
    pub fn mean(&self) -> Array {
        self.all_axes(Reduction::Mean)
    }

    /// Mean over `axes`.
    pub fn mean_axes(&self, axes: &[usize], keepdims: bool) -> Result<Array, Error> {
        self.reduction(Reduction::Mean, Some(axes), keepdims)
    }

    /// Smallest element (computing it fails for an empty array).
    pub fn min(&self) -> Array {
        self.all_axes(Reduction::Min)
    }

    /// Smallest elements over `axes`.
    pub fn min_axes(&self, axes: &[usize], keepdims: bool) -> Result<Array, Error> {
        self.reduction(Reduction::Min, Some(axes), keepdims)
    }

    /// Largest element (computing it fails for an empty array).
    pub fn max(&self) -> Array {
        self.all_axes(Reduction::Max)
    }

    /// Largest elements over `axes`.
    pub fn max_axes(&self, axes: &[usize], keepdims: bool) -> Result<Array, Error> {
        self.reduction(Reduction::Max, Some(axes), keepdims)
    }

    /// Variance of all elements with `ddof` delta degrees of freedom
    /// (NumPy's `var(ddof=…)`; NaN when there are no more than `ddof`).
    pub fn var(&self, ddof: f64) -> Array {
        self.all_axes(Reduction::Var(ddof))
    }

    /// Variance over `axes`.
    pub fn var_axes(&self, axes: &[usize], keepdims: bool, ddof: f64) -> Result<Array, Error> {
        self.reduction(Reduction::Var(ddof), Some(axes), keepdims)
    }

    /// Standard deviation of all elements (NumPy's `std(ddof=…)`).
    pub fn std(&self, ddof: f64) -> Array {
        self.all_axes(Reduction::Std(ddof))
    }

    /// Standard deviation over `axes`.
    pub fn std_axes(&self, axes: &[usize], keepdims: bool, ddof: f64) -> Result<Array, Error> {
        self.reduction(Reduction::Std(ddof), Some(axes), keepdims)
    }

    /// Flat (C-order) index of the first largest element, as an `f64`.
    pub fn argmax(&self) -> Array {
        self.all_axes(Reduction::ArgMax)
    }

    /// Index along `axis` of the first largest element of each lane.
    pub fn argmax_axis(&self, axis: usize) -> Result<Array, Error> {
        self.reduction(Reduction::ArgMax, Some(&[axis]), false)
    }

    /// Flat (C-order) index of the first smallest element, as an `f64`.
    pub fn argmin(&self) -> Array {
        self.all_axes(Reduction::ArgMin)
    }

    /// Index along `axis` of the first smallest element of each lane.
    pub fn argmin_axis(&self, axis: usize) -> Result<Array, Error> {
        self.reduction(Reduction::ArgMin, Some(&[axis]), false)
    }

    fn all_axes(&self, kind: Reduction) -> Array {
        // All axes always exist, so this cannot fail.
        self.reduction(kind, None, false).unwrap_or_else(|_| self.clone())
    }
}
