//! The worker side of group-by aggregations: each supported aggregation is
//! split into partial columns computed per partition, a combine step that
//! merges partials of the same group (any number of times, as a tree), and
//! a final step that turns them into the result. Results are exact: a mean
//! is a sum over a count, a variance combines per-partition counts, sums
//! and sums of squared deviations (Chan et al.'s pairwise update), never a
//! mean of means; `n_unique` carries each group's distinct values.

use polars::prelude::{
    col, len, lit, when, DataType, ExplodeOptions, Expr, IntoLazy, Null, SortMultipleOptions, IDX_DTYPE,
};
use serde::{Deserialize, Serialize};

use crate::kernels::concat_frames;
use crate::plan::Dsl;
use crate::Partition;

/// A supported aggregation (Polars' `AggExpr` variants that can be
/// computed exactly from partials).
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub enum AggKind {
    /// `e.sum()`
    Sum,
    /// `e.count()`: non-null values
    Count,
    /// `len()`: rows
    Len,
    /// `e.mean()`
    Mean,
    /// `e.min()`
    Min,
    /// `e.max()`
    Max,
    /// `e.var(ddof)`
    Var(u8),
    /// `e.std(ddof)`
    Std(u8),
    /// `e.first()`: of the group's first row, in partition order
    First,
    /// `e.last()`
    Last,
    /// `e.n_unique()`: distinct values, null counted as one
    NUnique,
}

/// One aggregation of a group-by: `kind` of `input`, named `name`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AggSpec {
    /// What to compute.
    pub kind: AggKind,
    /// Of what (an expression over a partition's columns).
    pub input: Expr,
    /// The result column's name.
    pub name: String,
}

/// A whole group-by aggregation, shipped to every step.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct GroupSpec {
    /// Key columns.
    pub keys: Vec<String>,
    /// Aggregations, in output order.
    pub aggs: Vec<AggSpec>,
    /// Columns the result is sorted by, each with whether descending
    /// (by the keys, ascending, by default: Dask's and pandas' `sort=True`).
    pub sort: Vec<(String, bool)>,
}

/// Name of partial column `part` of aggregation `i` (chosen not to clash
/// with user columns).
fn pname(i: usize, part: &str) -> String {
    format!("__rdask_agg_{i}_{part}")
}

fn pcol(i: usize, part: &str) -> Expr {
    col(pname(i, part))
}

fn null() -> Expr {
    lit(Null {})
}

/// Explodes lists, keeping nulls as values (for `n_unique`).
fn explode(e: Expr) -> Expr {
    e.explode(ExplodeOptions {
        empty_as_null: false,
        keep_nulls: true,
    })
}

/// The per-partition expressions of aggregation `i`.
fn partial_exprs(i: usize, a: &AggSpec) -> Vec<Expr> {
    let x = a.input.clone();
    let f = || x.clone().cast(DataType::Float64);
    match a.kind {
        AggKind::Sum => vec![x.sum().alias(pname(i, "s"))],
        AggKind::Count => vec![x.count().cast(DataType::Int64).alias(pname(i, "c"))],
        AggKind::Len => vec![len().cast(DataType::Int64).alias(pname(i, "c"))],
        AggKind::Mean => vec![
            f().sum().alias(pname(i, "s")),
            x.count().cast(DataType::Int64).alias(pname(i, "c")),
        ],
        AggKind::Min => vec![x.min().alias(pname(i, "m"))],
        AggKind::Max => vec![x.max().alias(pname(i, "m"))],
        AggKind::Var(_) | AggKind::Std(_) => vec![
            x.clone().count().cast(DataType::Float64).alias(pname(i, "n")),
            f().sum().alias(pname(i, "s")),
            (f().var(0) * x.count().cast(DataType::Float64))
                .fill_null(lit(0.0))
                .alias(pname(i, "m2")),
        ],
        AggKind::First => vec![x.first().alias(pname(i, "v"))],
        AggKind::Last => vec![x.last().alias(pname(i, "v"))],
        AggKind::NUnique => vec![x.unique().alias(pname(i, "u"))],
    }
}

/// Merged count, sum and sum of squared deviations of a variance's
/// partials, in a group-by context.
fn var_parts(i: usize) -> (Expr, Expr, Expr) {
    let (n, s, m2) = (pcol(i, "n"), pcol(i, "s"), pcol(i, "m2"));
    let d = s.clone() / n.clone() - s.clone().sum() / n.clone().sum();
    let spread = when(n.clone().gt(lit(0.0)))
        .then(n.clone() * d.clone() * d)
        .otherwise(lit(0.0))
        .sum();
    (n.sum(), s.sum(), m2.sum() + spread)
}

/// The expressions merging partials of aggregation `i` into partials.
fn combine_exprs(i: usize, a: &AggSpec) -> Vec<Expr> {
    match a.kind {
        AggKind::Sum => vec![pcol(i, "s").sum()],
        AggKind::Count | AggKind::Len => vec![pcol(i, "c").sum()],
        AggKind::Mean => vec![pcol(i, "s").sum(), pcol(i, "c").sum()],
        AggKind::Min => vec![pcol(i, "m").min()],
        AggKind::Max => vec![pcol(i, "m").max()],
        AggKind::Var(_) | AggKind::Std(_) => {
            let (n, s, m2) = var_parts(i);
            vec![n.alias(pname(i, "n")), s.alias(pname(i, "s")), m2.alias(pname(i, "m2"))]
        }
        AggKind::First => vec![pcol(i, "v").first()],
        AggKind::Last => vec![pcol(i, "v").last()],
        AggKind::NUnique => vec![explode(pcol(i, "u")).unique()],
    }
}

/// The expression turning partials of aggregation `i` into its result.
fn final_expr(i: usize, a: &AggSpec) -> Expr {
    let e = match a.kind {
        AggKind::Sum => pcol(i, "s").sum(),
        AggKind::Count | AggKind::Len => pcol(i, "c").sum().cast(IDX_DTYPE),
        AggKind::Mean => {
            let c = pcol(i, "c").sum();
            when(c.clone().gt(lit(0i64)))
                .then(pcol(i, "s").sum() / c.cast(DataType::Float64))
                .otherwise(null())
        }
        AggKind::Min => pcol(i, "m").min(),
        AggKind::Max => pcol(i, "m").max(),
        AggKind::Var(ddof) | AggKind::Std(ddof) => {
            let (n, _, m2) = var_parts(i);
            let dof = n - lit(ddof as f64);
            let var = when(dof.clone().gt(lit(0.0))).then(m2 / dof).otherwise(null());
            if matches!(a.kind, AggKind::Std(_)) {
                var.sqrt()
            } else {
                var
            }
        }
        AggKind::First => pcol(i, "v").first(),
        AggKind::Last => pcol(i, "v").last(),
        AggKind::NUnique => explode(pcol(i, "u")).n_unique().cast(IDX_DTYPE),
    };
    e.alias(a.name.as_str())
}

fn keys(spec: &GroupSpec) -> Vec<Expr> {
    spec.keys.iter().map(|k| col(k.as_str())).collect()
}

/// A group-by of the stacked `parts` with `exprs` (the order of rows within
/// a group is kept: `first`/`last` rely on it).
fn group(parts: Vec<Partition>, spec: &GroupSpec, exprs: Vec<Expr>) -> Result<polars::prelude::DataFrame, String> {
    let df = concat_frames(parts.into_iter().map(Partition::into_inner).collect())?;
    df.lazy()
        .group_by_stable(keys(spec))
        .agg(exprs)
        .collect()
        .map_err(|e| e.to_string())
}

/// The partial aggregates of one partition: a row per group.
#[rdask::task]
pub fn partial(p: Partition, spec: Dsl<GroupSpec>) -> Result<Partition, String> {
    let spec = spec.0;
    let exprs = spec
        .aggs
        .iter()
        .enumerate()
        .flat_map(|(i, a)| partial_exprs(i, a))
        .collect();
    group(vec![p], &spec, exprs).map(Partition)
}

/// Partials of several partitions merged: a row per group.
#[rdask::task]
pub fn combine(parts: Vec<Partition>, spec: Dsl<GroupSpec>) -> Result<Partition, String> {
    let spec = spec.0;
    let exprs = spec
        .aggs
        .iter()
        .enumerate()
        .flat_map(|(i, a)| combine_exprs(i, a))
        .collect();
    group(parts, &spec, exprs).map(Partition)
}

/// The result from the last partials: a row per group, sorted as the spec
/// says.
#[rdask::task]
pub fn finalize(parts: Vec<Partition>, spec: Dsl<GroupSpec>) -> Result<Partition, String> {
    let spec = spec.0;
    let exprs = spec.aggs.iter().enumerate().map(|(i, a)| final_expr(i, a)).collect();
    let df = group(parts, &spec, exprs)?;
    if spec.sort.is_empty() {
        return Ok(Partition(df));
    }
    let (by, desc): (Vec<String>, Vec<bool>) = spec.sort.iter().cloned().unzip();
    df.lazy()
        .sort(by, SortMultipleOptions::default().with_order_descending_multi(desc))
        .collect()
        .map(Partition)
        .map_err(|e| e.to_string())
}
