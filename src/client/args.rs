//! Typed arguments: each parameter of a task accepts either a value of its
//! type or a [`Future`] of that type, checked by the compiler.

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
