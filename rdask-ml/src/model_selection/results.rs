//! [`CvResults`]: scikit-learn's `cv_results_` table, one row per
//! candidate: its parameters, per-fold test scores, their mean and
//! (population) standard deviation, the rank, and fit times.

use super::params::Params;
use super::tasks::FoldScore;

/// scikit-learn's `cv_results_` (columns as vectors, one entry per
/// candidate, in the order the candidates were listed).
#[derive(Clone, Debug, PartialEq)]
pub struct CvResults {
    /// `params`.
    pub params: Vec<Params>,
    /// `split<k>_test_score`: per candidate, per fold.
    pub split_test_scores: Vec<Vec<f64>>,
    /// `mean_test_score`.
    pub mean_test_score: Vec<f64>,
    /// `std_test_score` (NumPy's `std`, ddof 0).
    pub std_test_score: Vec<f64>,
    /// `rank_test_score`: 1 is best; ties share the smallest rank and a
    /// NaN mean ranks last (scikit-learn's `rankdata(method="min")`).
    pub rank_test_score: Vec<usize>,
    /// `mean_fit_time`, seconds.
    pub mean_fit_time: Vec<f64>,
}

impl CvResults {
    /// The table of `params` and their fold scores (same order).
    pub fn new(params: Vec<Params>, scores: Vec<Vec<FoldScore>>) -> CvResults {
        let split_test_scores: Vec<Vec<f64>> = scores
            .iter()
            .map(|s| s.iter().map(|f| f.test_score).collect())
            .collect();
        let mean_test_score: Vec<f64> = split_test_scores.iter().map(|s| mean(s)).collect();
        let std_test_score = split_test_scores
            .iter()
            .zip(&mean_test_score)
            .map(|(s, m)| mean(&s.iter().map(|v| (v - m) * (v - m)).collect::<Vec<_>>()).sqrt())
            .collect();
        let keyed: Vec<f64> = mean_test_score
            .iter()
            .map(|&m| if m.is_nan() { f64::NEG_INFINITY } else { m })
            .collect();
        let rank_test_score = keyed
            .iter()
            .map(|&m| 1 + keyed.iter().filter(|&&o| o > m).count())
            .collect();
        let mean_fit_time = scores
            .iter()
            .map(|s| mean(&s.iter().map(|f| f.fit_time_s).collect::<Vec<_>>()))
            .collect();
        CvResults {
            params,
            split_test_scores,
            mean_test_score,
            std_test_score,
            rank_test_score,
            mean_fit_time,
        }
    }

    /// scikit-learn's `best_index_`: the first candidate of rank 1.
    pub fn best_index(&self) -> usize {
        self.rank_test_score.iter().position(|&r| r == 1).unwrap_or(0)
    }

    /// The table as text: one line per candidate, ranked best first.
    pub fn to_table(&self) -> String {
        let mut order: Vec<usize> = (0..self.params.len()).collect();
        order.sort_by_key(|&i| (self.rank_test_score[i], i));
        let mut out = String::from("rank  mean_test  std_test  params\n");
        for i in order {
            out += &format!(
                "{:>4}  {:>9.5}  {:>8.5}  {:?}\n",
                self.rank_test_score[i], self.mean_test_score[i], self.std_test_score[i], self.params[i]
            );
        }
        out
    }
}

fn mean(v: &[f64]) -> f64 {
    v.iter().sum::<f64>() / v.len().max(1) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(v: f64) -> FoldScore {
        FoldScore {
            test_score: v,
            fit_time_s: 0.0,
            score_time_s: 0.0,
        }
    }

    #[test]
    fn ranks_share_the_smallest_and_nan_is_last() {
        let p = vec![Params::new(); 4];
        let r = CvResults::new(
            p,
            vec![
                vec![s(0.5), s(0.7)],
                vec![s(0.9), s(0.3)],
                vec![s(f64::NAN)],
                vec![s(0.1)],
            ],
        );
        assert_eq!(r.rank_test_score, vec![1, 1, 4, 3]);
        assert_eq!(r.best_index(), 0);
        assert!((r.std_test_score[1] - 0.3).abs() < 1e-12);
    }
}
