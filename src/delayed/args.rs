//! Typed arguments of lazy calls: where a task takes an `A`, a lazy call
//! accepts a value of `A`, a [`Delayed<A>`], a [`Future<A>`], and where it
//! takes a `Vec<T>` or a map of `T`, a `Vec` (or slice) or map of
//! `Delayed<T>`. The compiler checks the types through a chain of calls.

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};
use std::sync::Arc;

use serde::Serialize;
use serde_bytes::ByteBuf;

use super::graph::DArg;
use super::Delayed;
use crate::client::{Error, Future};
use crate::task::encode_value;
use crate::wire::messages::Arg;

/// A value, lazy value or future usable where a task expects an `A`.
pub trait IntoDelayedArg<A> {
    /// The graph form of the argument.
    #[doc(hidden)]
    fn into_delayed_arg(self) -> Result<DArg, Error>;
}

fn value<T: Serialize + ?Sized>(v: &T) -> Result<DArg, Error> {
    encode_value(v)
        .map(|b| DArg::Wire(Arg::Value(b)))
        .map_err(|e| Error::Encode(e.to_string()))
}

impl<A: Serialize> IntoDelayedArg<A> for A {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        value(&self)
    }
}

impl IntoDelayedArg<String> for &str {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        value(self)
    }
}

impl IntoDelayedArg<String> for &String {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        value(self)
    }
}

impl<A> IntoDelayedArg<A> for Delayed<A> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        Ok(DArg::Node(self.node))
    }
}

impl<A> IntoDelayedArg<A> for &Delayed<A> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        Ok(DArg::Node(self.node.clone()))
    }
}

impl<A: 'static> IntoDelayedArg<A> for &Future<A> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        Ok(DArg::Future(self.key.clone(), Arc::new(self.clone())))
    }
}

impl<A: 'static> IntoDelayedArg<A> for Future<A> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        Ok(DArg::Future(self.key.clone(), Arc::new(self)))
    }
}

fn nodes<'a, T: 'a>(items: impl IntoIterator<Item = &'a Delayed<T>>) -> Result<DArg, Error> {
    Ok(DArg::Nodes(items.into_iter().map(|d| d.node.clone()).collect()))
}

// Lists of lazy values where the task takes a list of their values. These
// do not overlap the blanket `A: Serialize` impl (that would need
// `T == Delayed<T>`).
impl<T> IntoDelayedArg<Vec<T>> for Vec<Delayed<T>> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        nodes(&self)
    }
}

impl<T> IntoDelayedArg<Vec<T>> for &Vec<Delayed<T>> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        nodes(self)
    }
}

impl<T> IntoDelayedArg<Vec<T>> for &[Delayed<T>] {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        nodes(self)
    }
}

impl<T> IntoDelayedArg<Vec<T>> for Vec<&Delayed<T>> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        nodes(self)
    }
}

fn node_map<'a, K: Serialize + 'a, T: 'a>(
    entries: impl IntoIterator<Item = (&'a K, &'a Delayed<T>)>,
) -> Result<DArg, Error> {
    entries
        .into_iter()
        .map(|(k, d)| {
            encode_value(k)
                .map(|b| (ByteBuf::from(b), d.node.clone()))
                .map_err(|e| Error::Encode(e.to_string()))
        })
        .collect::<Result<_, _>>()
        .map(DArg::NodeMap)
}

impl<K: Serialize + Eq + Hash, T, S: BuildHasher> IntoDelayedArg<HashMap<K, T>> for &HashMap<K, Delayed<T>, S> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        node_map(self)
    }
}

impl<K: Serialize + Ord, T> IntoDelayedArg<BTreeMap<K, T>> for &BTreeMap<K, Delayed<T>> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        node_map(self)
    }
}

impl<K: Serialize + Ord, T> IntoDelayedArg<BTreeMap<K, T>> for BTreeMap<K, Delayed<T>> {
    fn into_delayed_arg(self) -> Result<DArg, Error> {
        node_map(&self)
    }
}

/// A tuple of arguments for a task whose parameters are `Args`.
pub trait IntoDelayedArgs<Args> {
    /// The graph form of each argument.
    #[doc(hidden)]
    fn into_delayed_args(self) -> Result<Vec<DArg>, Error>;
}

impl IntoDelayedArgs<()> for () {
    fn into_delayed_args(self) -> Result<Vec<DArg>, Error> {
        Ok(Vec::new())
    }
}

// A one-list task may take the lazy values without a tuple:
// `delayed(sum, parts)`, as Dask's `delayed(sum)(parts)`.
impl<T> IntoDelayedArgs<(Vec<T>,)> for Vec<Delayed<T>> {
    fn into_delayed_args(self) -> Result<Vec<DArg>, Error> {
        Ok(vec![nodes(&self)?])
    }
}

impl<T> IntoDelayedArgs<(Vec<T>,)> for &Vec<Delayed<T>> {
    fn into_delayed_args(self) -> Result<Vec<DArg>, Error> {
        Ok(vec![nodes(self)?])
    }
}

macro_rules! tuple_args {
    ($(($a:ident, $x:ident, $v:ident)),+) => {
        impl<$($a, $x: IntoDelayedArg<$a>),+> IntoDelayedArgs<($($a,)+)> for ($($x,)+) {
            fn into_delayed_args(self) -> Result<Vec<DArg>, Error> {
                let ($($v,)+) = self;
                Ok(vec![$($v.into_delayed_arg()?),+])
            }
        }
    };
}

tuple_args!((A1, X1, x1));
tuple_args!((A1, X1, x1), (A2, X2, x2));
tuple_args!((A1, X1, x1), (A2, X2, x2), (A3, X3, x3));
tuple_args!((A1, X1, x1), (A2, X2, x2), (A3, X3, x3), (A4, X4, x4));
tuple_args!((A1, X1, x1), (A2, X2, x2), (A3, X3, x3), (A4, X4, x4), (A5, X5, x5));
tuple_args!(
    (A1, X1, x1),
    (A2, X2, x2),
    (A3, X3, x3),
    (A4, X4, x4),
    (A5, X5, x5),
    (A6, X6, x6)
);
