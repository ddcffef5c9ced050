//! The bench's JSON lines: a minimal JSON value and the flat record of
//! one case, printed in the same form as `dask_baseline.py`'s `json.dumps`.
//! Hand-written (not serde_json) so float formatting matches Python's.

use super::*;

/// A JSON value, enough for flat records.
#[derive(Clone, Debug)]
pub(super) enum J {
    Int(i64),
    Num(f64),
    Str(String),
    Bool(bool),
    Arr(Vec<J>),
    Obj(Vec<(String, J)>),
}

pub(super) fn json_str(s: &str, out: &mut String) {
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

impl J {
    pub(super) fn write(&self, out: &mut String) {
        match self {
            J::Int(i) => out.push_str(&i.to_string()),
            J::Num(x) if !x.is_finite() => out.push_str("null"),
            J::Num(x) => {
                let s = x.to_string();
                out.push_str(&s);
                // Like Python's json: a float always shows as one.
                if !s.contains(['.', 'e', 'E']) {
                    out.push_str(".0");
                }
            }
            J::Str(s) => json_str(s, out),
            J::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
            J::Arr(v) => {
                out.push('[');
                for (i, x) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    x.write(out);
                }
                out.push(']');
            }
            J::Obj(v) => {
                out.push('{');
                for (i, (k, x)) in v.iter().enumerate() {
                    if i > 0 {
                        out.push_str(", ");
                    }
                    json_str(k, out);
                    out.push_str(": ");
                    x.write(out);
                }
                out.push('}');
            }
        }
    }
}

/// Python's `round(x, digits)` (to the nearest double, ties away from zero).
pub(super) fn round(x: f64, digits: i32) -> f64 {
    let p = 10f64.powi(digits);
    (x * p).round() / p
}

/// One output line: `{"case": ..., fields...}`.
pub(super) struct Rec(pub(super) Vec<(String, J)>);

impl Rec {
    pub(super) fn new(case: &str) -> Rec {
        Rec(vec![("case".into(), J::Str(case.into()))])
    }
    pub(super) fn val(mut self, k: &str, v: J) -> Rec {
        self.0.push((k.into(), v));
        self
    }
    pub(super) fn int(self, k: &str, v: impl TryInto<i64>) -> Rec {
        let v = v.try_into().unwrap_or(i64::MAX);
        self.val(k, J::Int(v))
    }
    /// A float rounded to `digits` decimals.
    pub(super) fn num(self, k: &str, v: f64, digits: i32) -> Rec {
        self.val(k, J::Num(round(v, digits)))
    }
    /// `tasks_per_s` and `us_per_task` of `n` tasks in `wall` seconds.
    pub(super) fn rate(self, n: usize, wall: f64) -> Rec {
        self.num("tasks_per_s", n as f64 / wall, 1)
            .num("us_per_task", wall / n as f64 * 1e6, 2)
    }
    pub(super) fn str(self, k: &str, v: impl Into<String>) -> Rec {
        self.val(k, J::Str(v.into()))
    }
    pub(super) fn bool(self, k: &str, v: bool) -> Rec {
        self.val(k, J::Bool(v))
    }
    pub(super) fn extend(mut self, more: Vec<(String, J)>) -> Rec {
        self.0.extend(more);
        self
    }
    pub(super) fn to_json(&self) -> String {
        let mut s = String::new();
        J::Obj(self.0.clone()).write(&mut s);
        s
    }
}

pub(super) fn print_line(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}
