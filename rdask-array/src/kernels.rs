//! The worker side of every array operation but reductions: the
//! `#[rdask::task]` functions each graph node calls, one block at a time.
//! Registered as `rdask_array::kernels::<name>`, so a worker runs them once
//! its binary links this crate.

use ndarray::{ArrayD, ArrayViewMut1, Axis, Ix2, IxDyn, Slice, Zip};
use rand_core::{Rng, SeedableRng};
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

use crate::Chunk;

/// An element-wise operation of two operands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum BinOp {
    /// `a + b`
    Add,
    /// `a - b`
    Sub,
    /// `a * b`
    Mul,
    /// `a / b`
    Div,
    /// `a ** b` (`f64::powf`)
    Pow,
    /// NumPy's `maximum` (NaN propagates)
    Maximum,
    /// NumPy's `minimum` (NaN propagates)
    Minimum,
}

impl BinOp {
    fn apply(self, a: f64, b: f64) -> f64 {
        match self {
            BinOp::Add => a + b,
            BinOp::Sub => a - b,
            BinOp::Mul => a * b,
            BinOp::Div => a / b,
            BinOp::Pow => a.powf(b),
            BinOp::Maximum if a.is_nan() || b.is_nan() => f64::NAN,
            BinOp::Minimum if a.is_nan() || b.is_nan() => f64::NAN,
            BinOp::Maximum => a.max(b),
            BinOp::Minimum => a.min(b),
        }
    }
}

/// An element-wise function of one operand.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum UnOp {
    /// `-a`
    Neg,
    /// `abs(a)`
    Abs,
    /// `sqrt(a)`
    Sqrt,
    /// `exp(a)`
    Exp,
    /// natural `log(a)`
    Log,
    /// `sin(a)`
    Sin,
    /// `cos(a)`
    Cos,
    /// `a * a`
    Square,
}

impl UnOp {
    fn apply(self, a: f64) -> f64 {
        match self {
            UnOp::Neg => -a,
            UnOp::Abs => a.abs(),
            UnOp::Sqrt => a.sqrt(),
            UnOp::Exp => a.exp(),
            UnOp::Log => a.ln(),
            UnOp::Sin => a.sin(),
            UnOp::Cos => a.cos(),
            UnOp::Square => a * a,
        }
    }
}

/// NumPy's broadcast shape of two shapes, if they are compatible.
pub fn broadcast_shape(a: &[usize], b: &[usize]) -> Option<Vec<usize>> {
    let n = a.len().max(b.len());
    let at = |s: &[usize], i: usize| if i + s.len() >= n { s[i + s.len() - n] } else { 1 };
    (0..n)
        .map(|i| match (at(a, i), at(b, i)) {
            (x, y) if x == y => Some(x),
            (1, y) => Some(y),
            (x, 1) => Some(x),
            _ => None,
        })
        .collect()
}

/// A block given as a value in the graph (`from_array`'s blocks).
#[rdask::task]
pub fn from_chunk(c: Chunk) -> Chunk {
    c
}

/// A block of `shape` filled with `value`.
#[rdask::task]
pub fn full(shape: Vec<usize>, value: f64) -> Chunk {
    Chunk(ArrayD::from_elem(IxDyn(&shape), value))
}

/// A block of uniform numbers in `[0, 1)` that depends only on the seed
/// and the block's index, so each block is reproducible on its own: a
/// xoshiro256++ generator (`rand_xoshiro`, seeded through its splitmix64
/// expansion) per block, from the seed mixed with the block's index.
#[rdask::task]
pub fn random(shape: Vec<usize>, seed: u64, block: Vec<usize>) -> Chunk {
    // splitmix64-style mixing of the seed with each index.
    let mut state = seed ^ 0x9E37_79B9_7F4A_7C15;
    for &i in &block {
        state = (state ^ i as u64).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(31);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(state);
    // 53 random bits over 2^53: uniform in [0, 1), NumPy's `random()`. The
    // bits fit an i64, whose conversion to f64 is one instruction (a u64's
    // is not, on x86-64 without AVX-512).
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    let n: usize = shape.iter().product();
    let mut data = crate::buffer::with_capacity(n);
    data.extend((0..n).map(|_| ((rng.next_u64() >> 11) as i64) as f64 * SCALE));
    Chunk(ArrayD::from_shape_vec(IxDyn(&shape), data).unwrap_or_else(|_| ArrayD::zeros(IxDyn(&shape))))
}

/// `n` values `start, start + step, …` (a 1-d block of `arange`).
#[rdask::task]
pub fn arange(start: f64, step: f64, n: usize) -> Chunk {
    Chunk(ArrayD::from_shape_fn(IxDyn(&[n]), |i| start + step * i[0] as f64))
}

/// `op(a, b)` element by element, with NumPy's broadcasting.
#[rdask::task]
pub fn binary(op: BinOp, a: Chunk, b: Chunk) -> Result<Chunk, String> {
    binary_values(op, a.0, b.0).map(Chunk)
}

/// [`binary`]'s work: in `a`'s own memory when `a` has the result's shape.
pub(crate) fn binary_values(op: BinOp, a: ArrayD<f64>, b: ArrayD<f64>) -> Result<ArrayD<f64>, String> {
    let shape = broadcast_shape(a.shape(), b.shape())
        .ok_or_else(|| format!("shapes {:?} and {:?} do not broadcast", a.shape(), b.shape()))?;
    if a.shape() == shape.as_slice() {
        let mut out = a;
        let bb = b.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
        match shape.len().checked_sub(1) {
            // Lane by lane along the last axis: where `b` is constant along
            // it (`x - x.mean(axis=-1, keepdims=True)`), a loop with one
            // operand in a register, which vectorises.
            Some(last) if shape[last] > 0 => {
                Zip::from(out.lanes_mut(Axis(last)))
                    .and(bb.lanes(Axis(last)))
                    .for_each(|mut lane, other| {
                        if other.strides()[0] == 0 {
                            let y = other[0];
                            apply_const(op, &mut lane, y);
                        } else {
                            Zip::from(&mut lane).and(&other).for_each(|x, &y| *x = op.apply(*x, y));
                        }
                    })
            }
            _ => Zip::from(&mut out).and(&bb).for_each(|x, &y| *x = op.apply(*x, y)),
        }
        return Ok(out);
    }
    let aa = a.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
    let bb = b.broadcast(IxDyn(&shape)).ok_or("broadcast failed")?;
    Ok(Zip::from(&aa).and(&bb).map_collect(|&x, &y| op.apply(x, y)))
}

/// `x = op(x, y)` along a lane; the common operations get their own loop
/// (the match outside it) so that they vectorise.
fn apply_const(op: BinOp, lane: &mut ArrayViewMut1<f64>, y: f64) {
    match op {
        BinOp::Add => lane.map_inplace(|x| *x += y),
        BinOp::Sub => lane.map_inplace(|x| *x -= y),
        BinOp::Mul => lane.map_inplace(|x| *x *= y),
        BinOp::Div => lane.map_inplace(|x| *x /= y),
        _ => lane.map_inplace(|x| *x = op.apply(*x, y)),
    }
}

/// `op(a, s)`, or `op(s, a)` when `scalar_first`.
#[rdask::task]
pub fn scalar(op: BinOp, a: Chunk, s: f64, scalar_first: bool) -> Chunk {
    let mut out = a.0;
    if scalar_first {
        out.mapv_inplace(|x| op.apply(s, x));
    } else {
        out.mapv_inplace(|x| op.apply(x, s));
    }
    Chunk(out)
}

/// `op(a)` element by element.
#[rdask::task]
pub fn unary(op: UnOp, a: Chunk) -> Chunk {
    let mut out = a.0;
    out.mapv_inplace(|x| op.apply(x));
    Chunk(out)
}

/// The matrix product of two 2-d blocks.
#[rdask::task]
pub fn matmul(a: Chunk, b: Chunk) -> Result<Chunk, String> {
    let a2 = a.view().into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
    let b2 = b.view().into_dimensionality::<Ix2>().map_err(|e| e.to_string())?;
    if a2.ncols() != b2.nrows() {
        return Err(format!("matmul of blocks {:?} and {:?}", a2.shape(), b2.shape()));
    }
    Ok(Chunk(a2.dot(&b2).into_dyn()))
}

/// The element-wise sum of blocks of one shape (a node of `dot`'s tree).
#[rdask::task]
pub fn add_all(parts: Vec<Chunk>) -> Result<Chunk, String> {
    let mut it = parts.into_iter();
    let mut acc = it.next().ok_or("no blocks to add")?.0;
    for p in it {
        if p.shape() != acc.shape() {
            return Err(format!("adding blocks {:?} and {:?}", acc.shape(), p.shape()));
        }
        acc += &p.0;
    }
    Ok(Chunk(acc))
}

/// The block with its axes permuted (`axes[i]` is the old axis that
/// becomes axis `i`).
#[rdask::task]
pub fn transpose(c: Chunk, axes: Vec<usize>) -> Result<Chunk, String> {
    if !is_permutation(&axes, c.ndim()) {
        return Err(format!("{axes:?} is not a permutation of {} axes", c.ndim()));
    }
    Ok(Chunk(c.0.permuted_axes(IxDyn(&axes)).as_standard_layout().into_owned()))
}

pub(crate) fn is_permutation(axes: &[usize], ndim: usize) -> bool {
    let mut seen = vec![false; ndim];
    axes.len() == ndim && axes.iter().all(|&a| a < ndim && !std::mem::replace(&mut seen[a], true))
}

/// One range per axis, `(start, stop, step)` within a block.
pub type Ranges = Vec<(usize, usize, usize)>;

fn slice_view(c: &ArrayD<f64>, ranges: &Ranges) -> Result<ArrayD<f64>, String> {
    if ranges.is_empty() {
        return Ok(c.clone());
    }
    if ranges.len() != c.ndim()
        || ranges
            .iter()
            .zip(c.shape())
            .any(|(r, &len)| r.2 == 0 || r.0 > r.1 || r.1 > len)
    {
        return Err(format!("ranges {ranges:?} out of a block of shape {:?}", c.shape()));
    }
    Ok(c.slice_each_axis(|ax| {
        let (start, stop, step) = ranges[ax.axis.index()];
        Slice::new(start as isize, Some(stop as isize), step as isize)
    })
    .to_owned())
}

/// Part of a block: `ranges` per axis.
#[rdask::task]
pub fn slice(c: Chunk, ranges: Ranges) -> Result<Chunk, String> {
    slice_view(&c.0, &ranges).map(Chunk)
}

/// Joins a grid of `grid` pieces (in C order) into one block, each piece
/// first cut to its `ranges` (no ranges: the whole piece). The pieces of
/// one row of the grid must agree on the other axes' lengths.
#[rdask::task]
pub fn assemble(parts: Vec<Chunk>, grid: Vec<usize>, ranges: Vec<Ranges>) -> Result<Chunk, String> {
    let parts: Vec<ArrayD<f64>> = if ranges.is_empty() {
        parts.into_iter().map(Chunk::into_inner).collect()
    } else {
        parts
            .iter()
            .zip(&ranges)
            .map(|(p, r)| slice_view(&p.0, r))
            .collect::<Result<_, _>>()?
    };
    concat_grid(parts, &grid).map(Chunk)
}

/// Joins a C-order grid of blocks into one array.
pub(crate) fn concat_grid(parts: Vec<ArrayD<f64>>, grid: &[usize]) -> Result<ArrayD<f64>, String> {
    if parts.len() != grid.iter().product::<usize>() || parts.is_empty() {
        return Err(format!("{} pieces for a grid of {grid:?}", parts.len()));
    }
    if parts.len() == 1 {
        return Ok(parts.into_iter().next().unwrap_or_else(|| ArrayD::zeros(IxDyn(&[0]))));
    }
    let ndim = grid.len();
    let index = crate::grid::indices(grid);
    // Lengths along each axis: from the pieces on that axis' own line.
    let mut lens: Vec<Vec<usize>> = grid.iter().map(|&g| vec![0; g]).collect();
    for (idx, p) in index.iter().zip(&parts) {
        if p.ndim() != ndim {
            return Err(format!("a piece of {} axes in a grid of {ndim}", p.ndim()));
        }
        for k in 0..ndim {
            lens[k][idx[k]] = p.shape()[k];
        }
    }
    let offs: Vec<Vec<usize>> = lens.iter().map(|l| crate::grid::offsets(l)).collect();
    let shape: Vec<usize> = offs.iter().map(|o| o[o.len() - 1]).collect();
    let mut out = ArrayD::zeros(IxDyn(&shape));
    for (idx, p) in index.iter().zip(&parts) {
        if (0..ndim).any(|k| p.shape()[k] != lens[k][idx[k]]) {
            return Err(format!("piece {idx:?} of shape {:?} does not fit the grid", p.shape()));
        }
        let mut view = out.slice_each_axis_mut(|ax| {
            let k = ax.axis.index();
            Slice::from(offs[k][idx[k]]..offs[k][idx[k] + 1])
        });
        view.assign(p);
    }
    Ok(out)
}

/// Writes a block to a `.npy` file; returns the path.
#[rdask::task]
pub fn write_npy(c: Chunk, path: String) -> Result<String, String> {
    ndarray_npy::write_npy(&path, &c.0).map_err(|e| format!("{path}: {e}"))?;
    Ok(path)
}

/// Reads a block from a `.npy` file of `f64`s (little-endian, C order),
/// checking its shape.
#[rdask::task]
pub fn read_npy(path: String, shape: Vec<usize>) -> Result<Chunk, String> {
    let a: ArrayD<f64> = ndarray_npy::read_npy(&path).map_err(|e| format!("{path}: {e}"))?;
    if a.shape() != shape.as_slice() {
        return Err(format!("{path}: shape {:?}, expected {shape:?}", a.shape()));
    }
    Ok(Chunk(a))
}

/// The paths of written blocks, as one list (`to_npy_stack`'s result).
#[rdask::task]
pub fn paths(written: Vec<String>) -> Vec<String> {
    written
}
