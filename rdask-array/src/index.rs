//! Slicing with ranges and steps (Dask's `x[a:b:s, …]`) and `rechunk`:
//! both map each output block to the pieces of input blocks it is made of.

use ndarray::Slice;
use rdask::delayed::{delayed, Delayed};

use crate::kernels::{self, Ranges};
use crate::{grid, Array, Chunk, ChunkLens, Error};

/// One axis of a slice: per output block, the input block and its
/// `(start, stop, step)`.
type AxisPlan = Vec<(usize, (usize, usize, usize))>;

/// The blocks of one axis a slice `s` selects from blocks of `lens`.
fn plan_axis(s: Slice, lens: &[usize]) -> Result<AxisPlan, Error> {
    let len: usize = lens.iter().sum();
    if s.step <= 0 {
        return Err(Error::Shape(format!("slice step {} (only positive steps)", s.step)));
    }
    let step = s.step as usize;
    let at = |i: isize| {
        if i < 0 {
            (len as isize + i).max(0) as usize
        } else {
            (i as usize).min(len)
        }
    };
    let start = at(s.start);
    let stop = s.end.map_or(len, at).max(start);
    let mut plan = Vec::new();
    for (b, w) in grid::offsets(lens).windows(2).enumerate() {
        let (lo, hi) = (w[0], w[1].min(stop));
        // First selected index at or after this block's start.
        let first = if start >= lo {
            start
        } else {
            start + (lo - start).div_ceil(step) * step
        };
        if first < hi {
            plan.push((b, (first - lo, hi - lo, step)));
        }
    }
    if plan.is_empty() {
        // Nothing selected: one empty block, cut from the first.
        plan.push((0, (0, 0, 1)));
    }
    Ok(plan)
}

impl Array {
    /// The part `ranges` selects, one [`Slice`] per axis (missing trailing
    /// axes are whole): NumPy's `x[a:b:s, …]` with positive steps; negative
    /// `start`/`end` count from the end.
    pub fn slice(&self, ranges: &[Slice]) -> Result<Array, Error> {
        if ranges.len() > self.ndim() {
            return Err(Error::Shape(format!(
                "{} slices for {} axes",
                ranges.len(),
                self.ndim()
            )));
        }
        let plans: Vec<AxisPlan> = (0..self.ndim())
            .map(|k| plan_axis(ranges.get(k).copied().unwrap_or(Slice::from(..)), &self.chunks[k]))
            .collect::<Result<_, _>>()?;
        let chunks: ChunkLens = plans
            .iter()
            .map(|p| p.iter().map(|(_, (a, b, s))| (b - a).div_ceil(*s)).collect())
            .collect();
        let dims = self.numblocks();
        let blocks = grid::indices(&grid::nblocks(&chunks))
            .iter()
            .map(|idx| {
                let old: Vec<usize> = idx.iter().enumerate().map(|(k, &i)| plans[k][i].0).collect();
                let r: Ranges = idx.iter().enumerate().map(|(k, &i)| plans[k][i].1).collect();
                let block = &self.blocks[grid::linear(&old, &dims)];
                let whole = r
                    .iter()
                    .zip(&old)
                    .enumerate()
                    .all(|(k, (&(a, b, s), &o))| a == 0 && s == 1 && b == self.chunks[k][o]);
                if whole {
                    block.clone()
                } else {
                    delayed(kernels::slice, (block, r))
                }
            })
            .collect();
        let shape = chunks.iter().map(|c| c.iter().sum()).collect();
        Ok(self.build(shape, chunks, blocks))
    }

    /// The same values in blocks of `sizes` per axis (Dask's `rechunk`).
    pub fn rechunk(&self, sizes: &[usize]) -> Result<Array, Error> {
        self.rechunk_to(grid::regular(&self.shape, sizes)?)
    }

    /// The same values in blocks of the given lengths per axis.
    pub fn rechunk_to(&self, chunks: ChunkLens) -> Result<Array, Error> {
        grid::check(&self.shape, &chunks)?;
        if chunks == self.chunks {
            return Ok(self.clone());
        }
        let pieces: Vec<Vec<Vec<(usize, usize, usize)>>> = self
            .chunks
            .iter()
            .zip(&chunks)
            .map(|(o, n)| grid::pieces(o, n))
            .collect();
        let dims = self.numblocks();
        let blocks = grid::indices(&grid::nblocks(&chunks))
            .iter()
            .map(|idx| {
                let per_axis: Vec<&Vec<(usize, usize, usize)>> =
                    idx.iter().enumerate().map(|(k, &i)| &pieces[k][i]).collect();
                let sub: Vec<usize> = per_axis.iter().map(|p| p.len()).collect();
                let mut parts: Vec<&Delayed<Chunk>> = Vec::new();
                let mut ranges: Vec<Ranges> = Vec::new();
                let mut whole = true;
                for o in grid::indices(&sub) {
                    let old: Vec<usize> = o.iter().enumerate().map(|(k, &i)| per_axis[k][i].0).collect();
                    let r: Ranges = o
                        .iter()
                        .enumerate()
                        .map(|(k, &i)| (per_axis[k][i].1, per_axis[k][i].2, 1))
                        .collect();
                    whole &= r
                        .iter()
                        .zip(&old)
                        .enumerate()
                        .all(|(k, (&(a, b, _), &ob))| a == 0 && b == self.chunks[k][ob]);
                    parts.push(&self.blocks[grid::linear(&old, &dims)]);
                    ranges.push(r);
                }
                if parts.len() == 1 && whole {
                    parts[0].clone()
                } else {
                    delayed(kernels::assemble, (parts, sub, ranges))
                }
            })
            .collect();
        Ok(self.build(self.shape.clone(), chunks, blocks))
    }
}
