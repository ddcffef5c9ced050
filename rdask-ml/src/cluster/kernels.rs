//! The worker side of k-means: `#[rdask::task]` functions run on one row
//! block (`n × d`) at a time, with the current centres (`k × d`, one node of the
//! step's graph) as their second argument. Each returns a small 1-d
//! partial that `dist::tree_sum` adds up, or rows / labels. Registered as
//! `rdask_ml::cluster::kernels::<name>`: a worker runs them once its
//! binary links this crate.

use ndarray::{ArrayD, IxDyn};
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use rdask_array::Chunk;

use super::dist::Step;

/// A block as a row-major slice and its width, or why it is not a matrix.
pub(crate) fn matrix<'a>(c: &'a Chunk, what: &str) -> Result<(std::borrow::Cow<'a, [f64]>, usize), String> {
    let [_, d] = c.shape() else {
        return Err(format!("{what} must be 2-d, not of shape {:?}", c.shape()));
    };
    let d = *d;
    let flat = match c.as_slice() {
        Some(s) => std::borrow::Cow::Borrowed(s),
        None => std::borrow::Cow::Owned(c.iter().copied().collect()),
    };
    Ok((flat, d))
}

/// The block and the centres, checked to have the same width.
fn both<'a>(x: &'a Chunk, centers: &'a Chunk) -> Result<(Points<'a>, Points<'a>), String> {
    let (xs, d) = matrix(x, "a block")?;
    let (cs, dc) = matrix(centers, "the centres")?;
    if d != dc {
        return Err(format!("blocks of {d} features, centres of {dc}"));
    }
    if cs.is_empty() {
        return Err("no centres".into());
    }
    Ok((Points { flat: xs, d }, Points { flat: cs, d }))
}

/// Row-major points of width `d`.
struct Points<'a> {
    flat: std::borrow::Cow<'a, [f64]>,
    d: usize,
}

impl Points<'_> {
    fn rows(&self) -> std::slice::ChunksExact<'_, f64> {
        self.flat.chunks_exact(self.d.max(1))
    }
    fn len(&self) -> usize {
        self.flat.len() / self.d.max(1)
    }
}

/// The nearest centre of `row` and its squared distance (the first one on
/// ties, as scikit-learn and linfa).
#[inline]
pub(crate) fn nearest(row: &[f64], centers: &[f64], d: usize) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, c) in centers.chunks_exact(d).enumerate() {
        let dist: f64 = row.iter().zip(c).map(|(a, b)| (a - b) * (a - b)).sum();
        if dist < best.1 {
            best = (j, dist);
        }
    }
    best
}

fn vector(v: Vec<f64>) -> Chunk {
    let n = v.len();
    Chunk(ArrayD::from_shape_vec(IxDyn(&[n]), v).unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[n]))))
}

/// One Lloyd step's partial on a block: per centre the sum of its points
/// (`k × d`, row-major), then the count of its points (`k`), then the
/// block's inertia (sum of squared distances to the nearest centre).
#[rdask::task]
pub fn lloyd_partial(x: Chunk, centers: Step) -> Result<Chunk, String> {
    let (xs, cs) = both(&x, &centers.value)?;
    let (k, d) = (cs.len(), xs.d);
    let mut out = vec![0.0; k * d + k + 1];
    let mut inertia = 0.0;
    for row in xs.rows() {
        let (j, dist) = nearest(row, &cs.flat, d);
        for (s, v) in out[j * d..(j + 1) * d].iter_mut().zip(row) {
            *s += v;
        }
        out[k * d + j] += 1.0;
        inertia += dist;
    }
    out[k * d + k] = inertia;
    Ok(vector(out))
}

/// Each point's squared distance to its nearest candidate (k-means||'s
/// `d²(x)`), a 1-d block.
#[rdask::task]
pub fn min_dists(x: Chunk, centers: Step) -> Result<Chunk, String> {
    let (xs, cs) = both(&x, &centers.value)?;
    Ok(vector(xs.rows().map(|row| nearest(row, &cs.flat, xs.d).1).collect()))
}

/// The sum of a block's elements as a 1-element partial (a block's part
/// of k-means||'s cost φ).
#[rdask::task]
pub fn total(v: Chunk) -> Chunk {
    vector(vec![v.sum()])
}

/// A uniform number in `[0, 1)` from 53 random bits (NumPy's `random()`).
fn uniform(rng: &mut XorShiftRng) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// One k-means|| oversampling round on a block: each point is kept with
/// probability `l · d²(x) / φ` (Bahmani et al.; dask-ml's
/// `_sample_points`), `d2` the block's [`min_dists`] and `cost` the
/// 1-element φ of the whole array. Returns the kept rows (`m × d`, `m`
/// possibly 0). `seed` is the block's own, so a block samples the same
/// wherever it runs.
#[rdask::task]
pub fn sample_rows(x: Chunk, d2: Chunk, cost: Chunk, l: f64, seed: u64) -> Result<Chunk, String> {
    let (xs, d) = matrix(&x, "a block")?;
    let n = xs.len() / d.max(1);
    if d2.len() != n {
        return Err(format!("{} distances for a block of {n} rows", d2.len()));
    }
    let cost = cost.iter().next().copied().ok_or("no cost")?;
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let mut kept = Vec::new();
    for (row, &dist) in xs.chunks_exact(d).zip(d2.iter()) {
        let p = if cost > 0.0 { l * dist / cost } else { 0.0 };
        if uniform(&mut rng) < p {
            kept.extend_from_slice(row);
        }
    }
    let m = kept.len() / d;
    ArrayD::from_shape_vec(IxDyn(&[m, d]), kept)
        .map(Chunk)
        .map_err(|e| e.to_string())
}

/// How many points of the block are nearest to each candidate (the
/// weights of k-means||'s reclustering), as a `k`-element partial.
#[rdask::task]
pub fn closest_counts(x: Chunk, centers: Step) -> Result<Chunk, String> {
    let (xs, cs) = both(&x, &centers.value)?;
    let mut counts = vec![0.0; cs.len()];
    for row in xs.rows() {
        counts[nearest(row, &cs.flat, xs.d).0] += 1.0;
    }
    Ok(vector(counts))
}

/// The given rows of a block (`rows` are indices within it).
#[rdask::task]
pub fn take_rows(x: Chunk, rows: Vec<usize>) -> Result<Chunk, String> {
    let (xs, d) = matrix(&x, "a block")?;
    let n = xs.len() / d.max(1);
    let mut out = Vec::with_capacity(rows.len() * d);
    for &r in &rows {
        if r >= n {
            return Err(format!("row {r} of a block of {n}"));
        }
        out.extend_from_slice(&xs[r * d..(r + 1) * d]);
    }
    ArrayD::from_shape_vec(IxDyn(&[rows.len(), d]), out)
        .map(Chunk)
        .map_err(|e| e.to_string())
}

/// The index of each point's nearest centre (as `f64`s, a 1-d block):
/// `predict`'s per-block kernel.
#[rdask::task]
pub fn assign_labels(x: Chunk, centers: Step) -> Result<Chunk, String> {
    let (xs, cs) = both(&x, &centers.value)?;
    Ok(vector(
        xs.rows().map(|row| nearest(row, &cs.flat, xs.d).0 as f64).collect(),
    ))
}

/// A block's seed for a k-means|| round: splitmix64-style mixing of the
/// estimator's `random_state`, the round and the block's index.
pub(crate) fn block_seed(random_state: u64, round: usize, block: usize) -> u64 {
    let mut s = random_state ^ 0x9E37_79B9_7F4A_7C15;
    for v in [round as u64, block as u64] {
        s = (s ^ v).wrapping_mul(0xBF58_476D_1CE4_E5B9).rotate_left(31);
    }
    s
}

/// Every kernel of this module, for a worker that registers them by hand
/// (they also register themselves through `inventory`).
pub const TASKS: &[rdask::task::TaskEntry] = &[
    rdask::task::TaskEntry::of::<lloyd_partial>(),
    rdask::task::TaskEntry::of::<min_dists>(),
    rdask::task::TaskEntry::of::<total>(),
    rdask::task::TaskEntry::of::<sample_rows>(),
    rdask::task::TaskEntry::of::<closest_counts>(),
    rdask::task::TaskEntry::of::<take_rows>(),
    rdask::task::TaskEntry::of::<assign_labels>(),
    rdask::task::TaskEntry::of::<super::dist::step_value>(),
];
