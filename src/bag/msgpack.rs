//! msgpack without Rust types, for the worker side of bags: a partition is
//! a msgpack array, and the partition runners split it into element byte
//! slices, hand each to a registered function as it is, and join results
//! back, so no runner needs the element's Rust type. Comparisons (`topk`,
//! `min`, `max`), sums and field lookups (`pluck`) read values into [`Val`],
//! which borrows strings and binaries from the buffer.
//!
//! The order of [`Val`] is the order of the Rust values for what serde
//! encodes transparently: numbers by value (integers and floats compared
//! exactly where they can be), strings bytewise (= `str`'s `Ord`), sequences
//! and tuples lexicographically, structs (maps in declaration order) field by
//! field. Kinds rank nil < bool < number < string < binary < array < map <
//! extension. It is not `Ord` of enums (variants are encoded by name).

use std::cmp::Ordering;

use rmp::Marker;

/// Deepest nesting a value may have to be read into a [`Val`]: deeper
/// values fail with an error rather than exhaust the task thread's stack.
pub(crate) const MAX_DEPTH: usize = 256;

/// A msgpack value read from a buffer.
#[derive(Debug, Clone)]
pub(crate) enum Val<'a> {
    Nil,
    Bool(bool),
    Int(i128),
    Float(f64),
    Str(&'a [u8]),
    Bin(&'a [u8]),
    Array(Vec<Val<'a>>),
    /// Entries, each with the bytes of its value (for `pluck`).
    Map(Vec<(Val<'a>, Val<'a>, &'a [u8])>),
    Ext(i8, &'a [u8]),
}

fn take<'a>(buf: &'a [u8], pos: &mut usize, n: usize) -> Result<&'a [u8], String> {
    let end = pos.checked_add(n).filter(|&e| e <= buf.len()).ok_or_else(|| {
        format!(
            "msgpack value truncated at byte {} (needs {n} more of {})",
            *pos,
            buf.len()
        )
    })?;
    let s = &buf[*pos..end];
    *pos = end;
    Ok(s)
}

fn be(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0u64, |acc, &b| (acc << 8) | u64::from(b))
}

fn len(buf: &[u8], pos: &mut usize, width: usize) -> Result<usize, String> {
    Ok(be(take(buf, pos, width)?) as usize)
}

/// What a marker says about the value that follows: `(bytes of payload
/// before any nested values, nested values)`, reading length fields.
fn shape(buf: &[u8], pos: &mut usize, m: Marker) -> Result<(usize, usize), String> {
    Ok(match m {
        Marker::FixPos(_) | Marker::FixNeg(_) | Marker::Null | Marker::True | Marker::False => (0, 0),
        Marker::U8 | Marker::I8 => (1, 0),
        Marker::U16 | Marker::I16 => (2, 0),
        Marker::U32 | Marker::I32 | Marker::F32 => (4, 0),
        Marker::U64 | Marker::I64 | Marker::F64 => (8, 0),
        Marker::FixStr(n) => (n as usize, 0),
        Marker::Str8 | Marker::Bin8 => (len(buf, pos, 1)?, 0),
        Marker::Str16 | Marker::Bin16 => (len(buf, pos, 2)?, 0),
        Marker::Str32 | Marker::Bin32 => (len(buf, pos, 4)?, 0),
        Marker::FixArray(n) => (0, n as usize),
        Marker::Array16 => (0, len(buf, pos, 2)?),
        Marker::Array32 => (0, len(buf, pos, 4)?),
        Marker::FixMap(n) => (0, 2 * n as usize),
        Marker::Map16 => (0, 2 * len(buf, pos, 2)?),
        Marker::Map32 => (0, 2 * len(buf, pos, 4)?),
        Marker::FixExt1 => (2, 0),
        Marker::FixExt2 => (3, 0),
        Marker::FixExt4 => (5, 0),
        Marker::FixExt8 => (9, 0),
        Marker::FixExt16 => (17, 0),
        Marker::Ext8 => (1 + len(buf, pos, 1)?, 0),
        Marker::Ext16 => (1 + len(buf, pos, 2)?, 0),
        Marker::Ext32 => (1 + len(buf, pos, 4)?, 0),
        Marker::Reserved => return Err(format!("byte {} is the reserved msgpack marker 0xc1", *pos - 1)),
    })
}

fn marker(buf: &[u8], pos: &mut usize) -> Result<Marker, String> {
    Ok(Marker::from_u8(take(buf, pos, 1)?[0]))
}

/// Where the value starting at `pos` ends (iterative: any nesting).
pub(crate) fn value_end(buf: &[u8], mut pos: usize) -> Result<usize, String> {
    let mut todo: usize = 1;
    while todo > 0 {
        todo -= 1;
        let m = marker(buf, &mut pos)?;
        let (bytes, nested) = shape(buf, &mut pos, m)?;
        take(buf, &mut pos, bytes)?;
        todo = todo
            .checked_add(nested)
            .ok_or_else(|| "msgpack value too large".to_string())?;
    }
    Ok(pos)
}

/// The length of the msgpack array that starts `buf`, and where its first
/// element starts.
pub(crate) fn array_start(buf: &[u8]) -> Result<(usize, usize), String> {
    let mut pos = 0;
    let n = match marker(buf, &mut pos)? {
        Marker::FixArray(n) => n as usize,
        Marker::Array16 => len(buf, &mut pos, 2)?,
        Marker::Array32 => len(buf, &mut pos, 4)?,
        other => return Err(format!("expected a msgpack array (a partition), found {other:?}")),
    };
    Ok((n, pos))
}

/// The element slices of a msgpack array that fills `buf`.
pub(crate) fn elements(buf: &[u8]) -> Result<Vec<&[u8]>, String> {
    let (n, mut pos) = array_start(buf)?;
    // Each element takes at least a byte, so a corrupt count cannot
    // allocate more than the buffer's size.
    let mut out = Vec::with_capacity(n.min(buf.len()));
    for _ in 0..n {
        let end = value_end(buf, pos)?;
        out.push(&buf[pos..end]);
        pos = end;
    }
    if pos != buf.len() {
        return Err(format!("{} bytes after the end of a partition", buf.len() - pos));
    }
    Ok(out)
}

/// Room for an array header written once the count is known
/// ([`finish_array`]): a partition is built in place, never copied.
pub(crate) fn start_array() -> Vec<u8> {
    vec![0xdd, 0, 0, 0, 0]
}

/// Writes the header of an array begun with [`start_array`] (always the
/// 32-bit form: valid msgpack, if not the shortest, for any count).
pub(crate) fn finish_array(mut buf: Vec<u8>, count: u32) -> Vec<u8> {
    buf[1..5].copy_from_slice(&count.to_be_bytes());
    buf
}

/// A msgpack array of already-encoded elements.
pub(crate) fn array<'a>(items: impl ExactSizeIterator<Item = &'a [u8]>) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing to a Vec cannot fail; partitions beyond u32::MAX elements
    // are refused by the frame limits long before.
    let _ = rmp::encode::write_array_len(&mut out, items.len() as u32);
    for i in items {
        out.extend_from_slice(i);
    }
    out
}

/// A msgpack array of owned encoded elements.
pub(crate) fn array_owned(items: &[Vec<u8>]) -> Vec<u8> {
    array(items.iter().map(|v| &v[..]))
}

/// Reads the value that fills `buf`.
pub(crate) fn read(buf: &[u8]) -> Result<Val<'_>, String> {
    let mut pos = 0;
    let v = read_at(buf, &mut pos, 0)?;
    if pos != buf.len() {
        return Err(format!("{} bytes after the end of a value", buf.len() - pos));
    }
    Ok(v)
}

fn read_at<'a>(buf: &'a [u8], pos: &mut usize, depth: usize) -> Result<Val<'a>, String> {
    if depth > MAX_DEPTH {
        return Err(format!("a value nested deeper than {MAX_DEPTH} levels"));
    }
    let m = marker(buf, pos)?;
    let (bytes, nested) = shape(buf, pos, m)?;
    let payload = take(buf, pos, bytes)?;
    let int = |signed: bool| -> i128 {
        let u = be(payload);
        if !signed {
            return i128::from(u);
        }
        let bits = 8 * payload.len() as u32;
        let shift = 64 - bits;
        i128::from(((u << shift) as i64) >> shift)
    };
    Ok(match m {
        Marker::FixPos(n) => Val::Int(i128::from(n)),
        Marker::FixNeg(n) => Val::Int(i128::from(n)),
        Marker::Null => Val::Nil,
        Marker::True => Val::Bool(true),
        Marker::False => Val::Bool(false),
        Marker::U8 | Marker::U16 | Marker::U32 | Marker::U64 => Val::Int(int(false)),
        Marker::I8 | Marker::I16 | Marker::I32 | Marker::I64 => Val::Int(int(true)),
        Marker::F32 => Val::Float(f64::from(f32::from_bits(be(payload) as u32))),
        Marker::F64 => Val::Float(f64::from_bits(be(payload))),
        Marker::FixStr(_) | Marker::Str8 | Marker::Str16 | Marker::Str32 => Val::Str(payload),
        Marker::Bin8 | Marker::Bin16 | Marker::Bin32 => Val::Bin(payload),
        Marker::FixArray(_) | Marker::Array16 | Marker::Array32 => {
            let mut items = Vec::with_capacity(nested.min(buf.len()));
            for _ in 0..nested {
                items.push(read_at(buf, pos, depth + 1)?);
            }
            Val::Array(items)
        }
        Marker::FixMap(_) | Marker::Map16 | Marker::Map32 => {
            let mut entries = Vec::with_capacity((nested / 2).min(buf.len()));
            for _ in 0..nested / 2 {
                let k = read_at(buf, pos, depth + 1)?;
                let vstart = *pos;
                let v = read_at(buf, pos, depth + 1)?;
                entries.push((k, v, &buf[vstart..*pos]));
            }
            Val::Map(entries)
        }
        _ => Val::Ext(payload[0] as i8, &payload[1..]),
    })
}

fn rank(v: &Val<'_>) -> u8 {
    match v {
        Val::Nil => 0,
        Val::Bool(_) => 1,
        Val::Int(_) | Val::Float(_) => 2,
        Val::Str(_) => 3,
        Val::Bin(_) => 4,
        Val::Array(_) => 5,
        Val::Map(_) => 6,
        Val::Ext(..) => 7,
    }
}

/// An integer against a float: exact for every `i64`/`u64` and finite
/// float (NaN sorts above every number, as in `f64::total_cmp`).
fn int_float(i: i128, f: f64) -> Ordering {
    if f.is_nan() {
        return Ordering::Less;
    }
    if f >= 1.8e19 {
        return Ordering::Less;
    }
    if f <= -1.8e19 {
        return Ordering::Greater;
    }
    let t = f.trunc() as i128;
    i.cmp(&t).then_with(|| {
        let frac = f - f.trunc();
        0f64.partial_cmp(&frac).unwrap_or(Ordering::Equal)
    })
}

/// The total order of values described in the module header.
pub(crate) fn compare(a: &Val<'_>, b: &Val<'_>) -> Ordering {
    match (a, b) {
        (Val::Nil, Val::Nil) => Ordering::Equal,
        (Val::Bool(x), Val::Bool(y)) => x.cmp(y),
        (Val::Int(x), Val::Int(y)) => x.cmp(y),
        (Val::Float(x), Val::Float(y)) => x.total_cmp(y),
        (Val::Int(x), Val::Float(y)) => int_float(*x, *y),
        (Val::Float(x), Val::Int(y)) => int_float(*y, *x).reverse(),
        (Val::Str(x), Val::Str(y)) | (Val::Bin(x), Val::Bin(y)) => x.cmp(y),
        (Val::Array(x), Val::Array(y)) => {
            for (p, q) in x.iter().zip(y) {
                let o = compare(p, q);
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Val::Map(x), Val::Map(y)) => {
            for ((pk, pv, _), (qk, qv, _)) in x.iter().zip(y) {
                let o = compare(pk, qk).then_with(|| compare(pv, qv));
                if o != Ordering::Equal {
                    return o;
                }
            }
            x.len().cmp(&y.len())
        }
        (Val::Ext(t, x), Val::Ext(u, y)) => t.cmp(u).then_with(|| x.cmp(y)),
        _ => rank(a).cmp(&rank(b)),
    }
}

/// A short readable form of a value, for error messages.
pub(crate) fn describe(v: &Val<'_>) -> String {
    match v {
        Val::Nil => "nil".into(),
        Val::Bool(b) => b.to_string(),
        Val::Int(i) => i.to_string(),
        Val::Float(f) => f.to_string(),
        Val::Str(s) => format!("{:?}", String::from_utf8_lossy(s)),
        Val::Bin(b) => format!("<{} bytes>", b.len()),
        Val::Array(items) => format!("<array of {}>", items.len()),
        Val::Map(entries) => format!("<map of {}>", entries.len()),
        Val::Ext(t, b) => format!("<extension {t} of {} bytes>", b.len()),
    }
}

/// The field `key` of a value: a map entry whose key equals `key` (a
/// struct's field by name, a JSON object's member), or for an integer key
/// the element at that index of an array (a tuple's or `Vec`'s). `None`
/// when there is no such field.
pub(crate) fn field<'a>(v: &Val<'a>, whole: &'a [u8], key: &Val<'_>) -> Option<&'a [u8]> {
    match (v, key) {
        (Val::Map(entries), _) => entries
            .iter()
            .find(|(k, _, _)| compare(k, key) == Ordering::Equal)
            .map(|(_, _, bytes)| *bytes),
        (Val::Array(items), Val::Int(i)) => {
            let i = usize::try_from(*i).ok()?;
            if i >= items.len() {
                return None;
            }
            // Re-split the array to find the element's bytes.
            let mut pos = 0;
            let _ = marker(whole, &mut pos).ok()?;
            let _ = shape(whole, &mut pos, Marker::from_u8(whole[0])).ok()?;
            for _ in 0..i {
                pos = value_end(whole, pos).ok()?;
            }
            let end = value_end(whole, pos).ok()?;
            Some(&whole[pos..end])
        }
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::encode_value;

    #[test]
    fn elements_and_array_round_trip() {
        let v = (1u8, "two", vec![3.5f64], Some(()), -70000i64, [("k", 1u64 << 40)]);
        let parts = vec![encode_value(&v).unwrap(), encode_value(&"x").unwrap()];
        let joined = array_owned(&parts);
        let back = elements(&joined).unwrap();
        assert_eq!(back, vec![&parts[0][..], &parts[1][..]]);
        assert!(elements(&joined[..joined.len() - 1]).is_err());
        assert!(elements(&encode_value(&5u8).unwrap()).is_err());
    }

    #[test]
    fn the_order_is_rusts_for_numbers_strings_and_tuples() {
        let enc = |v: &dyn erased::Enc| v.bytes();
        let cases: Vec<(Vec<u8>, Vec<u8>, Ordering)> = vec![
            (enc(&-1i64), enc(&1u64), Ordering::Less),
            (enc(&(u64::MAX)), enc(&(i64::MIN)), Ordering::Greater),
            (enc(&1.5f64), enc(&1i64), Ordering::Greater),
            (enc(&2i64), enc(&2.0f64), Ordering::Equal),
            (enc(&"ab"), enc(&"b"), Ordering::Less),
            (enc(&(1i64, "z")), enc(&(2i64, "a")), Ordering::Less),
            (enc(&vec![1i64]), enc(&vec![1i64, 0]), Ordering::Less),
        ];
        for (a, b, want) in cases {
            assert_eq!(compare(&read(&a).unwrap(), &read(&b).unwrap()), want, "{a:?} {b:?}");
        }
    }

    mod erased {
        pub trait Enc {
            fn bytes(&self) -> Vec<u8>;
        }
        impl<T: serde::Serialize> Enc for T {
            fn bytes(&self) -> Vec<u8> {
                crate::task::encode_value(self).unwrap()
            }
        }
    }

    #[test]
    fn fields_of_maps_and_arrays() {
        #[derive(serde::Serialize)]
        struct P {
            name: String,
            age: u8,
        }
        let p = encode_value(&P {
            name: "ann".into(),
            age: 7,
        })
        .unwrap();
        let v = read(&p).unwrap();
        let name = encode_value(&"name").unwrap();
        assert_eq!(
            field(&v, &p, &read(&name).unwrap()),
            Some(&encode_value(&"ann").unwrap()[..])
        );
        let t = encode_value(&("a", 9u8)).unwrap();
        let tv = read(&t).unwrap();
        assert_eq!(field(&tv, &t, &Val::Int(1)), Some(&[9u8][..]));
        assert_eq!(field(&tv, &t, &Val::Int(2)), None);
        let deep = (0..MAX_DEPTH + 2).fold(encode_value(&1u8).unwrap(), |inner, _| array_owned(&[inner]));
        assert!(read(&deep).is_err());
        assert!(value_end(&deep, 0).is_ok());
    }
}
