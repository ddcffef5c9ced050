//! A grid search end to end on the embedded cluster: a random regression
//! table, elastic net over 12 candidates x 5 folds with a standard scaler
//! fitted once per fold, the scores table, the refitted best model, and its
//! predictions per block of an rdask Array (`ParallelPostFit`).
//!
//! ```text
//! cargo run -p rdask-ml --example grid_search
//! ```

use rdask::LocalCluster;
use rdask_array::ndarray::{Array1, Array2};
use rdask_ml::model_selection::{Estimator, GridSearchCV, ParamGrid, Preprocess, SearchOptions};
use rdask_ml::postfit::ParallelPostFit;
use rdask_ml::Dataset;

/// Rows of the example table.
const ROWS: usize = 20_000;
/// Features of the example table.
const FEATURES: usize = 6;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    // y = x . w + noise, from a small deterministic generator (xorshift).
    let mut state = 0x2545_f491_4f6c_dd1du64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        (state >> 11) as f64 / (1u64 << 53) as f64 - 0.5
    };
    let x = Array2::from_shape_simple_fn((ROWS, FEATURES), &mut next);
    let w = [1.5, -2.0, 0.0, 0.7, 0.0, 3.0];
    let y: Array1<f64> = x
        .rows()
        .into_iter()
        .map(|r| r.iter().zip(&w).map(|(a, b)| a * b).sum::<f64>() + 0.1 * next())
        .collect();
    let data = Dataset::new(x.clone(), y)?;

    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let grid = ParamGrid::new()
        .param("alpha", &[1e-4, 1e-3, 1e-2, 1e-1])
        .param("l1_ratio", &[0.0, 0.5, 1.0]);
    let found = GridSearchCV::new(Estimator::ElasticNet, grid)
        .options(SearchOptions {
            preprocess: Preprocess::StandardScaler,
            ..Default::default()
        })
        .fit(&client, &data)?;
    print!("{}", found.cv_results.to_table());
    println!(
        "best_params_ = {:?}, best_score_ = {:.5}",
        found.best_params, found.best_score
    );
    println!(
        "{} tasks, data scattered once ({} row blocks, one per worker thread), {} bytes of hyperparameters sent inline",
        found.ledger.tasks,
        found.ledger.scattered_keys.len(),
        found.ledger.inline_arg_bytes
    );

    let model = found.best_estimator.ok_or("refit is on by default")?;
    let blocks = rdask_array::from_array(&x, &[5_000, FEATURES])?;
    let pred = ParallelPostFit::new(model.clone())
        .predict(&client, &blocks)?
        .compute(&client)?;
    let local = model.predict(x.view())?;
    println!(
        "ParallelPostFit over {} blocks: first predictions {:?}, equal to the local ones: {}",
        blocks.numblocks()[0],
        &pred.as_slice().unwrap_or(&[])[..3],
        pred.as_slice() == local.as_slice()
    );
    Ok(())
}
