//! Data frames on real processes: a scheduler and two 1-thread workers,
//! each the `rdask-dataframe` binary (the `rdask` command line with this
//! crate's kernels linked in), reached over TCP.

mod common;

use std::process::Stdio;

use std::time::Duration;

use common::*;
use polars::prelude::*;
use rdask::Client;
use rdask_dataframe as dd;

use rdask_devkit::{du, Proc, STARTUP};

/// Starts `rdask-dataframe ARGS` and returns it with the address it prints.
fn start(args: &[&str]) -> (Proc, String) {
    rdask_devkit::start(env!("CARGO_BIN_EXE_rdask-dataframe"), args, Stdio::null())
        .expect("rdask-dataframe starts and says where it listens")
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

/// Size of the frame shuffled by the memory-limited test, MB in memory.
const LIMITED_SHUFFLE_MB: u64 = 200;
/// Each worker's `memory_limit` there, MB: twice a debug worker's 45 MB
/// at rest (64 MB left it past its pause threshold, 80 %, before any task).
const LIMITED_WORKER_MB: u64 = 128;

/// The 4 GB shuffle on two workers of 1 GB, scaled down: a frame
/// of `LIMITED_SHUFFLE_MB` MB made on the workers, `set_index` on its
/// random column by two worker processes whose `memory_limit` is
/// `LIMITED_WORKER_MB` MB (so their shuffle buffers hold 32 MB and the
/// rest of the shards go to disk, which is seen). The result is exact:
/// every row once, intact, in key order. (The full size is the example
/// `dataframe_shuffle_limited`; figures in docs/benchmarks.md.)
#[test]
fn a_shuffle_larger_than_the_workers_memory_completes_exactly() -> Result<(), Box<dyn std::error::Error>> {
    use dd::datasets::{random_a, random_key, random_rows, RANDOM_ROW_BYTES};
    use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
    use std::sync::Arc;

    let dir = tempfile::tempdir()?;
    let config = dir.path().join("rdask.toml");
    let local = dir.path().join("workers");
    std::fs::create_dir_all(&local)?;
    std::fs::write(
        &config,
        format!(
            "[worker]\nmemory_limit = \"{LIMITED_WORKER_MB}MB\"\nlocal_directory = {:?}\n",
            local.display().to_string()
        ),
    )?;
    let config = config.display().to_string();
    let (_s, addr) = start(&["scheduler", "--host", "127.0.0.1", "--port", "0"]);
    let (_w1, _) = start(&["--config", &config, "worker", &addr, "--name", "w1", "--nthreads", "1"]);
    let (_w2, _) = start(&["--config", &config, "worker", &addr, "--name", "w2", "--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    client.wait_for_workers(2, STARTUP)?;

    let (peak, stop) = (Arc::new(AtomicU64::new(0)), Arc::new(AtomicBool::new(false)));
    let watcher = {
        let (peak, stop, local) = (peak.clone(), stop.clone(), local.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                // Each worker's directory holds its shards under `shuffle/`.
                let shards: u64 = std::fs::read_dir(&local)
                    .map(|d| d.flatten().map(|e| du(&e.path().join("shuffle"))).sum())
                    .unwrap_or(0);
                peak.fetch_max(shards, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(20));
            }
        })
    };
    let (rows, seed) = (LIMITED_SHUFFLE_MB * 1_000_000 / RANDOM_ROW_BYTES, 7);
    let (sorted, _) = random_rows(rows, 16, seed)?.set_index(&client, "key")?;
    let got = sorted.compute(&client);
    stop.store(true, Ordering::Relaxed);
    let _ = watcher.join();
    let got = got?;

    assert_eq!(got.height() as u64, rows);
    let (id, key, a) = (
        got.column("id")?.u64()?,
        got.column("key")?.f64()?,
        got.column("a")?.i64()?,
    );
    let mut seen = vec![false; rows as usize];
    let mut prev = f64::NEG_INFINITY;
    for ((i, k), a) in id.iter().zip(key.iter()).zip(a.iter()) {
        let (i, k, a) = (i.ok_or("null id")?, k.ok_or("null key")?, a.ok_or("null a")?);
        assert!(!std::mem::replace(&mut seen[i as usize], true), "row {i} twice");
        assert_eq!((k, a), (random_key(i, seed), random_a(i, seed)), "row {i} altered");
        assert!(k >= prev, "row {i} out of order");
        prev = k;
    }
    assert!(seen.iter().all(|s| *s), "every row is there");
    assert!(
        peak.load(Ordering::Relaxed) > 0,
        "no shard went to disk: the test shows nothing"
    );
    Ok(())
}
