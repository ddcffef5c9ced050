//! [`ChunkView`]: a block read where the worker holds it. A task parameter
//! of type `ChunkView<'_>` (instead of [`Chunk`]) borrows the elements from
//! the argument's bytes for the call: no copy of the block into a fresh
//! buffer, and no fresh pages to fault in. A k-means step reads each 40 MB
//! block once; decoding it as a `Chunk` first cost a `memcpy` and the
//! kernel's zeroing of 40 MB of new pages, a fifth of the step's CPU.
//!
//! The elements sit in the msgpack `bin` of [`Chunk`]'s wire form, at
//! whatever offset the frame put them, so seldom 8-byte aligned: a kernel
//! takes them a run of whole rows at a time ([`ChunkView::for_each_rows`]),
//! as `&[f64]` borrowed when aligned, otherwise copied into one small buffer
//! that stays in cache.

use std::borrow::Cow;
use std::fmt;

use serde::de::{self, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Chunk;

/// Bytes per element on the wire.
const ELEMENT_BYTES: usize = std::mem::size_of::<f64>();

/// Most bytes of rows one call of [`ChunkView::for_each_rows`]'s closure
/// gets when the rows are copied (unaligned bytes): small enough to stay in
/// the first-level cache, large enough that the call per run costs nothing.
pub const ROWS_RUN_BYTES: usize = 16 << 10;

/// A block's shape and its elements' little-endian bytes in C order,
/// borrowed from a task's argument (see the module doc).
#[derive(Clone, Debug, PartialEq)]
pub struct ChunkView<'a> {
    shape: Vec<usize>,
    bytes: Cow<'a, [u8]>,
}

impl rdask::task::BorrowedArg for ChunkView<'_> {
    type Owned = Chunk;
}

impl<'a> ChunkView<'a> {
    /// A view of `elements` (C order) as a block of `shape`, borrowing
    /// them: its wire form is [`Chunk`]'s, written without a copy first.
    /// `None` when the shape does not hold that many elements, or on a
    /// big-endian machine (the wire form is little-endian).
    pub fn borrowed(shape: Vec<usize>, elements: &'a [f64]) -> Option<ChunkView<'a>> {
        let fits = shape.iter().try_fold(1usize, |n, &d| n.checked_mul(d)) == Some(elements.len());
        (fits && cfg!(target_endian = "little")).then(|| ChunkView {
            shape,
            bytes: Cow::Borrowed(bytemuck::cast_slice(elements)),
        })
    }

    /// The block's shape.
    pub fn shape(&self) -> &[usize] {
        &self.shape
    }

    /// Number of elements.
    pub fn len(&self) -> usize {
        self.bytes.len() / ELEMENT_BYTES
    }

    /// Whether it has no elements.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Elements per row: the product of the shape past the first axis (1
    /// for a 1-d block).
    pub fn row_len(&self) -> usize {
        self.shape.iter().skip(1).product()
    }

    /// Number of rows (the first axis' length; 1 for a 0-d block).
    pub fn rows(&self) -> usize {
        self.shape.first().copied().unwrap_or(1)
    }

    /// The elements as a slice, where the bytes happen to be aligned (and
    /// the machine little-endian).
    pub fn as_slice(&self) -> Option<&[f64]> {
        if cfg!(target_endian = "little") {
            bytemuck::try_cast_slice(&self.bytes).ok()
        } else {
            None
        }
    }

    /// Calls `f(first_row, elements)` on successive runs of whole rows in
    /// order, `elements` row-major (`row_len()` per row): the whole block
    /// at once when aligned, otherwise runs of at most [`ROWS_RUN_BYTES`]
    /// (at least one row) copied into one buffer.
    pub fn for_each_rows(&self, f: impl FnMut(usize, &[f64])) {
        self.for_each_rows_in(0..self.rows(), f);
    }

    /// As [`for_each_rows`](Self::for_each_rows), over the rows in `rows`
    /// only (clipped to the block): `f(first_row, elements)` with
    /// `first_row` counted from the block's start.
    pub fn for_each_rows_in(&self, rows: std::ops::Range<usize>, mut f: impl FnMut(usize, &[f64])) {
        let (start, end) = (rows.start.min(self.rows()), rows.end.min(self.rows()));
        let row_len = self.row_len();
        if start >= end || row_len == 0 {
            return;
        }
        if let Some(all) = self.as_slice() {
            f(start, &all[start * row_len..end * row_len]);
            return;
        }
        let row_bytes = row_len * ELEMENT_BYTES;
        let rows_per_run = (ROWS_RUN_BYTES / row_bytes).max(1);
        let mut buf = vec![0.0f64; rows_per_run * row_len];
        let wanted = &self.bytes[start * row_bytes..end * row_bytes];
        for (run, bytes) in wanted.chunks(rows_per_run * row_bytes).enumerate() {
            let out = &mut buf[..bytes.len() / ELEMENT_BYTES];
            for (x, b) in out.iter_mut().zip(bytes.chunks_exact(ELEMENT_BYTES)) {
                *x = f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]);
            }
            f(start + run * rows_per_run, out);
        }
    }

    /// The elements as an owned block.
    pub fn to_chunk(&self) -> Result<Chunk, crate::Error> {
        let mut v = crate::buffer::with_capacity(self.len());
        self.for_each_rows(|_, run| v.extend_from_slice(run));
        ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&self.shape), v)
            .map(Chunk)
            .map_err(|e| crate::Error::Shape(format!("a view of shape {:?}: {e}", self.shape)))
    }
}

struct ViewVisitor;

impl<'de> Visitor<'de> for ViewVisitor {
    type Value = ChunkView<'de>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chunk: [shape, bytes]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<ChunkView<'de>, A::Error> {
        let shape: Vec<u64> = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        // The elements' `bin`, borrowed when the deserializer lends it (the
        // core's `BlobView` reads a `bin` so).
        let bytes = seq
            .next_element::<rdask::task::BlobView<'de>>()?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?
            .0;
        let shape: Vec<usize> = shape.into_iter().map(|d| d as usize).collect();
        let want = shape
            .iter()
            .try_fold(ELEMENT_BYTES, |n, &d| n.checked_mul(d))
            .ok_or_else(|| de::Error::custom(format!("chunk of shape {shape:?}: too large")))?;
        if bytes.len() != want {
            return Err(de::Error::custom(format!(
                "chunk of shape {shape:?}: {} bytes of elements, expected {want}",
                bytes.len()
            )));
        }
        Ok(ChunkView { shape, bytes })
    }
}

/// [`Chunk`]'s wire form, `[shape, bin]`.
impl Serialize for ChunkView<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let shape: Vec<u64> = self.shape.iter().map(|&d| d as u64).collect();
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&shape)?;
        t.serialize_element(serde_bytes::Bytes::new(&self.bytes))?;
        t.end()
    }
}

impl<'de> Deserialize<'de> for ChunkView<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<ChunkView<'de>, D::Error> {
        d.deserialize_tuple(2, ViewVisitor)
    }
}

#[cfg(test)]
#[path = "view_tests.rs"]
mod tests;
