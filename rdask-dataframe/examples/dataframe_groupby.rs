//! The seed's data frame snippet on an embedded cluster:
//!
//! ```python
//! df = dd.read_csv('2015-*-*.csv')
//! df.groupby(df.user_id).value.mean().compute()
//! ```
//!
//! as `read_csv("2015-*-*.csv").groupby(["user_id"]).agg([col("value").mean()]).compute()`,
//! on CSV files it writes first (one per day of January 2015, seeded random
//! user ids and values) in a temporary directory, checked against Polars
//! reading the same files in this process.
//!
//! `cargo run --release -p rdask-dataframe --example dataframe_groupby [-- --days 31 --rows 100000]`;
//! with `-- --scheduler tcp://HOST:PORT` it runs on a cluster whose workers
//! link this crate (`rdask-dataframe worker …`) and see the same files.

use rdask_dataframe::{self as dd, polars::prelude::*};

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    let (days, rows) = (arg(&args, "--days", 31), arg(&args, "--rows", 100_000));
    let dir = std::env::temp_dir().join(format!("rdask-dataframe-seed-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // A small linear congruential generator: the same files every run.
    let mut state: u64 = 2015;
    let mut next = move || {
        state = state
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        state >> 33
    };
    for day in 1..=days {
        let ids: Vec<i64> = (0..rows).map(|_| (next() % 1000) as i64).collect();
        let values: Vec<f64> = (0..rows).map(|_| (next() % 100_000) as f64 / 100.0).collect();
        let mut df = df!("user_id" => ids, "value" => values)?;
        let path = dir.join(format!("2015-01-{day:02}.csv"));
        CsvWriter::new(std::fs::File::create(&path)?).finish(&mut df)?;
    }
    let scheduler = args
        .iter()
        .position(|a| a == "--scheduler")
        .and_then(|i| args.get(i + 1));
    let cluster;
    let client = match scheduler {
        Some(addr) => rdask::Client::connect(addr)?,
        None => {
            cluster = rdask::LocalCluster::new(2)?;
            cluster.client()?
        }
    };
    let pattern = dir.join("2015-*-*.csv").display().to_string();
    let t0 = std::time::Instant::now();
    let means = dd::read_csv(&pattern)?
        .groupby(&["user_id"])
        .agg(&[col("value").mean()])?
        .compute(&client)?;
    let took = t0.elapsed().as_secs_f64();
    // (Polars' table printing is a feature left out to keep the build lean.)
    let ids = means.column("user_id")?.i64()?;
    let values = means.column("value")?.f64()?;
    for (id, value) in ids.iter().zip(values.iter()).take(5) {
        println!("user_id {id:?}: mean value {value:?}");
    }
    // The same in Polars, in this process (reading the files one by one,
    // as the cluster does).
    let t1 = std::time::Instant::now();
    let mut whole = DataFrame::empty();
    for day in 1..=days {
        let path = dir.join(format!("2015-01-{day:02}.csv"));
        let df = CsvReadOptions::default()
            .try_into_reader_with_file_path(Some(path))?
            .finish()?;
        if whole.width() == 0 {
            whole = df;
        } else {
            whole.vstack_mut(&df)?;
        }
    }
    let want = whole
        .lazy()
        .group_by([col("user_id")])
        .agg([col("value").mean()])
        .sort(["user_id"], Default::default())
        .collect()?;
    let polars_took = t1.elapsed().as_secs_f64();
    let agree = means.height() == want.height()
        && means
            .column("value")?
            .f64()?
            .iter()
            .zip(want.column("value")?.f64()?.iter())
            .all(|(a, b)| matches!((a, b), (Some(a), Some(b)) if (a - b).abs() <= 1e-9 * a.abs().max(1.0)));
    println!(
        "{} users over {days} files of {rows} rows in {took:.2} s (Polars in this process: {polars_took:.2} s); \
         equal to Polars: {agree}",
        means.height()
    );
    std::fs::remove_dir_all(&dir)?;
    if !agree {
        return Err("the cluster's means differ from Polars'".into());
    }
    Ok(())
}
