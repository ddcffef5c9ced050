//! Operations on whole partitions that change how a bag is cut:
//! `repartition(n)` (Dask's partition boundaries: fewer partitions join
//! neighbours, more split each partition into nearly equal pieces) and
//! `zip` (partition by partition, element by element). Both sides: the
//! client's graph building and the workers' runners `rdask::bag::split_even`
//! and `rdask::bag::zip`.

use super::msgpack::{array, array_owned};
use super::runners::{arg, bad, decode, items};
use super::{value, Bag};
use crate::client::Error;
use crate::delayed::graph::DArg;
use crate::delayed::{raw_call, Delayed};
use crate::wire::messages::TaskFailure;

/// Most pieces `repartition` splits one partition into: the split task
/// holds them all.
pub const MAX_SPLIT: usize = 1 << 16;

impl<T> Bag<T> {
    /// The same elements in the same order in `n` partitions (at least 1;
    /// Dask's `repartition(npartitions=n)`). Fewer partitions: output `i`
    /// joins inputs `i·p/n` up to `(i+1)·p/n` (of `p`). More: each input is
    /// split into `n / p` nearly equal pieces (the last input into
    /// `n / p + n % p`), as Dask cuts them; pieces of short partitions may be
    /// empty. Fails at compute if a partition would be split into more than
    /// [`MAX_SPLIT`] pieces.
    pub fn repartition(&self, n: usize) -> Bag<T> {
        let n = n.max(1);
        let p = self.parts.len();
        let parts: Vec<Delayed<Vec<T>>> = if p == n {
            return self.clone();
        } else if p == 0 {
            let empty: &[u8] = &[];
            (0..n)
                .map(|_| raw_call("rdask::bag::from_values", value(empty).map(|a| vec![a])))
                .collect()
        } else if n < p {
            (0..n)
                .map(|i| {
                    let group = &self.parts[i * p / n..(i + 1) * p / n];
                    match group {
                        [one] => one.clone(),
                        _ => raw_call(
                            "rdask::bag::concat",
                            Ok(vec![DArg::Nodes(group.iter().map(|d| d.node.clone()).collect())]),
                        ),
                    }
                })
                .collect()
        } else {
            let (each, extra) = (n / p, n % p);
            let mut out = Vec::with_capacity(n);
            for (i, part) in self.parts.iter().enumerate() {
                let k = each + if i + 1 == p { extra } else { 0 };
                if k == 1 {
                    out.push(part.clone());
                    continue;
                }
                let split: Delayed<Vec<Vec<T>>> = raw_call(
                    "rdask::bag::split_even",
                    value(&(k as u64)).map(|a| vec![a, DArg::Node(part.node.clone())]),
                );
                for j in 0..k {
                    out.push(raw_call(
                        "rdask::bag::pick",
                        value(&(j as u64)).map(|a| vec![a, DArg::Node(split.node.clone())]),
                    ));
                }
            }
            out
        };
        Bag::from_delayed(parts).split_every(self.split_every)
    }
}

/// Pairs the elements of two bags partition by partition (Dask's
/// `db.zip(a, b)`): both must have the same number of partitions, and, as
/// in Dask, where two partitions differ in length the longer one's extra
/// elements are dropped.
pub fn zip<A, B>(a: &Bag<A>, b: &Bag<B>) -> Result<Bag<(A, B)>, Error> {
    if a.parts.len() != b.parts.len() {
        return Err(Error::Input(format!(
            "zip of bags of {} and {} partitions (they must have as many)",
            a.parts.len(),
            b.parts.len()
        )));
    }
    let parts = a
        .parts
        .iter()
        .zip(&b.parts)
        .map(|(x, y)| {
            raw_call(
                "rdask::bag::zip",
                Ok(vec![DArg::Nodes(vec![x.node.clone(), y.node.clone()])]),
            )
        })
        .collect();
    Ok(Bag::from_delayed(parts).split_every(a.split_every))
}

/// `(k, partition)`: an array of `k` partitions, piece `i` holding elements
/// `⌊i·len/k⌋` up to `⌊(i+1)·len/k⌋`.
pub(crate) fn split_even(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let k: u64 = decode(arg(args, 0, "split_even")?, "split_even's piece count")?;
    if k == 0 || k > MAX_SPLIT as u64 {
        return Err(bad(format!("split_even into {k} pieces (1 to {MAX_SPLIT})")));
    }
    let all = items(arg(args, 1, "split_even")?, "split_even")?;
    let (len, k) = (all.len(), k as usize);
    let pieces: Vec<Vec<u8>> = (0..k)
        .map(|i| array(all[i * len / k..(i + 1) * len / k].iter().copied()))
        .collect();
    Ok(array_owned(&pieces))
}

/// `(list of partitions)`: an array of arrays, the `i`-th holding element
/// `i` of each partition, as long as the shortest partition.
pub(crate) fn zip_runner(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let parts = items(arg(args, 0, "zip")?, "zip")?
        .into_iter()
        .map(|p| items(p, "zip"))
        .collect::<Result<Vec<_>, _>>()?;
    let len = parts.iter().map(Vec::len).min().unwrap_or(0);
    let rows: Vec<Vec<u8>> = (0..len).map(|i| array(parts.iter().map(|p| p[i]))).collect();
    Ok(array_owned(&rows))
}
