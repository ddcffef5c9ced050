//! The worker side of reductions: a partial result per block, partials
//! merged in a tree, and the final step. A partial keeps the reduced axes
//! with length 1, so partials of neighbouring blocks merge element by
//! element. Every output position of a block reduces the same number of
//! elements, so a partial's count is one number.

use ndarray::{ArrayD, Axis, IxDyn, Zip};
use serde::{Deserialize, Serialize};

use crate::kernels::BinOp;
use crate::Chunk;

/// Which reduction.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub enum Reduction {
    /// NumPy's `sum`.
    Sum,
    /// `mean`.
    Mean,
    /// `min` (NaN propagates).
    Min,
    /// `max` (NaN propagates).
    Max,
    /// `var(ddof)`.
    Var(f64),
    /// `std(ddof)`.
    Std(f64),
    /// `argmin`: the first position of the smallest value.
    ArgMin,
    /// `argmax`: the first position of the largest value.
    ArgMax,
}

/// The partial result of a reduction over some blocks.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Partial {
    /// Elements reduced into each output position.
    pub n: u64,
    /// Sum (`Sum`, `Mean`), mean (`Var`, `Std`) or best value (the others).
    pub a: Chunk,
    /// Sum of squared deviations (`Var`, `Std`) or the best value's index
    /// (`ArgMin`, `ArgMax`; an `f64`, exact below 2^53); otherwise empty.
    pub b: Chunk,
}

fn keep(a: ArrayD<f64>, axis: usize) -> ArrayD<f64> {
    a.insert_axis(Axis(axis))
}

/// Sums `c` over `axes`, keeping them with length 1 (ndarray's `sum_axis`
/// adds contiguous lanes in one pass, unlike a general fold).
fn sum_axes(c: &ArrayD<f64>, axes: &[usize]) -> ArrayD<f64> {
    // The first axis from the block itself: no copy of the whole block.
    let Some((&first, rest)) = axes.split_first() else {
        return c.clone();
    };
    let mut out = keep(c.sum_axis(Axis(first)), first);
    for &k in rest {
        out = keep(out.sum_axis(Axis(k)), k);
    }
    out
}

/// Folds `c` over `axes`, keeping them with length 1.
fn fold_axes(c: &ArrayD<f64>, axes: &[usize], init: f64, f: impl Fn(f64, f64) -> f64 + Copy) -> ArrayD<f64> {
    let Some((&first, rest)) = axes.split_first() else {
        return c.clone();
    };
    let mut out = keep(c.fold_axis(Axis(first), init, |&acc, &x| f(acc, x)), first);
    for &k in rest {
        out = keep(out.fold_axis(Axis(k), init, |&acc, &x| f(acc, x)), k);
    }
    out
}

fn nan_min(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.min(b)
    }
}

fn nan_max(a: f64, b: f64) -> f64 {
    if a.is_nan() || b.is_nan() {
        f64::NAN
    } else {
        a.max(b)
    }
}

/// Whether `x` (at index `i`) beats the current best `(best, at)` for an
/// arg-reduction: better value, the first NaN, or equal and earlier.
fn beats(max: bool, x: f64, i: f64, best: f64, at: f64) -> bool {
    if best.is_nan() {
        return x.is_nan() && i < at;
    }
    if x.is_nan() {
        return true;
    }
    (if max { x > best } else { x < best }) || (x == best && i < at)
}

/// The partial of one block at `offset` (its first element's position) in
/// an array of `shape`, over `axes` (sorted; for the arg-reductions one
/// axis, or all axes for a flat index).
#[rdask::task]
pub fn reduce_block(
    kind: Reduction,
    c: Chunk,
    axes: Vec<usize>,
    offset: Vec<usize>,
    shape: Vec<usize>,
) -> Result<Partial, String> {
    partial_of(kind, &c.0, &axes, &offset, &shape)
}

/// The partial of the block `op(a, b)` (with broadcasting), made and
/// reduced in one task: an element-wise operation directly under a
/// reduction (Dask's blockwise fusion of `(x - m).std()`), so the
/// operation's block is never stored, encoded or sent. (`kind` and `op`
/// travel as one argument: a task takes at most six.)
#[rdask::task]
pub fn reduce_binary(
    kind_op: (Reduction, BinOp),
    a: Chunk,
    b: Chunk,
    axes: Vec<usize>,
    offset: Vec<usize>,
    shape: Vec<usize>,
) -> Result<Partial, String> {
    let (kind, op) = kind_op;
    let c = crate::kernels::binary_values(op, a.0, b.0)?;
    partial_of(kind, &c, &axes, &offset, &shape)
}

/// The partial of one block (see [`reduce_block`]).
pub fn partial_of(
    kind: Reduction,
    c: &ArrayD<f64>,
    axes: &[usize],
    offset: &[usize],
    shape: &[usize],
) -> Result<Partial, String> {
    let n: u64 = axes.iter().map(|&k| c.shape()[k] as u64).product();
    let (a, b) = match kind {
        Reduction::Sum | Reduction::Mean => (sum_axes(c, axes), Chunk::empty().0),
        Reduction::Min => (fold_axes(c, axes, f64::INFINITY, nan_min), Chunk::empty().0),
        Reduction::Max => (fold_axes(c, axes, f64::NEG_INFINITY, nan_max), Chunk::empty().0),
        Reduction::Var(_) | Reduction::Std(_) => match c.as_slice() {
            // All axes of a block in standard layout: one pass over memory.
            Some(flat) if axes.len() == c.ndim() => {
                let (mean, m2) = mean_m2(flat);
                let ones = vec![1; c.ndim()];
                (
                    ArrayD::from_elem(IxDyn(&ones), mean),
                    ArrayD::from_elem(IxDyn(&ones), m2),
                )
            }
            _ => {
                let sum = sum_axes(c, axes);
                let mean = if n == 0 { sum } else { sum / n as f64 };
                let mut sq = c - &mean;
                sq.mapv_inplace(|d| d * d);
                let m2 = sum_axes(&sq, axes);
                (mean, m2)
            }
        },
        Reduction::ArgMin | Reduction::ArgMax => arg_block(kind == Reduction::ArgMax, c, axes, offset, shape)?,
    };
    Ok(Partial {
        n,
        a: Chunk(a),
        b: Chunk(b),
    })
}

/// Elements per segment of [`mean_m2`]: small enough to stay in the L1
/// cache between its two passes.
const SEGMENT: usize = 2048;

/// Independent sums per pass, so the additions pipeline and vectorise
/// (one accumulator waits on each add's latency).
const LANES: usize = 8;

/// Mean and sum of squared deviations of `xs`, reading memory once: per
/// segment, the mean and then the squared deviations from it (both passes
/// in cache), segments merged with Chan et al.'s update (as partials of
/// blocks are), which keeps the two-pass accuracy.
pub fn mean_m2(xs: &[f64]) -> (f64, f64) {
    let (mut n, mut mean, mut m2) = (0.0f64, 0.0f64, 0.0f64);
    for seg in xs.chunks(SEGMENT) {
        let k = seg.len() as f64;
        let m = lanes_sum(seg, |x| x) / k;
        let s = lanes_sum(seg, |x| (x - m) * (x - m));
        if n == 0.0 {
            (n, mean, m2) = (k, m, s);
            continue;
        }
        let total = n + k;
        let delta = m - mean;
        mean += delta * k / total;
        m2 += s + delta * delta * n * k / total;
        n = total;
    }
    (mean, m2)
}

/// `f(x)` summed over `xs` with [`LANES`] accumulators.
fn lanes_sum(xs: &[f64], f: impl Fn(f64) -> f64) -> f64 {
    let mut acc = [0.0f64; LANES];
    let mut it = xs.chunks_exact(LANES);
    for c in &mut it {
        for (a, &x) in acc.iter_mut().zip(c) {
            *a += f(x);
        }
    }
    let tail: f64 = it.remainder().iter().map(|&x| f(x)).sum();
    acc.iter().sum::<f64>() + tail
}

fn arg_block(
    max: bool,
    c: &ArrayD<f64>,
    axes: &[usize],
    offset: &[usize],
    shape: &[usize],
) -> Result<(ArrayD<f64>, ArrayD<f64>), String> {
    let init = if max { f64::NEG_INFINITY } else { f64::INFINITY };
    let ndim = c.ndim();
    if axes.len() == ndim {
        // A flat index into the whole array, C order.
        let (mut best, mut at) = (init, f64::INFINITY);
        for (idx, &x) in c.indexed_iter() {
            let flat = (0..ndim).fold(0usize, |acc, k| acc * shape[k] + offset[k] + idx[k]) as f64;
            if beats(max, x, flat, best, at) {
                (best, at) = (x, flat);
            }
        }
        let ones = vec![1; ndim];
        return Ok((
            ArrayD::from_elem(IxDyn(&ones), best),
            ArrayD::from_elem(IxDyn(&ones), at),
        ));
    }
    let [k] = axes else {
        return Err(format!("arg-reductions take one axis or all of them, not {axes:?}"));
    };
    let k = *k;
    let mut vals = Vec::new();
    let mut idxs = Vec::new();
    for lane in c.lanes(Axis(k)) {
        let (mut best, mut at) = (init, f64::INFINITY);
        for (i, &x) in lane.iter().enumerate() {
            let i = (offset[k] + i) as f64;
            if beats(max, x, i, best, at) {
                (best, at) = (x, i);
            }
        }
        vals.push(best);
        idxs.push(at);
    }
    let mut out_shape = c.shape().to_vec();
    out_shape[k] = 1;
    let mk = |v| ArrayD::from_shape_vec(IxDyn(&out_shape), v).map_err(|e| e.to_string());
    Ok((mk(vals)?, mk(idxs)?))
}

/// Merges partials of neighbouring blocks (same output shape).
#[rdask::task]
pub fn reduce_combine(kind: Reduction, parts: Vec<Partial>) -> Result<Partial, String> {
    let mut it = parts.into_iter();
    let mut acc = it.next().ok_or("no partials to combine")?;
    for p in it {
        if p.a.shape() != acc.a.shape() {
            return Err(format!("combining partials {:?} and {:?}", acc.a.shape(), p.a.shape()));
        }
        merge(kind, &mut acc, p);
    }
    Ok(acc)
}

fn merge(kind: Reduction, acc: &mut Partial, p: Partial) {
    match kind {
        Reduction::Sum | Reduction::Mean => acc.a.0 += &p.a.0,
        Reduction::Min => Zip::from(&mut acc.a.0)
            .and(&p.a.0)
            .for_each(|x, &y| *x = nan_min(*x, y)),
        Reduction::Max => Zip::from(&mut acc.a.0)
            .and(&p.a.0)
            .for_each(|x, &y| *x = nan_max(*x, y)),
        Reduction::Var(_) | Reduction::Std(_) => {
            // Chan et al.'s pairwise update of (count, mean, M2).
            if p.n == 0 {
                return;
            }
            if acc.n == 0 {
                let n = acc.n;
                *acc = p;
                acc.n += n;
                return;
            }
            let (na, nb) = (acc.n as f64, p.n as f64);
            let n = na + nb;
            Zip::from(&mut acc.a.0)
                .and(&mut acc.b.0)
                .and(&p.a.0)
                .and(&p.b.0)
                .for_each(|ma, m2a, &mb, &m2b| {
                    let delta = mb - *ma;
                    *ma += delta * nb / n;
                    *m2a += m2b + delta * delta * na * nb / n;
                });
        }
        Reduction::ArgMin | Reduction::ArgMax => {
            let max = kind == Reduction::ArgMax;
            Zip::from(&mut acc.a.0)
                .and(&mut acc.b.0)
                .and(&p.a.0)
                .and(&p.b.0)
                .for_each(|best, at, &x, &i| {
                    if beats(max, x, i, *best, *at) {
                        (*best, *at) = (x, i);
                    }
                });
        }
    }
    acc.n += p.n;
}

/// The result from the last partial; without `keepdims`, the reduced
/// `axes` are dropped.
#[rdask::task]
pub fn reduce_finalize(kind: Reduction, p: Partial, axes: Vec<usize>, keepdims: bool) -> Result<Chunk, String> {
    let n = p.n as f64;
    let empty_fails = || Err("zero-size array to reduction operation, which has no identity".to_string());
    let out = match kind {
        Reduction::Sum => p.a.0,
        Reduction::Mean => p.a.0 / n,
        Reduction::Min | Reduction::Max if p.n == 0 => return empty_fails(),
        Reduction::Min | Reduction::Max => p.a.0,
        Reduction::ArgMin | Reduction::ArgMax if p.n == 0 => return empty_fails(),
        Reduction::ArgMin | Reduction::ArgMax => p.b.0,
        Reduction::Var(ddof) | Reduction::Std(ddof) => {
            let d = n - ddof;
            let var = if d <= 0.0 { p.b.0.mapv(|_| f64::NAN) } else { p.b.0 / d };
            if matches!(kind, Reduction::Std(_)) {
                var.mapv(f64::sqrt)
            } else {
                var
            }
        }
    };
    if keepdims {
        return Ok(Chunk(out));
    }
    let shape: Vec<usize> = out
        .shape()
        .iter()
        .enumerate()
        .filter(|(k, _)| !axes.contains(k))
        .map(|(_, &l)| l)
        .collect();
    out.into_shape_with_order(IxDyn(&shape))
        .map(Chunk)
        .map_err(|e| e.to_string())
}
