//! Hyperparameters: one candidate's [`Params`], scikit-learn's
//! `ParameterGrid` ([`ParamGrid`], every combination, keys in sorted order
//! and the last key varying fastest, as scikit-learn lists them) and
//! `ParameterSampler` ([`ParamDistributions`], seeded draws from lists and
//! ranges).

use std::collections::BTreeMap;

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Most candidates a grid may expand to: a typo such as a 1,000-value list
/// in every key would otherwise build millions of tasks before anything
/// says so.
pub const MAX_CANDIDATES: usize = 100_000;

/// One candidate's hyperparameters by name (numbers only: integer ones
/// such as `max_iter` are given as whole numbers).
pub type Params = BTreeMap<String, f64>;

/// scikit-learn's `param_grid`: for each hyperparameter, the values to try.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamGrid(pub BTreeMap<String, Vec<f64>>);

impl ParamGrid {
    /// An empty grid (add keys with [`param`](Self::param)).
    pub fn new() -> ParamGrid {
        ParamGrid::default()
    }

    /// The grid with `name` taking `values`.
    pub fn param(mut self, name: &str, values: &[f64]) -> ParamGrid {
        self.0.insert(name.to_string(), values.to_vec());
        self
    }

    /// Every combination, in scikit-learn's order; an error for an empty
    /// grid, a key without values or more than [`MAX_CANDIDATES`].
    pub fn candidates(&self) -> Result<Vec<Params>, Error> {
        if self.0.is_empty() {
            return Err(Error::Input("the parameter grid is empty".into()));
        }
        let mut total = 1usize;
        for (name, values) in &self.0 {
            if values.is_empty() {
                return Err(Error::Input(format!("parameter {name:?} has an empty list of values")));
            }
            total = total.saturating_mul(values.len());
        }
        if total > MAX_CANDIDATES {
            return Err(Error::Input(format!(
                "the grid has {total} candidates, more than MAX_CANDIDATES = {MAX_CANDIDATES}"
            )));
        }
        let mut out = vec![Params::new()];
        for (name, values) in &self.0 {
            out = out
                .into_iter()
                .flat_map(|p| {
                    values.iter().map(move |&v| {
                        let mut q = p.clone();
                        q.insert(name.clone(), v);
                        q
                    })
                })
                .collect();
        }
        Ok(out)
    }
}

/// Where a randomized search draws one hyperparameter from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum Distribution {
    /// One of these values, each as likely.
    Choice(Vec<f64>),
    /// Uniform on `[low, high)` (scipy's `uniform(low, high - low)`).
    Uniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
    /// Log-uniform on `[low, high)`, both positive (scipy's `loguniform`).
    LogUniform {
        /// Lower bound.
        low: f64,
        /// Upper bound.
        high: f64,
    },
}

/// scikit-learn's `param_distributions`: a distribution per
/// hyperparameter.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct ParamDistributions(pub BTreeMap<String, Distribution>);

impl ParamDistributions {
    /// No distributions yet.
    pub fn new() -> ParamDistributions {
        ParamDistributions::default()
    }

    /// `name` drawn from `d`.
    pub fn param(mut self, name: &str, d: Distribution) -> ParamDistributions {
        self.0.insert(name.to_string(), d);
        self
    }

    /// `n` candidates drawn with `seed` (keys in sorted order, one draw
    /// per key per candidate); an error for no keys, an empty choice or a
    /// bad range.
    pub fn sample(&self, n: usize, seed: u64) -> Result<Vec<Params>, Error> {
        if self.0.is_empty() {
            return Err(Error::Input("the parameter distributions are empty".into()));
        }
        if n == 0 || n > MAX_CANDIDATES {
            return Err(Error::Input(format!("n_iter must be in 1..={MAX_CANDIDATES}, got {n}")));
        }
        for (name, d) in &self.0 {
            let ok = match d {
                Distribution::Choice(v) => !v.is_empty(),
                Distribution::Uniform { low, high } => low < high && low.is_finite() && high.is_finite(),
                Distribution::LogUniform { low, high } => *low > 0.0 && low < high && high.is_finite(),
            };
            if !ok {
                return Err(Error::Input(format!(
                    "parameter {name:?} has an empty or bad distribution {d:?}"
                )));
            }
        }
        let mut rng = XorShiftRng::seed_from_u64(seed);
        let mut unit = move || (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        Ok((0..n)
            .map(|_| {
                self.0
                    .iter()
                    .map(|(name, d)| {
                        let v = match d {
                            Distribution::Choice(v) => v[((unit() * v.len() as f64) as usize).min(v.len() - 1)],
                            Distribution::Uniform { low, high } => low + unit() * (high - low),
                            Distribution::LogUniform { low, high } => {
                                (low.ln() + unit() * (high.ln() - low.ln())).exp()
                            }
                        };
                        (name.clone(), v)
                    })
                    .collect()
            })
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn grid_lists_every_combination_last_key_fastest() {
        let c = ParamGrid::new()
            .param("b", &[1.0, 2.0])
            .param("a", &[10.0, 20.0, 30.0])
            .candidates()
            .unwrap();
        assert_eq!(c.len(), 6);
        assert_eq!((c[0]["a"], c[0]["b"]), (10.0, 1.0));
        assert_eq!((c[1]["a"], c[1]["b"]), (10.0, 2.0));
        assert_eq!((c[5]["a"], c[5]["b"]), (30.0, 2.0));
    }

    #[test]
    fn empty_grids_and_lists_are_clear_errors() {
        assert!(ParamGrid::new().candidates().unwrap_err().to_string().contains("empty"));
        let err = ParamGrid::new()
            .param("alpha", &[])
            .candidates()
            .unwrap_err()
            .to_string();
        assert!(err.contains("\"alpha\""), "{err}");
    }

    #[test]
    fn draws_are_seeded_and_in_range() {
        let d = ParamDistributions::new()
            .param("alpha", Distribution::LogUniform { low: 1e-3, high: 1.0 })
            .param("k", Distribution::Choice(vec![1.0, 2.0]));
        let a = d.sample(50, 3).unwrap();
        assert_eq!(a, d.sample(50, 3).unwrap());
        assert!(a
            .iter()
            .all(|p| (1e-3..1.0).contains(&p["alpha"]) && (p["k"] == 1.0 || p["k"] == 2.0)));
        assert!(ParamDistributions::new().sample(1, 0).is_err());
        let bad = ParamDistributions::new().param("x", Distribution::LogUniform { low: 0.0, high: 1.0 });
        assert!(bad.sample(1, 0).is_err());
    }
}
