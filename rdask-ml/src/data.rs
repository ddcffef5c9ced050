//! [`Dataset`]: a design matrix and its targets, the unit a search scatters
//! once and its tasks read by key. Both travel as [`rdask_array::Chunk`]s
//! (raw little-endian `f64` bytes, one copy to decode), so a 1M x 10 table
//! is one 80 MB msgpack `bin`, not ten million msgpack numbers.
//!
//! linfa 0.8 is built on ndarray 0.16 while rdask-array uses 0.17: linfa
//! is handed views over the same memory ([`Dataset::columns`]) of a
//! dataset kept column-major (a search's folds, made so once per fold), or
//! copies made through a flat `Vec<f64>` ([`Dataset::to_linfa`]).

use rdask_array::ndarray::{Array1, Array2, ArrayView1, ArrayView2, Axis, Ix1, Ix2};
use rdask_array::Chunk;
use serde::{Deserialize, Serialize};

use crate::Error;

/// Rows of `x` (samples by features) with one target each in `y`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Dataset {
    /// `n_samples x n_features`, or its transpose when `column_major`.
    x: Chunk,
    y: Chunk,
    /// `x` is stored transposed: the matrix in column-major order, each
    /// feature's values contiguous, the layout linfa's coordinate descent
    /// reads (see [`Dataset::to_column_major`]).
    #[serde(default)]
    column_major: bool,
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
            column_major: false,
        })
    }

    /// Number of samples.
    pub fn n_samples(&self) -> usize {
        self.y.len()
    }

    /// Number of features.
    pub fn n_features(&self) -> usize {
        self.x().ncols()
    }

    /// The design matrix.
    pub fn x(&self) -> ArrayView2<'_, f64> {
        // `new` and `take` only build 2-d x and 1-d y.
        let stored = self.x.view().into_dimensionality::<Ix2>().expect("x is 2-d");
        if self.column_major {
            stored.reversed_axes()
        } else {
            stored
        }
    }

    /// The targets.
    pub fn y(&self) -> ArrayView1<'_, f64> {
        self.y.view().into_dimensionality::<Ix1>().expect("y is 1-d")
    }

    /// `x`'s values row after row (`n_samples * n_features`): the stored
    /// memory itself when it is stored row-major and contiguous (a
    /// scattered table, a fold's test part), a copy otherwise.
    pub(crate) fn row_major(&self) -> std::borrow::Cow<'_, [f64]> {
        match self.x.as_slice() {
            Some(s) if !self.column_major => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(self.x().iter().copied().collect()),
        }
    }

    /// `x`'s values feature after feature (`n_features * n_samples`): the
    /// stored memory itself when it is stored column-major, a copy
    /// otherwise.
    pub(crate) fn feature_major(&self) -> std::borrow::Cow<'_, [f64]> {
        match self.x.as_slice() {
            Some(s) if self.column_major => std::borrow::Cow::Borrowed(s),
            _ => std::borrow::Cow::Owned(self.x().t().iter().copied().collect()),
        }
    }

    /// The rows `idx`, in that order (a fold's train or test part).
    pub fn take(&self, idx: &[usize]) -> Dataset {
        Dataset {
            x: Chunk(self.x().select(Axis(0), idx).into_dyn()),
            y: Chunk(self.y().select(Axis(0), idx).into_dyn()),
            column_major: false,
        }
    }

    /// `x` replaced (same rows), e.g. by its scaled form.
    /// x's and y's memory, when x is stored row-major and contiguous (a
    /// table made by [`Dataset::new`] from a standard-layout array).
    pub(crate) fn row_major_parts(&self) -> Option<(&[f64], &[f64])> {
        if self.column_major {
            return None;
        }
        Some((self.x.as_slice()?, self.y.as_slice()?))
    }

    /// The same rows stored row-major and contiguous (itself when so
    /// already): what a search's row blocks are encoded from.
    pub fn to_row_major(&self) -> Dataset {
        if self.row_major_parts().is_some() {
            return self.clone();
        }
        Dataset {
            x: Chunk(self.x().as_standard_layout().into_owned().into_dyn()),
            y: Chunk(self.y().as_standard_layout().into_owned().into_dyn()),
            column_major: false,
        }
    }

    /// From its wire parts (a [`crate::DatasetView`] copied out).
    pub(crate) fn from_chunks(x: Chunk, y: Chunk, column_major: bool) -> Dataset {
        Dataset { x, y, column_major }
    }

    pub(crate) fn with_x(&self, x: Array2<f64>) -> Dataset {
        Dataset {
            x: Chunk(x.into_dyn()),
            y: self.y.clone(),
            column_major: false,
        }
    }

    /// The same data with `x` stored column-major (one copy, made once: a
    /// search does it per fold in `prepare_fold`), so that every fit on it
    /// reads it in place through [`Dataset::columns`] instead of copying
    /// it into linfa's layout first (a transposing copy of the whole train
    /// part per fit was a sixth of a grid search's time).
    pub fn to_column_major(&self) -> Dataset {
        if self.column_major {
            return self.clone();
        }
        let t = self.x().t().as_standard_layout().into_owned();
        Dataset {
            x: Chunk(t.into_dyn()),
            y: self.y.clone(),
            column_major: true,
        }
    }

    /// `x` as linfa's column-major matrix and `y` as its vector, both
    /// views over this dataset's memory when `x` is stored column-major,
    /// copies otherwise. `f` gets them.
    pub fn columns<R>(&self, f: impl FnOnce(ndarray16::ArrayView2<'_, f64>, ndarray16::ArrayView1<'_, f64>) -> R) -> R {
        use ndarray16::ShapeBuilder;
        let (n, d) = (self.n_samples(), self.n_features());
        let flat = self.feature_major();
        let y: std::borrow::Cow<'_, [f64]> = match self.y.as_slice() {
            Some(s) => std::borrow::Cow::Borrowed(s),
            None => std::borrow::Cow::Owned(self.y().to_vec()),
        };
        let x = ndarray16::ArrayView2::from_shape((n, d).f(), &flat)
            .expect("a column-major matrix has the shape it came from");
        f(x, ndarray16::ArrayView1::from(&y[..]))
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

#[cfg(test)]
mod tests {
    use super::*;
    use rdask_array::ndarray::array;

    #[test]
    fn column_major_storage_reads_the_same_and_hands_linfa_the_same_matrix() {
        let d = Dataset::new(array![[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]], array![7.0, 8.0]).unwrap();
        let c = d.to_column_major();
        assert!(c.column_major && !d.column_major);
        assert_eq!(c.x(), d.x());
        assert_eq!((c.n_samples(), c.n_features()), (2, 3));
        assert_eq!(c.take(&[1]).x(), d.take(&[1]).x());
        // The round trip through the wire keeps the layout.
        let back: Dataset = rdask::task::decode_value(&rdask::task::encode_value(&c).unwrap()).unwrap();
        assert_eq!(back, c);
        let (lx, ly) = d.to_linfa();
        for ds in [&d, &c] {
            ds.columns(|x, y| {
                assert_eq!(x, lx.view());
                assert_eq!(y, ly.view());
                // linfa's layout: each feature's values contiguous.
                assert_eq!(x.strides(), &[1, 2]);
            });
        }
        // Stored column-major, the view is the dataset's own memory.
        let ptr = c.x.as_slice().map(<[f64]>::as_ptr);
        c.columns(|x, _| assert_eq!(Some(x.as_ptr()), ptr));
    }
}
