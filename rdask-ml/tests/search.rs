//! Grid and randomized searches on the embedded LocalCluster, against the
//! same loop done on one machine with linfa called directly.

mod common;

use linfa::prelude::{Fit, Predict};
use linfa_elasticnet::ElasticNet;
use rdask::LocalCluster;
use rdask_ml::model_selection::{
    Distribution, Estimator, GridSearchCV, KFold, ParamDistributions, ParamGrid, Params, Preprocess,
    RandomizedSearchCV, SearchOptions,
};
use rdask_ml::{Dataset, Error};

fn grid() -> ParamGrid {
    ParamGrid::new()
        .param("alpha", &[0.001, 0.05, 0.5, 3.0])
        .param("l1_ratio", &[0.0, 0.5, 1.0])
}

/// Fold scores of one candidate computed here: the same folds, the scaler
/// written out in the test, linfa's own fit and predict, R² in the test.
fn local_scores(x: &ndarray17::Array2<f64>, y: &ndarray17::Array1<f64>, cv: KFold, p: &Params) -> Vec<f64> {
    (0..cv.n_splits)
        .map(|k| {
            let (tr, te) = cv.split(y.len(), k).unwrap();
            let xtr = x.select(ndarray17::Axis(0), &tr);
            let xte = x.select(ndarray17::Axis(0), &te);
            let ytr: Vec<f64> = tr.iter().map(|&i| y[i]).collect();
            let yte: Vec<f64> = te.iter().map(|&i| y[i]).collect();
            let model = ElasticNet::params()
                .penalty(p["alpha"])
                .l1_ratio(p["l1_ratio"])
                .fit(&linfa::Dataset::new(
                    common::to16(&common::scale_like_sklearn(&xtr, &xtr)),
                    ndarray16::Array1::from_vec(ytr),
                ))
                .unwrap();
            let pred = model.predict(&common::to16(&common::scale_like_sklearn(&xtr, &xte)));
            common::r2(&yte, pred.as_slice().unwrap())
        })
        .collect()
}

use rdask_array::ndarray as ndarray17;

#[test]
fn grid_search_matches_a_local_linfa_loop_and_refits() -> Result<(), Box<dyn std::error::Error>> {
    let (x, y) = common::regression(203, 5, 42);
    let data = Dataset::new(x.clone(), y.clone())?;
    let cv = KFold::new(4);
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let found = GridSearchCV::new(Estimator::ElasticNet, grid())
        .options(SearchOptions {
            cv,
            preprocess: Preprocess::StandardScaler,
            ..Default::default()
        })
        .fit(&client, &data)?;

    let candidates = grid().candidates()?;
    assert_eq!(found.cv_results.params, candidates);
    let mut best = (f64::NEG_INFINITY, 0);
    for (i, p) in candidates.iter().enumerate() {
        let want = local_scores(&x, &y, cv, p);
        let got = &found.cv_results.split_test_scores[i];
        for (a, b) in got.iter().zip(&want) {
            assert!((a - b).abs() < 1e-9, "candidate {p:?}: {got:?} vs {want:?}");
        }
        let mean = want.iter().sum::<f64>() / want.len() as f64;
        if mean > best.0 {
            best = (mean, i);
        }
    }
    assert_eq!(found.best_index, best.1);
    assert_eq!(found.best_params, candidates[best.1]);
    assert!((found.best_score - best.0).abs() < 1e-9);
    assert_eq!(found.cv_results.rank_test_score[best.1], 1);
    // Distinct ranks here: each candidate's rank is 1 + how many beat it.
    let means = &found.cv_results.mean_test_score;
    for (i, r) in found.cv_results.rank_test_score.iter().enumerate() {
        assert_eq!(*r, 1 + means.iter().filter(|&&m| m > means[i]).count());
    }

    // Refit: the scaler and linfa's model on all rows.
    let refit = found.best_estimator.expect("refit by default");
    let xs = common::scale_like_sklearn(&x, &x);
    let p = &found.best_params;
    let model = ElasticNet::params()
        .penalty(p["alpha"])
        .l1_ratio(p["l1_ratio"])
        .fit(&linfa::Dataset::new(
            common::to16(&xs),
            ndarray16::Array1::from_vec(y.to_vec()),
        ))?;
    let want = model.predict(&common::to16(&xs));
    let got = refit.predict(x.view())?;
    assert!(got.iter().zip(want.iter()).all(|(a, b)| (a - b).abs() < 1e-9));
    Ok(())
}

/// The shared-Gram path (the default for the elastic net) and linfa's own
/// fit per candidate on the fold's rows give the same fold scores and the
/// same refit, with and without the scaler (without it linfa does not
/// centre the features, and the Gram statistics must not either).
#[test]
fn shared_gram_and_per_candidate_linfa_fits_agree() -> Result<(), Box<dyn std::error::Error>> {
    let (x, y) = common::regression(301, 6, 5);
    let data = Dataset::new(x.clone(), y)?;
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    for preprocess in [Preprocess::None, Preprocess::StandardScaler] {
        let run = |shared_gram| {
            GridSearchCV::new(Estimator::ElasticNet, grid()).options(SearchOptions {
                cv: KFold::new(3),
                preprocess,
                shared_gram,
                ..Default::default()
            })
        };
        let gram = run(true).fit(&client, &data)?;
        let rows = run(false).fit(&client, &data)?;
        for (g, r) in gram
            .cv_results
            .split_test_scores
            .iter()
            .zip(&rows.cv_results.split_test_scores)
        {
            for (a, b) in g.iter().zip(r) {
                assert!((a - b).abs() < 1e-9, "{preprocess:?}: {g:?} vs {r:?}");
            }
        }
        assert_eq!(gram.best_params, rows.best_params);
        let (pg, pr) = (
            gram.best_estimator.expect("refit").predict(x.view())?,
            rows.best_estimator.expect("refit").predict(x.view())?,
        );
        assert!(pg.iter().zip(pr.iter()).all(|(a, b)| (a - b).abs() < 1e-9));
    }
    Ok(())
}

#[test]
fn data_is_scattered_once_and_every_task_reads_it_by_key() -> Result<(), Box<dyn std::error::Error>> {
    let (x, y) = common::regression(1_000, 8, 7);
    let data = Dataset::new(x, y)?;
    let data_bytes = 1_000 * 9 * 8;
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let found = GridSearchCV::new(Estimator::ElasticNet, grid())
        .options(SearchOptions {
            preprocess: Preprocess::StandardScaler,
            ..Default::default()
        })
        .fit(&client, &data)?;
    let ledger = &found.ledger;
    let n_candidates = 12;
    // The table scattered once, as row blocks: one per worker thread.
    let info = client.scheduler_info()?;
    let threads: usize = info.workers.iter().map(|w| w.nthreads as usize).sum();
    let b = ledger.scattered_keys.len();
    assert_eq!(b, threads, "one block per worker thread");
    // b tasks reducing each block to per-fold moments (the only ones
    // reading the data, each one block), 5 folds and 1 all-rows reduction
    // merged from those (the elastic net shares Gram statistics), 12 x 5
    // fit tasks, 1 refit.
    assert_eq!(ledger.tasks, b + 5 + 1 + n_candidates * 5 + 1);
    for (i, block) in ledger.scattered_keys.iter().enumerate() {
        let readers: Vec<usize> = (0..ledger.tasks)
            .filter(|&t| ledger.arg_keys[t].contains(block))
            .collect();
        assert_eq!(readers, vec![i], "block {i} is read by its moments task only");
        assert_eq!(ledger.arg_keys[i], vec![block.clone()]);
    }
    let moment_keys = &ledger.task_keys[..b];
    assert!(ledger.arg_keys[b..b + 6].iter().all(|k| k == moment_keys));
    // Every fit task names exactly one key: its fold's.
    let fold_keys = &ledger.task_keys[b..b + 5];
    for k in &ledger.arg_keys[b + 6..b + 6 + n_candidates * 5] {
        assert_eq!(k.len(), 1);
        assert!(fold_keys.contains(&k[0]));
    }
    // The refit reads the statistics of all rows, not the rows.
    assert_eq!(ledger.arg_keys.last(), Some(&vec![ledger.task_keys[b + 5].clone()]));
    // What travels inline is hyperparameters: a few dozen bytes a task.
    assert!(ledger.largest_inline_arg < 100, "{}", ledger.largest_inline_arg);
    assert!(
        ledger.inline_arg_bytes * 20 < data_bytes,
        "{} inline bytes",
        ledger.inline_arg_bytes
    );
    Ok(())
}

/// The blocks are spread: each worker gets one per thread and reduces
/// them itself; and the scores equal those of a search over the same
/// table cut into one block, to rounding.
#[test]
fn the_table_is_split_across_the_workers_by_thread() -> Result<(), Box<dyn std::error::Error>> {
    let (x, y) = common::regression(2_000, 5, 11);
    let data = Dataset::new(x, y)?;
    let cluster = LocalCluster::builder().workers(3).threads_per_worker(2).build()?;
    let client = cluster.client()?;
    let search = GridSearchCV::new(Estimator::ElasticNet, grid()).options(SearchOptions {
        preprocess: Preprocess::StandardScaler,
        refit: false,
        ..Default::default()
    });
    let found = search.fit(&client, &data)?;
    assert_eq!(found.ledger.scattered_keys.len(), 6);
    // Each block was reduced where it was pushed: two on each worker.
    let per_worker = common::block_reducers(&client);
    assert_eq!(
        per_worker.values().copied().collect::<Vec<_>>(),
        vec![2, 2, 2],
        "{per_worker:?}"
    );
    let single = LocalCluster::builder().workers(1).threads_per_worker(1).build()?;
    let one = search.fit(&single.client()?, &data)?;
    assert_eq!(one.ledger.scattered_keys.len(), 1);
    common::assert_scores_close(
        &found.cv_results.split_test_scores,
        &one.cv_results.split_test_scores,
        1e-12,
        "six blocks against one",
    );
    assert_eq!(found.best_params, one.best_params);
    Ok(())
}

#[test]
fn randomized_search_draws_the_seeded_candidates() -> Result<(), Box<dyn std::error::Error>> {
    let (x, y) = common::regression(150, 3, 3);
    let data = Dataset::new(x.clone(), y.clone())?;
    let dist = ParamDistributions::new()
        .param("alpha", Distribution::LogUniform { low: 1e-3, high: 1.0 })
        .param("l1_ratio", Distribution::Uniform { low: 0.0, high: 1.0 });
    let cluster = LocalCluster::new(1)?;
    let client = cluster.client()?;
    let cv = KFold {
        n_splits: 3,
        shuffle_seed: Some(5),
    };
    let found = RandomizedSearchCV::new(Estimator::ElasticNet, dist.clone(), 6, 11)
        .options(SearchOptions {
            cv,
            preprocess: Preprocess::StandardScaler,
            refit: false,
            ..Default::default()
        })
        .fit(&client, &data)?;
    assert_eq!(found.cv_results.params, dist.sample(6, 11)?);
    assert!(found.best_estimator.is_none());
    for (i, p) in found.cv_results.params.iter().enumerate() {
        let want = local_scores(&x, &y, cv, p);
        let got = &found.cv_results.split_test_scores[i];
        assert!(
            got.iter().zip(&want).all(|(a, b)| (a - b).abs() < 1e-9),
            "{got:?} vs {want:?}"
        );
    }
    Ok(())
}

#[test]
fn bad_input_gives_clear_errors_and_the_cluster_carries_on() -> Result<(), Box<dyn std::error::Error>> {
    let (x, y) = common::regression(20, 2, 1);
    let data = Dataset::new(x, y)?;
    let cluster = LocalCluster::new(1)?;
    let client = cluster.client()?;
    let unknown = GridSearchCV::new(Estimator::ElasticNet, ParamGrid::new().param("alpah", &[1.0]))
        .fit(&client, &data)
        .unwrap_err();
    assert!(
        matches!(&unknown, Error::UnknownParam { name, .. } if name == "alpah"),
        "{unknown}"
    );
    assert!(unknown.to_string().contains("alpha, l1_ratio"), "{unknown}");

    let empty = GridSearchCV::new(Estimator::ElasticNet, ParamGrid::new())
        .fit(&client, &data)
        .unwrap_err();
    assert!(empty.to_string().contains("grid is empty"), "{empty}");

    let too_many = GridSearchCV::new(Estimator::ElasticNet, grid())
        .options(SearchOptions {
            cv: KFold::new(21),
            ..Default::default()
        })
        .fit(&client, &data)
        .unwrap_err();
    assert!(
        too_many
            .to_string()
            .contains("n_splits = 21 greater than the number of samples: 20"),
        "{too_many}"
    );

    let bad_value = GridSearchCV::new(Estimator::ElasticNet, ParamGrid::new().param("l1_ratio", &[2.0]))
        .fit(&client, &data)
        .unwrap_err();
    assert!(bad_value.to_string().contains("ElasticNet"), "{bad_value}");

    let mismatch = Dataset::new(
        rdask_array::ndarray::Array2::zeros((3, 2)),
        rdask_array::ndarray::Array1::zeros(2),
    );
    assert!(mismatch.unwrap_err().to_string().contains("3 rows but y has 2"));

    // Nothing was submitted for those; a good search still runs.
    let ok = GridSearchCV::new(Estimator::ElasticNet, ParamGrid::new().param("alpha", &[0.1]))
        .options(SearchOptions {
            cv: KFold::new(2),
            ..Default::default()
        })
        .fit(&client, &data)?;
    assert_eq!(ok.cv_results.params.len(), 1);
    Ok(())
}
