//! A shortcut of the pipeline for `map(json_loads).pluck("field")`, the
//! seed's `map(json.loads).pluck('name')`: the line is parsed once and only
//! the named member is kept, instead of building the whole object as a
//! `serde_json::Value`, encoding it to msgpack and reading it back to find
//! the field.
//!
//! Same results as the two steps, by construction, in two tiers:
//! - `scan`, a byte scanner for the plain JSON most lines are: it answers
//!   only for a top-level object whose keys and string values have no
//!   escapes, whose numbers have no exponent (so none can be out of range),
//!   nesting at most [`SCAN_DEPTH`] deep, and which has the field; on
//!   anything else it steps aside. What it accepts, `serde_json` accepts
//!   the same way (checked against it on random lines in the tests).
//! - then `serde_json` itself with a visitor that keeps the member as a
//!   `Value` and only validates the rest exactly as a `Value` would be
//!   (every value goes through `deserialize_any`; each string, number and
//!   nesting level is checked as for a `Value`).
//!
//! Either answers only when the line is a JSON object that has the field
//! (the last one, if the key repeats, as `serde_json::Value`'s map keeps).
//! Anything else (not JSON, not an object, no such field, not a string
//! element) gives `false`, and the pipeline runs the two steps, which fail
//! with their own messages.

use std::fmt;

use serde::de::{DeserializeSeed, Deserializer, MapAccess, SeqAccess, Visitor};
use serde::Deserialize;

/// Registered name of the function the shortcut stands in for.
pub(crate) const JSON_LOADS: &str = <super::json_loads as crate::task::Task>::NAME;

/// A JSON value parsed and dropped: accepts what `Value` accepts.
struct Skip;

impl<'de> Deserialize<'de> for Skip {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(SkipVisitor)
    }
}

struct SkipVisitor;

impl<'de> Visitor<'de> for SkipVisitor {
    type Value = Skip;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("any JSON value")
    }
    fn visit_bool<E>(self, _: bool) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_i64<E>(self, _: i64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_u64<E>(self, _: u64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_f64<E>(self, _: f64) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_str<E>(self, _: &str) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_unit<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_none<E>(self) -> Result<Skip, E> {
        Ok(Skip)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Skip, D::Error> {
        Skip::deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Skip, A::Error> {
        while seq.next_element::<Skip>()?.is_some() {}
        Ok(Skip)
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Skip, A::Error> {
        while map.next_entry::<Skip, Skip>()?.is_some() {}
        Ok(Skip)
    }
}

/// A map key, answering whether it is `0`.
struct KeyIs<'f>(&'f str);

impl<'de> DeserializeSeed<'de> for KeyIs<'_> {
    type Value = bool;
    fn deserialize<D: Deserializer<'de>>(self, d: D) -> Result<bool, D::Error> {
        d.deserialize_any(self)
    }
}

impl<'de> Visitor<'de> for KeyIs<'_> {
    type Value = bool;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a string key")
    }
    fn visit_str<E>(self, k: &str) -> Result<bool, E> {
        Ok(k == self.0)
    }
}

/// The top-level object, keeping member `0`.
struct Object<'f>(&'f str);

impl<'de> Visitor<'de> for Object<'_> {
    type Value = Option<serde_json::Value>;
    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
        let mut found = None;
        while let Some(hit) = map.next_key_seed(KeyIs(self.0))? {
            if hit {
                // The last of repeated keys wins, as in `Value`'s map.
                found = Some(map.next_value::<serde_json::Value>()?);
            } else {
                map.next_value::<Skip>()?;
            }
        }
        Ok(found)
    }
}

/// Deepest nesting `scan` follows (`serde_json` allows 128).
pub(crate) const SCAN_DEPTH: usize = 64;
/// Most digits before the point `scan` takes in a number: fewer than 309,
/// so a number without exponent is always a finite `f64`.
const SCAN_DIGITS: usize = 300;

/// What `scan` found as the member's value.
enum Member<'a> {
    /// A string without escapes: its text.
    Str(&'a str),
    /// Any other valid value: its JSON text.
    Raw(&'a str),
}

fn skip_ws(b: &[u8], mut i: usize) -> usize {
    while i < b.len() && matches!(b[i], b' ' | b'\t' | b'\n' | b'\r') {
        i += 1;
    }
    i
}

/// The end of a string starting at `b[i] == '"'` and its text, if it has
/// no escape and no control character.
fn plain_string(b: &[u8], i: usize) -> Option<(usize, usize)> {
    let mut j = i + 1;
    while j < b.len() {
        match b[j] {
            b'"' => return Some((i + 1, j)),
            b'\\' | 0..=0x1f => return None,
            _ => j += 1,
        }
    }
    None
}

/// The end of a number without exponent starting at `i`.
fn number(b: &[u8], mut i: usize) -> Option<usize> {
    if b.get(i) == Some(&b'-') {
        i += 1;
    }
    let start = i;
    match b.get(i)? {
        b'0' => i += 1,
        b'1'..=b'9' => {
            while b.get(i).is_some_and(u8::is_ascii_digit) {
                i += 1;
            }
        }
        _ => return None,
    }
    if i - start > SCAN_DIGITS {
        return None;
    }
    if b.get(i) == Some(&b'.') {
        i += 1;
        let frac = i;
        while b.get(i).is_some_and(u8::is_ascii_digit) {
            i += 1;
        }
        if i == frac {
            return None;
        }
    }
    match b.get(i) {
        Some(b'e' | b'E') => None,
        _ => Some(i),
    }
}

/// The end of the value starting at `i` (after whitespace), `depth` levels
/// down.
fn value(b: &[u8], i: usize, depth: usize) -> Option<usize> {
    match *b.get(i)? {
        b'"' => plain_string(b, i).map(|(_, end)| end + 1),
        b'-' | b'0'..=b'9' => number(b, i),
        b't' => b[i..].starts_with(b"true").then_some(i + 4),
        b'f' => b[i..].starts_with(b"false").then_some(i + 5),
        b'n' => b[i..].starts_with(b"null").then_some(i + 4),
        open @ (b'[' | b'{') if depth < SCAN_DEPTH => {
            let close = if open == b'[' { b']' } else { b'}' };
            let mut j = skip_ws(b, i + 1);
            if b.get(j) == Some(&close) {
                return Some(j + 1);
            }
            loop {
                if open == b'{' {
                    if b.get(j) != Some(&b'"') {
                        return None;
                    }
                    j = skip_ws(b, plain_string(b, j)?.1 + 1);
                    if b.get(j) != Some(&b':') {
                        return None;
                    }
                    j = skip_ws(b, j + 1);
                }
                j = skip_ws(b, value(b, j, depth + 1)?);
                match b.get(j)? {
                    b',' => j = skip_ws(b, j + 1),
                    c if *c == close => return Some(j + 1),
                    _ => return None,
                }
            }
        }
        _ => None,
    }
}

/// Member `field` of the line, if the line is plain JSON (see the module's
/// header) of an object that has it.
fn scan<'a>(line: &'a str, field: &str) -> Option<Member<'a>> {
    let b = line.as_bytes();
    let mut i = skip_ws(b, 0);
    if b.get(i) != Some(&b'{') {
        return None;
    }
    i = skip_ws(b, i + 1);
    let mut found = None;
    if b.get(i) != Some(&b'}') {
        loop {
            if b.get(i) != Some(&b'"') {
                return None;
            }
            let (k0, k1) = plain_string(b, i)?;
            i = skip_ws(b, k1 + 1);
            if b.get(i) != Some(&b':') {
                return None;
            }
            let v0 = skip_ws(b, i + 1);
            let v1 = value(b, v0, 1)?;
            if &line[k0..k1] == field {
                // The last of repeated keys wins, as in `Value`'s map.
                found = Some(if b[v0] == b'"' {
                    Member::Str(&line[v0 + 1..v1 - 1])
                } else {
                    Member::Raw(&line[v0..v1])
                });
            }
            i = skip_ws(b, v1);
            match b.get(i)? {
                b',' => i = skip_ws(b, i + 1),
                b'}' => break,
                _ => return None,
            }
        }
    }
    if skip_ws(b, i + 1) != b.len() {
        return None;
    }
    found
}

/// Appends the msgpack of `json_loads(element)[field]` to `out` and says
/// `true`, or says `false` where the two steps must run instead (see the
/// module's header).
pub(crate) fn pluck(element: &[u8], field: &str, out: &mut Vec<u8>) -> bool {
    let Ok((line, rest)) = rmp::decode::read_str_from_slice(element) else {
        return false;
    };
    if !rest.is_empty() {
        return false;
    }
    let value = match scan(line, field) {
        Some(Member::Str(s)) => {
            // As `rmp_serde` encodes a `Value::String`; writing to a Vec
            // cannot fail.
            let _ = rmp::encode::write_str(out, s);
            return true;
        }
        Some(Member::Raw(text)) => serde_json::from_str::<serde_json::Value>(text).ok(),
        None => {
            let mut de = serde_json::Deserializer::from_str(line);
            match de.deserialize_any(Object(field)) {
                Ok(Some(v)) if de.end().is_ok() => Some(v),
                _ => None,
            }
        }
    };
    match value.map(|v| crate::task::encode_value(&v)) {
        Some(Ok(bytes)) => {
            out.extend_from_slice(&bytes);
            true
        }
        _ => false,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::encode_value;
    use proptest::prelude::*;

    /// The two steps the shortcut replaces, where they succeed.
    fn slow(line: &str, field: &str) -> Option<Vec<u8>> {
        let v: serde_json::Value = serde_json::from_str(line).ok()?;
        encode_value(v.as_object()?.get(field)?).ok()
    }

    fn fast(line: &str, field: &str) -> Option<Vec<u8>> {
        let mut out = Vec::new();
        pluck(&encode_value(&line).unwrap(), field, &mut out).then_some(out)
    }

    #[test]
    fn answers_exactly_where_the_two_steps_succeed() {
        let lines = [
            r#"{"name":"Alice","id":1}"#,
            r#" {"id":[1,{"a":null}],"name":{"z":1,"a":[2.5,-3]}} "#,
            r#"{"name":"first","name":"last"}"#,
            r#"{"na\u006de":"escaped key"}"#,
            r#"{"name":"esc\"aped"}"#,
            r#"{"name":"\u00e9t\u00e9","x":"\ud83d\ude00"}"#,
            r#"{"id":1}"#,
            r#"{}"#,
            r#"[1,2]"#,
            r#"{"name":"x"} trailing"#,
            r#"{"name":"x"},"#,
            r#"{"name":"x","bad":"\ud800"}"#,
            r#"{"name":"x","big":1e400}"#,
            r#"{"name":1e400}"#,
            r#"{"name":12345678901234567890123}"#,
            r#"{"name":-0.5,"x":01}"#,
            r#"{"name":"x","x":1.}"#,
            r#"{"name":"x","x":-}"#,
            r#"{"name":"x","ctl":"a	b"}"#,
            r#"{"name":"x","t":tru}"#,
            r#"{"name":"x""#,
            r#"{"name" : "spaced" , "n" : [ true , false , null ] }"#,
            r#"{"name":"x",}"#,
            r#"{"name":"x" "y":1}"#,
            r#"{"name":"é日本"}"#,
            "not json",
            "",
        ];
        for line in lines {
            assert_eq!(fast(line, "name"), slow(line, "name"), "{line}");
        }
        assert!(!pluck(&encode_value(&7).unwrap(), "name", &mut Vec::new()));
    }

    #[test]
    fn nesting_is_limited_as_for_a_value() {
        for depth in [10, 63, 64, 65, 100, 126, 127, 128, 129, 200] {
            for field in ["name", "deep"] {
                let line = format!(r#"{{"name":1,"deep":{}{}}}"#, "[".repeat(depth), "]".repeat(depth));
                assert_eq!(fast(&line, field), slow(&line, field), "depth {depth}");
            }
        }
    }

    /// Random JSON-like lines: valid ones, and valid ones with a byte
    /// changed, inserted or removed.
    fn line() -> impl Strategy<Value = String> {
        let atom = prop_oneof![
            "\"[a-zé\\\\\"\t]{0,4}\"",
            "-?[0-9]{1,3}(\\.[0-9]{0,2})?([eE][+-]?[0-9]{1,3})?",
            Just("true".to_string()),
            Just("null".to_string()),
        ];
        let value = atom.prop_recursive(3, 12, 3, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(|v| format!("[{}]", v.join(","))),
                prop::collection::vec(("[a-z]{1,2}", inner), 0..3).prop_map(|kv| {
                    let m: Vec<String> = kv.into_iter().map(|(k, v)| format!("\"{k}\": {v}")).collect();
                    format!("{{{}}}", m.join(","))
                }),
            ]
        });
        let object = prop::collection::vec((prop_oneof![Just("name".to_string()), "[a-z]{1,2}"], value), 0..4)
            .prop_map(|kv| {
                let m: Vec<String> = kv.into_iter().map(|(k, v)| format!("\"{k}\":{v}")).collect();
                format!(" {{{}}}", m.join(", "))
            });
        (object, any::<u8>(), 0usize..64, 0u8..4).prop_map(|(s, byte, at, how)| {
            let mut b = s.into_bytes();
            let at = at % (b.len() + 1);
            match how {
                0 if at < b.len() => b[at] = byte % 0x80,
                1 => b.insert(at, byte % 0x80),
                2 if at < b.len() => {
                    b.remove(at);
                }
                _ => {}
            }
            String::from_utf8(b).unwrap_or_default()
        })
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]
        #[test]
        fn the_shortcut_equals_the_two_steps_on_random_lines(l in line()) {
            prop_assert_eq!(fast(&l, "name"), slow(&l, "name"), "{}", l);
            prop_assert_eq!(scan(&l, "name").is_some() && slow(&l, "name").is_none(), false, "scan accepted {}", l);
        }
    }
}
