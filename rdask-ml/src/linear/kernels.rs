//! The worker side of the linear models: per row block, the loss and its
//! gradient at the step's coefficients (`[coef…, intercept]`, one graph
//! node of the step), as a 1-d partial that `dist::tree_sum` adds up;
//! predictions; and the sums a score needs. Registered as
//! `rdask_ml::linear::kernels::<name>`. Blocks are read in place
//! (`ChunkView`): every step of a fit reads every block once, and decoding
//! a copy of each first cost more than the step's arithmetic.

use ndarray::{ArrayD, IxDyn};
use rdask_array::{Chunk, ChunkView};
use serde::{Deserialize, Serialize};

use crate::cluster::Step;

/// Which loss a model minimises.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Loss {
    /// Least squares, `Σ (x·w + b − y)² / 2`.
    Squared,
    /// Logistic, `Σ log(1 + exp(−s (x·w + b)))` with `s = 2y − 1` for
    /// labels `y` in {0, 1}.
    Logistic,
}

/// What a prediction returns.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum Output {
    /// `x·w + b` (a linear model's prediction, a logistic model's
    /// decision function).
    Value,
    /// `σ(x·w + b)`, the probability of class 1.
    Probability,
    /// 1 where `x·w + b > 0`, else 0.
    Class,
}

fn vector(v: Vec<f64>) -> Chunk {
    let n = v.len();
    Chunk(ArrayD::from_shape_vec(IxDyn(&[n]), v).unwrap_or_else(|_| ArrayD::zeros(IxDyn(&[n]))))
}

/// `log(1 + exp(z))` without overflow.
fn softplus(z: f64) -> f64 {
    if z > 0.0 {
        z + (-z).exp().ln_1p()
    } else {
        z.exp().ln_1p()
    }
}

fn sigmoid(z: f64) -> f64 {
    if z >= 0.0 {
        1.0 / (1.0 + (-z).exp())
    } else {
        let e = z.exp();
        e / (1.0 + e)
    }
}

/// The block's width and the coefficients, checked against each other and
/// against the targets' number.
fn parts<'a>(x: &ChunkView<'_>, y: Option<&Chunk>, w: &'a Step) -> Result<(usize, &'a [f64]), String> {
    let [n, d] = *x.shape() else {
        return Err(format!("a block must be 2-d, not of shape {:?}", x.shape()));
    };
    if w.value.len() != d + 1 {
        return Err(format!("{} coefficients for {d} features (+ intercept)", w.value.len()));
    }
    if let Some(y) = y {
        if y.len() != n {
            return Err(format!("{} targets for a block of {n} rows", y.len()));
        }
    }
    let w = w.value.as_slice().ok_or("coefficients not contiguous")?;
    Ok((d.max(1), w))
}

/// The targets as a slice (a 1-d block in order).
fn targets(y: &Chunk) -> Result<&[f64], String> {
    y.as_slice().ok_or_else(|| "targets not contiguous".to_string())
}

fn dot(row: &[f64], w: &[f64]) -> f64 {
    row.iter().zip(w).map(|(a, b)| a * b).sum::<f64>() + w[row.len()]
}

/// The block's loss and gradient: `[∂/∂w (d numbers), ∂/∂b, loss]`
/// (unregularised: the driver adds the penalty once).
#[rdask::task]
pub fn grad_partial(x: ChunkView<'_>, y: Chunk, w: Step, loss: Loss) -> Result<Chunk, String> {
    let (d, w) = parts(&x, Some(&y), &w)?;
    let y = targets(&y)?;
    let mut out = vec![0.0; d + 2];
    let mut total = 0.0;
    x.for_each_rows(|first, run| {
        for (row, &t) in run.chunks_exact(d).zip(&y[first..]) {
            let z = dot(row, w);
            let r = match loss {
                Loss::Squared => {
                    let r = z - t;
                    total += r * r / 2.0;
                    r
                }
                Loss::Logistic => {
                    let s = 2.0 * t - 1.0;
                    total += softplus(-s * z);
                    (sigmoid(s * z) - 1.0) * s
                }
            };
            for (g, v) in out[..d].iter_mut().zip(row) {
                *g += r * v;
            }
            out[d] += r;
        }
    });
    out[d + 1] = total;
    Ok(vector(out))
}

/// Predictions for a block's rows (a 1-d block).
#[rdask::task]
pub fn linear_predict(x: ChunkView<'_>, w: Step, output: Output) -> Result<Chunk, String> {
    let (d, w) = parts(&x, None, &w)?;
    let mut out = Vec::with_capacity(x.rows());
    x.for_each_rows(|_, run| {
        out.extend(run.chunks_exact(d).map(|row| {
            let z = dot(row, w);
            match output {
                Output::Value => z,
                Output::Probability => sigmoid(z),
                Output::Class => f64::from(u8::from(z > 0.0)),
            }
        }))
    });
    Ok(vector(out))
}

/// What a score needs from a block: `[rows, Σy, Σy², Σ(y − x·w − b)²,
/// rows where (x·w + b > 0) == (y == 1)]`.
#[rdask::task]
pub fn score_partial(x: ChunkView<'_>, y: Chunk, w: Step) -> Result<Chunk, String> {
    let (d, w) = parts(&x, Some(&y), &w)?;
    let y = targets(&y)?;
    let mut out = [0.0; 5];
    x.for_each_rows(|first, run| {
        for (row, &t) in run.chunks_exact(d).zip(&y[first..]) {
            let z = dot(row, w);
            out[0] += 1.0;
            out[1] += t;
            out[2] += t * t;
            out[3] += (t - z) * (t - z);
            out[4] += f64::from(u8::from((z > 0.0) == (t == 1.0)));
        }
    });
    Ok(vector(out.to_vec()))
}

/// How many of a block's labels are neither 0 nor 1 (a 1-element partial).
#[rdask::task]
pub fn not_binary(y: Chunk) -> Chunk {
    vector(vec![y.iter().filter(|&&v| v != 0.0 && v != 1.0).count() as f64])
}

/// Every kernel of this module, for a worker that registers them by hand.
pub const TASKS: &[rdask::task::TaskEntry] = &[
    rdask::task::TaskEntry::of::<grad_partial>(),
    rdask::task::TaskEntry::of::<linear_predict>(),
    rdask::task::TaskEntry::of::<score_partial>(),
    rdask::task::TaskEntry::of::<not_binary>(),
];
