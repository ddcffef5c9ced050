//! k-means on the driver over a few weighted points: the last step of
//! k-means|| (Bahmani et al., step 8), which reclusters the candidates
//! weighted by how many points of the data are nearest to each. Weighted
//! k-means++ seeding (Arthur & Vassilvitskii) then weighted Lloyd, best of
//! [`LOCAL_RUNS`] seedings, as scikit-learn's `KMeans(sample_weight=…)`
//! that dask-ml calls. Plain functions over row-major `Vec<f64>`s (the
//! candidates are tens to hundreds of rows): no task, no socket.

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;

use super::kernels::nearest;

/// Seedings tried by the local reclustering, the best (lowest weighted
/// inertia) kept: scikit-learn's `n_init=10` of its classic default.
pub const LOCAL_RUNS: usize = 10;

/// Lloyd iterations at most per local run.
pub const LOCAL_MAX_ITER: usize = 300;

/// Local runs stop when no centre moved by more than this (squared).
pub const LOCAL_TOL: f64 = 1e-12;

fn uniform(rng: &mut XorShiftRng) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    (rng.next_u64() >> 11) as f64 * SCALE
}

/// An index drawn with probability proportional to `p` (all `p >= 0`),
/// or uniformly when they sum to 0.
fn draw(p: &[f64], rng: &mut XorShiftRng) -> usize {
    let total: f64 = p.iter().sum();
    if total <= 0.0 || !total.is_finite() {
        return (rng.next_u64() % p.len().max(1) as u64) as usize;
    }
    let mut target = uniform(rng) * total;
    for (i, &w) in p.iter().enumerate() {
        if target < w {
            return i;
        }
        target -= w;
    }
    // Rounding left `target` just past the end: the last positive one.
    p.iter().rposition(|&w| w > 0.0).unwrap_or(0)
}

/// `k` centres of `points` (row-major, width `d`) by weighted k-means++:
/// the first drawn by weight, each next one by weight × squared distance
/// to the nearest centre so far.
pub(crate) fn kmeans_plus_plus(points: &[f64], weights: &[f64], d: usize, k: usize, rng: &mut XorShiftRng) -> Vec<f64> {
    let rows: Vec<&[f64]> = points.chunks_exact(d).collect();
    let mut centers = Vec::with_capacity(k * d);
    centers.extend_from_slice(rows[draw(weights, rng)]);
    let mut d2: Vec<f64> = rows.iter().map(|r| nearest(r, &centers, d).1).collect();
    while centers.len() < k * d {
        let p: Vec<f64> = weights.iter().zip(&d2).map(|(w, x)| w * x).collect();
        let next = rows[draw(&p, rng)];
        centers.extend_from_slice(next);
        let start = centers.len() - d;
        for (x, r) in d2.iter_mut().zip(&rows) {
            *x = x.min(nearest(r, &centers[start..], d).1);
        }
    }
    centers
}

/// Weighted Lloyd from `centers` until they stop moving; returns the
/// centres and their weighted inertia. An empty cluster keeps its centre.
pub(crate) fn weighted_lloyd(points: &[f64], weights: &[f64], d: usize, mut centers: Vec<f64>) -> (Vec<f64>, f64) {
    let k = centers.len() / d;
    for _ in 0..LOCAL_MAX_ITER {
        let mut sums = vec![0.0; k * d];
        let mut mass = vec![0.0; k];
        for (r, &w) in points.chunks_exact(d).zip(weights) {
            let j = nearest(r, &centers, d).0;
            for (s, v) in sums[j * d..(j + 1) * d].iter_mut().zip(r) {
                *s += w * v;
            }
            mass[j] += w;
        }
        let mut shift = 0.0;
        for j in 0..k {
            if mass[j] > 0.0 {
                for t in 0..d {
                    let new = sums[j * d + t] / mass[j];
                    shift += (new - centers[j * d + t]).powi(2);
                    centers[j * d + t] = new;
                }
            }
        }
        if shift <= LOCAL_TOL {
            break;
        }
    }
    let inertia = points
        .chunks_exact(d)
        .zip(weights)
        .map(|(r, w)| w * nearest(r, &centers, d).1)
        .sum();
    (centers, inertia)
}

/// `k` centres of the weighted `points`: the best of [`LOCAL_RUNS`]
/// k-means++ seedings each refined by Lloyd. Needs at least `k` points.
pub(crate) fn recluster(points: &[f64], weights: &[f64], d: usize, k: usize, seed: u64) -> Vec<f64> {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let mut best: Option<(Vec<f64>, f64)> = None;
    for _ in 0..LOCAL_RUNS {
        let start = kmeans_plus_plus(points, weights, d, k, &mut rng);
        let (centers, inertia) = weighted_lloyd(points, weights, d, start);
        if best.as_ref().is_none_or(|b| inertia < b.1) {
            best = Some((centers, inertia));
        }
    }
    best.map(|b| b.0).unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weighted_points_pull_the_centre() {
        // One cluster: the weighted mean.
        let pts = [0.0, 10.0];
        let (c, inertia) = weighted_lloyd(&pts, &[3.0, 1.0], 1, vec![5.0]);
        assert!((c[0] - 2.5).abs() < 1e-12, "{c:?}");
        assert!((inertia - (3.0 * 6.25 + 56.25)).abs() < 1e-9);
    }

    #[test]
    fn reclustering_finds_separated_groups() {
        let pts = [0.0, 0.1, 0.2, 100.0, 100.1, 200.0];
        let w = [1.0, 1.0, 1.0, 1.0, 1.0, 5.0];
        let mut c = recluster(&pts, &w, 1, 3, 7);
        c.sort_by(f64::total_cmp);
        assert!(
            (c[0] - 0.1).abs() < 1e-9 && (c[1] - 100.05).abs() < 1e-9 && c[2] == 200.0,
            "{c:?}"
        );
    }

    #[test]
    fn zero_weights_are_never_drawn_first() {
        let mut rng = XorShiftRng::seed_from_u64(1);
        for _ in 0..100 {
            assert_eq!(draw(&[0.0, 2.0, 0.0], &mut rng), 1);
        }
    }
}
