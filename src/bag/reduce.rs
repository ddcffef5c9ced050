//! Reductions of bags: a runner per partition, then a tree of combiners,
//! each taking at most `split_every` partials (Dask's `reduction` with
//! `split_every`). Partials and combined values have the same form, so the
//! tree's shape never changes the result (except the order of ties and of
//! floating-point additions).

use serde::Serialize;
use serde_bytes::ByteBuf;

use super::runners::KeySpec;
use super::{value, Bag, Field};
use crate::client::Error;
use crate::delayed::graph::DArg;
use crate::delayed::{delayed, raw_call, Delayed};
use crate::task::Task;

/// Partials one task of a reduction tree combines unless
/// [`Bag::split_every`] says otherwise (Dask's default for bags is 8).
pub const DEFAULT_SPLIT_EVERY: usize = 8;

/// The square root (the last step of `std`).
#[rdask_macros::task(crate = "crate")]
pub fn sqrt(x: f64) -> f64 {
    x.sqrt()
}

/// Element types that `sum`, `mean`, `var` and `std` accept: the primitive numbers.
pub trait Numeric: Serialize {}
macro_rules! numeric {
    ($($t:ty),+) => { $(impl Numeric for $t {})+ };
}
numeric!(i8, i16, i32, i64, u8, u16, u32, u64, isize, usize, f32, f64);

/// Encoded parameters of a runner, shared by every call of a reduction (or
/// why one could not be encoded).
type Params = Result<Vec<Vec<u8>>, String>;

fn params(p: Params) -> Result<Vec<DArg>, Error> {
    p.map(|bs| {
        bs.into_iter()
            .map(|b| DArg::Wire(crate::wire::messages::Arg::Value(b)))
            .collect()
    })
    .map_err(Error::Encode)
}

fn enc<V: Serialize + ?Sized>(v: &V) -> Result<Vec<u8>, String> {
    crate::task::encode_value(v).map_err(|e| e.to_string())
}

impl<T> Bag<T> {
    /// `runner(params…, partition)` of each partition.
    fn partials<P>(&self, runner: &'static str, p: &Params) -> Vec<Delayed<P>> {
        self.parts
            .iter()
            .map(|part| {
                let args = params(p.clone()).map(|mut a| {
                    a.push(DArg::Node(part.node.clone()));
                    a
                });
                raw_call(runner, args)
            })
            .collect()
    }

    /// Combines `partials` with `combine(params…, [partials…])` in a tree
    /// of `split_every` per call, down to one.
    fn tree<P>(&self, mut level: Vec<Delayed<P>>, combine: &'static str, p: &Params) -> Delayed<P> {
        loop {
            if level.len() == 1 {
                if let Some(root) = level.pop() {
                    return root;
                }
            }
            // Zero partials (a bag of no partitions) also get one combine,
            // over the empty list.
            let chunks: Vec<Vec<_>> = if level.is_empty() {
                vec![Vec::new()]
            } else {
                level
                    .chunks(self.split_every)
                    .map(|c| c.iter().map(|d| d.node.clone()).collect())
                    .collect()
            };
            level = chunks
                .into_iter()
                .map(|nodes| {
                    let args = params(p.clone()).map(|mut a| {
                        a.push(DArg::Nodes(nodes));
                        a
                    });
                    raw_call(combine, args)
                })
                .collect();
        }
    }

    fn reduce<P>(
        &self,
        runner: &'static str,
        combine: &'static str,
        runner_p: Params,
        combine_p: Params,
    ) -> Delayed<P> {
        self.tree(self.partials(runner, &runner_p), combine, &combine_p)
    }

    fn one_partition<U>(&self, d: Delayed<Vec<U>>) -> Bag<U> {
        Bag::from_delayed(vec![d]).split_every(self.split_every)
    }

    /// Number of elements (Dask's `count`).
    pub fn count(&self) -> Delayed<u64> {
        self.reduce("rdask::bag::count", "rdask::bag::sum", Ok(vec![]), Ok(vec![]))
    }

    /// Each distinct element with how often it occurs, in order of first
    /// occurrence (Dask's `frequencies`): one partition.
    pub fn frequencies(&self) -> Bag<(T, u64)> {
        let d = self.reduce(
            "rdask::bag::frequencies",
            "rdask::bag::frequencies_combine",
            Ok(vec![]),
            Ok(vec![]),
        );
        self.one_partition(d)
    }

    /// The distinct elements, first occurrences in order (Dask's
    /// `distinct`): one partition. Equality is of the encoded values.
    pub fn distinct(&self) -> Bag<T> {
        let d = self.reduce(
            "rdask::bag::distinct",
            "rdask::bag::distinct_combine",
            Ok(vec![]),
            Ok(vec![]),
        );
        self.one_partition(d)
    }

    fn top(&self, k: usize, key: KeySpec, largest: bool) -> Delayed<Vec<T>> {
        let p = enc(&(k as u64, key, largest)).map(|b| vec![b]);
        self.reduce("rdask::bag::topk", "rdask::bag::topk_combine", p.clone(), p)
    }

    /// The `k` largest elements, largest first (Dask's `topk(k)`): one
    /// partition. The order is that of the encoded values, which is Rust's
    /// `Ord` for numbers, strings, tuples, `Vec`s and structs (field by
    /// field in declaration order), not for enums; ties keep input order.
    pub fn topk(&self, k: usize) -> Bag<T> {
        self.one_partition(self.top(k, KeySpec::Item, true))
    }

    /// The `k` elements with the largest `field` (Dask's `topk(k, key=1)`
    /// or `key='name'`).
    pub fn topk_by(&self, k: usize, field: impl Into<Field>) -> Bag<T> {
        let f = KeySpec::Field(ByteBuf::from(field.into().encoded()));
        self.one_partition(self.top(k, f, true))
    }

    /// The `k` elements with the largest `key(element)` (Dask's
    /// `topk(k, key=f)`).
    pub fn topk_by_fn<K, F: Task<Args = (T,), Output = K>>(&self, k: usize, _key: F) -> Bag<T> {
        self.one_partition(self.top(k, KeySpec::Function(F::NAME.to_string()), true))
    }

    fn extreme(&self, largest: bool) -> Delayed<T> {
        let what = if largest { "max" } else { "min" };
        let one = self.top(1, KeySpec::Item, largest);
        raw_call(
            "rdask::bag::only",
            value(what).map(|a| vec![a, DArg::Node(one.node.clone())]),
        )
    }

    /// The largest element (Dask's `max`); computing it fails for an empty
    /// bag.
    pub fn max(&self) -> Delayed<T>
    where
        T: PartialOrd,
    {
        self.extreme(true)
    }

    /// The smallest element (Dask's `min`); computing it fails for an empty
    /// bag.
    pub fn min(&self) -> Delayed<T>
    where
        T: PartialOrd,
    {
        self.extreme(false)
    }

    /// The sum (Dask's `sum`): exact for integers (an error if it leaves 64
    /// bits), `f64` once a float is in it.
    pub fn sum(&self) -> Delayed<T>
    where
        T: Numeric,
    {
        self.reduce("rdask::bag::sum", "rdask::bag::sum", Ok(vec![]), Ok(vec![]))
    }

    /// The product (Dask's `product`): exact for integers (an error if it
    /// leaves 64 bits), `f64` once a float is in it; 1 for an empty bag.
    pub fn product(&self) -> Delayed<T>
    where
        T: Numeric,
    {
        self.reduce("rdask::bag::product", "rdask::bag::product", Ok(vec![]), Ok(vec![]))
    }

    fn moments(&self) -> Delayed<(u64, f64, f64)> {
        self.reduce(
            "rdask::bag::moments",
            "rdask::bag::moments_combine",
            Ok(vec![]),
            Ok(vec![]),
        )
    }

    /// The arithmetic mean (Dask's `mean`); computing it fails for an empty
    /// bag.
    pub fn mean(&self) -> Delayed<f64>
    where
        T: Numeric,
    {
        raw_call("rdask::bag::mean_finish", Ok(vec![DArg::Node(self.moments().node)]))
    }

    /// The variance with `ddof` degrees of freedom subtracted (Dask's
    /// `var(ddof)`); computing it fails unless the bag has more than `ddof`
    /// elements.
    pub fn var(&self, ddof: u64) -> Delayed<f64>
    where
        T: Numeric,
    {
        let m = self.moments();
        raw_call(
            "rdask::bag::var_finish",
            value(&ddof).map(|a| vec![a, DArg::Node(m.node)]),
        )
    }

    /// The standard deviation (Dask's `std(ddof)`): the square root of
    /// [`var`](Self::var).
    pub fn std(&self, ddof: u64) -> Delayed<f64>
    where
        T: Numeric,
    {
        crate::delayed::delayed(sqrt, (self.var(ddof),))
    }

    /// Folds each partition with `binop` from `initial`, then the partials
    /// with `combine` (Dask's `fold(binop, combine, initial)`); a bag of no
    /// partitions fails.
    pub fn fold<A: Serialize, B, C>(&self, _binop: B, _combine: C, initial: A) -> Delayed<A>
    where
        B: Task<Args = (A, T), Output = A>,
        C: Task<Args = (A, A), Output = A>,
    {
        let runner_p = (|| Ok(vec![enc(B::NAME)?, enc(&initial)?]))();
        self.reduce(
            "rdask::bag::fold",
            "rdask::bag::fold_combine",
            runner_p,
            enc(C::NAME).map(|b| vec![b]),
        )
    }

    /// `perpartition` of each partition, then `aggregate` of lists of
    /// those, in a tree (Dask's `reduction`; `aggregate` must accept its own
    /// results, as Dask's must with `split_every`).
    pub fn reduction<R, P, A>(&self, perpartition: P, aggregate: A) -> Delayed<R>
    where
        P: Task<Args = (Vec<T>,), Output = R>,
        A: Task<Args = (Vec<R>,), Output = R>,
    {
        let mut level: Vec<Delayed<R>> = self.parts.iter().map(|p| delayed(perpartition, (p,))).collect();
        loop {
            if level.len() == 1 {
                if let Some(root) = level.pop() {
                    return root;
                }
            }
            if level.is_empty() {
                return delayed(aggregate, Vec::<Delayed<R>>::new());
            }
            level = level
                .chunks(self.split_every)
                .map(|c| delayed(aggregate, c.to_vec()))
                .collect();
        }
    }

    fn foldby_spec<K, A: Serialize, B, C>(&self, key: KeySpec, initial: A) -> Bag<(K, A)>
    where
        B: Task<Args = (A, T), Output = A>,
        C: Task<Args = (A, A), Output = A>,
    {
        let runner_p = (|| Ok(vec![enc(&key)?, enc(B::NAME)?, enc(&initial)?]))();
        let d = self.reduce(
            "rdask::bag::foldby",
            "rdask::bag::foldby_combine",
            runner_p,
            enc(C::NAME).map(|b| vec![b]),
        );
        self.one_partition(d)
    }

    /// Groups by `key(element)` and folds each group (Dask's
    /// `foldby(key, binop, initial, combine)`): per partition with `binop`
    /// from `initial`, then across partitions with `combine`. One partition
    /// of `(key, value)` pairs in order of first occurrence.
    pub fn foldby<K, A: Serialize, F, B, C>(&self, _key: F, _binop: B, initial: A, _combine: C) -> Bag<(K, A)>
    where
        F: Task<Args = (T,), Output = K>,
        B: Task<Args = (A, T), Output = A>,
        C: Task<Args = (A, A), Output = A>,
    {
        self.foldby_spec::<K, A, B, C>(KeySpec::Function(F::NAME.to_string()), initial)
    }

    /// [`foldby`](Self::foldby) keyed by a field (Dask's `foldby('name', …)`);
    /// `K` is the field's type as the caller states it, as for `pluck`.
    pub fn foldby_field<K, A: Serialize, B, C>(
        &self,
        field: impl Into<Field>,
        _binop: B,
        initial: A,
        _combine: C,
    ) -> Bag<(K, A)>
    where
        B: Task<Args = (A, T), Output = A>,
        C: Task<Args = (A, A), Output = A>,
    {
        let f = KeySpec::Field(ByteBuf::from(field.into().encoded()));
        self.foldby_spec::<K, A, B, C>(f, initial)
    }
}

impl Bag<bool> {
    /// Whether every element is true (Dask's `all`; true for an empty bag).
    pub fn all(&self) -> Delayed<bool> {
        self.reduce("rdask::bag::all", "rdask::bag::all", Ok(vec![]), Ok(vec![]))
    }

    /// Whether any element is true (Dask's `any`; false for an empty bag).
    pub fn any(&self) -> Delayed<bool> {
        self.reduce("rdask::bag::any", "rdask::bag::any", Ok(vec![]), Ok(vec![]))
    }
}
