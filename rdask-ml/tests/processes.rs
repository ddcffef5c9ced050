//! The searches and post-fit on real processes: a scheduler and two
//! 1-thread workers, each the `rdask-ml` binary (the `rdask` command line
//! with this crate's tasks linked in), reached over TCP.

mod common;
mod procs;

use rdask_array as da;
use rdask_ml::model_selection::{
    Estimator, GridSearchCV, IncrementalOptions, KFold, ParamGrid, Preprocess, SearchOptions, SuccessiveHalvingSearchCV,
};
use rdask_ml::postfit::ParallelPostFit;
use rdask_ml::Dataset;

#[test]
fn searches_and_post_fit_run_on_real_scheduler_and_worker_processes() -> Result<(), Box<dyn std::error::Error>> {
    let (_procs, client) = procs::cluster();

    let (x, y) = common::regression(400, 4, 17);
    let data = Dataset::new(x.clone(), y)?;
    let grid = ParamGrid::new()
        .param("alpha", &[0.01, 0.3, 2.0])
        .param("l1_ratio", &[0.0, 1.0]);
    let opts = SearchOptions {
        cv: KFold::new(3),
        preprocess: Preprocess::StandardScaler,
        ..Default::default()
    };
    let found = GridSearchCV::new(Estimator::ElasticNet, grid.clone())
        .options(opts.clone())
        .fit(&client, &data)?;
    // The same search on the embedded cluster gives the same table.
    let cluster = rdask::LocalCluster::new(1)?;
    let local = GridSearchCV::new(Estimator::ElasticNet, grid)
        .options(opts)
        .fit(&cluster.client()?, &data)?;
    // (To rounding: the table went as two blocks here, one there, and
    // the blocks' moments are merged.)
    common::assert_scores_close(
        &found.cv_results.split_test_scores,
        &local.cv_results.split_test_scores,
        1e-12,
        "processes against embedded",
    );
    assert_eq!(found.best_params, local.best_params);
    // The table went as one block per worker, each reduced on its worker.
    assert_eq!(found.ledger.scattered_keys.len(), 2);
    let reducers = common::block_reducers(&client);
    assert_eq!(
        reducers.values().copied().collect::<Vec<_>>(),
        vec![1, 1],
        "{reducers:?}"
    );

    // The refitted model predicts per block on the workers.
    let model = found.best_estimator.expect("refit");
    let want = model.predict(x.view())?;
    let arr = da::from_array(&x, &[90, 4])?;
    let got = ParallelPostFit::new(model).predict(&client, &arr)?.compute(&client)?;
    assert_eq!(got.as_slice(), want.as_slice());

    // Successive halving with models kept on the workers between rounds.
    let labels = common::classification(300, 3, 2);
    let candidates = ParamGrid::new()
        .param("eta0", &[1e-6, 0.05])
        .param("alpha", &[1e-4, 5.0])
        .candidates()?;
    let halving = SuccessiveHalvingSearchCV::new(candidates, 1)
        .options(IncrementalOptions {
            max_iter: 4,
            aggressiveness: 2,
            ..Default::default()
        })
        .fit(&client, &labels)?;
    assert_eq!(halving.partial_fit_calls.iter().filter(|&&c| c == 4).count(), 1);
    assert_eq!(halving.partial_fit_calls[halving.best_index], 4);
    Ok(())
}
