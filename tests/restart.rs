//! `Client::restart` with real processes: nanny workers are restarted as
//! fresh processes, every future of the cluster fails with the restart
//! error (a result in memory and a long task running alike), and new tasks
//! run afterwards; a worker without a nanny is closed and named; workers
//! that do not come back in time make the restart err with how many did;
//! a `LocalCluster` refuses and keeps its workers and tasks. The async twin
//! (`AsyncClient::restart`) restarts the same cluster a second time.

use std::time::{Duration, Instant};

use rdask::builtins::{inc, sleep_ms};
use rdask::wire::messages::ErrorKind;
use rdask::{AsyncClient, Client, Error, LocalCluster, SubmitOptions};

mod common;
use common::*;

/// How long an old future may take to fail after the restart was asked.
const FAIL_BOUND: Duration = Duration::from_secs(10);

fn assert_restart_error<T: std::fmt::Debug>(r: Result<T, Error>) {
    match r {
        Err(Error::Task { failure, .. }) => {
            assert_eq!(failure.kind, ErrorKind::Cancelled, "{failure:?}");
            assert!(failure.message.contains("the cluster was restarted"), "{failure:?}");
        }
        other => panic!("expected the restart error, got {other:?}"),
    }
}

fn addresses(client: &Client) -> Vec<String> {
    let mut a: Vec<String> = client
        .scheduler_info()
        .expect("info")
        .workers
        .into_iter()
        .map(|w| w.address)
        .collect();
    a.sort();
    a
}

#[test]
fn restart_restarts_nanny_workers_fails_every_future_and_runs_new_tasks() -> anyhow::Result<()> {
    let dir = TempDir::new("restart");
    let log = dir.0.join("scheduler.log");
    let (_s, addr) = start_logging_to(
        std::process::Command::new(rdask_bin()).args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        "rdask scheduler listening on",
        &log,
    );
    let (_n1, _) = worker_with(&addr, "n1", &["--nanny"]);
    let (_n2, _) = worker_with(&addr, "n2", &["--nanny"]);
    let client = Client::connect(&addr)?;
    let other = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let before = addresses(&client);

    let in_memory = client.submit(inc, (1i64,))?;
    assert_eq!(in_memory.result()?, 2);
    let long = client.submit(sleep_ms, (120_000u64,))?;
    let others = other.submit(inc, (10i64,))?;
    assert_eq!(others.result()?, 11);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(long.status(), "pending", "the long task is still running");

    let started = Instant::now();
    let mut back = client.restart(Duration::from_secs(30))?;
    let took = started.elapsed();
    back.sort();
    assert_eq!(back, ["n1", "n2"]);
    for f in [&in_memory, &others] {
        assert_restart_error(f.result_timeout(Some(FAIL_BOUND)));
    }
    assert_restart_error(long.result_timeout(Some(FAIL_BOUND)));
    assert!(
        started.elapsed() < FAIL_BOUND + took,
        "the old futures failed within the bound"
    );

    // Two fresh processes at new addresses are registered.
    let after = addresses(&client);
    assert_eq!(after.len(), 2, "{after:?}");
    assert!(after.iter().all(|a| !before.contains(a)), "{before:?} {after:?}");
    let text = wait_for_file(&log, "the scheduler logs why the workers restarted", |t| {
        t.matches("restarted by its nanny: restart requested by a client")
            .count()
            >= 2
    });
    assert!(!text.contains("giving up"), "{text}");

    // New tasks run, the same key too.
    let again = client.submit_with(inc, (1i64,), &SubmitOptions::impure())?;
    assert_eq!(again.result_timeout(Some(Duration::from_secs(30)))?, 2);
    assert_eq!(
        other
            .submit(inc, (10i64,))?
            .result_timeout(Some(Duration::from_secs(30)))?,
        11
    );
    eprintln!("restart of 2 nanny workers took {took:?}");

    // The async twin restarts them again; the futures of the first round
    // after the restart fail in turn.
    let mut names = rdask::runtime::block_on(async {
        let ac = AsyncClient::connect(&addr).await?;
        ac.restart(Duration::from_secs(30)).await
    })?;
    names.sort();
    assert_eq!(names, ["n1", "n2"]);
    assert_restart_error(again.result_timeout(Some(FAIL_BOUND)));
    wait_for_workers(&client, 2);
    Ok(())
}

#[test]
fn a_worker_without_a_nanny_is_closed_and_the_error_names_it() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (_n, _) = worker_with(&addr, "kept", &["--nanny"]);
    let (mut plain, _) = worker_with(&addr, "plain", &[]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let err = client.restart(Duration::from_secs(30)).unwrap_err();
    let text = err.to_string();
    assert!(matches!(err, Error::Refused(_)), "{text}");
    assert!(text.contains("plain") && text.contains("no nanny"), "{text}");
    assert!(text.contains("\"kept\""), "the nanny worker is back: {text}");
    let code = plain.wait_exit();
    eprintln!("the plain worker exited with {code:?}");
    wait_until("only the nanny worker is registered", || {
        client
            .scheduler_info()
            .is_ok_and(|i| i.workers.len() == 1 && i.workers[0].name == "kept")
    });
    assert_eq!(
        client
            .submit(inc, (1i64,))?
            .result_timeout(Some(Duration::from_secs(30)))?,
        2
    );
    Ok(())
}

#[test]
fn workers_that_do_not_come_back_in_time_make_the_restart_err() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (nanny, _) = worker_with(&addr, "slow", &["--nanny"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    // A stopped nanny cannot start its worker again until it is continued.
    nanny.signal("STOP");
    let started = Instant::now();
    let err = client.restart(Duration::from_secs(2)).unwrap_err();
    let waited = started.elapsed();
    nanny.signal("CONT");
    let text = err.to_string();
    assert!(text.contains("only 0 of the 1"), "{text}");
    assert!(waited >= Duration::from_secs(2), "{waited:?}");
    // Continued, the nanny restarts its worker, which serves tasks.
    wait_for_workers(&client, 1);
    assert_eq!(
        client
            .submit(inc, (1i64,))?
            .result_timeout(Some(Duration::from_secs(30)))?,
        2
    );
    eprintln!("timed-out restart answered after {waited:?}");
    Ok(())
}

#[test]
fn a_local_cluster_refuses_to_restart_and_keeps_its_workers_and_tasks() -> anyhow::Result<()> {
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let x = client.submit(inc, (1i64,))?;
    assert_eq!(x.result()?, 2);
    let err = client.restart(Duration::from_secs(5)).unwrap_err();
    assert!(err.to_string().contains("LocalCluster"), "{err}");
    assert_eq!(client.scheduler_info()?.workers.len(), 2);
    assert_eq!(x.result()?, 2);
    Ok(())
}
