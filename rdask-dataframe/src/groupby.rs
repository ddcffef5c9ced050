//! The client side of group-by aggregations (Dask's
//! `df.groupby(keys).agg(…)`): each Polars aggregation expression is
//! recognised and split into partial, combine and final steps (`agg`), and
//! the partials are combined as a tree of `split_every`, so no task holds
//! more than `split_every` partial results. Also `value_counts`, a
//! group-by of one column.

use polars::prelude::{AggExpr, Expr};
use rdask::delayed::{delayed, Delayed};

use crate::agg::{self, AggKind, AggSpec, GroupSpec};
use crate::plan::Dsl;
use crate::{DataFrame, Error, Partition};

/// A data frame grouped by key columns, waiting for its aggregations.
#[derive(Clone, Debug)]
pub struct GroupBy {
    df: DataFrame,
    keys: Vec<String>,
    sort: bool,
}

/// The only columns a group-by reads, when every aggregation's input is a
/// plain column or the row count (so a CSV source parses no other, as
/// Dask's and Polars' projection pushdown do); `None` when an input is an
/// expression, whose columns are left to Polars to find.
fn read_columns(spec: &GroupSpec) -> Option<Vec<String>> {
    let mut columns = spec.keys.clone();
    for a in &spec.aggs {
        match &a.input {
            Expr::Len => {}
            Expr::Column(name) => {
                if !columns.iter().any(|c| c == name.as_str()) {
                    columns.push(name.to_string());
                }
            }
            _ => return None,
        }
    }
    Some(columns)
}

/// The aggregation an expression asks for, with its input and name.
fn recognise(e: &Expr) -> Result<AggSpec, Error> {
    let mut inner = e;
    while let Expr::Alias(x, _) = inner {
        inner = x;
    }
    let (kind, input) = match inner {
        Expr::Len => (AggKind::Len, Expr::Len),
        Expr::Agg(a) => match a {
            AggExpr::Sum(i) => (AggKind::Sum, (**i).clone()),
            AggExpr::Count {
                input,
                include_nulls: false,
            } => (AggKind::Count, (**input).clone()),
            AggExpr::Count {
                input,
                include_nulls: true,
            } => (AggKind::Len, (**input).clone()),
            AggExpr::Mean(i) => (AggKind::Mean, (**i).clone()),
            AggExpr::Min { input, .. } => (AggKind::Min, (**input).clone()),
            AggExpr::Max { input, .. } => (AggKind::Max, (**input).clone()),
            AggExpr::Var(i, ddof) => (AggKind::Var(*ddof), (**i).clone()),
            AggExpr::Std(i, ddof) => (AggKind::Std(*ddof), (**i).clone()),
            AggExpr::First(i) => (AggKind::First, (**i).clone()),
            AggExpr::Last(i) => (AggKind::Last, (**i).clone()),
            AggExpr::NUnique(i) => (AggKind::NUnique, (**i).clone()),
            _ => return Err(unsupported(&format!("{inner:?}"))),
        },
        other => return Err(unsupported(&format!("{other:?}"))),
    };
    let name = output_name(e).ok_or_else(|| {
        Error::Invalid(format!(
            "aggregation {e:?} has no output name of its own: give it one with alias"
        ))
    })?;
    Ok(AggSpec { kind, input, name })
}

/// The name Polars gives an expression's result: its alias, else that of
/// its first input, down to a column (`None` for forms not covered here).
fn output_name(e: &Expr) -> Option<String> {
    match e {
        Expr::Alias(_, name) | Expr::Column(name) => Some(name.to_string()),
        Expr::Len => Some("len".into()),
        Expr::Literal(_) => Some("literal".into()),
        Expr::Agg(
            AggExpr::Min { input, .. }
            | AggExpr::Max { input, .. }
            | AggExpr::Count { input, .. }
            | AggExpr::Sum(input)
            | AggExpr::Mean(input)
            | AggExpr::Var(input, _)
            | AggExpr::Std(input, _)
            | AggExpr::First(input)
            | AggExpr::Last(input)
            | AggExpr::NUnique(input),
        ) => output_name(input),
        Expr::BinaryExpr { left, .. } => output_name(left),
        Expr::Cast { expr, .. } => output_name(expr),
        Expr::Function { input, .. } => input.first().and_then(output_name),
        _ => None,
    }
}

fn unsupported(what: &str) -> Error {
    Error::Invalid(format!(
        "{what} is not a supported aggregation: use sum, count, len, mean, min, max, var, std, \
         first, last or n_unique of an expression (optionally aliased)"
    ))
}

impl DataFrame {
    /// Groups by the key columns (Dask's `df.groupby(keys)`); the result of
    /// an aggregation is sorted by the keys unless [`GroupBy::sort`] turns
    /// it off.
    pub fn groupby(&self, keys: &[&str]) -> GroupBy {
        GroupBy {
            df: self.clone(),
            keys: keys.iter().map(|k| k.to_string()).collect(),
            sort: true,
        }
    }

    /// Rows per distinct value of `column`, most frequent first, ties by
    /// value (Dask's `df[column].value_counts()`): columns `column` and
    /// `count`.
    pub fn value_counts(&self, column: &str) -> Result<DataFrame, Error> {
        let g = self.groupby(&[column]);
        let spec = GroupSpec {
            keys: g.keys.clone(),
            aggs: vec![AggSpec {
                kind: AggKind::Len,
                input: Expr::Len,
                name: "count".into(),
            }],
            sort: vec![("count".into(), true), (column.to_string(), false)],
        };
        Ok(g.run(spec))
    }
}

impl GroupBy {
    /// Whether the result is sorted by the keys (default on).
    pub fn sort(mut self, on: bool) -> Self {
        self.sort = on;
        self
    }

    /// The aggregations `exprs` per group (Dask's `.agg(…)`), e.g.
    /// `[col("value").mean(), col("value").max().alias("top")]`: a one-partition
    /// data frame of the keys and one column per aggregation. Each
    /// expression is a `sum`, `count`, `len`, `mean`, `min`, `max`, `var`,
    /// `std`, `first`, `last` or `n_unique` of any expression over the
    /// columns; anything else is refused here.
    pub fn agg(&self, exprs: &[Expr]) -> Result<DataFrame, Error> {
        if self.keys.is_empty() {
            return Err(Error::Invalid("groupby needs at least one key column".into()));
        }
        if exprs.is_empty() {
            return Err(Error::Invalid("agg needs at least one aggregation".into()));
        }
        let aggs = exprs.iter().map(recognise).collect::<Result<Vec<_>, _>>()?;
        let mut names: Vec<&str> = self.keys.iter().map(String::as_str).collect();
        for a in &aggs {
            if names.contains(&a.name.as_str()) {
                return Err(Error::Invalid(format!(
                    "two result columns named {:?}: give one another name with alias",
                    a.name
                )));
            }
            names.push(&a.name);
        }
        let sort = if self.sort {
            self.keys.iter().map(|k| (k.clone(), false)).collect()
        } else {
            Vec::new()
        };
        Ok(self.run(GroupSpec {
            keys: self.keys.clone(),
            aggs,
            sort,
        }))
    }

    /// Partials per partition, combined `split_every` at a time until one
    /// task can finish them.
    fn run(&self, spec: GroupSpec) -> DataFrame {
        let split = self.df.split_every;
        let parts = match read_columns(&spec) {
            Some(columns) => self.df.to_delayed_columns(&columns),
            None => self.df.to_delayed(),
        };
        let mut level: Vec<Delayed<Partition>> = parts
            .iter()
            .map(|p| delayed(agg::partial, (p, Dsl(spec.clone()))))
            .collect();
        while level.len() > split {
            level = level
                .chunks(split)
                .map(|g| delayed(agg::combine, (g.to_vec(), Dsl(spec.clone()))))
                .collect();
        }
        let result = delayed(agg::finalize, (level, Dsl(spec)));
        self.df.with_parts(vec![result])
    }
}
