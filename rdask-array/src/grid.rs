//! The chunk grid (Dask's `chunks`): per axis, the lengths of the blocks
//! along it, the last one possibly shorter. An axis of length 0 has one
//! block of length 0, as in Dask. Blocks are numbered in C order.

use crate::Error;

/// Per axis, the block lengths (Dask's `chunks` tuple of tuples).
pub type ChunkLens = Vec<Vec<usize>>;

/// Splits each axis of `shape` into blocks of `sizes` (the last shorter
/// when the size does not divide the length).
pub fn regular(shape: &[usize], sizes: &[usize]) -> Result<ChunkLens, Error> {
    if shape.len() != sizes.len() {
        return Err(Error::Shape(format!(
            "chunk sizes {sizes:?} do not match the {} axes of shape {shape:?}",
            shape.len()
        )));
    }
    shape
        .iter()
        .zip(sizes)
        .map(|(&len, &size)| {
            if size == 0 {
                return Err(Error::Shape(format!("chunk size 0 in {sizes:?}")));
            }
            if len == 0 {
                return Ok(vec![0]);
            }
            Ok((0..len).step_by(size).map(|start| size.min(len - start)).collect())
        })
        .collect()
}

/// Checks explicit block lengths against `shape`.
pub fn check(shape: &[usize], chunks: &ChunkLens) -> Result<(), Error> {
    let ok = shape.len() == chunks.len()
        && shape
            .iter()
            .zip(chunks)
            .all(|(&len, c)| !c.is_empty() && c.iter().sum::<usize>() == len && (len == 0 || c.iter().all(|&l| l > 0)));
    if ok {
        Ok(())
    } else {
        Err(Error::Shape(format!("chunks {chunks:?} do not tile shape {shape:?}")))
    }
}

/// Number of blocks along each axis.
pub fn nblocks(chunks: &ChunkLens) -> Vec<usize> {
    chunks.iter().map(Vec::len).collect()
}

/// Start of each block along an axis, plus the axis length at the end.
pub fn offsets(lens: &[usize]) -> Vec<usize> {
    let mut out = Vec::with_capacity(lens.len() + 1);
    let mut at = 0;
    out.push(0);
    for l in lens {
        at += l;
        out.push(at);
    }
    out
}

/// Every block index of a grid of `dims` blocks, in C order.
pub fn indices(dims: &[usize]) -> Vec<Vec<usize>> {
    let total: usize = dims.iter().product();
    let mut out = Vec::with_capacity(total);
    if total == 0 {
        return out;
    }
    let mut idx = vec![0; dims.len()];
    loop {
        out.push(idx.clone());
        let mut axis = dims.len();
        loop {
            if axis == 0 {
                return out;
            }
            axis -= 1;
            idx[axis] += 1;
            if idx[axis] < dims[axis] {
                break;
            }
            idx[axis] = 0;
        }
    }
}

/// Position of block `idx` in C order in a grid of `dims` blocks.
pub fn linear(idx: &[usize], dims: &[usize]) -> usize {
    idx.iter().zip(dims).fold(0, |acc, (&i, &d)| acc * d + i)
}

/// For each block of `new` along one axis, the pieces of `old` blocks it is
/// made of: `(old block, start, stop)` within that old block.
pub fn pieces(old: &[usize], new: &[usize]) -> Vec<Vec<(usize, usize, usize)>> {
    let old_off = offsets(old);
    let mut out = Vec::with_capacity(new.len());
    let mut start = 0;
    for &len in new {
        let stop = start + len;
        let mut parts = Vec::new();
        for (b, w) in old_off.windows(2).enumerate() {
            let (lo, hi) = (w[0].max(start), w[1].min(stop));
            if lo < hi || (len == 0 && b == 0) {
                parts.push((b, lo.saturating_sub(w[0]), hi.max(lo) - w[0]));
            }
        }
        out.push(parts);
        start = stop;
    }
    out
}
