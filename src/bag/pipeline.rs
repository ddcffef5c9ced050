//! Element-wise operations of bags (`map`, `map_with`, `starmap`, `filter`,
//! `remove`, `flat_map`, `flatten`, `pluck`)
//! chained into one call per partition: the built-in
//! `rdask::bag::pipeline` takes the list of operations and a partition and
//! passes each element through all of them before the next element, so a
//! chain of element operations materializes only its input and its output
//! partition, never the intermediate ones (a chain of separate calls, even
//! fused into one task, would build each).

use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::json_pluck::{self, JSON_LOADS};
use super::msgpack::{array_start, finish_array, start_array, value_end};
use super::runners::{arg, bad, decode, function, items, key_of, KeySpec};
use crate::delayed::graph::{DArg, Node};
use crate::task::TaskFn;
use crate::wire::messages::{Arg, TaskFailure};

/// Registered name of the pipeline runner.
pub(crate) const PIPELINE: &str = "rdask::bag::pipeline";

/// One element operation.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum Op {
    /// The registered function of the element.
    Map(String),
    /// The element if the registered predicate returns `true`.
    Filter(String),
    /// The elements of the array the registered function returns.
    FlatMap(String),
    /// The element's field (msgpack of a name or an index).
    Pluck(ByteBuf),
    /// The element if the registered predicate returns `false`.
    Remove(String),
    /// The elements of the element (an array).
    Flatten,
    /// The registered two-argument function of the element and a constant
    /// (msgpack bytes).
    MapWith(String, ByteBuf),
    /// The registered function of the element's items as its arguments.
    StarMap(String),
}

/// The operations and source partition of a pipeline call, so that one
/// more operation extends it instead of stacking a call on it.
pub(crate) fn parts_of(node: &Node) -> Option<(Vec<Op>, Arc<Node>)> {
    if node.function != PIPELINE || node.error.is_some() {
        return None;
    }
    match &node.args[..] {
        [DArg::Wire(Arg::Value(plan)), DArg::Node(source)] => Some((rmp_serde::from_slice(plan).ok()?, source.clone())),
        _ => None,
    }
}

/// An operation with its function looked up.
enum Step<'a> {
    Map(TaskFn),
    Filter(TaskFn, &'a str),
    FlatMap(TaskFn, &'a str),
    Pluck(KeySpec),
    Remove(TaskFn, &'a str),
    Flatten,
    MapWith(TaskFn, &'a [u8]),
    /// `Map(json_loads)` then `Pluck` of a member name: `json_pluck`'s
    /// shortcut, or the two steps where it does not answer.
    JsonPluck(TaskFn, &'a str, KeySpec),
    StarMap(TaskFn, &'a str),
}

/// The member name a `Pluck` of a string key names.
fn json_member(key: &[u8]) -> Option<&str> {
    match rmp::decode::read_str_from_slice(key) {
        Ok((name, [])) => Some(name),
        _ => None,
    }
}

/// Whether predicate `name` says `true` of `e`.
fn holds(f: TaskFn, name: &str, e: &[u8]) -> Result<bool, TaskFailure> {
    match &f(&[e])?[..] {
        [0xc3] => Ok(true),
        [0xc2] => Ok(false),
        other => Err(bad(format!("the predicate {name} returned {other:?}, not a bool"))),
    }
}

/// Passes `e` through `steps`, appending what comes out to `out`.
fn run(steps: &[Step<'_>], e: &[u8], out: &mut Vec<u8>, count: &mut u64) -> Result<(), TaskFailure> {
    let Some((step, rest)) = steps.split_first() else {
        out.extend_from_slice(e);
        *count += 1;
        return Ok(());
    };
    match step {
        Step::Map(f) => run(rest, &f(&[e])?, out, count),
        Step::MapWith(f, extra) => run(rest, &f(&[e, extra])?, out, count),
        Step::Filter(f, name) if holds(*f, name, e)? => run(rest, e, out, count),
        Step::Remove(f, name) if !holds(*f, name, e)? => run(rest, e, out, count),
        Step::Filter(..) | Step::Remove(..) => Ok(()),
        Step::Flatten => {
            for sub in items(e, "flatten")? {
                run(rest, sub, out, count)?;
            }
            Ok(())
        }
        Step::FlatMap(f, name) => {
            let produced = f(&[e])?;
            for sub in items(&produced, name)? {
                run(rest, sub, out, count)?;
            }
            Ok(())
        }
        Step::Pluck(spec) => run(rest, &key_of(spec, e)?, out, count),
        Step::StarMap(f, name) => run(rest, &f(&items(e, name)?)?, out, count),
        Step::JsonPluck(loads, name, spec) => {
            if rest.is_empty() {
                // The last step writes the member straight into the output.
                if json_pluck::pluck(e, name, out) {
                    *count += 1;
                    return Ok(());
                }
            } else {
                let mut member = Vec::new();
                if json_pluck::pluck(e, name, &mut member) {
                    return run(rest, &member, out, count);
                }
            }
            run(rest, &key_of(spec, &loads(&[e])?)?, out, count)
        }
    }
}

/// `(operations, partition)`: each element through every operation, in
/// order.
pub(crate) fn pipeline(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let ops: Vec<Op> = decode(arg(args, 0, "pipeline")?, "pipeline's operations")?;
    let part = arg(args, 1, "pipeline")?;
    let mut steps = Vec::with_capacity(ops.len());
    let mut rest = &ops[..];
    while let Some((op, tail)) = rest.split_first() {
        rest = tail;
        steps.push(match op {
            Op::Map(n) => match (tail.first(), n == JSON_LOADS) {
                (Some(Op::Pluck(k)), true) if json_member(k).is_some() => {
                    rest = &tail[1..];
                    Step::JsonPluck(
                        function(n)?,
                        json_member(k).unwrap_or_default(),
                        KeySpec::Field(k.clone()),
                    )
                }
                _ => Step::Map(function(n)?),
            },
            Op::Filter(n) => Step::Filter(function(n)?, n),
            Op::FlatMap(n) => Step::FlatMap(function(n)?, n),
            Op::Pluck(k) => Step::Pluck(KeySpec::Field(k.clone())),
            Op::Remove(n) => Step::Remove(function(n)?, n),
            Op::Flatten => Step::Flatten,
            Op::MapWith(n, extra) => Step::MapWith(function(n)?, extra),
            Op::StarMap(n) => Step::StarMap(function(n)?, n),
        });
    }
    let (n, mut pos) = array_start(part).map_err(|e| bad(format!("pipeline: {e}")))?;
    let mut body = start_array();
    let mut count = 0u64;
    for _ in 0..n {
        let end = value_end(part, pos).map_err(|e| bad(format!("pipeline: {e}")))?;
        run(&steps, &part[pos..end], &mut body, &mut count)?;
        pos = end;
    }
    if pos != part.len() {
        return Err(bad("pipeline: bytes after the end of a partition"));
    }
    let count = u32::try_from(count).map_err(|_| bad(format!("pipeline: {count} elements in one partition")))?;
    Ok(finish_array(body, count))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::encode_value;

    /// The operations' wire form as `docs/protocol.md` states it.
    #[test]
    fn operations_encode_as_the_protocol_documents() {
        let ops = vec![
            Op::Map("m".into()),
            Op::Flatten,
            Op::Pluck(ByteBuf::from(vec![0xa1, b'x'])),
        ];
        let expected = {
            let mut b = vec![0x93, 0x81, 0xa3, b'M', b'a', b'p', 0xa1, b'm'];
            b.extend([0xa7, b'F', b'l', b'a', b't', b't', b'e', b'n']);
            b.extend([0x81, 0xa5, b'P', b'l', b'u', b'c', b'k', 0xc4, 2, 0xa1, b'x']);
            b
        };
        assert_eq!(encode_value(&ops).unwrap(), expected);
        let with = encode_value(&Op::MapWith("f".into(), ByteBuf::from(vec![7]))).unwrap();
        assert_eq!(
            with,
            [0x81, 0xa7, b'M', b'a', b'p', b'W', b'i', b't', b'h', 0x92, 0xa1, b'f', 0xc4, 1, 7]
        );
        assert_eq!(encode_value(&KeySpec::Item).unwrap(), [0xa4, b'I', b't', b'e', b'm']);
    }
}
