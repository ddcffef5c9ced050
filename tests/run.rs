//! `Client::run` with real processes: a scheduler (`rdask`) and workers of
//! the `actor_counter` example (which links `worker_pid`), or of `rdask`
//! itself for the built-ins. Each worker answers on its own: results and
//! errors by worker address, a dead or slow worker an error of its own.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use rdask::builtins::{fail, inc, sleep_ms};
use rdask::wire::messages::{Arg, ErrorKind};
use rdask::{Client, Error, LocalCluster, RunOptions};

mod common;
use common::*;

fn example() -> Option<String> {
    example_bin("actor_counter")
}

fn address_of(client: &Client, name: &str) -> String {
    let info = client.scheduler_info().expect("info");
    info.workers
        .iter()
        .find(|w| w.name == name)
        .map(|w| w.address.clone())
        .expect("worker registered")
}

fn on(workers: &[&str]) -> RunOptions {
    RunOptions {
        workers: workers.iter().map(|w| w.to_string()).collect(),
        ..Default::default()
    }
}

#[test]
fn run_on_every_worker_and_on_chosen_ones() -> Result<(), Error> {
    let Some(bin) = example() else { return Ok(()) };
    let (_s, addr) = scheduler();
    let (w1, _) = example_worker(&bin, &addr, "w1", 1);
    let (w2, _) = example_worker(&bin, &addr, "w2", 1);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    // A function of no arguments, by name: each worker process answers.
    let pids = client.run_raw::<u32>("actor_counter::worker_pid", vec![], &RunOptions::default())?;
    let by_address: Vec<(String, u32)> = pids.into_iter().map(|(a, p)| (a, p.expect("ran"))).collect();
    let mut expected = vec![
        (address_of(&client, "w1"), w1.pid()),
        (address_of(&client, "w2"), w2.pid()),
    ];
    expected.sort();
    assert_eq!(by_address, expected);
    // With arguments, on one worker chosen by name, typed.
    let one = client.run_with(inc, (41i64,), &on(&["w2"]))?;
    assert_eq!(one.len(), 1);
    assert_eq!(
        one.get(&address_of(&client, "w2")).map(|r| r.as_ref().ok()),
        Some(Some(&42))
    );
    // ... and by address.
    let w1_address = address_of(&client, "w1");
    let one = client.run_with(inc, (1i64,), &on(&[&w1_address]))?;
    assert_eq!(one.keys().collect::<Vec<_>>(), [&w1_address]);
    Ok(())
}

#[test]
fn run_errors_are_per_worker_and_bad_requests_are_refused() -> Result<(), Error> {
    let (_s, addr) = scheduler();
    let (_w1, _) = worker_with(&addr, "w1", &[]);
    let (_w2, _) = worker_with(&addr, "w2", &[]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let failed = client.run(fail, ("boom".to_string(),))?;
    assert_eq!(failed.len(), 2);
    for (worker, r) in &failed {
        match r {
            Err(Error::Task { key, failure }) => {
                assert_eq!((failure.kind, failure.message.as_str()), (ErrorKind::Failed, "boom"));
                assert!(
                    key.contains(worker.as_str()) && key.contains("rdask::builtins::fail"),
                    "{key}"
                );
            }
            other => panic!("{worker}: {other:?}"),
        }
    }
    let unknown = client.run_raw::<u8>("my_app::nope", vec![], &RunOptions::default())?;
    for r in unknown.values() {
        assert!(
            matches!(r, Err(Error::Task { failure, .. }) if failure.kind == ErrorKind::UnknownFunction
                && failure.message.contains("\"my_app::nope\"")),
            "{r:?}"
        );
    }
    let err = client
        .run_with(inc, (1i64,), &on(&["w1", "w9"]))
        .expect_err("unknown worker");
    assert!(matches!(&err, Error::Refused(m) if m.contains("w9")), "{err:?}");
    let future = client.submit(inc, (1i64,))?;
    let err = client
        .run_raw::<i64>(
            "rdask::builtins::inc",
            vec![Arg::Key(future.key().into())],
            &RunOptions::default(),
        )
        .expect_err("a future argument");
    assert!(matches!(&err, Error::Refused(m) if m.contains("values")), "{err:?}");
    // A bad argument is the worker's BadArguments, per worker.
    let bad = client.run_raw::<i64>(
        "rdask::builtins::inc",
        vec![Arg::Value(rdask::task::encode_value(&"x").expect("encodes"))],
        &RunOptions::default(),
    )?;
    assert!(bad
        .values()
        .all(|r| matches!(r, Err(Error::Task { failure, .. }) if failure.kind == ErrorKind::BadArguments)));
    Ok(())
}

#[test]
fn a_worker_dying_mid_run_gives_an_error_for_that_worker_only() -> Result<(), Error> {
    let (_s, addr) = scheduler();
    let (w1, _) = worker_with(&addr, "w1", &[]);
    let (_w2, _) = worker_with(&addr, "w2", &[]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let (dying, living) = (address_of(&client, "w1"), address_of(&client, "w2"));
    let runner = {
        let client = client.clone();
        std::thread::spawn(move || client.run(sleep_ms, (2000u64,)))
    };
    std::thread::sleep(Duration::from_millis(300));
    w1.signal("KILL");
    let results = runner.join().expect("joins")?;
    assert_eq!(
        results.keys().cloned().collect::<BTreeSet<_>>(),
        BTreeSet::from([dying.clone(), living.clone()])
    );
    assert!(
        matches!(&results[&dying], Err(Error::Wire(m)) if m.contains("connection to the worker failed") && m.contains(&dying)),
        "{:?}",
        results[&dying]
    );
    assert_eq!(results[&living].as_ref().ok(), Some(&2000));
    Ok(())
}

#[test]
fn a_slow_worker_times_out_on_its_own() -> Result<(), Error> {
    let (_s, addr) = scheduler();
    let (_w1, _) = worker_with(&addr, "w1", &[]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let opts = RunOptions {
        timeout: Duration::from_millis(300),
        ..Default::default()
    };
    let started = Instant::now();
    let results = client.run_with(sleep_ms, (5000u64,), &opts)?;
    assert!(started.elapsed() < Duration::from_secs(3), "{:?}", started.elapsed());
    let r = results.values().next().expect("one worker");
    assert!(matches!(r, Err(Error::Timeout(m)) if m.contains("300ms")), "{r:?}");
    Ok(())
}

#[rdask::task]
fn answer() -> u8 {
    42
}

#[test]
fn run_of_a_function_without_arguments_on_a_local_cluster() -> Result<(), Error> {
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    client.wait_for_workers(2, STARTUP)?;
    let results = client.run(answer, ())?;
    assert_eq!(results.len(), 2);
    assert!(results.values().all(|r| matches!(r, Ok(42))), "{results:?}");
    Ok(())
}
