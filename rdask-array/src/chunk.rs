//! [`Chunk`]: one block of an array, an `ndarray::ArrayD<f64>` with a
//! compact wire form. ndarray's own serde form is a msgpack list of numbers
//! (9 bytes per `f64`, parsed one by one); a chunk travels instead as
//! `[shape, bin]`: the shape as a list of integers, then the elements as raw
//! little-endian bytes in logical (C) order, one msgpack `bin`. On a
//! little-endian machine a block in standard layout is written as its own
//! memory (no per-element conversion, no intermediate buffer), and
//! decoding copies the bytes straight into the element vector (one
//! `memcpy`): a block costs one copy each way.

use std::fmt;

use ndarray::{ArrayD, IxDyn};
use serde::de::{self, DeserializeSeed, SeqAccess, Visitor};
use serde::ser::SerializeTuple;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Bytes per element on the wire.
const ELEMENT_BYTES: usize = std::mem::size_of::<f64>();

/// One block of an array (a task's argument or result).
#[derive(Clone, Debug, PartialEq)]
pub struct Chunk(pub ArrayD<f64>);

impl Chunk {
    /// The array inside.
    pub fn into_inner(self) -> ArrayD<f64> {
        self.0
    }

    /// An empty 1-d chunk (a placeholder where a partial has no second
    /// array).
    pub(crate) fn empty() -> Chunk {
        Chunk(ArrayD::zeros(IxDyn(&[0])))
    }
}

impl From<ArrayD<f64>> for Chunk {
    fn from(a: ArrayD<f64>) -> Self {
        Chunk(a)
    }
}

impl std::ops::Deref for Chunk {
    type Target = ArrayD<f64>;
    fn deref(&self) -> &ArrayD<f64> {
        &self.0
    }
}

impl Serialize for Chunk {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let shape: Vec<u64> = self.0.shape().iter().map(|&d| d as u64).collect();
        let mut t = s.serialize_tuple(2)?;
        t.serialize_element(&shape)?;
        match self.0.as_slice().and_then(native_le_bytes) {
            Some(bytes) => t.serialize_element(serde_bytes::Bytes::new(bytes))?,
            None => {
                // Another layout (a transposed view…) or a big-endian
                // machine: `iter` walks in logical order whatever the layout.
                let mut bytes = Vec::with_capacity(self.0.len() * ELEMENT_BYTES);
                self.0.iter().for_each(|x| bytes.extend_from_slice(&x.to_le_bytes()));
                t.serialize_element(serde_bytes::Bytes::new(&bytes))?
            }
        }
        t.end()
    }
}

/// The elements' own memory as little-endian bytes, where that is what it is.
fn native_le_bytes(flat: &[f64]) -> Option<&[u8]> {
    cfg!(target_endian = "little").then(|| bytemuck::cast_slice(flat))
}

/// Reads the `bin` of elements straight into a `Vec<f64>`.
struct Elements;

impl<'de> DeserializeSeed<'de> for Elements {
    type Value = Vec<f64>;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<Vec<f64>, D::Error> {
        d.deserialize_bytes(self)
    }
}

impl Visitor<'_> for Elements {
    type Value = Vec<f64>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("the elements of a chunk as little-endian bytes")
    }
    fn visit_bytes<E: de::Error>(self, b: &[u8]) -> Result<Vec<f64>, E> {
        if !b.len().is_multiple_of(ELEMENT_BYTES) {
            return Err(E::custom(format!("{} bytes is not a whole number of f64s", b.len())));
        }
        if cfg!(target_endian = "little") {
            let n = b.len() / ELEMENT_BYTES;
            let mut v = crate::buffer::with_capacity(n);
            // SAFETY: `v` has room for `n` f64s, which is `b.len()` bytes
            // (a whole number of elements, checked above); the source is a
            // byte slice, so alignment does not matter for a byte copy; the
            // regions cannot overlap (`v` is new); every bit pattern is a
            // valid f64, so after the copy the first `n` elements are
            // initialised. (Filling a zeroed vector instead costs a
            // `memset` of the whole block first.)
            unsafe {
                std::ptr::copy_nonoverlapping(b.as_ptr(), v.as_mut_ptr().cast::<u8>(), b.len());
                v.set_len(n);
            }
            return Ok(v);
        }
        Ok(b.chunks_exact(ELEMENT_BYTES)
            .map(|c| f64::from_le_bytes([c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7]]))
            .collect())
    }
    fn visit_byte_buf<E: de::Error>(self, b: Vec<u8>) -> Result<Vec<f64>, E> {
        self.visit_bytes(&b)
    }
}

struct ChunkVisitor;

impl<'de> Visitor<'de> for ChunkVisitor {
    type Value = Chunk;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a chunk: [shape, bytes]")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Chunk, A::Error> {
        let shape: Vec<u64> = seq.next_element()?.ok_or_else(|| de::Error::invalid_length(0, &self))?;
        let data = seq
            .next_element_seed(Elements)?
            .ok_or_else(|| de::Error::invalid_length(1, &self))?;
        let shape: Vec<usize> = shape.into_iter().map(|d| d as usize).collect();
        ArrayD::from_shape_vec(IxDyn(&shape), data)
            .map(Chunk)
            .map_err(|e| de::Error::custom(format!("chunk of shape {shape:?}: {e}")))
    }
}

impl<'de> Deserialize<'de> for Chunk {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Chunk, D::Error> {
        d.deserialize_tuple(2, ChunkVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_wire_form_is_shape_then_little_endian_bytes_whatever_the_layout() {
        let a = ArrayD::from_shape_fn(IxDyn(&[3, 4]), |i| i[0] as f64 * 10.0 + i[1] as f64 - 0.5);
        let mut want = Vec::new();
        a.iter().for_each(|x| want.extend_from_slice(&x.to_le_bytes()));
        for c in [Chunk(a.clone()), Chunk(a.t().to_owned().t().to_owned())] {
            let bytes = rdask::task::encode_value(&c).expect("encodes");
            // [shape, bin]: the elements are the last bytes, in C order.
            assert!(bytes.ends_with(&want));
            let back: Chunk = rdask::task::decode_value(&bytes).expect("decodes");
            assert_eq!(back, Chunk(a.clone()));
        }
        // A transposed view (not in C order) goes element by element.
        let t = Chunk(a.t().to_owned());
        let back: Chunk = rdask::task::decode_value(&rdask::task::encode_value(&t).expect("encodes")).expect("decodes");
        assert_eq!(back.0, a.t());
        let empty: Chunk =
            rdask::task::decode_value(&rdask::task::encode_value(&Chunk::empty()).expect("encodes")).expect("decodes");
        assert_eq!(empty.len(), 0);
        assert!(rdask::task::decode_value::<Chunk>(
            &rdask::task::encode_value(&(vec![1u64], serde_bytes::Bytes::new(&[0u8; 7]))).expect("encodes")
        )
        .is_err());
    }
}
