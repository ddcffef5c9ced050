//! Cross-validation splitters: scikit-learn's `KFold` (contiguous folds,
//! the first `n % k` one row longer; optionally shuffled with a seed) and a
//! single train/test holdout for the incremental searches (Dask-ML's
//! `test_size`). Splits are plain index lists, computed on the worker that
//! prepares a fold, so only the fold's number travels.

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use serde::{Deserialize, Serialize};

use crate::Error;

/// scikit-learn's default number of folds (`cv=5`).
pub const DEFAULT_N_SPLITS: usize = 5;

/// scikit-learn's `KFold`: `n_splits` folds of consecutive rows (of the
/// shuffled order when `shuffle_seed` is set); each fold is the test part
/// once, the other rows its train part.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct KFold {
    /// Number of folds, at least 2.
    pub n_splits: usize,
    /// Shuffle the rows first with this seed (scikit-learn's
    /// `shuffle=True, random_state=seed`, though not its generator).
    pub shuffle_seed: Option<u64>,
}

impl Default for KFold {
    fn default() -> Self {
        KFold {
            n_splits: DEFAULT_N_SPLITS,
            shuffle_seed: None,
        }
    }
}

impl KFold {
    /// `n_splits` unshuffled folds.
    pub fn new(n_splits: usize) -> KFold {
        KFold {
            n_splits,
            shuffle_seed: None,
        }
    }

    /// An error unless `n_samples` rows can make `n_splits` folds.
    pub fn check(&self, n_samples: usize) -> Result<(), Error> {
        if self.n_splits < 2 {
            return Err(Error::Input(format!(
                "cross-validation needs at least 2 folds, got n_splits = {}",
                self.n_splits
            )));
        }
        if self.n_splits > n_samples {
            return Err(Error::Input(format!(
                "cannot have n_splits = {} greater than the number of samples: {n_samples}",
                self.n_splits
            )));
        }
        Ok(())
    }

    /// The (train, test) row indices of fold `fold` of `n_samples` rows.
    pub fn split(&self, n_samples: usize, fold: usize) -> Result<(Vec<usize>, Vec<usize>), Error> {
        self.check(n_samples)?;
        if fold >= self.n_splits {
            return Err(Error::Input(format!("fold {fold} of {} folds", self.n_splits)));
        }
        let order = self.row_order(n_samples);
        let at = self.test_positions(n_samples, fold);
        let test = order[at.clone()].to_vec();
        let train = order[..at.start].iter().chain(&order[at.end..]).copied().collect();
        Ok((train, test))
    }

    /// Where fold `fold`'s test rows sit in [`row_order`](Self::row_order)
    /// (for unshuffled folds, the rows themselves). `fold < n_splits`.
    pub(crate) fn test_positions(&self, n_samples: usize, fold: usize) -> std::ops::Range<usize> {
        let base = n_samples / self.n_splits;
        let extra = n_samples % self.n_splits;
        let start = fold * base + fold.min(extra);
        start..start + base + usize::from(fold < extra)
    }

    /// The order the folds cut: `0..n`, shuffled with the seed if any.
    pub(crate) fn row_order(&self, n_samples: usize) -> Vec<usize> {
        row_order(n_samples, self.shuffle_seed)
    }
}

/// One train/test split holding out `test_fraction` of the rows (the last
/// ones of the order, shuffled with `seed`): Dask-ML's incremental searches
/// score on such a holdout rather than on folds.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Holdout {
    /// Fraction of rows in the test part, in (0, 1).
    pub test_fraction: f64,
    /// Shuffle seed.
    pub seed: u64,
}

impl Holdout {
    /// The (train, test) row indices; an error if either part is empty.
    pub fn split(&self, n_samples: usize) -> Result<(Vec<usize>, Vec<usize>), Error> {
        if !(self.test_fraction > 0.0 && self.test_fraction < 1.0) {
            return Err(Error::Input(format!(
                "test_fraction must be in (0, 1), got {}",
                self.test_fraction
            )));
        }
        let n_test = (n_samples as f64 * self.test_fraction).ceil() as usize;
        if n_test == 0 || n_test >= n_samples {
            return Err(Error::Input(format!(
                "a holdout of {} of {n_samples} rows leaves a part empty",
                self.test_fraction
            )));
        }
        let order = row_order(n_samples, Some(self.seed));
        let cut = n_samples - n_test;
        Ok((order[..cut].to_vec(), order[cut..].to_vec()))
    }
}

/// `0..n`, shuffled (Fisher-Yates) when a seed is given.
fn row_order(n: usize, seed: Option<u64>) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    if let Some(seed) = seed {
        let mut rng = XorShiftRng::seed_from_u64(seed);
        for i in (1..n).rev() {
            let j = (rng.next_u64() % (i as u64 + 1)) as usize;
            order.swap(i, j);
        }
    }
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn folds_follow_scikit_learn_sizes_and_cover_every_row_once() {
        let k = KFold::new(3);
        let mut seen = [0; 10];
        let sizes: Vec<usize> = (0..3)
            .map(|f| {
                let (train, test) = k.split(10, f).unwrap();
                assert_eq!(train.len() + test.len(), 10);
                test.iter().for_each(|&i| seen[i] += 1);
                test.len()
            })
            .collect();
        assert_eq!(sizes, vec![4, 3, 3]);
        assert!(seen.iter().all(|&c| c == 1));
        assert_eq!(k.split(10, 0).unwrap().1, vec![0, 1, 2, 3]);
    }

    #[test]
    fn more_folds_than_rows_is_a_clear_error() {
        let err = KFold::new(5).split(3, 0).unwrap_err().to_string();
        assert!(err.contains("greater than the number of samples"), "{err}");
        assert!(KFold::new(1).check(10).is_err());
    }

    #[test]
    fn shuffled_folds_are_seeded_and_holdout_splits_everything() {
        let k = KFold {
            n_splits: 4,
            shuffle_seed: Some(7),
        };
        assert_eq!(k.split(20, 1).unwrap(), k.split(20, 1).unwrap());
        assert_ne!(k.split(20, 1).unwrap().1, KFold::new(4).split(20, 1).unwrap().1);
        let (train, test) = Holdout {
            test_fraction: 0.25,
            seed: 1,
        }
        .split(20)
        .unwrap();
        assert_eq!((train.len(), test.len()), (15, 5));
        let mut all: Vec<usize> = train.into_iter().chain(test).collect();
        all.sort_unstable();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
    }
}
