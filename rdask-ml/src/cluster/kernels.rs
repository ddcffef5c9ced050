//! The worker side of k-means: `#[rdask::task]` functions run on one row
//! block (`n × d`) at a time, read in place (a `ChunkView`: a step reads
//! every block once, and copying it out first was a fifth of the step),
//! with the current centres (`k × d`, one node of the
//! step's graph) as their second argument. Each returns a small 1-d
//! partial that `dist::tree_sum` adds up, or rows / labels. Registered as
//! `rdask_ml::cluster::kernels::<name>`: a worker runs them once its
//! binary links this crate.

use ndarray::{ArrayD, IxDyn};
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use rdask_array::{Chunk, ChunkView};
use std::borrow::Cow;

use super::centres::Centres;
use super::dist::Step;

/// A block as a row-major slice and its width, or why it is not a matrix.
pub(crate) fn matrix<'a>(c: &'a Chunk, what: &str) -> Result<(Cow<'a, [f64]>, usize), String> {
    let [_, d] = c.shape() else {
        return Err(format!("{what} must be 2-d, not of shape {:?}", c.shape()));
    };
    let d = *d;
    let flat = match c.as_slice() {
        Some(s) => Cow::Borrowed(s),
        None => Cow::Owned(c.iter().copied().collect()),
    };
    Ok((flat, d))
}

/// The centres (row-major) and their width, checked against a block's:
/// at least one centre, and `d ≥ 1` (so rows can be cut from a run).
fn centres_for<'c>(x: &ChunkView<'_>, centers: &'c Chunk) -> Result<(Cow<'c, [f64]>, usize), String> {
    let [_, d] = x.shape() else {
        return Err(format!("a block must be 2-d, not of shape {:?}", x.shape()));
    };
    let (cs, dc) = matrix(centers, "the centres")?;
    if *d != dc {
        return Err(format!("blocks of {d} features, centres of {dc}"));
    }
    if cs.is_empty() {
        return Err("no centres".into());
    }
    Ok((cs, dc))
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
pub fn lloyd_partial(x: ChunkView<'_>, centers: Step) -> Result<Chunk, String> {
    let (cs, d) = centres_for(&x, &centers.value)?;
    let cs = Centres::new(&cs, d);
    let k = cs.len();
    let mut out = vec![0.0; k * d + k + 1];
    let mut inertia = 0.0;
    x.for_each_rows(|_, run| {
        cs.for_each_nearest(run, |row, j, dist| {
            for (s, v) in out[j * d..(j + 1) * d].iter_mut().zip(row) {
                *s += v;
            }
            out[k * d + j] += 1.0;
            inertia += dist;
        })
    });
    out[k * d + k] = inertia;
    Ok(vector(out))
}

/// k-means||'s state of a block against the candidates so far: each
/// point's squared distance to its nearest candidate (`d²(x)`), then that
/// candidate's index, as a `2 × n` block. A round adds candidates, so the
/// next round's state needs the distances to the new ones only
/// ([`nearest_candidates_update`]): the candidates grow to about
/// `1 + l · rounds`, and measuring every point against all of them every
/// round (as dask-ml does) was two thirds of a fit's CPU.
#[rdask::task]
pub fn nearest_candidates(x: ChunkView<'_>, centers: Step) -> Result<Chunk, String> {
    let (cs, d) = centres_for(&x, &centers.value)?;
    let cs = Centres::new(&cs, d);
    let n = x.rows();
    let mut out = vec![0.0; 2 * n];
    let (dist, label) = out.split_at_mut(n);
    let mut i = 0;
    x.for_each_rows(|_, run| {
        cs.for_each_nearest(run, |_, j, v| {
            dist[i] = v;
            label[i] = j as f64;
            i += 1;
        })
    });
    state_block(out, n)
}

/// [`nearest_candidates`]'s state `known` brought up to date with the
/// candidates `new`, numbered from `first`: each point moves to a new
/// candidate only if it is strictly nearer, so a tie keeps the earlier
/// candidate, as a scan of all of them in order would (the same state, bit
/// for bit).
#[rdask::task]
pub fn nearest_candidates_update(
    x: ChunkView<'_>,
    known: ChunkView<'_>,
    new: Step,
    first: u64,
) -> Result<Chunk, String> {
    let (cs, d) = centres_for(&x, &new.value)?;
    let cs = Centres::new(&cs, d);
    let n = x.rows();
    if known.shape() != [2, n] {
        return Err(format!(
            "a k-means|| state of shape {:?} for a block of {n} rows",
            known.shape()
        ));
    }
    // Read in place and copied once, into the state this returns.
    let mut out = Vec::with_capacity(2 * n);
    known.for_each_rows(|_, rows| out.extend_from_slice(rows));
    let (dist, label) = out.split_at_mut(n);
    let mut i = 0;
    x.for_each_rows(|_, run| {
        cs.for_each_nearest(run, |_, j, v| {
            if v < dist[i] {
                dist[i] = v;
                label[i] = (first + j as u64) as f64;
            }
            i += 1;
        })
    });
    state_block(out, n)
}

/// A state's `2 × n` elements, checked against a block of `n` rows.
fn state_of(state: &Chunk, n: usize) -> Result<&[f64], String> {
    match (state.shape(), state.as_slice()) {
        ([2, m], Some(s)) if *m == n => Ok(s),
        (shape, _) => Err(format!("a k-means|| state of shape {shape:?} for a block of {n} rows")),
    }
}

fn state_block(v: Vec<f64>, n: usize) -> Result<Chunk, String> {
    ArrayD::from_shape_vec(IxDyn(&[2, n]), v)
        .map(Chunk)
        .map_err(|e| e.to_string())
}

/// A block's part of k-means||'s cost φ (the sum of its `d²(x)`) as a
/// 1-element partial.
#[rdask::task]
pub fn nearest_cost(state: Chunk) -> Result<Chunk, String> {
    let n = state.shape().get(1).copied().unwrap_or(0);
    let d2 = &state_of(&state, n)?[..n];
    Ok(vector(vec![ndarray::ArrayView1::from(d2).sum()]))
}

/// How many points of the block are nearest to each of the `m` candidates
/// (the weights of k-means||'s reclustering), as an `m`-element partial.
#[rdask::task]
pub fn label_counts(state: Chunk, m: u64) -> Result<Chunk, String> {
    let n = state.shape().get(1).copied().unwrap_or(0);
    let labels = &state_of(&state, n)?[n..];
    let mut counts = vec![0.0; m as usize];
    for &j in labels {
        *counts
            .get_mut(j as usize)
            .ok_or_else(|| format!("a point nearest to candidate {j} of {m}"))? += 1.0;
    }
    Ok(vector(counts))
}

/// A uniform number in `[0, 1)` from 53 random bits (NumPy's `random()`).
fn uniform(rng: &mut XorShiftRng) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// One k-means|| oversampling round on a block: each point is kept with
/// probability `l · d²(x) / φ` (Bahmani et al.; dask-ml's
/// `_sample_points`), `state` the block's [`nearest_candidates`] and `cost` the
/// 1-element φ of the whole array. Returns the kept rows (`m × d`, `m`
/// possibly 0). `seed` is the block's own, so a block samples the same
/// wherever it runs.
#[rdask::task]
pub fn sample_rows(x: ChunkView<'_>, state: Chunk, cost: Chunk, l: f64, seed: u64) -> Result<Chunk, String> {
    let [n, d] = *x.shape() else {
        return Err(format!("a block must be 2-d, not of shape {:?}", x.shape()));
    };
    let d2 = &state_of(&state, n)?[..n];
    let cost = cost.iter().next().copied().ok_or("no cost")?;
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let mut kept = Vec::new();
    x.for_each_rows(|first, run| {
        for (row, &dist) in run.chunks_exact(d.max(1)).zip(&d2[first..]) {
            let p = if cost > 0.0 { l * dist / cost } else { 0.0 };
            if uniform(&mut rng) < p {
                kept.extend_from_slice(row);
            }
        }
    });
    let m = kept.len() / d.max(1);
    ArrayD::from_shape_vec(IxDyn(&[m, d]), kept)
        .map(Chunk)
        .map_err(|e| e.to_string())
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
pub fn assign_labels(x: ChunkView<'_>, centers: Step) -> Result<Chunk, String> {
    let (cs, d) = centres_for(&x, &centers.value)?;
    let cs = Centres::new(&cs, d);
    let mut labels = Vec::with_capacity(x.rows());
    x.for_each_rows(|_, run| cs.for_each_nearest(run, |_, j, _| labels.push(j as f64)));
    Ok(vector(labels))
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
    rdask::task::TaskEntry::of::<nearest_candidates>(),
    rdask::task::TaskEntry::of::<nearest_candidates_update>(),
    rdask::task::TaskEntry::of::<nearest_cost>(),
    rdask::task::TaskEntry::of::<label_counts>(),
    rdask::task::TaskEntry::of::<sample_rows>(),
    rdask::task::TaskEntry::of::<take_rows>(),
    rdask::task::TaskEntry::of::<assign_labels>(),
    rdask::task::TaskEntry::of::<super::dist::step_value>(),
];

#[cfg(test)]
#[path = "kernels_tests.rs"]
mod tests;
