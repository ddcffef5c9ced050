//! Worker memory over real processes: a worker with a memory limit holds
//! results totalling three times its limit by spilling them to its local
//! directory, reads them back for tasks and for the client, reports its
//! memory (managed, spilled, process RSS), pauses past its `pause`
//! threshold, and leaves no files behind once the results are released and
//! once it exits.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rdask::builtins::{blob_len, inc, make_blob};
use rdask::client::ReturnWhen;
use rdask::wire::messages::WorkerStoreInfo;
use rdask::{Blob, Client};

mod common;
use common::*;

/// Polls the worker's report until `ok` holds (or fails after a generous
/// deadline, showing the last report).
fn wait_for_info(client: &Client, worker: &str, what: &str, ok: impl Fn(&WorkerStoreInfo) -> bool) -> WorkerStoreInfo {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let info = client.worker_info(worker).expect("worker answers");
        if ok(&info) {
            return info;
        }
        assert!(Instant::now() < deadline, "{what}: {info:?}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

fn files_in(dir: &Path) -> usize {
    std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0)
}

/// The worker's memory limit in the spilling test.
const LIMIT: u64 = 200_000_000;
/// Size of each result: 30 of them are 3 × LIMIT.
const BLOB: u64 = 20_000_000;
const NBLOBS: u64 = 30;
/// How far above its limit the worker process's RSS may go: the binary and
/// its runtime (~20 MB), plus one running task's transient memory (the
/// 20 MB blob and its 20 MB encoding, or a spilled argument read back and
/// decoded), plus allocator slack. Without spilling it would reach 600 MB.
const RSS_MARGIN: u64 = 100_000_000;

#[test]
fn a_worker_spills_results_totalling_three_times_its_limit_and_cleans_up() -> anyhow::Result<()> {
    let local = TempDir::new("spill");
    let (_s, addr) = scheduler();
    let (mut worker, w_addr) = start(
        Command::new(rdask_bin()).args([
            "worker",
            &addr,
            "--nthreads",
            "1",
            "--name",
            "w",
            "--memory-limit",
            "200MB",
            "--local-directory",
            local.0.to_str().expect("utf-8 temp dir"),
        ]),
        "rdask worker",
    );
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);

    // Sample the worker's RSS through its memory report while it works.
    let stop = Arc::new(AtomicBool::new(false));
    let max_rss = Arc::new(AtomicU64::new(0));
    let sampler = {
        let (stop, max_rss, addr, w_addr) = (stop.clone(), max_rss.clone(), addr.clone(), w_addr.clone());
        std::thread::spawn(move || -> anyhow::Result<()> {
            let c = Client::connect(&addr)?;
            while !stop.load(Ordering::Relaxed) {
                max_rss.fetch_max(c.worker_info(&w_addr)?.rss_bytes, Ordering::Relaxed);
                std::thread::sleep(Duration::from_millis(10));
            }
            Ok(())
        })
    };

    let blobs = (0..NBLOBS)
        .map(|seed| client.submit(make_blob, (BLOB, seed)))
        .collect::<Result<Vec<_>, _>>()?;
    let done = client.wait(&blobs, ReturnWhen::AllCompleted, Some(Duration::from_secs(300)))?;
    assert_eq!(done.not_done.len(), 0);

    // Held by the client: most of them are on disk, in memory no more than
    // the target (0.6 of the limit) once the writes in flight finished.
    let target = LIMIT * 6 / 10;
    // (A file being written exists before its result counts as spilled.)
    let info = wait_for_info(&client, &w_addr, "spilled down to target", |i| {
        i.nbytes <= target && i.spilled_keys > 0 && files_in(Path::new(&i.spill_directory)) as u64 == i.spilled_keys
    });
    assert_eq!(info.nkeys, NBLOBS);
    assert_eq!(info.memory_limit, LIMIT);
    assert!(info.nbytes + info.spilled_bytes >= NBLOBS * BLOB, "{info:?}");
    assert!(info.spilled_bytes >= NBLOBS * BLOB - target, "{info:?}");
    let spill_dir = PathBuf::from(&info.spill_directory);
    assert!(
        spill_dir.starts_with(&local.0),
        "{spill_dir:?} is not in --local-directory"
    );

    // A reduction over all of them reads the spilled ones back for the tasks.
    let lens = blobs
        .iter()
        .map(|b| client.submit(blob_len, (b,)))
        .collect::<Result<Vec<_>, _>>()?;
    let total: u64 = client.gather(&lens)?.iter().sum();
    assert_eq!(total, NBLOBS * BLOB);
    // The client gets the oldest (spilled) and the newest result back intact.
    for seed in [0, NBLOBS - 1] {
        let got: Blob = blobs[seed as usize].result()?;
        assert!(got == make_blob(BLOB, seed), "result {seed} differs");
    }

    stop.store(true, Ordering::Relaxed);
    sampler.join().expect("sampler thread")?;
    let max_rss = max_rss.load(Ordering::Relaxed);
    assert!(max_rss > 0, "the worker reports its RSS");
    assert!(
        max_rss < LIMIT + RSS_MARGIN,
        "worker RSS reached {max_rss} bytes, limit {LIMIT} + margin {RSS_MARGIN}"
    );

    // Released: no key and no file left, while the worker lives on.
    drop((blobs, lens));
    wait_for_info(&client, &w_addr, "released", |i| {
        i.nkeys == 0 && i.spilled_bytes == 0 && files_in(&spill_dir) == 0
    });

    // A worker that exits removes its spill directory. SIGTERM retires it
    // (nothing to move) and it exits.
    let status = Command::new("kill")
        .args(["-TERM", &worker.0.id().to_string()])
        .status()?;
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(60);
    while worker.0.try_wait()?.is_none() {
        assert!(Instant::now() < deadline, "worker did not exit after SIGTERM");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(
        !spill_dir.exists(),
        "{spill_dir:?} is still there after the worker exited"
    );
    worker.0.kill().ok();
    Ok(())
}

#[test]
fn a_worker_past_its_pause_threshold_starts_no_tasks_and_reports_it() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    // 1 MB: any process is past 0.8 of that, so the worker pauses at once.
    let (_w, w_addr) = start(
        Command::new(rdask_bin()).args([
            "worker",
            &addr,
            "--nthreads",
            "1",
            "--name",
            "w",
            "--memory-limit",
            "1MB",
        ]),
        "rdask worker",
    );
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let info = wait_for_info(&client, &w_addr, "paused", |i| i.paused);
    assert!(info.rss_bytes > 1_000_000, "{info:?}");
    let f = client.submit(inc, (1i64,))?;
    // The scheduler was told of the pause: the task waits in no-worker,
    // saying why, and does not run.
    wait_until("the task waits in no-worker", || f.status() == "no-worker");
    assert!(f.no_worker_reason().is_some_and(|why| why.contains("is paused")));
    assert!(f.result_timeout(Some(Duration::from_millis(500))).is_err());
    assert_eq!(client.worker_info(&w_addr)?.tasks_executed, 0);

    // `rdask info` shows each worker's memory report, pause included.
    let out = Command::new(rdask_bin()).args(["info", &addr]).output()?;
    assert!(out.status.success());
    let text = String::from_utf8_lossy(&out.stdout);
    let line = text
        .lines()
        .find(|l| l.trim_start().starts_with("memory: managed="))
        .unwrap_or_else(|| panic!("no memory line in:\n{text}"));
    assert!(line.contains("limit=1000000") && line.ends_with(" paused"), "{line}");
    Ok(())
}

#[test]
fn an_auto_memory_limit_is_a_share_of_the_machine() -> anyhow::Result<()> {
    let Some(total) = rdask::worker::memory::system_memory() else {
        cannot_run("this system's memory cannot be read");
        return Ok(());
    };
    let (_s, addr) = scheduler();
    let (_w, w_addr) = start(
        Command::new(rdask_bin()).args(["worker", &addr, "--nthreads", "1", "--memory-limit", "auto"]),
        "rdask worker",
    );
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let info = client.worker_info(&w_addr)?;
    assert_eq!(info.memory_limit, rdask::worker::memory::auto_memory_limit(1));
    assert!(info.memory_limit > 0 && info.memory_limit <= total, "{info:?}");
    assert_eq!(client.scheduler_info()?.workers[0].memory_limit, info.memory_limit);
    Ok(())
}

/// Longest a task may take on a worker that is not paused, before a test
/// counts it as stuck (generous: the machine may be loaded).
const TASK_BOUND: Duration = Duration::from_secs(60);

#[test]
fn a_worker_that_held_three_times_its_limit_runs_new_tasks_after_releasing_it() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let local = TempDir::new("release");
    // An allocator that keeps the pages it handled leaves RSS near the
    // `spill` share of the limit (83 MB while holding 40 MB, 81 MB after
    // release on some runs, measured without the fix), so `pause` sits just
    // below `spill`: a worker judging the pause on those pages stays paused
    // for good; one whose RSS is memory in use (the store is held at
    // `target`, large blocks go back to the OS when freed) resumes between
    // tasks.
    let config = local.0.join("rdask.toml");
    std::fs::write(
        &config,
        "[worker]\nmemory_target = 0.2\nmemory_spill = 0.45\nmemory_pause = 0.4\n",
    )?;
    let (_w, w_addr) = start(
        Command::new(rdask_bin()).arg("--config").arg(&config).args([
            "worker",
            &addr,
            "--name",
            "w",
            "--nthreads",
            "1",
            "--memory-limit",
            &LIMIT.to_string(),
            "--local-directory",
            local.0.to_str().expect("utf-8 temp dir"),
        ]),
        "rdask worker",
    );
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    // Results of 3 × the limit, spilled as they come, then each read back by
    // a task: the allocator has handled far more than the limit.
    let blobs = (0..NBLOBS)
        .map(|seed| client.submit(make_blob, (BLOB, seed)))
        .collect::<Result<Vec<_>, _>>()?;
    let lens = blobs
        .iter()
        .map(|b| client.submit(blob_len, (b,)))
        .collect::<Result<Vec<_>, _>>()?;
    // Bounded: a worker stuck paused must fail the test, not hang it.
    let done = client.wait(&lens, ReturnWhen::AllCompleted, Some(Duration::from_secs(300)))?;
    assert_eq!(done.not_done.len(), 0, "{:?}", client.worker_info(&w_addr)?);
    let total: u64 = client.gather(&lens)?.iter().sum();
    assert_eq!(total, NBLOBS * BLOB);
    let held = client.worker_info(&w_addr)?;
    drop((blobs, lens));
    let released = wait_for_info(&client, &w_addr, "released", |i| i.nkeys == 0 && i.spilled_bytes == 0);
    // Figures for the report: process memory once the store is empty.
    eprintln!(
        "RSS while holding {} B in memory: {} B; after release: {} B (limit {LIMIT} B, paused: {})",
        held.nbytes, held.rss_bytes, released.rss_bytes, released.paused
    );
    // The store is empty: the worker must not stay paused, and a new task
    // runs (before the fix the allocator kept the freed pages, RSS stayed past
    // the pause threshold, and this waited forever).
    let f = client.submit(inc, (41i64,))?;
    let got = f.result_timeout(Some(TASK_BOUND));
    let after = client.worker_info(&w_addr)?;
    assert_eq!(got.ok(), Some(42), "a new task did not run: {after:?}");
    eprintln!(
        "RSS after the new task: {} B, paused: {}",
        after.rss_bytes, after.paused
    );
    Ok(())
}

/// A one-thread worker with a 100 MB limit whose spill directory cannot be
/// made: a file sits in its place, so every spill write fails (as a
/// read-only or full disk would, but also for root, who may write to
/// read-only directories). Its log goes to `log`. Returns the worker, its
/// address, a client, and the spill directory.
fn worker_that_cannot_spill(
    addr: &str,
    local: &TempDir,
    log: &Path,
) -> anyhow::Result<(Proc, String, Client, PathBuf)> {
    let (w, w_addr) = start_logging_to(
        Command::new(rdask_bin()).args([
            "worker",
            addr,
            "--name",
            "w",
            "--nthreads",
            "1",
            "--memory-limit",
            "100MB",
            "--local-directory",
            local.0.to_str().expect("utf-8 temp dir"),
        ]),
        "rdask worker",
        log,
    );
    let client = Client::connect(addr)?;
    wait_for_workers(&client, 1);
    // The spill directory is made at the first spill.
    let spill_dir = PathBuf::from(client.worker_info(&w_addr)?.spill_directory);
    std::fs::write(&spill_dir, b"not a directory")?;
    Ok((w, w_addr, client, spill_dir))
}

#[test]
fn a_spill_directory_that_cannot_be_written_is_logged_at_a_bounded_rate_and_reported() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let local = TempDir::new("nospill");
    let log = local.0.join("worker.log");
    let (_w, w_addr, client, spill_dir) = worker_that_cannot_spill(&addr, &local, &log)?;

    // 120 MB of results for a 100 MB limit: past target (60 MB) they must
    // spill, and cannot.
    let blobs = (0..12)
        .map(|seed| client.submit(make_blob, (10_000_000u64, seed)))
        .collect::<Result<Vec<_>, _>>()?;
    let info = wait_for_info(&client, &w_addr, "spill error reported", |i| i.spill_error.is_some());
    let error = info.spill_error.clone().unwrap_or_default();
    assert!(
        error.contains(&spill_dir.display().to_string()) && error.contains("os error"),
        "the report names neither the directory nor the OS error: {error}"
    );
    // Failing writes are retried every few seconds, not many times a
    // second, and the log says so once per interval.
    std::thread::sleep(Duration::from_secs(12));
    let text = std::fs::read_to_string(&log)?;
    let lines = text.lines().filter(|l| l.contains("cannot spill")).count();
    assert!(
        (1..=3).contains(&lines),
        "{lines} 'cannot spill' lines in 12 s:\n{text}"
    );

    // The disk comes back: spilling works again, the error clears, and the
    // work the full memory held up finishes.
    std::fs::remove_file(&spill_dir)?;
    wait_for_info(&client, &w_addr, "spilling resumed", |i| {
        i.spill_error.is_none() && i.spilled_keys > 0 && i.nkeys == 12
    });
    let done = client.wait(&blobs, ReturnWhen::AllCompleted, Some(TASK_BOUND))?;
    assert_eq!(done.not_done.len(), 0);
    Ok(())
}

#[test]
fn work_held_up_by_a_spill_directory_that_cannot_be_written_errs_naming_it() -> anyhow::Result<()> {
    // One worker, its spill directory unusable: it pauses with results it
    // cannot spill, tells the scheduler why, its unstarted tasks are taken
    // back after the paused-worker timeout and, with no other worker to run
    // them, err after the paused-cluster timeout with the directory and the
    // OS error in their message (instead of waiting for ever).
    let local = TempDir::new("spill-errs");
    let cfg = local.0.join("rdask.toml");
    std::fs::write(
        &cfg,
        "[scheduler]\npaused_worker_timeout_s = 2\npaused_cluster_timeout_s = 2\n",
    )?;
    let (_s, addr) = start(
        Command::new(rdask_bin())
            .arg("--config")
            .arg(&cfg)
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        "rdask scheduler listening on",
    );
    let (_w, w_addr, client, spill_dir) = worker_that_cannot_spill(&addr, &local, &local.0.join("worker.log"))?;
    // 200 MB of results for a 100 MB limit that cannot spill: the worker
    // pauses long before the last ones start.
    let blobs = (0..20)
        .map(|seed| client.submit(make_blob, (10_000_000u64, seed)))
        .collect::<Result<Vec<_>, _>>()?;
    let done = client.wait(&blobs, ReturnWhen::AllCompleted, Some(Duration::from_secs(90)))?;
    assert_eq!(
        done.not_done.len(),
        0,
        "work still waits: {:?}",
        client.worker_info(&w_addr)?
    );
    let errors: Vec<String> = blobs
        .iter()
        .filter_map(|b| b.result_timeout(Some(Duration::from_secs(1))).err())
        .map(|e| e.to_string())
        .collect();
    assert!(!errors.is_empty(), "nothing erred, though the worker could not spill");
    let dir = spill_dir.display().to_string();
    for e in &errors {
        assert!(
            e.contains(&dir) && e.contains("os error") && e.contains("paused"),
            "the error names neither the directory nor the OS error: {e}"
        );
    }
    Ok(())
}
