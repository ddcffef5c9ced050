//! [`Dataset`]: a design matrix and its targets, the unit a search scatters
//! once and its tasks read by key. Both travel as [`rdask_array::Chunk`]s
//! (raw little-endian `f64` bytes, one copy to decode), so a 1M x 10 table
//! is one 80 MB msgpack `bin`, not ten million msgpack numbers.
//!
//! linfa 0.8 is built on ndarray 0.16 while rdask-array uses 0.17: the
//! conversions to linfa's types ([`Dataset::to_linfa`]) go through a flat
//! `Vec<f64>`, the matrix in column-major order (one copy).

use rdask_array::ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Ix1, Ix2};
use rdask_array::Chunk;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Rows of `x` (samples by features) with one target each in `y`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    x: Chunk,
    y: Chunk,
}

impl Dataset {
    /// A dataset of `x` (`n_samples x n_features`) and `y` (`n_samples`):
    /// an error if the lengths differ or a value is not finite.
    pub fn new(x: Array2<f64>, y: Array1<f64>) -> Result<Dataset, Error> {
        if x.nrows() != y.len() {
            return Err(Error::Input(format!(
                "x has {} rows but y has {} targets",
                x.nrows(),
                y.len()
            )));
        }
        if let Some(bad) = x.iter().chain(y.iter()).find(|v| !v.is_finite()) {
            return Err(Error::Input(format!("data holds a value that is not finite: {bad}")));
        }
        Ok(Dataset {
            x: Chunk(x.into_dyn()),
            y: Chunk(y.into_dyn()),
        })
    }

    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        self.y.len()
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.x.shape().get(1).copied().unwrap_or(0)
    }

    /// The design matrix.
    pub fn x(&self) -> ArrayView2<'_, f64> {
        // `new` and `take` only build 2-d x and 1-d y.
        self.x.view().into_dimensionality::<Ix2>().expect("x is 2-d")
    }

    /// The targets.
    pub fn y(&self) -> ArrayView1<'_, f64> {
        self.y.view().into_dimensionality::<Ix1>().expect("y is 1-d")
    }

    /// The rows `idx`, in that order (a fold's train or test part).
    pub fn take(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: Chunk(self.x().select(Axis(0), idx).into_dyn()),
            y: Chunk(self.y().select(Axis(0), idx).into_dyn()),
        }
    }

    /// `x` replaced (same rows), e.g. by its scaled form.
    pub(crate) fn with_x(&self, x: Array2<f64>) -> Dataset {
        Dataset {
            x: Chunk(x.into_dyn()),
            y: self.y.clone(),
        }
    }

    /// The same data as linfa's ndarray 0.16 arrays, through a flat `Vec`.
    /// The matrix is column-major (Fortran order, as scikit-learn hands its
    /// coordinate descent): linfa's elastic net walks it one feature column
    /// at a time, which is then contiguous.
    pub fn to_linfa(&self) -> (ndarray16::Array2<f64>, ndarray16::Array1<f64>) {
        use ndarray16::ShapeBuilder;
        let x = self.x();
        let flat: Vec<f64> = x.t().iter().copied().collect();
        let xs = ndarray16::Array2::from_shape_vec((x.nrows(), x.ncols()).f(), flat)
            .expect("a column-major copy has the shape it came from");
        (xs, ndarray16::Array1::from_vec(self.y().to_vec()))
    }
}
