//! The coordination primitives between real processes: `rdask scheduler`,
//! workers of the `coordination` example (which serves tasks that use a
//! `Semaphore` and a `Queue` through `worker_client`), and holder programs
//! of the same example that get killed, stopped, or exit. Semantics:
//! docs/coordination.md.

use std::collections::BTreeSet;
use std::process::Command;
use std::time::{Duration, Instant};

use rdask::builtins::inc;
use rdask::task::encode_value;
use rdask::wire::messages::Arg;
use rdask::{AsyncClient, Client, Event, Item, Lock, MultiLock, Pub, Queue, Semaphore, Sub, SubmitOptions, Variable};

mod common;
use common::*;

fn example_or_skip() -> Option<String> {
    example_bin("coordination")
}

/// A holder program of the example (`--hold-lock` and the like), started
/// and waited for until it wrote `marker`.
fn holder(bin: &str, args: &[&str], marker: &std::path::Path) -> Proc {
    let stderr = if std::env::var_os("RDASK_TEST_LOGS").is_some() {
        std::process::Stdio::inherit()
    } else {
        std::process::Stdio::null()
    };
    let child = Command::new(bin)
        .args(args)
        .arg(marker)
        .stderr(stderr)
        .spawn()
        .expect("holder starts");
    let p = Proc(child);
    wait_for_file(marker, "the holder took what it holds", |t| t == "held");
    p
}

fn value(v: impl serde::Serialize) -> Arg {
    Arg::Value(encode_value(&v).expect("encodes"))
}

#[test]
fn a_semaphore_of_3_is_never_held_by_more_than_3_of_100_tasks_on_2_workers() -> anyhow::Result<()> {
    let Some(bin) = example_or_skip() else { return Ok(()) };
    let (_s, addr) = scheduler();
    let (_w1, _) = example_worker(&bin, &addr, "w1", 4);
    let (_w2, _) = example_worker(&bin, &addr, "w2", 4);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let dir = TempDir::new("semaphore");
    let dir_s = dir.0.to_string_lossy().into_owned();
    let t0 = Instant::now();
    let futures = (0..100u64)
        .map(|i| {
            client.submit_raw::<u32>(
                "coordination::guarded",
                vec![value("s3"), value(3u32), value(&dir_s), value(20u64), value(i)],
                &SubmitOptions::default(),
            )
        })
        .collect::<Result<Vec<_>, _>>()?;
    let seen = client.gather(&futures)?;
    let max = seen.iter().copied().max().unwrap_or(0);
    eprintln!(
        "100 tasks of 20 ms under Semaphore(3) on 2 workers x 4 threads: at most {max} holders seen, {:.2} s",
        t0.elapsed().as_secs_f64()
    );
    assert_eq!(seen.len(), 100);
    assert!(max <= 3, "a task saw {max} holders at once: {seen:?}");
    // 8 threads contend for 3 leases: the limit is reached, so the check
    // above could have failed.
    assert!(max >= 2, "no contention observed: {seen:?}");
    Ok(())
}

#[test]
fn a_worker_killed_while_its_task_holds_a_lease_frees_the_lease_at_once() -> anyhow::Result<()> {
    let Some(bin) = example_or_skip() else { return Ok(()) };
    let (_s, addr) = scheduler();
    let (w1, _) = example_worker(&bin, &addr, "w1", 1);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let dir = TempDir::new("killed-holder");
    let marker = dir.0.join("held");
    let args = vec![
        value("s1"),
        value(1u32),
        value(marker.to_string_lossy()),
        value(600_000u64),
    ];
    let _holding = client.submit_raw::<()>("coordination::hold_semaphore", args, &SubmitOptions::default())?;
    wait_for_file(&marker, "the task took the lease", |t| t == "held");
    let sem = Semaphore::new(&client, "s1", 1);
    assert!(!sem.acquire(Duration::ZERO)?, "the task holds the only lease");
    w1.signal("KILL");
    let t0 = Instant::now();
    assert!(sem.acquire(Duration::from_secs(10))?, "the lease was not freed");
    let freed = t0.elapsed();
    eprintln!("lease of a SIGKILLed worker's task freed after {freed:?}");
    assert!(freed < Duration::from_secs(5), "took {freed:?}");
    assert!(sem.release()?);
    Ok(())
}

#[test]
fn a_stopped_holders_lease_is_taken_back_after_the_lease_timeout() -> anyhow::Result<()> {
    let Some(bin) = example_or_skip() else { return Ok(()) };
    const LEASE_TIMEOUT_S: f64 = 8.0;
    let (_s, addr) = start(
        Command::new(rdask_bin())
            .args(["scheduler", "--host", "127.0.0.1", "--port", "0"])
            .env("RDASK_SCHEDULER__LEASE_TIMEOUT_S", LEASE_TIMEOUT_S.to_string()),
        "rdask scheduler listening on",
    );
    let dir = TempDir::new("stopped-holder");
    let marker = dir.0.join("held");
    let h = holder(&bin, &["--hold-semaphore", &addr, "s"], &marker);
    let client = Client::connect(&addr)?;
    let sem = Semaphore::new(&client, "s", 1);
    assert!(!sem.acquire(Duration::ZERO)?);
    // Stopped, the holder's connection stays open but goes silent.
    h.signal("STOP");
    let t0 = Instant::now();
    assert!(sem.acquire(Duration::from_secs(30))?, "the lease was never taken back");
    let after = t0.elapsed().as_secs_f64();
    h.signal("CONT");
    eprintln!("lease of a stopped holder taken back {after:.1} s after SIGSTOP (lease timeout {LEASE_TIMEOUT_S} s)");
    // Its last keep-alive came at most 5 s (CLIENT_KEEPALIVE_INTERVAL)
    // before the stop, so the lease times out 3 to 8 s after it.
    assert!(
        after > LEASE_TIMEOUT_S - 5.5 && after < LEASE_TIMEOUT_S + 2.0,
        "{after} s"
    );
    Ok(())
}

#[test]
fn a_lock_held_by_a_client_that_goes_is_released() -> anyhow::Result<()> {
    let Some(bin) = example_or_skip() else { return Ok(()) };
    let (_s, addr) = scheduler();
    let client = Client::connect(&addr)?;
    let lock = Lock::new(&client, "l");
    // A client that closes.
    let other = Client::connect(&addr)?;
    assert!(Lock::new(&other, "l").acquire(Duration::ZERO)?);
    assert!(!lock.acquire(Duration::ZERO)?);
    drop(other);
    assert!(
        lock.acquire(Duration::from_secs(10))?,
        "not released by a closing client"
    );
    assert!(lock.release()?);
    // A client process killed while holding it.
    let dir = TempDir::new("lock");
    let marker = dir.0.join("held");
    let h = holder(&bin, &["--hold-lock", &addr, "l"], &marker);
    assert!(!lock.acquire(Duration::ZERO)?);
    h.signal("KILL");
    let t0 = Instant::now();
    assert!(
        lock.acquire(Duration::from_secs(10))?,
        "not released by a killed client"
    );
    eprintln!("lock of a SIGKILLed client released after {:?}", t0.elapsed());
    assert!(t0.elapsed() < Duration::from_secs(5));
    Ok(())
}

#[test]
fn a_queue_variable_event_and_topic_connect_two_clients() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (_w, _) = worker_with(&addr, "w1", &[]);
    let producer = Client::connect(&addr)?;
    let consumer = Client::connect(&addr)?;
    wait_for_workers(&producer, 1);
    let sub = Sub::<String>::new(&consumer, "news")?;

    let q = Queue::<i64>::new(&producer, "q");
    for i in 0..10 {
        q.put(&i)?;
    }
    let f = producer.submit(inc, (41,))?;
    q.put_future(&f)?;
    let var = Variable::<i64>::new(&producer, "v");
    var.set_future(&f)?;
    drop(f);
    assert_eq!(Pub::<String>::new(&producer, "news").put(&"hello".to_string())?, 1);
    drop(producer);

    let q = Queue::<i64>::new(&consumer, "q");
    assert_eq!(q.qsize()?, 11);
    for i in 0..10 {
        assert!(matches!(q.get(Duration::ZERO)?, Item::Value(v) if v == i));
    }
    let Item::Future(f) = q.get(Duration::ZERO)? else {
        panic!("the future came back as a value")
    };
    assert_eq!(f.result_timeout(Some(STARTUP))?, 42);
    let t0 = Instant::now();
    assert!(matches!(
        q.get(Duration::from_millis(300)),
        Err(rdask::Error::Timeout(_))
    ));
    let waited = t0.elapsed();
    assert!(
        waited >= Duration::from_millis(300) && waited < Duration::from_secs(3),
        "{waited:?}"
    );
    assert_eq!(
        Variable::<i64>::new(&consumer, "v")
            .get(Duration::ZERO)?
            .value(STARTUP)?,
        42
    );
    assert_eq!(sub.get(Duration::from_secs(10))?, "hello");

    let event = Event::new(&consumer, "go");
    assert!(!event.wait(Duration::from_millis(50))?);
    let setter = Client::connect(&addr)?;
    let waiter = std::thread::spawn(move || event.wait(Duration::from_secs(20)));
    std::thread::sleep(Duration::from_millis(200));
    Event::new(&setter, "go").set()?;
    assert!(waiter.join().expect("waiter thread")?);
    Ok(())
}

#[test]
fn a_producer_worker_killed_mid_run_loses_no_acknowledged_item() -> anyhow::Result<()> {
    let Some(bin) = example_or_skip() else { return Ok(()) };
    let (_s, addr) = scheduler();
    let (w1, _) = example_worker(&bin, &addr, "w1", 1);
    let (_w2, _) = example_worker(&bin, &addr, "w2", 1);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let dir = TempDir::new("producer");
    let ack = dir.0.join("acked");
    const N: u64 = 200;
    let args = vec![
        value("items"),
        value(0u64),
        value(N),
        value(ack.to_string_lossy()),
        value(10u64),
    ];
    let opts = SubmitOptions::default().workers(["w1"]).allow_other_workers(true);
    let produced = client.submit_raw::<u64>("coordination::produce", args, &opts)?;
    let queue = Queue::<u64>::new(&client, "items");
    let mut received = Vec::new();
    // Consume while producing; kill the producer's worker part-way.
    while received.len() < 50 {
        if let Item::Value(v) = queue.get(Duration::from_secs(30))? {
            received.push(v);
        }
    }
    w1.signal("KILL");
    let acked_at_kill: BTreeSet<u64> = std::fs::read_to_string(&ack)?
        .lines()
        .filter_map(|l| l.parse().ok())
        .collect();
    // The producer task is rerun on w2 from the start: every number comes
    // (again); the queue itself lost nothing acknowledged.
    assert_eq!(produced.result_timeout(Some(Duration::from_secs(60)))?, N);
    while let Ok(Item::Value(v)) = queue.get(Duration::from_millis(500)) {
        received.push(v);
    }
    let got: BTreeSet<u64> = received.iter().copied().collect();
    let lost: Vec<u64> = acked_at_kill.difference(&got).copied().collect();
    eprintln!(
        "{} acknowledged before the kill, {} received in all ({} distinct), lost {lost:?}",
        acked_at_kill.len(),
        received.len(),
        got.len()
    );
    assert!(lost.is_empty(), "acknowledged but never received: {lost:?}");
    assert_eq!(got, (0..N).collect::<BTreeSet<_>>());
    assert_eq!(queue.qsize()?, 0);
    Ok(())
}

#[test]
fn a_published_dataset_outlives_its_publisher_process() -> anyhow::Result<()> {
    let Some(bin) = example_or_skip() else { return Ok(()) };
    let (_s, addr) = scheduler();
    let (_w, _) = worker_with(&addr, "w1", &[]);
    let status = Command::new(&bin)
        .args(["--publish", &addr, "squares", "10"])
        .status()?;
    assert!(status.success(), "the publisher failed: {status}");
    let client = Client::connect(&addr)?;
    assert_eq!(client.list_datasets()?, ["squares"]);
    let futures = client.get_dataset::<i64>("squares")?;
    assert_eq!(client.gather(&futures)?, (1..=10).collect::<Vec<i64>>());
    assert!(
        client.publish_dataset("squares", &futures).is_err(),
        "the name is taken"
    );
    client.unpublish_dataset("squares")?;
    assert!(client.list_datasets()?.is_empty());
    drop(futures);
    wait_until("the dataset's keys are released", || {
        client.scheduler_info().is_ok_and(|i| i.ntasks == 0)
    });
    Ok(())
}

#[test]
fn a_fire_and_forget_task_runs_after_its_client_exited() -> anyhow::Result<()> {
    let Some(bin) = example_or_skip() else { return Ok(()) };
    let (_s, addr) = scheduler();
    let (_w, _) = worker_with(&addr, "w1", &[]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let dir = TempDir::new("fire");
    let out = dir.0.join("ran");
    let command = format!("sleep 1; echo ran > {}", out.display());
    let status = Command::new(&bin).args(["--fire", &addr, &command]).status()?;
    assert!(status.success(), "the firing client failed: {status}");
    wait_for_file(&out, "the fire-and-forget task ran", |t| t == "ran\n");
    wait_until("its key is released once done", || {
        client.scheduler_info().is_ok_and(|i| i.ntasks == 0)
    });
    Ok(())
}

#[test]
fn the_python_lock_and_queue_client_of_the_protocol_doc_works() -> anyhow::Result<()> {
    let has_msgpack = Command::new("python3")
        .args(["-c", "import msgpack"])
        .status()
        .is_ok_and(|s| s.success());
    if !has_msgpack {
        cannot_run("python3 with msgpack is not installed");
        return Ok(());
    }
    let doc = std::fs::read_to_string(concat!(env!("CARGO_MANIFEST_DIR"), "/docs/protocol.md"))?;
    let section = doc
        .split("### 11.1 A Lock and a Queue in Python")
        .nth(1)
        .expect("docs/protocol.md has §11.1");
    let script = section
        .split("```python\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("§11.1 has a python block");
    let expected = section
        .split("It prints:\n\n```text\n")
        .nth(1)
        .and_then(|s| s.split("```").next())
        .expect("§11.1 shows what it prints");
    let dir = TempDir::new("python");
    let path = dir.0.join("lock_queue.py");
    std::fs::write(&path, script)?;
    let (_s, addr) = scheduler();
    let out = Command::new("python3").arg(&path).arg(&addr).output()?;
    assert!(
        out.status.success(),
        "the doc's Python client failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(String::from_utf8_lossy(&out.stdout), expected);
    Ok(())
}

#[test]
fn the_async_client_shares_locks_and_queues_and_a_multilock_takes_all_or_nothing() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    rt.block_on(async {
        let a = AsyncClient::connect(&addr).await?;
        let b = AsyncClient::connect(&addr).await?;
        let both = MultiLock::new(&a, &["x", "y"]);
        assert!(both.acquire_async(Duration::from_secs(1)).await?);
        let y = Lock::new(&b, "y");
        assert!(!y.acquire_async(Duration::from_millis(100)).await?, "y is taken with x");
        // b waits for y while a releases both.
        let (granted, released) = tokio::join!(y.acquire_async(Duration::from_secs(10)), async {
            tokio::time::sleep(Duration::from_millis(200)).await;
            both.release_async().await
        });
        assert!(released?);
        assert!(granted?);
        // Now b holds y: the multi-lock waits for it, and gets neither.
        assert!(!both.acquire_async(Duration::from_millis(100)).await?);
        assert!(Lock::new(&a, "x").acquire_async(Duration::ZERO).await?, "x stayed free");

        Queue::<String>::new(&a, "aq").put_async(&"hi".to_string()).await?;
        let item = Queue::<String>::new(&b, "aq").get_async(Duration::from_secs(1)).await?;
        assert_eq!(item.value_async(Duration::from_secs(1)).await?, "hi");

        let sem = Semaphore::new(&b, "as", 2);
        assert!(sem.acquire_async(Duration::ZERO).await?);
        assert!(sem.acquire_async(Duration::ZERO).await?);
        assert!(!sem.acquire_async(Duration::ZERO).await?);
        assert_eq!(sem.held(), 2);
        assert!(sem.release_async().await?);
        assert!(Semaphore::new(&a, "as", 2).acquire_async(Duration::ZERO).await?);
        assert!(
            Semaphore::new(&a, "as", 5).acquire_async(Duration::ZERO).await.is_err(),
            "another max_leases is refused"
        );
        Ok::<_, anyhow::Error>(())
    })
}

#[test]
fn a_wait_fails_with_a_clear_error_when_the_scheduler_dies() -> anyhow::Result<()> {
    let (s, addr) = scheduler();
    // Not reconnecting (the default reconnects for 30 s first).
    let options = rdask::ClientOptions {
        reconnect_timeout: Duration::ZERO,
        ..Default::default()
    };
    let client = Client::connect_with(&addr, options)?;
    let queue = Queue::<u64>::new(&client, "never");
    let waiting = std::thread::spawn(move || {
        let t0 = Instant::now();
        (queue.get(Duration::from_secs(60)).map(drop), t0.elapsed())
    });
    std::thread::sleep(Duration::from_millis(300));
    s.signal("KILL");
    let (result, after) = waiting.join().expect("waiting thread");
    eprintln!("a queue get failed {after:?} after it started, the scheduler killed at 300 ms: {result:?}");
    assert!(matches!(result, Err(rdask::Error::Disconnected(_))), "{result:?}");
    assert!(after < Duration::from_secs(10), "{after:?}");
    Ok(())
}

#[test]
fn a_task_puts_a_future_of_its_child_on_a_queue_and_a_client_reads_it_after_the_task_ended() -> anyhow::Result<()> {
    let Some(bin) = example_or_skip() else { return Ok(()) };
    let (_s, addr) = scheduler();
    let (_w, _) = example_worker(&bin, &addr, "w1", 2);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let parent = client.submit_raw::<()>(
        "coordination::enqueue_child",
        vec![value("children"), value(41i64)],
        &SubmitOptions::default(),
    )?;
    parent.result_timeout(Some(STARTUP))?;
    drop(parent);
    // The task and its client's future are gone; the queue held the child.
    std::thread::sleep(Duration::from_millis(300));
    let queue = Queue::<i64>::new(&client, "children");
    let Item::Future(child) = queue.get(Duration::from_secs(10))? else {
        panic!("the task put a future, not a value")
    };
    assert_eq!(child.result_timeout(Some(STARTUP))?, 42);
    drop(child);
    wait_until("the child's key is released once read and dropped", || {
        client.scheduler_info().is_ok_and(|i| i.ntasks == 0)
    });
    Ok(())
}
