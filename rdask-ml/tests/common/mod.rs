//! Shared by the rdask-ml tests: seeded random tables, and the reference a
//! search must match (linfa called directly, on one machine).
#![allow(dead_code)]

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use rdask_array::ndarray::{Array1, Array2, Axis};
use rdask_ml::Dataset;

/// Uniform numbers in [-1, 1) from `seed`.
pub fn uniform(n: usize, seed: u64) -> Vec<f64> {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    (0..n)
        .map(|_| (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0)
        .collect()
}

/// `n x d` features (column j scaled by j + 1 and shifted, so scaling
/// matters) and `y = x . w + noise` with a few zero weights.
pub fn regression(n: usize, d: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
    let mut x = Array2::from_shape_vec((n, d), uniform(n * d, seed)).unwrap();
    for (j, mut col) in x.axis_iter_mut(Axis(1)).enumerate() {
        col.mapv_inplace(|v| v * (j + 1) as f64 + j as f64);
    }
    let w: Vec<f64> = (0..d)
        .map(|j| if j % 3 == 2 { 0.0 } else { 1.0 + j as f64 * 0.5 })
        .collect();
    let noise = uniform(n, seed + 1);
    let y = x
        .rows()
        .into_iter()
        .zip(noise)
        .map(|(r, e)| r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + 2.0 * e)
        .collect();
    (x, y)
}

/// Labels 0/1 from a linear rule with an offset (about 3/4 ones) and some
/// flipped labels.
pub fn classification(n: usize, d: usize, seed: u64) -> Dataset {
    let x = Array2::from_shape_vec((n, d), uniform(n * d, seed)).unwrap();
    let flip = uniform(n, seed + 1);
    let y = x
        .rows()
        .into_iter()
        .zip(flip)
        .map(|(r, f)| {
            let m = r.iter().enumerate().map(|(j, v)| v * (j as f64 + 1.0)).sum::<f64>() + 1.0;
            let label = if m > 0.0 { 1.0 } else { 0.0 };
            if f > 0.95 {
                1.0 - label
            } else {
                label
            }
        })
        .collect();
    Dataset::new(x, y).unwrap()
}

/// Per-feature mean and population std of `x` (1 where it is 0), as
/// scikit-learn's `StandardScaler`, written here independently.
pub fn scale_like_sklearn(train: &Array2<f64>, apply: &Array2<f64>) -> Array2<f64> {
    let n = train.nrows() as f64;
    let mut out = apply.clone();
    for j in 0..train.ncols() {
        let col = train.column(j);
        let m = col.sum() / n;
        let sd = (col.iter().map(|v| (v - m).powi(2)).sum::<f64>() / n).sqrt();
        let sd = if sd > 0.0 { sd } else { 1.0 };
        out.column_mut(j).mapv_inplace(|v| (v - m) / sd);
    }
    out
}

/// A 0.17 matrix as linfa's 0.16 one.
pub fn to16(x: &Array2<f64>) -> ndarray16::Array2<f64> {
    ndarray16::Array2::from_shape_vec((x.nrows(), x.ncols()), x.iter().copied().collect()).unwrap()
}

/// R² written here independently.
pub fn r2(y: &[f64], pred: &[f64]) -> f64 {
    let m = y.iter().sum::<f64>() / y.len() as f64;
    let res: f64 = y.iter().zip(pred).map(|(a, b)| (a - b).powi(2)).sum();
    let tot: f64 = y.iter().map(|a| (a - m).powi(2)).sum();
    1.0 - res / tot
}

/// Every fold score of two searches' `split_test_scores` within `tol`
/// (two cuts of the same table merge its moments in different orders).
#[allow(dead_code)]
pub fn assert_scores_close(a: &[Vec<f64>], b: &[Vec<f64>], tol: f64, what: &str) {
    assert_eq!(a.len(), b.len(), "{what}: candidates");
    for (ra, rb) in a.iter().zip(b) {
        assert_eq!(ra.len(), rb.len(), "{what}: folds");
        for (x, y) in ra.iter().zip(rb) {
            assert!((x - y).abs() < tol, "{what}: {x} against {y}");
        }
    }
}

/// How many `block_moments` tasks each worker ran, by the task stream.
#[allow(dead_code)]
pub fn block_reducers(client: &rdask::Client) -> std::collections::BTreeMap<String, usize> {
    let mut per_worker = std::collections::BTreeMap::new();
    for r in client.get_task_stream().expect("the task stream") {
        if r.function.ends_with("::block_moments") {
            *per_worker.entry(r.worker).or_default() += 1;
        }
    }
    per_worker
}
