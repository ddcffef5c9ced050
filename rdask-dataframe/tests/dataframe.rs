//! Every data frame operation against the same computation in plain Polars
//! on one machine, on random frames with nulls and empty partitions
//! (proptest), computed on an in-process `LocalCluster` of two workers (and
//! some also on the local thread pool).

mod common;

use std::sync::OnceLock;

use common::*;
use polars::prelude::*;
use proptest::prelude::*;
use rdask::{Client, LocalCluster};
use rdask_dataframe::{self as dd, How, Partition, SortBy};

/// One cluster for the whole test binary (starting one per case would
/// dominate the run).
fn client() -> &'static Client {
    static CLUSTER: OnceLock<(LocalCluster, Client)> = OnceLock::new();
    let pair = CLUSTER.get_or_init(|| {
        let cluster = LocalCluster::new(2).expect("local cluster starts");
        let client = cluster.client().expect("client connects");
        (cluster, client)
    });
    &pair.1
}

fn fail(e: impl std::fmt::Display) -> TestCaseError {
    TestCaseError::fail(e.to_string())
}

/// Polars' own result of a lazy query on the whole frame.
fn polars(df: &DataFrame, f: impl FnOnce(LazyFrame) -> LazyFrame) -> DataFrame {
    f(df.clone().lazy()).collect().expect("polars computes the reference")
}

/// Doubles `v` (the test's `map_partitions` function, registered in this
/// binary, so the in-process workers can run it).
#[rdask::task]
fn double_v(p: Partition) -> Result<Partition, String> {
    let df = p
        .into_inner()
        .lazy()
        .with_columns([col("v") * lit(2.0)])
        .collect()
        .map_err(|e| e.to_string())?;
    Ok(Partition(df))
}

/// Every supported aggregation of `v` and `w`, as Polars writes them.
fn all_aggs() -> Vec<Expr> {
    vec![
        col("v").sum().alias("v_sum"),
        col("v").count().alias("v_count"),
        len().alias("n"),
        col("v").mean().alias("v_mean"),
        col("w").mean().alias("w_mean"),
        col("v").min().alias("v_min"),
        col("w").max().alias("w_max"),
        col("v").var(1).alias("v_var"),
        col("w").std(1).alias("w_std"),
        col("v").var(0).alias("v_var0"),
        col("v").first().alias("v_first"),
        col("w").last().alias("w_last"),
        col("v").n_unique().alias("v_nunique"),
        (col("w") * lit(2)).sum().alias("w2_sum"),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    #[test]
    fn from_polars_round_trips_with_len_head_and_persist(df in frames(), nparts in 1usize..7, n in 0usize..70) {
        let ddf = dd::from_polars(&df, nparts).map_err(fail)?;
        prop_assert_eq!(ddf.npartitions(), nparts);
        same(&ddf.compute(client()).map_err(fail)?, &df).map_err(fail)?;
        same(&ddf.compute_local().map_err(fail)?, &df).map_err(fail)?;
        prop_assert_eq!(ddf.len(client()).map_err(fail)?, df.height());
        same(&ddf.head(client(), n).map_err(fail)?, &df.head(Some(n))).map_err(fail)?;
        let kept = ddf.with_columns([col("w") + lit(1)]).persist(client()).map_err(fail)?;
        let want = polars(&df, |l| l.with_columns([col("w") + lit(1)]));
        same(&kept.compute(client()).map_err(fail)?, &want).map_err(fail)?;
        same(&kept.filter(col("w").gt(lit(0))).compute(client()).map_err(fail)?,
             &polars(&want, |l| l.filter(col("w").gt(lit(0))))).map_err(fail)?;
    }

    #[test]
    fn select_with_columns_filter_and_map_partitions(df in frames(), nparts in 1usize..7, t in -50.0f64..50.0) {
        let ddf = dd::from_polars(&df, nparts).map_err(fail)?;
        let out = ddf
            .with_columns([(col("v") * col("w").cast(DataType::Float64)).alias("vw"), col("k").fill_null(lit(-1))])
            .filter(col("v").gt(lit(t)).or(col("v").is_null()))
            .select([col("k"), col("vw"), (col("w") % lit(7)).alias("w7"), col("g")]);
        let want = polars(&df, |l| {
            l.with_columns([(col("v") * col("w").cast(DataType::Float64)).alias("vw"), col("k").fill_null(lit(-1))])
                .filter(col("v").gt(lit(t)).or(col("v").is_null()))
                .select([col("k"), col("vw"), (col("w") % lit(7)).alias("w7"), col("g")])
        });
        same(&out.compute(client()).map_err(fail)?, &want).map_err(fail)?;
        same(&out.compute_local().map_err(fail)?, &want).map_err(fail)?;
        let doubled = ddf.map_partitions(double_v).compute(client()).map_err(fail)?;
        same(&doubled, &polars(&df, |l| l.with_columns([col("v") * lit(2.0)]))).map_err(fail)?;
    }

    #[test]
    fn groupby_aggregations_are_exact(df in frames(), nparts in 1usize..9, split in 2usize..4, by_two in any::<bool>()) {
        let keys: &[&str] = if by_two { &["k", "g"] } else { &["k"] };
        let ddf = dd::from_polars(&df, nparts).map_err(fail)?.split_every(split);
        let got = ddf.groupby(keys).agg(&all_aggs()).map_err(fail)?.compute(client()).map_err(fail)?;
        let want = polars(&df, |l| {
            l.group_by(keys.iter().map(|k| col(*k)).collect::<Vec<_>>())
                .agg(all_aggs())
                .sort(keys.iter().map(|k| PlSmallStr::from(*k)).collect::<Vec<_>>(), SortMultipleOptions::default())
        });
        same(&got, &want).map_err(fail)?;
    }

    #[test]
    fn value_counts_drop_duplicates_and_repartition(df in frames(), nparts in 1usize..7, to in 1usize..9) {
        let ddf = dd::from_polars(&df, nparts).map_err(fail)?.split_every(2);
        let got = ddf.value_counts("k").map_err(fail)?.compute(client()).map_err(fail)?;
        let want = polars(&df, |l| {
            l.group_by([col("k")]).agg([len().alias("count")]).sort(
                ["count", "k"],
                SortMultipleOptions::default().with_order_descending_multi([true, false]),
            )
        });
        same(&got, &want).map_err(fail)?;

        let got = ddf.drop_duplicates(None).compute(client()).map_err(fail)?;
        same(&sorted(&got), &sorted(&df.unique_stable(None, UniqueKeepStrategy::First, None).map_err(fail)?)).map_err(fail)?;
        let got = ddf.select([col("k"), col("g")]).drop_duplicates(Some(&["k", "g"])).compute(client()).map_err(fail)?;
        let want = polars(&df, |l| l.select([col("k"), col("g")]).unique(None, UniqueKeepStrategy::Any));
        same(&sorted(&got), &sorted(&want)).map_err(fail)?;

        same(&ddf.describe().compute(client()).map_err(fail)?, &describe(&df)).map_err(fail)?;

        let re = ddf.repartition(to).map_err(fail)?;
        prop_assert_eq!(re.npartitions(), to);
        same(&re.compute(client()).map_err(fail)?, &df).map_err(fail)?;
    }
}

/// A small right side for joins: `k` (0..5, some null) and `r`.
fn right_frames() -> impl Strategy<Value = DataFrame> {
    prop::collection::vec((prop::option::weighted(0.9, 0i64..5), -100i64..100), 0..20).prop_map(|rows| {
        let k: Vec<Option<i64>> = rows.iter().map(|r| r.0).collect();
        let r: Vec<i64> = rows.iter().map(|r| r.1).collect();
        df!("k" => k, "r" => r).expect("columns of one length")
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    #[test]
    fn joins_broadcast_and_shuffled_match_polars(
        left in frames(),
        right in right_frames(),
        lparts in 1usize..5,
        rparts in 1usize..4,
        out in 1usize..5,
    ) {
        let (l, r) = (dd::from_polars(&left, lparts).map_err(fail)?, dd::from_polars(&right, rparts).map_err(fail)?);
        for (how, jt) in [(How::Inner, JoinType::Inner), (How::Left, JoinType::Left), (How::Right, JoinType::Right), (How::Full, JoinType::Full)] {
            let want = polars(&left, |lf| lf.join(right.clone().lazy(), [col("k")], [col("k")], JoinArgs::new(jt.clone())));
            let got = l.merge_shuffle(&r, &["k"], &["k"], how, out).map_err(fail)?;
            prop_assert_eq!(got.npartitions(), out);
            same(&sorted(&got.compute(client()).map_err(fail)?), &sorted(&want)).map_err(fail)?;
            let auto = l.merge(&r, &["k"], &["k"], how).map_err(fail)?;
            same(&sorted(&auto.compute(client()).map_err(fail)?), &sorted(&want)).map_err(fail)?;
            if matches!(how, How::Inner | How::Left) {
                let got = l.merge_broadcast(&r, &["k"], &["k"], how).map_err(fail)?;
                prop_assert_eq!(got.npartitions(), lparts);
                same(&sorted(&got.compute(client()).map_err(fail)?), &sorted(&want)).map_err(fail)?;
            } else {
                prop_assert!(l.merge_broadcast(&r, &["k"], &["k"], how).is_err());
            }
        }
    }
}

/// Past `SKETCH_POINTS` values a column's percentiles are approximate: each
/// lies within a few tenths of a percent (in rank) of the exact one; the
/// other statistics stay exact.
#[test]
fn describe_of_many_values_is_close() -> Result<(), Box<dyn std::error::Error>> {
    let rows: Vec<(Option<i64>, u8, Option<f64>, i64)> = (0..20_000i64)
        .map(|i| (Some(i % 4), 0, Some(((i * 7919) % 10_007) as f64 / 3.0), (i * 31) % 997))
        .collect();
    let df = frame(rows);
    let got = dd::from_polars(&df, 10)?.split_every(2).describe().compute(client())?;
    let want = describe(&df);
    for name in ["k", "v", "w"] {
        let (g, w) = (got.column(name)?.f64()?, want.column(name)?.f64()?);
        let mut sorted: Vec<f64> = df
            .column(name)?
            .cast(&DataType::Float64)?
            .f64()?
            .iter()
            .flatten()
            .collect();
        sorted.sort_by(f64::total_cmp);
        for (row, stat) in ["count", "mean", "std", "min", "max"]
            .iter()
            .enumerate()
            .map(|(i, s)| ([0, 1, 2, 3, 7][i], s))
        {
            let (a, b) = (g.get(row).ok_or("row")?, w.get(row).ok_or("row")?);
            assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{name} {stat}: {a} vs {b}");
        }
        for (row, q) in [(4, 0.25), (5, 0.5), (6, 0.75)] {
            let a = g.get(row).ok_or("row")?;
            let (lo, hi) = (
                common::quantile(&sorted, q - 0.005).ok_or("q")?,
                common::quantile(&sorted, q + 0.005).ok_or("q")?,
            );
            assert!(lo <= a && a <= hi, "{name} {q}: {a} not in [{lo}, {hi}]");
        }
    }
    Ok(())
}

/// The seed's shape: CSV files, a partition each, then a group-by mean.
#[test]
fn read_csv_and_parquet_round_trips() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let mut all = Vec::new();
    for day in 1..=4 {
        let rows: Vec<(Option<i64>, u8, Option<f64>, i64)> = (0..25 * day)
            .map(|i| {
                (
                    Some((i * 7 + day) % 5),
                    (i % 3) as u8,
                    Some(i as f64 * 0.5 - day as f64),
                    i * day,
                )
            })
            .collect();
        let mut df = frame(rows);
        let path = dir.path().join(format!("2015-01-0{day}.csv"));
        CsvWriter::new(std::fs::File::create(&path)?).finish(&mut df)?;
        all.push(df);
    }
    let mut whole = all[0].clone();
    for df in &all[1..] {
        whole.vstack_mut(df)?;
    }
    let pattern = dir.path().join("2015-*-*.csv").display().to_string();
    let ddf = dd::read_csv(&pattern)?;
    assert_eq!(ddf.npartitions(), 4);
    same(&ddf.compute(client())?, &whole)?;
    let means = ddf.groupby(&["k"]).agg(&[col("v").mean()])?.compute(client())?;
    let want = polars(&whole, |l| {
        l.group_by([col("k")])
            .agg([col("v").mean()])
            .sort(["k"], Default::default())
    });
    same(&means, &want)?;
    // The partials read only `k` and `v` from the files (projection
    // pushdown); an aggregation of an expression reads whole files.
    let grouped = ddf.groupby(&["k"]).agg(&[col("v").mean()])?.to_delayed();
    let functions: Vec<String> = grouped[0]
        .task_specs(&dd::ComputeOptions::default().fuse(false))?
        .into_iter()
        .map(|t| t.function)
        .collect();
    assert!(
        functions.iter().any(|f| f.ends_with("read_csv_columns")),
        "{functions:?}"
    );
    assert!(!functions.iter().any(|f| f.ends_with("read_csv_file")), "{functions:?}");
    let doubled = ddf
        .groupby(&["k"])
        .agg(&[(col("v") * lit(2.0)).sum().alias("v2")])?
        .compute(client())?;
    let want = polars(&whole, |l| {
        l.group_by([col("k")])
            .agg([(col("v") * lit(2.0)).sum().alias("v2")])
            .sort(["k"], Default::default())
    });
    same(&doubled, &want)?;
    // A missing column read through the projection fails on the worker
    // with Polars' message naming it and the file.
    let err = ddf.set_index(client(), "nope").unwrap_err().to_string();
    assert!(
        err.contains("unable to find column \"nope\"") && err.contains(".csv"),
        "{err}"
    );
    let err = ddf
        .groupby(&["nope"])
        .agg(&[col("v").mean()])?
        .compute(client())
        .unwrap_err()
        .to_string();
    assert!(err.contains("unable to find column \"nope\""), "{err}");
    // `set_index` samples the key column alone, then shuffles whole rows.
    let (indexed, _) = ddf.set_index(client(), "v")?;
    let want = whole.sort(["v"], SortMultipleOptions::default().with_maintain_order(true))?;
    same(&indexed.compute(client())?, &want)?;

    // Parquet: a file per partition, read back a partition per row group.
    let out = dir.path().join("pq").display().to_string();
    let written = ddf.to_parquet(client(), &out)?;
    assert_eq!(written.len(), 4);
    let back = dd::read_parquet(&format!("{out}/*.parquet"))?;
    assert_eq!(back.npartitions(), 4);
    same(&back.compute(client())?, &whole)?;
    // A file of several row groups gives a partition per group.
    let mut big = whole.clone();
    let path = dir.path().join("groups.parquet");
    ParquetWriter::new(std::fs::File::create(&path)?)
        .with_row_group_size(Some(60))
        .finish(&mut big)?;
    let groups = dd::read_parquet(&path.display().to_string())?;
    let row_groups = ParquetReader::new(std::fs::File::open(&path)?)
        .get_metadata()?
        .row_groups
        .len();
    assert!(row_groups > 1, "{row_groups} row groups");
    assert_eq!(groups.npartitions(), row_groups);
    same(&groups.compute(client())?, &whole)?;

    // CSV out and back.
    let csv = dir.path().join("out-*.csv").display().to_string();
    assert_eq!(ddf.to_csv(client(), &csv)?.len(), 4);
    same(&dd::read_csv(&csv)?.compute(client())?, &whole)?;
    Ok(())
}

#[test]
fn bad_input_gives_clear_errors_and_the_cluster_carries_on() -> Result<(), Box<dyn std::error::Error>> {
    let df = frame((0..10).map(|i| (Some(i % 2), 0, Some(i as f64), i)).collect());
    let ddf = dd::from_polars(&df, 2)?;
    let e = ddf.groupby(&["k"]).agg(&[col("v").median()]).unwrap_err().to_string();
    assert!(e.contains("not a supported aggregation"), "{e}");
    let e = ddf.groupby(&["k"]).agg(&[col("v") * lit(2)]).unwrap_err().to_string();
    assert!(e.contains("not a supported aggregation"), "{e}");
    let e = ddf
        .groupby(&["k"])
        .agg(&[col("v").mean(), col("v").max()])
        .unwrap_err()
        .to_string();
    assert!(e.contains("two result columns named \"v\""), "{e}");
    let e = dd::read_csv("/nonexistent-rdask/*.csv").unwrap_err().to_string();
    assert!(e.contains("no file matches"), "{e}");
    assert!(dd::from_polars(&df, 0).is_err());
    let e = ddf.merge(&ddf, &["k"], &[], How::Inner).unwrap_err().to_string();
    assert!(e.contains("as many left keys as right keys"), "{e}");
    assert!(ddf.repartition(0).is_err());
    assert!(ddf.to_csv(client(), "/tmp/no-star.csv").is_err());
    // A missing column fails on the worker with Polars' message.
    let e = ddf.select([col("nope")]).compute(client()).unwrap_err().to_string();
    assert!(e.contains("nope"), "{e}");
    // The cluster still computes.
    assert_eq!(ddf.len(client())?, 10);
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 12, ..ProptestConfig::default() })]

    /// `sort_values` / `set_index` through the p2p shuffle equal Polars'
    /// stable sort of the whole frame, row for row (nulls first), on the
    /// cluster and on the local thread pool; every partition is sorted and
    /// lies between its divisions.
    #[test]
    fn sort_values_and_set_index_match_polars(df in frames(), parts in 1usize..6) {
        let ddf = dd::from_polars(&df, parts).map_err(fail)?;
        for column in ["k", "v", "g", "w"] {
            let want = df
                .sort([column], SortMultipleOptions::default().with_maintain_order(true))
                .map_err(fail)?;
            let got = ddf.sort_values(client(), column).map_err(fail)?;
            prop_assert_eq!(got.npartitions(), parts);
            same(&got.compute(client()).map_err(fail)?, &want).map_err(fail)?;
            let local = ddf.sort_values_local(column).map_err(fail)?;
            same(&local.compute_local().map_err(fail)?, &want).map_err(fail)?;
            let (indexed, divisions) = ddf.set_index(client(), column).map_err(fail)?;
            prop_assert!(divisions.len() < parts);
            let each = rdask::delayed::compute_all(
                client(),
                &indexed.to_delayed().iter().collect::<Vec<_>>(),
                &Default::default(),
            )
            .map_err(fail)?;
            let mut stacked: Option<DataFrame> = None;
            for p in each {
                let p = p.into_inner();
                stacked = Some(match stacked {
                    None => p,
                    Some(mut s) => {
                        s.vstack_mut(&p).map_err(fail)?;
                        s
                    }
                });
            }
            same(&stacked.unwrap_or_default(), &want).map_err(fail)?;
        }
    }
}

/// `v` with NaN in every fifth row of `w` (as `x`), so sort keys hold
/// nulls and NaN.
fn with_nan(df: &DataFrame) -> DataFrame {
    let v = df.column("v").expect("v").f64().expect("f64").clone();
    let w = df.column("w").expect("w").i64().expect("i64").clone();
    let x: Vec<Option<f64>> = v
        .iter()
        .zip(w.iter())
        .map(|(v, w)| if w.unwrap_or(0) % 5 == 0 { Some(f64::NAN) } else { v })
        .collect();
    let mut out = df.clone();
    out.with_column(Series::new("x".into(), x).into_column())
        .expect("one length");
    out
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 16, ..ProptestConfig::default() })]

    /// `sort_values_by` / `set_index_by` on 1 to 3 columns (integers and
    /// floats with nulls and NaN, text), each ascending or descending,
    /// nulls first or last, on uneven partitions (a filter after cutting
    /// leaves some short or empty): equal row for row to Polars' stable
    /// sort of the whole frame, on the cluster and on the local thread
    /// pool; the partitions stacked in order are that sort too.
    #[test]
    fn multi_column_sorts_match_polars(
        df in frames(),
        parts in 1usize..6,
        cut in -1000i64..1000,
        by in prop::sample::subsequence(vec!["k", "g", "x", "w"], 1..=3).prop_shuffle(),
        descending in prop::collection::vec(any::<bool>(), 3),
        nulls_last in any::<bool>(),
    ) {
        let df = with_nan(&df);
        let descending = &descending[..by.len()];
        let kept = polars(&df, |l| l.filter(col("w").gt(lit(cut))));
        let want = kept
            .sort(
                by.clone(),
                SortMultipleOptions::default()
                    .with_order_descending_multi(descending.to_vec())
                    .with_nulls_last(nulls_last)
                    .with_maintain_order(true),
            )
            .map_err(fail)?;
        let ddf = dd::from_polars(&df, parts).map_err(fail)?.filter(col("w").gt(lit(cut)));
        let order = SortBy::new(&by)
            .ascending(&descending.iter().map(|d| !d).collect::<Vec<_>>())
            .nulls_last(nulls_last);
        let got = ddf.sort_values_by(client(), &order).map_err(fail)?;
        prop_assert_eq!(got.npartitions(), parts);
        same(&got.compute(client()).map_err(fail)?, &want).map_err(fail)?;
        let local = ddf.sort_values_by_local(&order).map_err(fail)?;
        same(&local.compute_local().map_err(fail)?, &want).map_err(fail)?;
        let (indexed, divisions) = ddf.set_index_by(client(), &order).map_err(fail)?;
        prop_assert!(divisions.height() < parts);
        if divisions.height() > 0 {
            let names: Vec<&str> = divisions.get_column_names().iter().map(|n| n.as_str()).collect();
            prop_assert_eq!(names, by.clone());
        }
        let each = rdask::delayed::compute_all(
            client(),
            &indexed.to_delayed().iter().collect::<Vec<_>>(),
            &Default::default(),
        )
        .map_err(fail)?;
        let mut stacked = DataFrame::empty();
        for p in each {
            let p = p.into_inner();
            if stacked.width() == 0 {
                stacked = p;
            } else {
                stacked.vstack_mut(&p).map_err(fail)?;
            }
        }
        same(&stacked, &want).map_err(fail)?;
    }
}

/// A sort order that cannot be used is refused when the sort is built,
/// saying why.
#[test]
fn bad_sort_orders_are_refused_clearly() -> Result<(), Box<dyn std::error::Error>> {
    let df = df!("a" => [3i64, 1, 2], "b" => ["x", "y", "z"])?;
    let ddf = dd::from_polars(&df, 2)?;
    let err = ddf
        .sort_values_by(client(), &SortBy::new(&["a", "b"]).ascending(&[true]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("1 directions given for 2 columns"), "{err}");
    let err = ddf
        .sort_values_by_local(&SortBy::new::<&str>(&[]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("at least one column"), "{err}");
    let err = ddf
        .sort_values_by_local(&SortBy::new(&["a", "a"]))
        .unwrap_err()
        .to_string();
    assert!(err.contains("given twice"), "{err}");
    let got = ddf
        .sort_values_by(client(), &SortBy::new(&["a"]).descending())?
        .compute(client())?;
    assert_eq!(got.column("a")?.i64()?.to_vec(), vec![Some(3), Some(2), Some(1)]);
    Ok(())
}

/// The p2p shuffle's bad input: a column that does not exist fails the
/// computation with Polars' message naming it, and the cluster goes on.
#[test]
fn sort_on_a_missing_column_fails_clearly() -> Result<(), Box<dyn std::error::Error>> {
    let df = df!("a" => [3i64, 1, 2])?;
    let ddf = dd::from_polars(&df, 2)?;
    let err = ddf.sort_values(client(), "nope").unwrap_err().to_string();
    assert!(err.contains("nope"), "{err}");
    let got = ddf.sort_values(client(), "a")?.compute(client())?;
    assert_eq!(got.column("a")?.i64()?.to_vec(), vec![Some(1), Some(2), Some(3)]);
    Ok(())
}

/// Partitions far larger than the sample pool `set_index` draws its
/// divisions from (`SAMPLE_POOL_PER_ROW` × `SAMPLES_PER_PARTITION` rows):
/// the result is still Polars' stable sort row for row, on input already
/// sorted, reversed and scrambled (a pool at evenly spaced positions must
/// not trip on any of them), and rows spread evenly enough that no output
/// holds more than a quarter over its share.
#[test]
fn set_index_of_large_partitions_is_exact_and_balanced() -> Result<(), Box<dyn std::error::Error>> {
    let rows = 3 * 16 * dd::SAMPLES_PER_PARTITION as usize * 4;
    let parts = 3;
    let ascending: Vec<i64> = (0..rows as i64).collect();
    let descending: Vec<i64> = ascending.iter().rev().copied().collect();
    let scrambled: Vec<i64> = ascending.iter().map(|i| (i * 7919) % rows as i64).collect();
    for (name, keys) in [
        ("ascending", ascending),
        ("descending", descending),
        ("scrambled", scrambled),
    ] {
        let ids: Vec<i64> = (0..rows as i64).collect();
        let df = df!("key" => &keys, "id" => &ids)?;
        let want = df.sort(["key"], SortMultipleOptions::default().with_maintain_order(true))?;
        let (indexed, divisions) = dd::from_polars(&df, parts)?.set_index(client(), "key")?;
        assert_eq!(divisions.len(), parts - 1, "{name}");
        let each = rdask::delayed::compute_all(
            client(),
            &indexed.to_delayed().iter().collect::<Vec<_>>(),
            &Default::default(),
        )?;
        let mut stacked: Option<DataFrame> = None;
        for p in each {
            let p = p.into_inner();
            assert!(
                p.height() <= rows / parts * 5 / 4,
                "{name}: an output of {} rows, its share is {}",
                p.height(),
                rows / parts
            );
            stacked = Some(match stacked {
                None => p,
                Some(mut s) => {
                    s.vstack_mut(&p)?;
                    s
                }
            });
        }
        same(&stacked.unwrap_or_default(), &want).map_err(|e| format!("{name}: {e}"))?;
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// `read_csv_blocks` of one file gives Polars' read of the whole file,
    /// row for row, whatever the block size (blocks inside the header,
    /// cutting lines, past the end).
    #[test]
    fn csv_blocks_match_one_read_of_the_file(df in frames(), step in 1u64..40) {
        let dir = tempfile::tempdir().map_err(fail)?;
        let path = dir.path().join("big.csv");
        let mut out = df.clone();
        CsvWriter::new(std::fs::File::create(&path).map_err(fail)?).finish(&mut out).map_err(fail)?;
        let p = path.display().to_string();
        let want = CsvReadOptions::default()
            .with_has_header(true)
            .try_into_reader_with_file_path(Some(path.clone()))
            .and_then(|r| r.finish())
            .map_err(fail)?;
        let size = std::fs::metadata(&path).map_err(fail)?.len();
        for blocksize in [step, step * 7 + 3, size.max(1), size + 10] {
            let ddf = dd::read_csv_blocks(&p, blocksize).map_err(fail)?;
            prop_assert_eq!(ddf.npartitions() as u64, size.div_ceil(blocksize).max(1));
            same(&ddf.compute_local().map_err(fail)?, &want).map_err(fail)?;
        }
        let got = dd::read_csv_blocks(&p, step * 13 + 5).map_err(fail)?.compute(client()).map_err(fail)?;
        same(&got, &want).map_err(fail)?;
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 8, ..ProptestConfig::default() })]

    /// `shuffle(on)`: the same rows (sorted, equal to the input sorted),
    /// every key in one partition only.
    #[test]
    fn shuffle_on_keys_keeps_rows_and_groups_keys(df in frames(), parts in 1usize..5, out in 1usize..5) {
        let ddf = dd::from_polars(&df, parts).map_err(fail)?.shuffle(&["k", "g"], out).map_err(fail)?;
        prop_assert_eq!(ddf.npartitions(), out);
        let each = rdask::delayed::compute_all(client(), &ddf.to_delayed().iter().collect::<Vec<_>>(), &Default::default())
            .map_err(fail)?;
        let mut seen: std::collections::HashMap<String, usize> = Default::default();
        for (i, p) in each.iter().enumerate() {
            for row in 0..p.height() {
                let key = format!("{:?}/{:?}", p.column("k").map_err(fail)?.get(row).map_err(fail)?, p.column("g").map_err(fail)?.get(row).map_err(fail)?);
                prop_assert_eq!(*seen.entry(key).or_insert(i), i);
            }
        }
        same(&sorted(&ddf.compute(client()).map_err(fail)?), &sorted(&df)).map_err(fail)?;
        prop_assert!(dd::from_polars(&df, parts).map_err(fail)?.shuffle(&[], 2).is_err());
    }
}
