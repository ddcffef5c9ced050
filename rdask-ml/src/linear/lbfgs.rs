//! L-BFGS (Nocedal & Wright, algorithm 7.4/7.5) on the driver, over a
//! function whose every evaluation is one distributed pass (loss and
//! gradient together). Backtracking line search with the Armijo
//! condition. Plain functions: tested without a cluster.

/// Corrections kept (`m` of L-BFGS).
pub const HISTORY: usize = 10;

/// Armijo's sufficient-decrease constant.
const ARMIJO: f64 = 1e-4;

/// Line-search halvings at most per iteration.
const MAX_HALVINGS: usize = 40;

fn dot(a: &[f64], b: &[f64]) -> f64 {
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// Why [`minimize`] stopped.
#[derive(Debug, PartialEq)]
pub(crate) struct Outcome {
    /// The minimiser found.
    pub x: Vec<f64>,
    /// Iterations run.
    pub iterations: usize,
    /// Whether the gradient's largest component fell to `tol`.
    pub converged: bool,
}

/// Minimises `f` (returning loss and gradient) from `x0`, until the
/// gradient's largest absolute component is at most `tol` or after
/// `max_iter` iterations.
pub(crate) fn minimize<E>(
    mut f: impl FnMut(&[f64]) -> Result<(f64, Vec<f64>), E>,
    x0: Vec<f64>,
    max_iter: usize,
    tol: f64,
) -> Result<Outcome, E> {
    let mut x = x0;
    let (mut fx, mut g) = f(&x)?;
    let mut s_hist: Vec<Vec<f64>> = Vec::new();
    let mut y_hist: Vec<Vec<f64>> = Vec::new();
    let norm_inf = |g: &[f64]| g.iter().fold(0.0f64, |a, v| a.max(v.abs()));
    for it in 0..max_iter {
        if norm_inf(&g) <= tol {
            return Ok(Outcome {
                x,
                iterations: it,
                converged: true,
            });
        }
        // Two-loop recursion: direction = −H·g.
        let mut q = g.clone();
        let mut alphas = Vec::with_capacity(s_hist.len());
        for (s, y) in s_hist.iter().zip(&y_hist).rev() {
            let a = dot(s, &q) / dot(y, s);
            q.iter_mut().zip(y).for_each(|(qi, yi)| *qi -= a * yi);
            alphas.push(a);
        }
        let gamma = match (s_hist.last(), y_hist.last()) {
            (Some(s), Some(y)) => dot(s, y) / dot(y, y),
            // First step: a unit-length move along −g.
            _ => 1.0 / norm_inf(&g).max(f64::MIN_POSITIVE),
        };
        q.iter_mut().for_each(|v| *v *= gamma);
        for ((s, y), a) in s_hist.iter().zip(&y_hist).zip(alphas.into_iter().rev()) {
            let b = dot(y, &q) / dot(y, s);
            q.iter_mut().zip(s).for_each(|(qi, si)| *qi += (a - b) * si);
        }
        let mut dir: Vec<f64> = q.iter().map(|v| -v).collect();
        let mut slope = dot(&g, &dir);
        if slope >= 0.0 {
            // Not a descent direction (curvature lost): restart from −g.
            s_hist.clear();
            y_hist.clear();
            dir = g.iter().map(|v| -v / norm_inf(&g).max(f64::MIN_POSITIVE)).collect();
            slope = dot(&g, &dir);
        }
        let mut step = 1.0;
        let mut accepted = None;
        for _ in 0..MAX_HALVINGS {
            let xn: Vec<f64> = x.iter().zip(&dir).map(|(a, d)| a + step * d).collect();
            let (fn_, gn) = f(&xn)?;
            if fn_.is_finite() && fn_ <= fx + ARMIJO * step * slope {
                accepted = Some((xn, fn_, gn));
                break;
            }
            step /= 2.0;
        }
        let Some((xn, fn_, gn)) = accepted else {
            // No decrease along the direction: as good as it gets.
            return Ok(Outcome {
                x,
                iterations: it,
                converged: false,
            });
        };
        let s: Vec<f64> = xn.iter().zip(&x).map(|(a, b)| a - b).collect();
        let y: Vec<f64> = gn.iter().zip(&g).map(|(a, b)| a - b).collect();
        if dot(&s, &y) > 1e-12 * dot(&y, &y).max(f64::MIN_POSITIVE) {
            s_hist.push(s);
            y_hist.push(y);
            if s_hist.len() > HISTORY {
                s_hist.remove(0);
                y_hist.remove(0);
            }
        }
        (x, fx, g) = (xn, fn_, gn);
    }
    let converged = norm_inf(&g) <= tol;
    Ok(Outcome {
        x,
        iterations: max_iter,
        converged,
    })
}

#[cfg(test)]
mod tests {
    use super::minimize;

    #[test]
    fn finds_the_minimum_of_a_quadratic() {
        // f = Σ c_i (x_i − i)², badly scaled.
        let c = [1.0, 100.0, 0.01];
        let f = |x: &[f64]| -> Result<(f64, Vec<f64>), ()> {
            let v = (0..3).map(|i| c[i] * (x[i] - i as f64).powi(2)).sum();
            let g = (0..3).map(|i| 2.0 * c[i] * (x[i] - i as f64)).collect();
            Ok((v, g))
        };
        let out = minimize(f, vec![5.0, 5.0, 5.0], 200, 1e-10).expect("no error");
        assert!(out.converged, "{out:?}");
        for (i, v) in out.x.iter().enumerate() {
            assert!((v - i as f64).abs() < 1e-6, "{:?}", out.x);
        }
    }

    #[test]
    fn rosenbrock() {
        let f = |x: &[f64]| -> Result<(f64, Vec<f64>), ()> {
            let (a, b) = (x[0], x[1]);
            let v = (1.0 - a).powi(2) + 100.0 * (b - a * a).powi(2);
            let g = vec![-2.0 * (1.0 - a) - 400.0 * a * (b - a * a), 200.0 * (b - a * a)];
            Ok((v, g))
        };
        let out = minimize(f, vec![-1.2, 1.0], 1000, 1e-8).expect("no error");
        assert!(
            (out.x[0] - 1.0).abs() < 1e-5 && (out.x[1] - 1.0).abs() < 1e-5,
            "{out:?}"
        );
    }
}
