//! The worker side of bags: built-in partition runners, registered like
//! `rdask::delayed::fused` under `rdask::bag::<name>`. Each takes its
//! parameters (an element function's registered name, a key, a count) and
//! then a partition (a msgpack array), splits it into element byte slices
//! (`msgpack::elements`), calls the named function's `call_encoded` on each
//! and joins the results (the element-wise operations are one runner,
//! `pipeline`, in their own file). So any registered function works on any worker
//! without the worker knowing the element type; the client's `Bag<T>`
//! checks the types when the graph is built.
//!
//! Reductions come in pairs: a per-partition runner, and a combiner that
//! takes a list of partials (a task argument naming several keys arrives
//! as one msgpack array of their values) and returns a partial of the same
//! form, so a tree of combiners of any shape gives the same result.

use std::borrow::Cow;

use indexmap::IndexMap;
use serde::{Deserialize, Serialize};
use serde_bytes::ByteBuf;

use super::msgpack::{self, array, array_owned, compare, elements, Val};
use super::pipeline::pipeline;
use super::repartition::{split_even, zip_runner};
use super::shuffle::{groupby, pick, split};
use super::text::{read_text, to_textfile};
use crate::registry::Registry;
use crate::task::{TaskEntry, TaskFn};
use crate::wire::messages::{ErrorKind, TaskFailure};

/// How a reduction keys or orders elements.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub(crate) enum KeySpec {
    /// The element itself.
    Item,
    /// A field of the element (msgpack of a name or an index): see
    /// `msgpack::field`.
    Field(ByteBuf),
    /// A registered function of the element.
    Function(String),
}

pub(crate) fn bad(message: impl Into<String>) -> TaskFailure {
    TaskFailure {
        kind: ErrorKind::BadArguments,
        message: message.into(),
    }
}

pub(crate) fn failed(message: impl Into<String>) -> TaskFailure {
    TaskFailure {
        kind: ErrorKind::Failed,
        message: message.into(),
    }
}

pub(crate) fn arg<'a>(args: &[&'a [u8]], i: usize, runner: &str) -> Result<&'a [u8], TaskFailure> {
    args.get(i)
        .copied()
        .ok_or_else(|| bad(format!("{runner} needs {} arguments, got {}", i + 1, args.len())))
}

pub(crate) fn decode<T: serde::de::DeserializeOwned>(bytes: &[u8], what: &str) -> Result<T, TaskFailure> {
    rmp_serde::from_slice(bytes).map_err(|e| bad(format!("{what}: {e}")))
}

pub(crate) fn items<'a>(bytes: &'a [u8], runner: &str) -> Result<Vec<&'a [u8]>, TaskFailure> {
    elements(bytes).map_err(|e| bad(format!("{runner}: {e}")))
}

pub(crate) fn function(name: &str) -> Result<TaskFn, TaskFailure> {
    Registry::global().get(name).ok_or_else(|| TaskFailure {
        kind: ErrorKind::UnknownFunction,
        message: format!("a bag operation calls `{name}`, which this worker does not have: link it into the worker"),
    })
}

/// A list of partials, flattened into their elements.
fn flatten<'a>(list: &'a [u8], runner: &str) -> Result<Vec<&'a [u8]>, TaskFailure> {
    let mut all = Vec::new();
    for partial in items(list, runner)? {
        all.extend(items(partial, runner)?);
    }
    Ok(all)
}

pub(crate) fn key_of<'a>(spec: &KeySpec, elem: &'a [u8]) -> Result<Cow<'a, [u8]>, TaskFailure> {
    match spec {
        KeySpec::Item => Ok(Cow::Borrowed(elem)),
        KeySpec::Function(name) => function(name)?(&[elem]).map(Cow::Owned),
        KeySpec::Field(key) => {
            let v = msgpack::read(elem).map_err(bad)?;
            let k = msgpack::read(key).map_err(bad)?;
            msgpack::field(&v, elem, &k).map(Cow::Borrowed).ok_or_else(|| {
                failed(format!(
                    "an element ({}) has no field {}",
                    msgpack::describe(&v),
                    msgpack::describe(&k)
                ))
            })
        }
    }
}

macro_rules! entries {
    ($($name:literal => $f:ident),+ $(,)?) => {
        /// Every bag runner.
        pub(crate) const RUNNERS: &[TaskEntry] = &[$(TaskEntry { name: $name, call: $f as TaskFn, shared: None }),+];
    };
}

entries! {
    "rdask::bag::from_values" => from_values,
    "rdask::bag::pipeline" => pipeline,
    "rdask::bag::take" => take,
    "rdask::bag::concat" => concat,
    "rdask::bag::count" => count,
    "rdask::bag::sum" => sum,
    "rdask::bag::product" => product,
    "rdask::bag::all" => all,
    "rdask::bag::any" => any,
    "rdask::bag::moments" => moments,
    "rdask::bag::moments_combine" => moments_combine,
    "rdask::bag::mean_finish" => mean_finish,
    "rdask::bag::var_finish" => var_finish,
    "rdask::bag::topk" => topk,
    "rdask::bag::topk_combine" => topk_combine,
    "rdask::bag::only" => only,
    "rdask::bag::frequencies" => frequencies,
    "rdask::bag::frequencies_combine" => frequencies_combine,
    "rdask::bag::distinct" => distinct,
    "rdask::bag::distinct_combine" => distinct_combine,
    "rdask::bag::fold" => fold,
    "rdask::bag::fold_combine" => fold_combine,
    "rdask::bag::foldby" => foldby,
    "rdask::bag::foldby_combine" => foldby_combine,
    "rdask::bag::split" => split,
    "rdask::bag::pick" => pick,
    "rdask::bag::groupby" => groupby,
    "rdask::bag::read_text" => read_text,
    "rdask::bag::to_textfile" => to_textfile,
    "rdask::bag::split_even" => split_even,
    "rdask::bag::zip" => zip_runner,
}

/// `(partition)`: the partition of `from_sequence`, as given.
fn from_values(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let part = arg(args, 0, "from_values")?;
    items(part, "from_values")?;
    Ok(part.to_vec())
}

/// `(n, partition)`: its first `n` elements.
fn take(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let n: u64 = decode(arg(args, 0, "take")?, "take's count")?;
    let part = items(arg(args, 1, "take")?, "take")?;
    Ok(array(part.into_iter().take(n as usize)))
}

/// `(list of partitions)`: one partition of all their elements in order.
fn concat(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    Ok(array(flatten(arg(args, 0, "concat")?, "concat")?.into_iter()))
}

/// `(partition)`: how many elements it has.
fn count(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let n = items(arg(args, 0, "count")?, "count")?.len() as u64;
    encode(&n)
}

fn encode<T: Serialize + ?Sized>(v: &T) -> Result<Vec<u8>, TaskFailure> {
    rmp_serde::to_vec_named(v).map_err(|e| failed(format!("cannot encode a bag result: {e}")))
}

/// A sum of integers stays exact (as `i128`) until a float joins it.
enum Total {
    Int(i128),
    Float(f64),
}

/// Whether a total adds or multiplies.
#[derive(Clone, Copy, PartialEq)]
enum Agg {
    Sum,
    Product,
}

fn total(part: &[&[u8]], agg: Agg) -> Result<Total, TaskFailure> {
    let what = if agg == Agg::Sum { "sum" } else { "product" };
    let mut t = Total::Int(if agg == Agg::Sum { 0 } else { 1 });
    let f = |a: f64, b: f64| if agg == Agg::Sum { a + b } else { a * b };
    for e in part {
        t = match (t, msgpack::read(e).map_err(bad)?) {
            (Total::Int(a), Val::Int(b)) => Total::Int(
                if agg == Agg::Sum {
                    a.checked_add(b)
                } else {
                    a.checked_mul(b)
                }
                .ok_or_else(|| failed(format!("the {what} overflows 128 bits")))?,
            ),
            (Total::Int(a), Val::Float(b)) => Total::Float(f(a as f64, b)),
            (Total::Float(a), Val::Int(b)) => Total::Float(f(a, b as f64)),
            (Total::Float(a), Val::Float(b)) => Total::Float(f(a, b)),
            (_, other) => return Err(bad(format!("{what} of a non-number {other:?}"))),
        };
    }
    Ok(t)
}

fn total_out(t: Total, what: &str) -> Result<Vec<u8>, TaskFailure> {
    match t {
        Total::Float(f) => encode(&f),
        Total::Int(i) => {
            if let Ok(i) = i64::try_from(i) {
                encode(&i)
            } else if let Ok(u) = u64::try_from(i) {
                encode(&u)
            } else {
                Err(failed(format!("the {what} {i} does not fit in 64 bits")))
            }
        }
    }
}

/// `(partition)`: the sum of its numbers (also the combiner of `count` and
/// `sum`: a list of partial sums is a partition of numbers).
fn sum(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    total_out(total(&items(arg(args, 0, "sum")?, "sum")?, Agg::Sum)?, "sum")
}

/// `(partition)`: the product of its numbers (also its own combiner).
fn product(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    total_out(
        total(&items(arg(args, 0, "product")?, "product")?, Agg::Product)?,
        "product",
    )
}

fn bools(args: &[&[u8]], runner: &str) -> Result<Vec<bool>, TaskFailure> {
    decode(
        arg(args, 0, runner)?,
        &format!("{runner} of a partition that is not all bools"),
    )
}

/// `(partition of bools)`: whether all are true (also its own combiner).
fn all(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    encode(&bools(args, "all")?.into_iter().all(|b| b))
}

/// `(partition of bools)`: whether any is true (also its own combiner).
fn any(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    encode(&bools(args, "any")?.into_iter().any(|b| b))
}

/// Count, mean and sum of squared deviations of some numbers: the
/// partial of `mean`, `var` and `std`, merged pairwise (Chan et al.), so the
/// tree does not lose precision as a plain sum of squares would.
type Moments = (u64, f64, f64);

fn merge((na, ma, qa): Moments, (nb, mb, qb): Moments) -> Moments {
    if na == 0 {
        return (nb, mb, qb);
    }
    if nb == 0 {
        return (na, ma, qa);
    }
    let n = na + nb;
    let delta = mb - ma;
    let mean = ma + delta * nb as f64 / n as f64;
    (n, mean, qa + qb + delta * delta * na as f64 * nb as f64 / n as f64)
}

/// `(partition of numbers)`: its moments (Welford's pass).
fn moments(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let mut m: Moments = (0, 0.0, 0.0);
    for e in items(arg(args, 0, "moments")?, "moments")? {
        let x = match msgpack::read(e).map_err(bad)? {
            Val::Int(i) => i as f64,
            Val::Float(f) => f,
            other => return Err(bad(format!("moments of a non-number {other:?}"))),
        };
        m = merge(m, (1, x, 0.0));
    }
    encode(&m)
}

/// `(list of moments)`: their merge.
fn moments_combine(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let parts: Vec<Moments> = decode(arg(args, 0, "moments_combine")?, "the partials of mean/var")?;
    encode(&parts.into_iter().fold((0, 0.0, 0.0), merge))
}

/// `(moments)`: the mean; an error for an empty bag.
fn mean_finish(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let (n, mean, _): Moments = decode(arg(args, 0, "mean_finish")?, "mean's moments")?;
    if n == 0 {
        return Err(failed("mean of an empty bag"));
    }
    encode(&mean)
}

/// `(ddof, moments)`: the variance with `ddof` degrees of freedom
/// subtracted; an error unless the bag has more than `ddof` elements.
fn var_finish(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let ddof: u64 = decode(arg(args, 0, "var_finish")?, "var's ddof")?;
    let (n, _, m2): Moments = decode(arg(args, 1, "var_finish")?, "var's moments")?;
    if n <= ddof {
        return Err(failed(format!("var with ddof {ddof} of a bag of {n} elements")));
    }
    encode(&(m2 / (n - ddof) as f64))
}

/// The `k` largest (or smallest) elements by `spec`, largest first (or
/// smallest first); ties keep their input order.
fn top<'a>(all: Vec<&'a [u8]>, k: usize, spec: &KeySpec, largest: bool) -> Result<Vec<&'a [u8]>, TaskFailure> {
    let keys = all.iter().map(|e| key_of(spec, e)).collect::<Result<Vec<_>, _>>()?;
    let vals = keys
        .iter()
        .map(|k| msgpack::read(k).map_err(bad))
        .collect::<Result<Vec<_>, _>>()?;
    let mut order: Vec<usize> = (0..all.len()).collect();
    order.sort_by(|&a, &b| {
        let o = compare(&vals[a], &vals[b]);
        if largest { o.reverse() } else { o }.then(a.cmp(&b))
    });
    Ok(order.into_iter().take(k).map(|i| all[i]).collect())
}

type TopArgs = (u64, KeySpec, bool);

/// `((k, key, largest), partition)`: its top `k`.
fn topk(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let (k, spec, largest): TopArgs = decode(arg(args, 0, "topk")?, "topk's parameters")?;
    let part = items(arg(args, 1, "topk")?, "topk")?;
    Ok(array(top(part, k as usize, &spec, largest)?.into_iter()))
}

/// `((k, key, largest), list of tops)`: the top `k` of them all.
fn topk_combine(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let (k, spec, largest): TopArgs = decode(arg(args, 0, "topk_combine")?, "topk's parameters")?;
    let all = flatten(arg(args, 1, "topk_combine")?, "topk_combine")?;
    Ok(array(top(all, k as usize, &spec, largest)?.into_iter()))
}

/// `(what, partition)`: its only element (`min` / `max` of a top 1); an
/// error naming `what` when it is empty.
fn only(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let what: String = decode(arg(args, 0, "only")?, "only's label")?;
    match items(arg(args, 1, "only")?, "only")?[..] {
        [one] => Ok(one.to_vec()),
        [] => Err(failed(format!("{what} of an empty bag"))),
        _ => Err(bad(format!("{what}: more than one element"))),
    }
}

/// Counts by element bytes, in first-seen order. Hashed with Fx: the keys
/// are the workers' own data, not an adversary's, and SipHash was a tenth
/// of `frequencies`' time.
type Counts<'a> = IndexMap<&'a [u8], u64, rustc_hash::FxBuildHasher>;

/// Adds the counts of `pairs`.
fn tally<'a>(into: &mut Counts<'a>, pairs: impl Iterator<Item = (&'a [u8], u64)>) {
    for (e, n) in pairs {
        *into.entry(e).or_insert(0) += n;
    }
}

pub(crate) fn pairs_out<V: AsRef<[u8]>>(m: impl ExactSizeIterator<Item = (V, Vec<u8>)>) -> Vec<u8> {
    let pairs: Vec<Vec<u8>> = m
        .map(|(k, v)| {
            let mut p = Vec::new();
            let _ = rmp::encode::write_array_len(&mut p, 2);
            p.extend_from_slice(k.as_ref());
            p.extend_from_slice(&v);
            p
        })
        .collect();
    array_owned(&pairs)
}

/// The two halves of a `[key, value]` pair.
fn pair<'a>(p: &'a [u8], runner: &str) -> Result<(&'a [u8], &'a [u8]), TaskFailure> {
    match items(p, runner)?[..] {
        [k, v] => Ok((k, v)),
        _ => Err(bad(format!("{runner}: a partial that is not a pair"))),
    }
}

fn freq_out(m: Counts<'_>) -> Result<Vec<u8>, TaskFailure> {
    let counted = m
        .into_iter()
        .map(|(k, n)| encode(&n).map(|b| (k, b)))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(pairs_out(counted.into_iter()))
}

/// `(partition)`: `[element, count]` pairs.
fn frequencies(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let mut m = Counts::default();
    tally(
        &mut m,
        items(arg(args, 0, "frequencies")?, "frequencies")?
            .into_iter()
            .map(|e| (e, 1)),
    );
    freq_out(m)
}

/// `(list of pair lists)`: the pairs merged, counts added.
fn frequencies_combine(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let mut m = Counts::default();
    for p in flatten(arg(args, 0, "frequencies_combine")?, "frequencies_combine")? {
        let (k, n) = pair(p, "frequencies_combine")?;
        tally(&mut m, std::iter::once((k, decode::<u64>(n, "a count")?)));
    }
    freq_out(m)
}

fn dedup(all: Vec<&[u8]>) -> Vec<u8> {
    let set: indexmap::IndexSet<&[u8]> = all.into_iter().collect();
    array(set.into_iter())
}

/// `(partition)`: its distinct elements, first occurrences in order.
fn distinct(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    Ok(dedup(items(arg(args, 0, "distinct")?, "distinct")?))
}

/// `(list of partitions)`: their distinct elements.
fn distinct_combine(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    Ok(dedup(flatten(arg(args, 0, "distinct_combine")?, "distinct_combine")?))
}

/// `(binop, initial, partition)`: `binop(…binop(initial, e0)…, en)`.
fn fold(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let f = function(&decode::<String>(arg(args, 0, "fold")?, "fold's binop")?)?;
    let mut acc = arg(args, 1, "fold")?.to_vec();
    for e in items(arg(args, 2, "fold")?, "fold")? {
        acc = f(&[&acc, e])?;
    }
    Ok(acc)
}

/// `(combine, list of partials)`: `combine(…combine(p0, p1)…, pn)`.
fn fold_combine(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let f = function(&decode::<String>(arg(args, 0, "fold_combine")?, "fold's combine")?)?;
    let parts = items(arg(args, 1, "fold_combine")?, "fold_combine")?;
    let (first, rest) = parts.split_first().ok_or_else(|| bad("fold_combine of no partials"))?;
    let mut acc = first.to_vec();
    for p in rest {
        acc = f(&[&acc, p])?;
    }
    Ok(acc)
}

/// `(key, binop, initial, partition)`: `[key, fold of its elements]` per
/// key, in first-seen order.
fn foldby(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let spec: KeySpec = decode(arg(args, 0, "foldby")?, "foldby's key")?;
    let f = function(&decode::<String>(arg(args, 1, "foldby")?, "foldby's binop")?)?;
    let initial = arg(args, 2, "foldby")?;
    let mut groups: IndexMap<Vec<u8>, Vec<u8>> = IndexMap::new();
    for e in items(arg(args, 3, "foldby")?, "foldby")? {
        let k = key_of(&spec, e)?.into_owned();
        let acc = groups.entry(k).or_insert_with(|| initial.to_vec());
        *acc = f(&[acc, e])?;
    }
    Ok(pairs_out(groups.into_iter()))
}

/// `(combine, list of pair lists)`: the pairs merged by key with `combine`.
fn foldby_combine(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let f = function(&decode::<String>(arg(args, 0, "foldby_combine")?, "foldby's combine")?)?;
    let mut groups: IndexMap<&[u8], Vec<u8>> = IndexMap::new();
    for p in flatten(arg(args, 1, "foldby_combine")?, "foldby_combine")? {
        let (k, v) = pair(p, "foldby_combine")?;
        match groups.get_mut(k) {
            Some(acc) => *acc = f(&[acc, v])?,
            None => {
                groups.insert(k, v.to_vec());
            }
        }
    }
    Ok(pairs_out(groups.into_iter()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::task::{decode_value, encode_value};

    fn run<T: serde::de::DeserializeOwned>(f: TaskFn, args: &[Vec<u8>]) -> T {
        let refs: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        decode_value(&f(&refs).unwrap()).unwrap()
    }

    #[test]
    fn frequencies_combine_adds_counts_in_first_seen_order() {
        let a = encode_value(&["x", "y", "x"]).unwrap();
        let b = encode_value(&["y", "z"]).unwrap();
        let pa = frequencies(&[&a]).unwrap();
        let pb = frequencies(&[&b]).unwrap();
        let both = array_owned(&[pa, pb]);
        let got: Vec<(String, u64)> = run(frequencies_combine, &[both]);
        assert_eq!(got, vec![("x".into(), 2), ("y".into(), 2), ("z".into(), 1)]);
    }

    #[test]
    fn sum_is_exact_for_integers_and_refuses_non_numbers() {
        let big = encode_value(&[i64::MAX, 1]).unwrap();
        let got: u64 = run(sum, &[big]);
        assert_eq!(got, i64::MAX as u64 + 1);
        let err = sum(&[&encode_value(&["a"]).unwrap()]).unwrap_err();
        assert!(err.message.contains("non-number"), "{}", err.message);
    }

    #[test]
    fn top_breaks_ties_by_position_and_only_refuses_empty() {
        let part = encode_value(&[(1, "a"), (3, "b"), (3, "c"), (0, "d")]).unwrap();
        let params = encode_value(&(2u64, KeySpec::Field(ByteBuf::from(encode_value(&0).unwrap())), true)).unwrap();
        let got: Vec<(i32, String)> = run(topk, &[params, part]);
        assert_eq!(got, vec![(3, "b".into()), (3, "c".into())]);
        let err = only(&[
            &encode_value(&"max").unwrap(),
            &encode_value(&Vec::<u8>::new()).unwrap(),
        ])
        .unwrap_err();
        assert_eq!(err.message, "max of an empty bag");
    }
}
