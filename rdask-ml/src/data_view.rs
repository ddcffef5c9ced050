//! [`DatasetView`]: a [`Dataset`]'s wire form over borrowed memory, so
//! that a large table crosses the cluster with one copy, the encoding. It
//! encodes a run of a table's rows as a `Dataset` of their own without
//! copying them out first (a search scatters its table as such blocks),
//! and as a task parameter it reads a scattered `Dataset` where the worker
//! holds it (no decoding into fresh pages: reducing a block to its moments
//! is then one pass over the bytes, not a copy and a pass).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use rdask_array::ChunkView;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::{Deserialize, Deserializer, Serialize};

use crate::{Dataset, Error};

/// A [`Dataset`]'s wire form over borrowed memory, both ways: a scattered
/// `Dataset` read in place by a task (a parameter of type
/// `DatasetView<'_>` takes a `Dataset` from clients: its rows are borrowed
/// from the argument's bytes for the call), and rows of a caller's table
/// encoded as the `Dataset` of those rows without copying them out first
/// ([`DatasetView::rows_of`]; a test checks the bytes equal
/// [`Dataset::take`]'s).
#[derive(Debug, Serialize)]
pub struct DatasetView<'a> {
    x: ChunkView<'a>,
    y: ChunkView<'a>,
    column_major: bool,
}

impl<'de> Deserialize<'de> for DatasetView<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<DatasetView<'de>, D::Error> {
        d.deserialize_map(ViewVisitor)
    }
}

/// Reads `Dataset`'s wire form, a map of `x`, `y` and `column_major`
/// (serde's derive cannot borrow a field whose view is tied to the input).
struct ViewVisitor;

impl<'de> Visitor<'de> for ViewVisitor {
    type Value = DatasetView<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a dataset: a map of x, y and column_major")
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<DatasetView<'de>, A::Error> {
        let x = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let y = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let column_major = seq.next_element()?.unwrap_or(false);
        Ok(DatasetView { x, y, column_major })
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<DatasetView<'de>, A::Error> {
        let (mut x, mut y, mut column_major) = (None, None, false);
        while let Some(field) = map.next_key::<Cow<'de, str>>()? {
            match &*field {
                "x" => x = Some(map.next_value()?),
                "y" => y = Some(map.next_value()?),
                "column_major" => column_major = map.next_value()?,
                _ => {
                    map.next_value::<IgnoredAny>()?;
                }
            }
        }
        Ok(DatasetView {
            x: x.ok_or_else(|| de::Error::missing_field("x"))?,
            y: y.ok_or_else(|| de::Error::missing_field("y"))?,
            column_major,
        })
    }
}

impl rdask::task::BorrowedArg for DatasetView<'_> {
    type Owned = Dataset;
}

impl<'a> DatasetView<'a> {
    /// Rows `rows` of `data`, borrowed; `None` when its memory is not
    /// row-major (the caller then makes a row-major copy,
    /// [`Dataset::to_row_major`]), the range is out of bounds, or the
    /// machine is big-endian.
    pub fn rows_of(data: &'a Dataset, rows: Range<usize>) -> Option<DatasetView<'a>> {
        let (x, y) = data.row_major_parts()?;
        let p = data.n_features();
        if rows.start > rows.end || rows.end > data.n_samples() {
            return None;
        }
        let n = rows.end - rows.start;
        Some(DatasetView {
            x: ChunkView::borrowed(vec![n, p], &x[rows.start * p..rows.end * p])?,
            y: ChunkView::borrowed(vec![n], &y[rows])?,
            column_major: false,
        })
    }

    /// `(rows, features)`, or an error when the shapes do not make a
    /// table (x not 2-d, y not 1-d, or their rows differ).
    pub fn shape(&self) -> Result<(usize, usize), Error> {
        let (xs, ys) = (self.x.shape(), self.y.shape());
        // Stored column-major, x's memory is its transpose (`p x n`).
        let (n, p) = match (xs, self.column_major) {
            ([a, b], false) => (*a, *b),
            ([a, b], true) => (*b, *a),
            _ => (usize::MAX, 0),
        };
        match ys {
            [m] if *m == n => Ok((n, p)),
            _ => Err(Error::Input(format!(
                "not a dataset: x of shape {xs:?} and y of shape {ys:?}"
            ))),
        }
    }

    /// The targets (borrowed when their bytes are aligned, else copied).
    pub fn y(&self) -> Result<Cow<'_, [f64]>, Error> {
        Ok(match self.y.as_slice() {
            Some(s) => Cow::Borrowed(s),
            None => Cow::Owned(self.y.to_chunk()?.iter().copied().collect()),
        })
    }

    /// Calls `f(first_row, x_rows)` on successive runs of the rows in
    /// `rows`, row-major ([`ChunkView::for_each_rows_in`]); an error for a
    /// dataset stored column-major (read it with [`Self::to_dataset`]).
    pub fn for_each_rows_in(&self, rows: Range<usize>, f: impl FnMut(usize, &[f64])) -> Result<(), Error> {
        if self.column_major {
            return Err(Error::Input(
                "a column-major dataset cannot be read by rows in place".into(),
            ));
        }
        self.x.for_each_rows_in(rows, f);
        Ok(())
    }

    /// An owned copy.
    pub fn to_dataset(&self) -> Result<Dataset, Error> {
        self.shape()?;
        Ok(Dataset::from_chunks(
            self.x.to_chunk()?,
            self.y.to_chunk()?,
            self.column_major,
        ))
    }
}

#[cfg(test)]
#[path = "data_view_tests.rs"]
mod tests;
