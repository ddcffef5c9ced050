//! Typed arguments: each parameter of a task accepts either a value of its
//! type or a [`Future`] of that type, checked by the compiler; a `Vec<T>`
//! parameter also accepts a collection of `Future<T>` (a slice, `Vec`,
//! array or `Vec<&Future<T>>`) and a `HashMap<K, T>` / `BTreeMap<K, T>`
//! parameter a map of futures, sent as one [`Arg::Keys`] / [`Arg::KeyMap`].

use std::collections::{BTreeMap, HashMap};
use std::hash::{BuildHasher, Hash};

use super::{Error, Future};
use crate::task::encode_value;
use crate::wire::messages::Arg;
use serde::Serialize;

/// A value or future usable where a task expects an `A`.
pub trait IntoArg<A> {
    /// The wire form: an encoded value or a key.
    fn into_arg(self) -> Result<Arg, Error>;
}

impl<A: Serialize> IntoArg<A> for A {
    fn into_arg(self) -> Result<Arg, Error> {
        encode_value(&self)
            .map(Arg::Value)
            .map_err(|e| Error::Encode(e.to_string()))
    }
}

impl<A> IntoArg<A> for Future<A> {
    fn into_arg(self) -> Result<Arg, Error> {
        Ok(Arg::Key(self.key.clone()))
    }
}

impl<A> IntoArg<A> for &Future<A> {
    fn into_arg(self) -> Result<Arg, Error> {
        Ok(Arg::Key(self.key.clone()))
    }
}

impl IntoArg<String> for &str {
    fn into_arg(self) -> Result<Arg, Error> {
        encode_value(self)
            .map(Arg::Value)
            .map_err(|e| Error::Encode(e.to_string()))
    }
}

impl IntoArg<String> for &String {
    fn into_arg(self) -> Result<Arg, Error> {
        encode_value(self)
            .map(Arg::Value)
            .map_err(|e| Error::Encode(e.to_string()))
    }
}

fn keys_arg<'a, T: 'a>(futures: impl IntoIterator<Item = &'a Future<T>>) -> Result<Arg, Error> {
    Ok(Arg::Keys(futures.into_iter().map(|f| f.key.clone()).collect()))
}

fn key_map_arg<'a, K: Serialize + 'a, T: 'a>(
    entries: impl IntoIterator<Item = (&'a K, &'a Future<T>)>,
) -> Result<Arg, Error> {
    entries
        .into_iter()
        .map(|(k, f)| {
            encode_value(k)
                .map(|b| (serde_bytes::ByteBuf::from(b), f.key.clone()))
                .map_err(|e| Error::Encode(e.to_string()))
        })
        .collect::<Result<_, _>>()
        .map(Arg::KeyMap)
}

// A list of futures where the task takes a list of their values. These do
// not overlap the blanket `A: Serialize` impl: that would need
// `Vec<Future<T>> == Vec<T>`, i.e. `T == Future<T>`, which no type is.
impl<T> IntoArg<Vec<T>> for Vec<Future<T>> {
    fn into_arg(self) -> Result<Arg, Error> {
        keys_arg(&self)
    }
}

impl<T> IntoArg<Vec<T>> for &Vec<Future<T>> {
    fn into_arg(self) -> Result<Arg, Error> {
        keys_arg(self)
    }
}

impl<T> IntoArg<Vec<T>> for &[Future<T>] {
    fn into_arg(self) -> Result<Arg, Error> {
        keys_arg(self)
    }
}

impl<T, const N: usize> IntoArg<Vec<T>> for [Future<T>; N] {
    fn into_arg(self) -> Result<Arg, Error> {
        keys_arg(&self)
    }
}

impl<T, const N: usize> IntoArg<Vec<T>> for &[Future<T>; N] {
    fn into_arg(self) -> Result<Arg, Error> {
        keys_arg(self)
    }
}

impl<T> IntoArg<Vec<T>> for Vec<&Future<T>> {
    fn into_arg(self) -> Result<Arg, Error> {
        keys_arg(self)
    }
}

impl<T> IntoArg<Vec<T>> for &[&Future<T>] {
    fn into_arg(self) -> Result<Arg, Error> {
        keys_arg(self.iter().copied())
    }
}

// A map of futures where the task takes a map of their values. The map
// keys are encoded on their own; the task's map type decides their order.
impl<K: Serialize + Eq + Hash, T, S: BuildHasher> IntoArg<HashMap<K, T>> for HashMap<K, Future<T>, S> {
    fn into_arg(self) -> Result<Arg, Error> {
        key_map_arg(&self)
    }
}

impl<K: Serialize + Eq + Hash, T, S: BuildHasher> IntoArg<HashMap<K, T>> for &HashMap<K, Future<T>, S> {
    fn into_arg(self) -> Result<Arg, Error> {
        key_map_arg(self)
    }
}

impl<K: Serialize + Ord, T> IntoArg<BTreeMap<K, T>> for BTreeMap<K, Future<T>> {
    fn into_arg(self) -> Result<Arg, Error> {
        key_map_arg(&self)
    }
}

impl<K: Serialize + Ord, T> IntoArg<BTreeMap<K, T>> for &BTreeMap<K, Future<T>> {
    fn into_arg(self) -> Result<Arg, Error> {
        key_map_arg(self)
    }
}

/// A tuple of arguments for a task whose parameters are `Args`.
pub trait IntoArgs<Args> {
    /// The wire form of each argument.
    fn into_args(self) -> Result<Vec<Arg>, Error>;
}

impl IntoArgs<()> for () {
    fn into_args(self) -> Result<Vec<Arg>, Error> {
        Ok(Vec::new())
    }
}

// A task of one list parameter may be given the futures without a tuple:
// `client.submit(sum, &futures)`, as Dask's `client.submit(sum, futures)`.
// (A blanket `X: IntoArg<A>` impl would overlap the tuple impls below.)
macro_rules! list_args {
    ($($(#[$m:meta])* [$($g:tt)*] $t:ty;)+) => {$(
        $(#[$m])*
        impl<T, $($g)*> IntoArgs<(Vec<T>,)> for $t {
            fn into_args(self) -> Result<Vec<Arg>, Error> {
                Ok(vec![IntoArg::<Vec<T>>::into_arg(self)?])
            }
        }
    )+};
}

list_args! {
    [] Vec<Future<T>>;
    [] &Vec<Future<T>>;
    [] &[Future<T>];
    [const N: usize] [Future<T>; N];
    [const N: usize] &[Future<T>; N];
    [] Vec<&Future<T>>;
}

macro_rules! tuple_args {
    ($(($a:ident, $x:ident, $v:ident)),+) => {
        impl<$($a, $x: IntoArg<$a>),+> IntoArgs<($($a,)+)> for ($($x,)+) {
            fn into_args(self) -> Result<Vec<Arg>, Error> {
                let ($($v,)+) = self;
                Ok(vec![$($v.into_arg()?),+])
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
tuple_args!(
    (A1, X1, x1),
    (A2, X2, x2),
    (A3, X3, x3),
    (A4, X4, x4),
    (A5, X5, x5),
    (A6, X6, x6),
    (A7, X7, x7)
);
tuple_args!(
    (A1, X1, x1),
    (A2, X2, x2),
    (A3, X3, x3),
    (A4, X4, x4),
    (A5, X5, x5),
    (A6, X6, x6),
    (A7, X7, x7),
    (A8, X8, x8)
);
