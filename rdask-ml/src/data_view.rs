//! Borrowed wire forms of a [`Dataset`], so that a large table crosses the
//! cluster with one copy, the encoding: [`DatasetRows`] encodes a run of a
//! table's rows as a `Dataset` of their own without copying them out
//! first (a search scatters its table as such blocks), and [`DatasetView`]
//! is a task parameter that reads a scattered `Dataset` where the worker
//! holds it (no decoding into fresh pages: reducing a block to its moments
//! is then one pass over the bytes, not a copy and a pass).

use std::borrow::Cow;
use std::fmt;
use std::ops::Range;

use rdask_array::ChunkView;
use serde::de::{self, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::{Dataset, Error};

/// Rows of a dataset stored row-major, encoded exactly as the `Dataset`
/// of those rows ([`Dataset::take`]) encodes (a test checks the bytes), so
/// a worker decodes it as a `Dataset` or reads it as a [`DatasetView`].
#[derive(Debug, Serialize)]
pub struct DatasetRows<'a> {
    x: ChunkBytes<'a>,
    y: ChunkBytes<'a>,
    column_major: bool,
}

/// A block's wire form (`[shape, bin]`, as `rdask_array::Chunk`) over
/// elements borrowed from the caller.
#[derive(Debug)]
struct ChunkBytes<'a> {
    shape: Vec<u64>,
    bytes: &'a [u8],
}

impl Serialize for ChunkBytes<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&self.shape)?;
        t.serialize_element(serde_bytes::Bytes::new(self.bytes))?;
        t.end()
    }
}

impl<'a> DatasetRows<'a> {
    /// Rows `rows` of `data`; `None` when its memory is not row-major
    /// little-endian `f64`s (the caller then copies the rows out with
    /// [`Dataset::take`]) or the range is out of bounds.
    pub fn of(data: &'a Dataset, rows: Range<usize>) -> Option<DatasetRows<'a>> {
        let (x, y) = data.row_major_parts()?;
        let p = data.n_features();
        if !cfg!(target_endian = "little") || rows.start > rows.end || rows.end > data.n_samples() {
            return None;
        }
        let n = (rows.end - rows.start) as u64;
        Some(DatasetRows {
            x: ChunkBytes {
                shape: vec![n, p as u64],
                bytes: bytemuck::cast_slice(&x[rows.start * p..rows.end * p]),
            },
            y: ChunkBytes {
                shape: vec![n],
                bytes: bytemuck::cast_slice(&y[rows]),
            },
            column_major: false,
        })
    }
}

/// A scattered [`Dataset`] read in place by a task (a parameter of type
/// `DatasetView<'_>` takes a `Dataset` from clients): its rows are
/// borrowed from the argument's bytes for the call.
#[derive(Debug)]
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

impl DatasetView<'_> {
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
