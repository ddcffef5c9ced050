//! Shared by the data frame tests: random frames with nulls (proptest),
//! and a comparison of two Polars frames that allows float rounding.
#![allow(dead_code)]

use polars::prelude::*;
use proptest::prelude::*;

/// A frame of `n` rows: `k` (i64 key, 0..4, some null), `g` (string key of
/// 3 values), `v` (f64, some null), `w` (i64).
pub fn frame(rows: Vec<(Option<i64>, u8, Option<f64>, i64)>) -> DataFrame {
    let k: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
    let g: Vec<String> = rows.iter().map(|r| format!("g{}", r.1)).collect();
    let v: Vec<Option<f64>> = rows.iter().map(|r| r.2).collect();
    let w: Vec<i64> = rows.iter().map(|r| r.3).collect();
    df!("k" => k, "g" => g, "v" => v, "w" => w).expect("columns of one length")
}

/// Random frames of 0 to 60 rows with nulls in `k` and `v`.
pub fn frames() -> impl Strategy<Value = DataFrame> {
    prop::collection::vec(
        (
            prop::option::weighted(0.9, 0i64..4),
            0u8..3,
            prop::option::weighted(0.85, -100.0f64..100.0),
            -1000i64..1000,
        ),
        0..60,
    )
    .prop_map(frame)
}

/// Whether two frames have the same columns (names and types), rows and
/// values, floats within a relative 1e-9 (NaN and null equal to
/// themselves). On a difference, says where.
pub fn same(got: &DataFrame, want: &DataFrame) -> Result<(), String> {
    if got.schema() != want.schema() {
        return Err(format!(
            "schemas differ: got {:?}, want {:?}",
            got.schema(),
            want.schema()
        ));
    }
    if got.height() != want.height() {
        return Err(format!(
            "heights differ: got {}, want {}\n{got}\n{want}",
            got.height(),
            want.height()
        ));
    }
    for (a, b) in got.columns().iter().zip(want.columns()) {
        let (a, b) = (a.as_materialized_series(), b.as_materialized_series());
        let ok = if a.dtype().is_float() {
            let (x, y) = (a.f64().map_err(|e| e.to_string())?, b.f64().map_err(|e| e.to_string())?);
            x.iter().zip(y.iter()).all(|(x, y)| match (x, y) {
                (None, None) => true,
                (Some(x), Some(y)) => {
                    (x.is_nan() && y.is_nan()) || (x - y).abs() <= 1e-9 * (1.0 + x.abs().max(y.abs()))
                }
                _ => false,
            })
        } else {
            a.equals_missing(b)
        };
        if !ok {
            return Err(format!("column {} differs:\ngot {a}\nwant {b}", a.name()));
        }
    }
    Ok(())
}

/// `df` sorted by all its columns (for results in no particular order).
pub fn sorted(df: &DataFrame) -> DataFrame {
    let cols: Vec<PlSmallStr> = df.get_column_names().into_iter().cloned().collect();
    df.sort(cols, SortMultipleOptions::default()).expect("sortable columns")
}

/// pandas' linear-interpolation percentile of sorted values.
pub fn quantile(sorted: &[f64], q: f64) -> Option<f64> {
    if sorted.is_empty() {
        return None;
    }
    let pos = q * (sorted.len() - 1) as f64;
    let (lo, hi) = (pos.floor() as usize, pos.ceil() as usize);
    Some(sorted[lo] + (sorted[hi] - sorted[lo]) * (pos - lo as f64))
}

/// `describe()` of the numeric columns as pandas computes it, by hand.
pub fn describe(df: &DataFrame) -> DataFrame {
    let mut cols = vec![Column::new(
        "statistic".into(),
        ["count", "mean", "std", "min", "25%", "50%", "75%", "max"],
    )];
    for c in df.columns() {
        if !c.dtype().is_primitive_numeric() {
            continue;
        }
        let f = c.cast(&DataType::Float64).expect("numeric casts to f64");
        let mut v: Vec<f64> = f.f64().expect("f64").iter().flatten().collect();
        v.sort_by(f64::total_cmp);
        let n = v.len() as f64;
        let mean = (n > 0.0).then(|| v.iter().sum::<f64>() / n);
        let std = (n > 1.0).then(|| {
            let m = v.iter().sum::<f64>() / n;
            (v.iter().map(|x| (x - m) * (x - m)).sum::<f64>() / (n - 1.0)).sqrt()
        });
        let values = [
            Some(n),
            mean,
            std,
            v.first().copied(),
            quantile(&v, 0.25),
            quantile(&v, 0.5),
            quantile(&v, 0.75),
            v.last().copied(),
        ];
        cols.push(Column::new(c.name().clone(), values.to_vec()));
    }
    DataFrame::new_infer_height(cols).expect("columns of one length")
}
