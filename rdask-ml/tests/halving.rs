//! Successive halving and Hyperband on the embedded LocalCluster: poor
//! candidates get fewer passes, and the search ends on the candidate a
//! full local training finds best.

mod common;

use rdask::LocalCluster;
use rdask_ml::model_selection::{
    Distribution, Holdout, HyperbandSearchCV, IncrementalOptions, ParamDistributions, ParamGrid, PartialFit,
    SgdClassifier, SuccessiveHalvingSearchCV,
};

/// The candidates: a good learning rate with a small penalty, and poor
/// ones (a rate too small to move, penalties that crush the weights).
fn candidates() -> Vec<rdask_ml::model_selection::Params> {
    ParamGrid::new()
        .param("alpha", &[1e-4, 0.5, 5.0])
        .param("eta0", &[1e-6, 0.02, 0.1])
        .candidates()
        .unwrap()
}

#[test]
fn successive_halving_stops_poor_candidates_and_finds_the_best() -> Result<(), Box<dyn std::error::Error>> {
    let data = common::classification(600, 4, 9);
    let holdout = Holdout {
        test_fraction: 0.25,
        seed: 3,
    };
    let opts = IncrementalOptions {
        max_iter: 9,
        holdout,
        ..Default::default()
    };
    // The reference: every candidate trained the full 9 passes here.
    let (train, test) = holdout.split(data.n_samples())?;
    let (tr, te) = (data.take(&train), data.take(&test));
    let full: Vec<f64> = candidates()
        .iter()
        .map(|p| {
            let mut m = SgdClassifier::new(p["alpha"], p["eta0"]).unwrap();
            for _ in 0..9 {
                m.partial_fit(tr.x(), tr.y()).unwrap();
            }
            m.score(te.x(), te.y())
        })
        .collect();
    let best_full = full.iter().cloned().fold(f64::NEG_INFINITY, f64::max);

    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let found = SuccessiveHalvingSearchCV::new(candidates(), 1)
        .options(opts)
        .fit(&client, &data)?;
    // 9 candidates: 1 pass each, the best 3 to 3 passes, the best one to 9.
    let mut calls = found.partial_fit_calls.clone();
    calls.sort_unstable();
    assert_eq!(calls, vec![1, 1, 1, 1, 1, 1, 3, 3, 9]);
    assert_eq!(found.partial_fit_calls[found.best_index], 9);
    assert_eq!(found.best_params, candidates()[found.best_index]);
    // The survivor is the one a full training of all candidates finds best,
    // with the same score (same passes, same rows, same order).
    assert_eq!(found.best_score, full[found.best_index]);
    assert_eq!(found.best_score, best_full, "full-training scores {full:?}");
    // The stopped ones include every crushed or frozen candidate.
    for (i, p) in candidates().iter().enumerate() {
        if p["alpha"] == 5.0 || p["eta0"] == 1e-6 {
            assert!(
                found.partial_fit_calls[i] < 9,
                "{p:?} ran {} passes",
                found.partial_fit_calls[i]
            );
        }
    }
    // Each model stayed on the cluster: the data went once, models by key.
    assert_eq!(found.ledger.scattered_keys.len(), 1);
    assert_eq!(found.ledger.tasks, 1 + 9 + 3 + 1);
    assert_eq!(found.history.len(), 13);
    Ok(())
}

#[test]
fn hyperband_runs_its_brackets_and_keeps_the_best() -> Result<(), Box<dyn std::error::Error>> {
    let data = common::classification(400, 3, 21);
    let dist = ParamDistributions::new()
        .param("alpha", Distribution::LogUniform { low: 1e-5, high: 10.0 })
        .param("eta0", Distribution::LogUniform { low: 1e-6, high: 0.1 });
    let search = HyperbandSearchCV::new(dist, 4).options(IncrementalOptions {
        max_iter: 9,
        ..Default::default()
    });
    // Dask-ML's brackets for max_iter 9, aggressiveness 3.
    assert_eq!(search.brackets(), vec![(9, 1), (5, 3), (3, 9)]);
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let found = search.fit(&client, &data)?;
    assert_eq!(found.params.len(), 17);
    assert!(found.partial_fit_calls.iter().all(|&c| (1..=9).contains(&c)));
    let top = found.final_score.iter().cloned().fold(f64::NEG_INFINITY, f64::max);
    assert_eq!(found.best_score, top);
    assert!(found.best_score > 0.8, "{}", found.best_score);
    // Bad options are clear errors.
    let bad = HyperbandSearchCV::new(ParamDistributions::new(), 0)
        .fit(&client, &data)
        .unwrap_err();
    assert!(bad.to_string().contains("distributions are empty"), "{bad}");
    let bad = SuccessiveHalvingSearchCV::new(candidates(), 1)
        .options(IncrementalOptions {
            aggressiveness: 1,
            ..Default::default()
        })
        .fit(&client, &data)
        .unwrap_err();
    assert!(bad.to_string().contains("aggressiveness"), "{bad}");
    Ok(())
}
