//! The Gram-form elastic net against linfa's own fit on the same rows.

use linfa::prelude::{Fit, ParamGuard};
use linfa_elasticnet::ElasticNet;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use rdask_array::ndarray::{Array1, Array2};

use super::*;
use crate::model_selection::preprocess::StandardScaler;
use crate::Dataset;

/// `n x d` shifted, unevenly scaled features and a noisy linear target
/// with some zero weights.
fn table(n: usize, d: usize, seed: u64) -> Dataset {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let mut u = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64 * 2.0 - 1.0;
    let x = Array2::from_shape_fn((n, d), |(_, j)| u() * (j + 1) as f64 + 0.3 * j as f64);
    let y: Array1<f64> = x
        .rows()
        .into_iter()
        .map(|r| {
            r.iter()
                .enumerate()
                .map(|(j, v)| if j % 3 == 1 { 0.0 } else { v * (1.0 + j as f64) })
                .sum::<f64>()
                + u()
        })
        .collect();
    Dataset::new(x, y).unwrap()
}

fn linfa_fit(data: &Dataset, alpha: f64, l1_ratio: f64) -> (Vec<f64>, f64, u32) {
    let params = ElasticNet::<f64>::params()
        .penalty(alpha)
        .l1_ratio(l1_ratio)
        .max_iterations(1000)
        .tolerance(1e-4)
        .check()
        .unwrap();
    let m = data.columns(|x, y| params.fit(&linfa::DatasetBase::new(x, y))).unwrap();
    (m.hyperplane().to_vec(), m.intercept(), m.n_steps())
}

/// scikit-learn's objective, on the rows.
fn objective(data: &Dataset, coef: &[f64], b: f64, alpha: f64, l1_ratio: f64) -> f64 {
    let n = data.n_samples() as f64;
    let rss: f64 = data
        .x()
        .rows()
        .into_iter()
        .zip(data.y())
        .map(|(r, t)| {
            let e = t - b - r.iter().zip(coef).map(|(a, c)| a * c).sum::<f64>();
            e * e
        })
        .sum();
    let l1: f64 = coef.iter().map(|c| c.abs()).sum();
    let l2: f64 = coef.iter().map(|c| c * c).sum();
    rss / (2.0 * n) + alpha * l1_ratio * l1 + alpha * (1.0 - l1_ratio) / 2.0 * l2
}

#[test]
fn gram_fits_match_linfa_on_random_data_scaled_and_raw() {
    for (seed, n, d) in [(1, 500, 6), (2, 2_000, 10), (3, 60, 3)] {
        let raw = table(n, d, seed);
        let scaled = raw.with_x(StandardScaler::fit(raw.x()).transform(raw.x()));
        let rows: Vec<usize> = (0..n).collect();
        for data in [&raw, &scaled] {
            let stats = GramStats::of_rows(data, &rows, None).unwrap();
            for alpha in [1e-4, 0.01, 0.3, 3.0, 100.0] {
                for l1_ratio in [0.0, 0.1, 0.5, 0.9, 1.0] {
                    let (want, b, steps) = linfa_fit(data, alpha, l1_ratio);
                    let got = elastic_net_gram(&stats, alpha, l1_ratio, 1000, 1e-4);
                    let scale = want.iter().fold(1.0f64, |m, c| m.max(c.abs()));
                    for (g, w) in got.coef.iter().zip(&want) {
                        assert!(
                            (g - w).abs() <= 1e-9 * scale,
                            "seed {seed} alpha {alpha} l1 {l1_ratio}: {:?} vs {want:?}",
                            got.coef
                        );
                    }
                    // The mean target, summed in another order.
                    assert!((got.intercept - b).abs() <= 1e-12 * b.abs().max(1.0));
                    assert_eq!(got.n_steps, steps, "alpha {alpha} l1 {l1_ratio}");
                    let (og, ow) = (
                        objective(data, &got.coef, b, alpha, l1_ratio),
                        objective(data, &want, b, alpha, l1_ratio),
                    );
                    assert!((og - ow).abs() <= 1e-10 * ow.abs().max(1.0), "{og} vs {ow}");
                }
            }
        }
    }
}

#[test]
fn a_large_penalty_gives_zero_weights_and_max_iter_bounds_the_sweeps() {
    let data = table(300, 4, 9);
    let rows: Vec<usize> = (0..300).collect();
    let stats = GramStats::of_rows(&data, &rows, None).unwrap();
    let zero = elastic_net_gram(&stats, 1e6, 0.7, 1000, 1e-4);
    assert!(zero.coef.iter().all(|&c| c == 0.0));
    assert_eq!(zero.n_steps, 1);
    // A tolerance no fit meets: it runs exactly max_iter sweeps, as linfa.
    let capped = elastic_net_gram(&stats, 1e-3, 0.5, 7, 0.0);
    assert_eq!(capped.n_steps, 7);
    let params = ElasticNet::<f64>::params()
        .penalty(1e-3)
        .l1_ratio(0.5)
        .max_iterations(7)
        .tolerance(0.0)
        .check()
        .unwrap();
    let m = data.columns(|x, y| params.fit(&linfa::DatasetBase::new(x, y))).unwrap();
    assert_eq!(m.n_steps(), 7);
    for (g, w) in capped.coef.iter().zip(m.hyperplane()) {
        assert!((g - w).abs() < 1e-9, "{:?} vs {}", capped.coef, m.hyperplane());
    }
}
