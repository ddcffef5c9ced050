//! Dask-ML's `ParallelPostFit`: a model fitted on one machine (or by a
//! search's refit) applied to an rdask [`Array`] block by block, so the
//! data to predict on may be far larger than one machine's memory. The
//! model is scattered once and every block's task reads it by key.

use rdask::delayed::delayed;
use rdask::Client;
use rdask_array::ndarray::{Ix2, IxDyn};
use rdask_array::{Array, Chunk};

use crate::model_selection::FittedPipeline;
use crate::Error;

/// A fitted model whose `predict` runs per block of an array.
#[derive(Clone, Debug, PartialEq)]
pub struct ParallelPostFit {
    /// The fitted model (with its preprocessing).
    pub estimator: FittedPipeline,
}

impl ParallelPostFit {
    /// Wraps `estimator`.
    pub fn new(estimator: FittedPipeline) -> ParallelPostFit {
        ParallelPostFit { estimator }
    }

    /// Lazy predictions for the rows of `x` (2-d, `n x n_features`,
    /// chunked along rows only: one block across all features, as
    /// Dask-ML requires), one block of predictions per block of rows. The
    /// model is scattered to `client`'s cluster now; compute the result
    /// there.
    pub fn predict(&self, client: &Client, x: &Array) -> Result<Array, Error> {
        if x.ndim() != 2 {
            return Err(Error::Input(format!(
                "predict takes a 2-d array, got {} axes",
                x.ndim()
            )));
        }
        let width = self.estimator.model.n_features();
        if x.shape()[1] != width {
            return Err(Error::Input(format!(
                "the model was fitted on {width} features, the array has {}",
                x.shape()[1]
            )));
        }
        if x.numblocks()[1] != 1 {
            return Err(Error::Input(format!(
                "the array is split into {} blocks across its features; rechunk it to one ({width} columns)",
                x.numblocks()[1]
            )));
        }
        let model = client
            .scatter(vec![self.estimator.clone()])?
            .pop()
            .ok_or_else(|| Error::Input("scatter returned no future".into()))?;
        let blocks = x
            .to_delayed()
            .iter()
            .map(|b| delayed(predict_block, (&model, b)))
            .collect();
        let rows = x.chunks()[0].clone();
        Ok(Array::from_delayed(&[x.shape()[0]], vec![rows], blocks)?)
    }
}

/// The predictions for one block of rows.
#[rdask::task]
pub fn predict_block(model: FittedPipeline, block: Chunk) -> Result<Chunk, Error> {
    let x = block
        .view()
        .into_dimensionality::<Ix2>()
        .map_err(|e| Error::Input(format!("a block of rows must be 2-d: {e}")))?;
    let y = model.predict(x)?;
    let n = y.len();
    Ok(Chunk(
        y.into_shape_with_order(IxDyn(&[n]))
            .map_err(|e| Error::Input(e.to_string()))?,
    ))
}
