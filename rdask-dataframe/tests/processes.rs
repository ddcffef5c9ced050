//! Data frames on real processes: a scheduler and two 1-thread workers,
//! each the `rdask-dataframe` binary (the `rdask` command line with this
//! crate's kernels linked in), reached over TCP.

mod common;

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use common::*;
use polars::prelude::*;
use rdask::Client;
use rdask_dataframe as dd;

/// Longest a process may take to say where it listens, or workers to join.
const STARTUP: Duration = Duration::from_secs(30);

/// A child process killed when the test ends.
struct Proc(Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `rdask-dataframe ARGS` and returns it with the address it prints.
fn start(args: &[&str]) -> (Proc, String) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_rdask-dataframe"))
        .args(args)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .expect("rdask-dataframe starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening on ") {
                let _ = tx.send(line.rsplit(' ').next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(STARTUP).expect("process printed its address");
    (Proc(child), addr)
}

#[test]
fn dataframes_compute_on_real_scheduler_and_worker_processes() -> Result<(), Box<dyn std::error::Error>> {
    let (_s, addr) = start(&["scheduler", "--host", "127.0.0.1", "--port", "0"]);
    let (_w1, _) = start(&["worker", &addr, "--name", "w1", "--nthreads", "1"]);
    let (_w2, _) = start(&["worker", &addr, "--name", "w2", "--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    client.wait_for_workers(2, STARTUP)?;

    // The seed: read_csv("2015-*-*.csv").groupby(["user_id"]).agg([col("value").mean()]).
    let dir = tempfile::tempdir()?;
    let mut whole: Option<DataFrame> = None;
    for day in 1..=6i64 {
        let ids: Vec<i64> = (0..200).map(|i| (i * 31 + day * 7) % 13).collect();
        let values: Vec<Option<f64>> = (0..200)
            .map(|i| {
                if (i + day) % 17 == 0 {
                    None
                } else {
                    Some((i * day) as f64 / 7.0)
                }
            })
            .collect();
        let mut df = df!("user_id" => ids, "value" => values)?;
        let path = dir.path().join(format!("2015-01-{day:02}.csv"));
        CsvWriter::new(std::fs::File::create(&path)?).finish(&mut df)?;
        whole = Some(match whole {
            None => df,
            Some(mut w) => {
                w.vstack_mut(&df)?;
                w
            }
        });
    }
    let whole = whole.ok_or("no frames")?;
    let pattern = dir.path().join("2015-*-*.csv").display().to_string();
    let ddf = dd::read_csv(&pattern)?.split_every(2);
    let got = ddf
        .groupby(&["user_id"])
        .agg(&[col("value").mean(), col("value").std(1).alias("spread")])?
        .compute(&client)?;
    let want = whole
        .clone()
        .lazy()
        .group_by([col("user_id")])
        .agg([col("value").mean(), col("value").std(1).alias("spread")])
        .sort(["user_id"], Default::default())
        .collect()?;
    same(&got, &want)?;

    // Shipped expressions, persist, len and head on the workers.
    let kept = ddf
        .filter(col("value").gt(lit(10.0)))
        .with_columns([(col("value") * lit(3.0)).alias("triple")])
        .persist(&client)?;
    let want = whole
        .clone()
        .lazy()
        .filter(col("value").gt(lit(10.0)))
        .with_columns([(col("value") * lit(3.0)).alias("triple")])
        .collect()?;
    assert_eq!(kept.len(&client)?, want.height());
    same(&kept.compute(&client)?, &want)?;
    same(&kept.head(&client, 250)?, &want.head(Some(250)))?;

    // A hash-shuffle join and a broadcast join against a small table of users.
    let users =
        df!("user_id" => (0..10i64).collect::<Vec<_>>(), "group" => (0..10i64).map(|i| i % 3).collect::<Vec<_>>())?;
    let small = dd::from_polars(&users, 2)?;
    let want = sorted(
        &whole
            .clone()
            .lazy()
            .join(
                users.clone().lazy(),
                [col("user_id")],
                [col("user_id")],
                JoinArgs::new(JoinType::Left),
            )
            .collect()?,
    );
    let shuffled = ddf.merge_shuffle(&small, &["user_id"], &["user_id"], dd::How::Left, 3)?;
    same(&sorted(&shuffled.compute(&client)?), &want)?;
    let broadcast = ddf.merge_broadcast(&small, &["user_id"], &["user_id"], dd::How::Left)?;
    same(&sorted(&broadcast.compute(&client)?), &want)?;
    Ok(())
}

/// A p2p shuffle (`sort_values`) on real processes whose receivers keep at
/// most 64 KiB of shards in memory (the rest goes to their spill
/// directories), with one of the two workers SIGKILLed while the
/// shuffle's transfers run: the scheduler restarts the shuffle under a new
/// run on the surviving worker, and the result is exactly Polars' sort.
#[test]
fn p2p_shuffle_survives_a_worker_killed_mid_shuffle() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let config = dir.path().join("rdask.toml");
    std::fs::write(&config, "[worker]\nshuffle_buffer_bytes = 65536\n")?;
    let config = config.display().to_string();
    let (_s, addr) = start(&["scheduler", "--host", "127.0.0.1", "--port", "0"]);
    let (_w1, _) = start(&["--config", &config, "worker", &addr, "--name", "w1", "--nthreads", "1"]);
    let (mut w2, _) = start(&["--config", &config, "worker", &addr, "--name", "w2", "--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    client.wait_for_workers(2, STARTUP)?;

    let n = 240_000i64;
    let df = df!(
        "x" => (0..n).map(|i| (i * 7_919 + 13) % 100_003).collect::<Vec<_>>(),
        "y" => (0..n).map(|i| if i % 11 == 0 { None } else { Some(i as f64 / 3.0) }).collect::<Vec<_>>()
    )?;
    let want = df.sort(["x"], SortMultipleOptions::default().with_maintain_order(true))?;
    let ddf = dd::from_polars(&df, 24)?;
    let sorted = ddf.sort_values(&client, "x")?;
    let unpack0 = sorted.to_delayed()[0].key().to_string();
    let id = unpack0
        .strip_prefix(rdask::shuffle::UNPACK_PREFIX)
        .and_then(|rest| rest.rsplit_once('-'))
        .map(|(id, _)| id.to_string())
        .ok_or("the outputs are a shuffle's unpack tasks")?;
    let transfers: Vec<String> = (0..24).map(|i| rdask::shuffle::transfer_key(&id, i)).collect();
    let barrier = rdask::shuffle::barrier_key(&id);

    let running = {
        let (sorted, client) = (sorted.clone(), client.clone());
        std::thread::spawn(move || sorted.compute(&client).map_err(|e| e.to_string()))
    };
    // Kill w2 once some transfers are done and the barrier is not.
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    loop {
        assert!(std::time::Instant::now() < deadline, "no transfer finished in time");
        let keys: Vec<&str> = transfers.iter().map(String::as_str).chain([barrier.as_str()]).collect();
        if let Ok(held) = client.who_has(&keys) {
            let done = held
                .iter()
                .filter(|h| h.key != barrier && !h.workers.is_empty())
                .count();
            let barrier_done = held.iter().any(|h| h.key == barrier && !h.workers.is_empty());
            assert!(!barrier_done, "the shuffle ended before the kill: make it larger");
            if done >= 3 {
                break;
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    w2.0.kill()?; // SIGKILL
    let _ = w2.0.wait();

    let got = running.join().map_err(|_| "the computing thread panicked")??;
    same(&got, &want)?;
    Ok(())
}
