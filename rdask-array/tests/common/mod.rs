//! Shared by the array tests: random arrays with uneven chunks, and the
//! same computations done by plain ndarray on one machine (the reference).
#![allow(dead_code)]

use ndarray::{ArrayD, Axis, IxDyn};
use proptest::prelude::*;

/// A shape of 1 to 3 axes of 0 to 7 elements, values in [-50, 50), and a
/// chunk size per axis (uneven last blocks).
pub fn array_and_chunks() -> impl Strategy<Value = (ArrayD<f64>, Vec<usize>)> {
    prop::collection::vec((0usize..7, 1usize..5), 1..=3).prop_flat_map(|axes| {
        let shape: Vec<usize> = axes.iter().map(|a| a.0).collect();
        let chunks: Vec<usize> = axes.iter().map(|a| a.1).collect();
        let n: usize = shape.iter().product();
        prop::collection::vec(-50.0f64..50.0, n).prop_map(move |v| {
            (
                ArrayD::from_shape_vec(IxDyn(&shape), v).expect("shape fits"),
                chunks.clone(),
            )
        })
    })
}

/// Whether two arrays have the same shape and values within a relative
/// tolerance, NaNs equal.
pub fn close(a: &ArrayD<f64>, b: &ArrayD<f64>) -> bool {
    a.shape() == b.shape()
        && a.iter().zip(b.iter()).all(|(&x, &y)| {
            (x.is_nan() && y.is_nan()) || x == y || (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs()))
        })
}

/// Folds `a` over `axes` (sorted), keeping them with length 1.
pub fn fold(a: &ArrayD<f64>, axes: &[usize], init: f64, f: impl Fn(f64, f64) -> f64 + Copy) -> ArrayD<f64> {
    let mut out = a.clone();
    for &k in axes {
        out = out.fold_axis(Axis(k), init, |&acc, &x| f(acc, x)).insert_axis(Axis(k));
    }
    out
}

/// Drops the (length-1) `axes` unless `keepdims`.
pub fn squeeze(a: ArrayD<f64>, axes: &[usize], keepdims: bool) -> ArrayD<f64> {
    if keepdims {
        return a;
    }
    let shape: Vec<usize> = a
        .shape()
        .iter()
        .enumerate()
        .filter(|(k, _)| !axes.contains(k))
        .map(|(_, &l)| l)
        .collect();
    a.into_shape_with_order(IxDyn(&shape)).expect("drop length-1 axes")
}

/// Number of elements reduced per output position.
pub fn count(a: &ArrayD<f64>, axes: &[usize]) -> f64 {
    axes.iter().map(|&k| a.shape()[k]).product::<usize>() as f64
}

pub fn sum(a: &ArrayD<f64>, axes: &[usize]) -> ArrayD<f64> {
    fold(a, axes, 0.0, |x, y| x + y)
}

pub fn mean(a: &ArrayD<f64>, axes: &[usize]) -> ArrayD<f64> {
    sum(a, axes) / count(a, axes)
}

pub fn var(a: &ArrayD<f64>, axes: &[usize], ddof: f64) -> ArrayD<f64> {
    let m = mean(a, axes);
    let sq = (a - &m).mapv(|d| d * d);
    let d = count(a, axes) - ddof;
    let ss = sum(&sq, axes);
    if d <= 0.0 {
        ss.mapv(|_| f64::NAN)
    } else {
        ss / d
    }
}

/// The flat index of the first largest (or smallest) element.
pub fn arg_flat(a: &ArrayD<f64>, max: bool) -> Option<usize> {
    let mut best: Option<(usize, f64)> = None;
    for (i, &x) in a.iter().enumerate() {
        let better = match best {
            None => true,
            Some((_, b)) => {
                if max {
                    x > b
                } else {
                    x < b
                }
            }
        };
        if better {
            best = Some((i, x));
        }
    }
    best.map(|b| b.0)
}

/// Per lane along `axis`, the index of the first largest (smallest).
pub fn arg_axis(a: &ArrayD<f64>, axis: usize, max: bool) -> ArrayD<f64> {
    let lanes: Vec<f64> = a
        .lanes(Axis(axis))
        .into_iter()
        .map(|lane| arg_flat(&lane.to_owned().into_dyn(), max).unwrap_or(0) as f64)
        .collect();
    let mut shape = a.shape().to_vec();
    shape.remove(axis);
    ArrayD::from_shape_vec(IxDyn(&shape), lanes).expect("lanes fit")
}
