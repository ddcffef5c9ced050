//! Data-parallel linear and logistic regression against linfa-linear and
//! linfa-logistic on one machine (same data), on the embedded cluster and
//! on real `rdask-ml scheduler`/`worker` processes; and bad input.

mod procs;

use linfa::prelude::*;
use linfa::Dataset;
use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use rdask::LocalCluster;
use rdask_array as da;
use rdask_array::ndarray::{Array1, Array2};
use rdask_ml::linear::{Error, LinearRegression, LogisticRegression};

/// `n × d` normal features, and y = x·w + b + noise.
fn regression(n: usize, d: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let w: Vec<f64> = (0..d).map(|i| i as f64 - 1.5).collect();
    let x = Array2::from_shape_fn((n, d), |_| procs::normal(&mut rng));
    let y = Array1::from_shape_fn(n, |i| {
        x.row(i).dot(&Array1::from(w.clone())) + 0.7 + 0.1 * procs::normal(&mut rng)
    });
    (x, y)
}

/// Labels 0/1 drawn from a logistic model (so the classes overlap).
fn classification(n: usize, d: usize, seed: u64) -> (Array2<f64>, Array1<f64>) {
    let (x, z) = regression(n, d, seed);
    let mut rng = XorShiftRng::seed_from_u64(seed + 1);
    let y = z.mapv(|z| {
        let p = 1.0 / (1.0 + (-z * 0.5).exp());
        f64::from(u8::from(((rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64) < p))
    });
    (x, y)
}

fn max_diff(a: &Array1<f64>, b: &[f64]) -> f64 {
    a.iter().zip(b).fold(0.0, |m, (x, y)| m.max((x - y).abs()))
}

#[test]
fn least_squares_matches_linfa_linear() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let (x, y) = regression(2_000, 4, 1);
    let xa = da::from_array(&x, &[300, 4])?;
    // y blocked differently: fit aligns it with X's rows.
    let ya = da::from_array(&y, &[450])?;
    let mut lr = LinearRegression::new();
    lr.params.tol = 1e-8;
    lr.fit(&client, &xa, &ya)?;
    let ds = Dataset::new(procs::to16(&x), ndarray16::Array1::from(y.to_vec()));
    let want = linfa_linear::LinearRegression::new().fit(&ds)?;
    let want_coef: Vec<f64> = want.params().to_vec();
    let d = max_diff(lr.coef_()?, &want_coef);
    assert!(d < 1e-6, "coef {} vs linfa {want_coef:?}", lr.coef_()?);
    assert!((lr.intercept_()? - want.intercept()).abs() < 1e-6);
    assert!(lr.converged_()?);
    // predict and score.
    let pred = lr.predict(&xa)?.compute(&client)?;
    let mine: Vec<f64> = x
        .rows()
        .into_iter()
        .map(|r| r.dot(lr.coef_().expect("fitted")) + lr.intercept_().expect("fitted"))
        .collect();
    assert!(pred.iter().zip(&mine).all(|(a, b)| (a - b).abs() < 1e-9));
    let r2 = lr.score(&client, &xa, &ya)?;
    assert!(r2 > 0.99 && r2 <= 1.0, "R² {r2}");
    Ok(())
}

#[test]
fn ridge_matches_the_normal_equations() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let (x, y) = regression(500, 2, 3);
    let xa = da::from_array(&x, &[128, 2])?;
    let ya = da::from_array(&y, &[128])?;
    let alpha = 50.0;
    let mut lr = LinearRegression::new();
    lr.params.alpha = alpha;
    lr.params.fit_intercept = false;
    lr.params.tol = 1e-9;
    lr.fit(&client, &xa, &ya)?;
    // (XᵀX + αI) w = Xᵀy, 2 × 2 by hand.
    let a = x.t().dot(&x);
    let b = x.t().dot(&y);
    let (p, q, r, s) = (a[[0, 0]] + alpha, a[[0, 1]], a[[1, 0]], a[[1, 1]] + alpha);
    let det = p * s - q * r;
    let want = [(s * b[0] - q * b[1]) / det, (p * b[1] - r * b[0]) / det];
    assert!(max_diff(lr.coef_()?, &want) < 1e-6, "{} vs {want:?}", lr.coef_()?);
    assert_eq!(lr.intercept_()?, 0.0);
    Ok(())
}

#[test]
fn logistic_matches_linfa_logistic() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let (x, y) = classification(3_000, 3, 5);
    let xa = da::from_array(&x, &[400, 3])?;
    let ya = da::from_array(&y, &[400])?;
    let mut lr = LogisticRegression::new();
    lr.params.alpha = 1.0;
    lr.params.tol = 1e-8;
    lr.fit(&client, &xa, &ya)?;
    let labels: ndarray16::Array1<usize> = y.iter().map(|&v| v as usize).collect();
    let ds = Dataset::new(procs::to16(&x), labels);
    let want = linfa_logistic::LogisticRegression::default()
        .alpha(1.0)
        .gradient_tolerance(1e-8)
        .max_iterations(1000)
        .fit(&ds)?;
    // linfa's positive class is the more frequent label.
    let sign = if want.labels().pos.class == 1 { 1.0 } else { -1.0 };
    let want_coef: Vec<f64> = want.params().iter().map(|v| sign * v).collect();
    let d = max_diff(lr.coef_()?, &want_coef);
    assert!(d < 1e-4, "coef {} vs linfa {want_coef:?}", lr.coef_()?);
    assert!((lr.intercept_()? - sign * want.intercept()).abs() < 1e-4);
    let acc = lr.score(&client, &xa, &ya)?;
    let pred = lr.predict(&xa)?.compute(&client)?;
    let agree = pred.iter().zip(&y).filter(|(a, b)| a == b).count() as f64 / 3_000.0;
    // Noisy labels by design (drawn from the logistic model): about 2 in 3 right.
    assert!((acc - agree).abs() < 1e-12 && acc > 0.6, "accuracy {acc}, {agree}");
    let p = lr.predict_proba(&xa)?.compute(&client)?;
    assert!(p.iter().zip(pred.iter()).all(|(p, c)| (*p > 0.5) == (*c == 1.0)));
    Ok(())
}

#[test]
fn logistic_on_real_scheduler_and_worker_processes() -> Result<(), Box<dyn std::error::Error>> {
    let (_procs, client) = procs::cluster();
    let (x, y) = classification(4_000, 2, 9);
    let xa = da::from_array(&x, &[1_000, 2])?;
    let ya = da::from_array(&y, &[1_000])?;
    let mut lr = LogisticRegression::new();
    lr.params.tol = 1e-8;
    lr.fit(&client, &xa, &ya)?;
    let labels: ndarray16::Array1<usize> = y.iter().map(|&v| v as usize).collect();
    let want = linfa_logistic::LogisticRegression::default()
        .gradient_tolerance(1e-8)
        .max_iterations(1000)
        .fit(&Dataset::new(procs::to16(&x), labels))?;
    let sign = if want.labels().pos.class == 1 { 1.0 } else { -1.0 };
    let want_coef: Vec<f64> = want.params().iter().map(|v| sign * v).collect();
    assert!(
        max_diff(lr.coef_()?, &want_coef) < 1e-4,
        "{} vs {want_coef:?}",
        lr.coef_()?
    );
    Ok(())
}

#[test]
fn bad_input_gives_clear_errors() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::new(1)?;
    let client = cluster.client()?;
    let x = da::random(&[10, 2], &[4, 2], 1)?;
    let short = da::random(&[9], &[4], 2)?;
    let err = LinearRegression::new()
        .fit(&client, &x, &short)
        .map(|_| ())
        .expect_err("length");
    assert!(
        matches!(err, Error::Input(_)) && err.to_string().contains("y has 9 samples, X has 10"),
        "{err}"
    );
    let empty = da::zeros(&[0, 2], &[4, 2])?;
    let y0 = da::zeros(&[0], &[4])?;
    let err = LinearRegression::new()
        .fit(&client, &empty, &y0)
        .map(|_| ())
        .expect_err("empty");
    assert!(err.to_string().contains("X is empty"), "{err}");
    let y = da::random(&[10], &[4], 3)?;
    let err = LogisticRegression::new()
        .fit(&client, &x, &y)
        .map(|_| ())
        .expect_err("labels");
    assert!(err.to_string().contains("only 0 and 1"), "{err}");
    let err = LogisticRegression::new()
        .predict(&x)
        .map(|_| ())
        .expect_err("not fitted");
    assert!(matches!(err, Error::NotFitted("LogisticRegression")), "{err}");
    let mut lr = LinearRegression::new();
    lr.params.alpha = -1.0;
    let err = lr.fit(&client, &x, &y).map(|_| ()).expect_err("alpha");
    assert!(matches!(err, Error::Param(_)), "{err}");
    lr.params.alpha = 0.0;
    lr.fit(&client, &x, &y)?;
    let wide = da::random(&[10, 3], &[4, 3], 1)?;
    let err = lr.predict(&wide).map(|_| ()).expect_err("width");
    assert!(err.to_string().contains("X has 3 features"), "{err}");
    Ok(())
}
