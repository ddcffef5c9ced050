//! Polars expressions shipped to the workers: [`Dsl`] wraps any serde value
//! holding `Expr`s (an [`Op`] list, a group-by spec) and encodes it with
//! Polars' own DSL serialization (msgpack, with its stack guard for deep
//! expressions), so column arithmetic and filters need no registered
//! function. The bytes are as stable as that format: workers must run the
//! same Polars version as the client (one binary, in practice).

use polars::polars_utils::pl_serialize;
use polars::prelude::{Expr, IntoLazy, LazyFrame};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// One row-wise step of a partition's plan.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub enum Op {
    /// `df.select(exprs)`
    Select(Vec<Expr>),
    /// `df.with_columns(exprs)`
    WithColumns(Vec<Expr>),
    /// `df.filter(predicate)`
    Filter(Expr),
}

/// Applies `ops` to a partition as one lazy Polars query (Polars optimizes
/// the steps together: a filter after a projection is pushed down).
pub fn apply_ops(df: polars::prelude::DataFrame, ops: &[Op]) -> Result<polars::prelude::DataFrame, String> {
    if ops.is_empty() {
        return Ok(df);
    }
    let mut lf: LazyFrame = df.lazy();
    for op in ops {
        lf = match op {
            Op::Select(e) => lf.select(e.clone()),
            Op::WithColumns(e) => lf.with_columns(e.clone()),
            Op::Filter(e) => lf.filter(e.clone()),
        };
    }
    lf.collect().map_err(|e| e.to_string())
}

/// A value carrying Polars expressions, encoded by Polars' DSL serializer
/// (a msgpack `bin` on the wire).
#[derive(Clone, Debug)]
pub struct Dsl<T>(pub T);

impl<T: Serialize> Serialize for Dsl<T> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        let mut bytes = Vec::new();
        pl_serialize::serialize_dsl(&mut bytes, &self.0).map_err(serde::ser::Error::custom)?;
        s.serialize_bytes(&bytes)
    }
}

impl<'de, T: DeserializeOwned> Deserialize<'de> for Dsl<T> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Dsl<T>, D::Error> {
        let bytes = serde_bytes::ByteBuf::deserialize(d)?;
        pl_serialize::deserialize_dsl(bytes.as_slice())
            .map(Dsl)
            .map_err(|e| serde::de::Error::custom(format!("Polars expressions: {e}")))
    }
}
