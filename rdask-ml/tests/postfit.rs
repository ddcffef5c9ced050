//! ParallelPostFit on the embedded LocalCluster: predictions per block of
//! an array of several blocks equal the model's prediction on the whole
//! matrix in one piece.

mod common;

use rdask::LocalCluster;
use rdask_array as da;
use rdask_ml::model_selection::{Estimator, FittedPipeline, ParamGrid, Preprocess};
use rdask_ml::postfit::ParallelPostFit;
use rdask_ml::Dataset;

#[test]
fn predictions_per_block_equal_the_local_prediction() -> Result<(), Box<dyn std::error::Error>> {
    let (x, y) = common::regression(300, 4, 5);
    let data = Dataset::new(x.clone(), y)?;
    let params = &ParamGrid::new().param("alpha", &[0.1]).candidates()?[0];
    let model = FittedPipeline::fit(Estimator::ElasticNet, params, Preprocess::StandardScaler, &data)?;
    let want = model.predict(x.view())?;

    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let arr = da::from_array(&x, &[64, 4])?;
    assert_eq!(arr.numblocks(), vec![5, 1]);
    let wrapped = ParallelPostFit::new(model);
    let pred = wrapped.predict(&client, &arr)?;
    assert_eq!(pred.shape(), &[300]);
    assert_eq!(pred.numblocks(), vec![5]);
    let got = pred.compute(&client)?;
    assert_eq!(got.as_slice(), want.as_slice());
    // Reductions compose with the lazy result.
    let mean = pred.mean_axes(&[0], false)?.compute(&client)?.sum();
    assert!((mean - want.mean().unwrap_or(0.0)).abs() < 1e-9);

    // Blocks across features, and a wrong width, are clear errors.
    let split = da::from_array(&x, &[64, 2])?;
    let err = wrapped.predict(&client, &split).unwrap_err().to_string();
    assert!(err.contains("rechunk"), "{err}");
    let narrow = da::zeros(&[10, 3], &[5, 3])?;
    let err = wrapped.predict(&client, &narrow).unwrap_err().to_string();
    assert!(err.contains("fitted on 4 features"), "{err}");
    Ok(())
}
