//! Integration tests over real TCP on 127.0.0.1 with the in-process
//! `LocalCluster`: the futures API, the dependency graph, peer-to-peer
//! transfers, reference counting, failures, and bad input on the wire.

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::{Duration, Instant};

use rdask::builtins::{add, blob_len, fail, inc, make_blob, noop, panic, sleep_ms, sum};
use rdask::wire::messages::{Arg, ErrorKind};
use rdask::{Client, Error, LocalCluster, ReturnWhen, SubmitOptions};

/// A task defined by the test binary: in-process workers can run it.
#[rdask::task]
fn greet(name: String, times: u32) -> String {
    format!("hello {name}").repeat(times as usize)
}

fn cluster(workers: usize) -> LocalCluster {
    let c = LocalCluster::new(workers).expect("cluster starts");
    assert!(c.wait_for_workers(workers, Duration::from_secs(10)));
    c
}

/// Polls until the scheduler holds no tasks and every worker's store is
/// empty, or fails after a timeout.
fn assert_settles(cluster: &LocalCluster, client: &Client) {
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = cluster.scheduler_info().expect("scheduler info");
        let stores: Vec<u64> = cluster
            .workers()
            .iter()
            .map(|(_, addr)| client.worker_info(addr).expect("worker info").nkeys)
            .collect();
        if info.ntasks == 0 && stores.iter().all(|&n| n == 0) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "did not settle: scheduler {:?}, worker stores {stores:?}",
            info.tasks_by_state
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn submit_map_gather_and_user_tasks() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    let f = client.submit(inc, (41i64,))?;
    assert_eq!(f.result()?, 42);
    let futures = client.map(inc, 0..100i64)?;
    let out: Vec<i64> = client.gather(&futures)?;
    assert_eq!(out, (1..=100).collect::<Vec<_>>());
    let g = client.submit(greet, ("rdask", 2u32))?;
    assert_eq!(g.result()?, "hello rdaskhello rdask");
    // Both workers took part.
    let executed: Vec<u64> = cluster
        .workers()
        .iter()
        .map(|(_, a)| client.worker_info(a).map(|i| i.tasks_executed))
        .collect::<Result<_, _>>()?;
    assert!(
        executed.iter().all(|&n| n > 0),
        "work spread over workers: {executed:?}"
    );
    Ok(())
}

#[test]
fn futures_as_arguments_build_a_graph() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    // A chain.
    let mut f = client.submit(inc, (0i64,))?;
    for _ in 0..50 {
        f = client.submit(inc, (&f,))?;
    }
    assert_eq!(f.result()?, 51);
    // A tree reduction.
    let mut level = client.map(inc, 0..64i64)?;
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| client.submit(add, (&p[0], &p[1])))
            .collect::<Result<_, _>>()?;
    }
    assert_eq!(level[0].result()?, (1..=64).sum::<i64>());
    // A value and a future mixed.
    let s = client.submit(add, (10i64, &level[0]))?;
    assert_eq!(s.result()?, 10 + (1..=64).sum::<i64>());
    Ok(())
}

#[test]
fn pure_keys_dedupe_and_impure_keys_do_not() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let a = client.submit(inc, (1i64,))?;
    let b = client.submit(inc, (1i64,))?;
    assert_eq!(a.key(), b.key());
    assert!(a.key().starts_with("inc-"), "{}", a.key());
    let c = client.submit_with(inc, (1i64,), &SubmitOptions::impure())?;
    assert_ne!(a.key(), c.key());
    let d = client.submit_with(inc, (1i64,), &SubmitOptions::default().key("my-key"))?;
    assert_eq!(d.key(), "my-key");
    assert_eq!((a.result()?, b.result()?, c.result()?, d.result()?), (2, 2, 2, 2));
    // The pure key ran once, the impure and explicit ones once each.
    let (_, addr) = &cluster.workers()[0];
    assert_eq!(client.worker_info(addr)?.tasks_executed, 3);
    Ok(())
}

#[test]
fn dependencies_move_peer_to_peer() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    let workers = cluster.workers();
    let (a_name, a_addr) = &workers[0];
    let (b_name, b_addr) = &workers[1];
    const N: u64 = 20_000_000;
    let blob = client.submit_with(
        make_blob,
        (N, 7u64),
        &SubmitOptions::default().workers([a_name.clone()]),
    )?;
    client.wait(
        std::slice::from_ref(&blob),
        ReturnWhen::AllCompleted,
        Some(Duration::from_secs(30)),
    )?;
    let len = client.submit_with(blob_len, (&blob,), &SubmitOptions::default().workers([b_name.clone()]))?;
    assert_eq!(len.result()?, N);
    let a = client.worker_info(a_addr)?;
    let b = client.worker_info(b_addr)?;
    assert!(
        b.bytes_fetched_from_peers >= N,
        "B fetched {} bytes",
        b.bytes_fetched_from_peers
    );
    assert!(
        a.bytes_served_to_peers >= N,
        "A served {} bytes",
        a.bytes_served_to_peers
    );
    // The scheduler saw only the sizes: its memory did not grow by the blob.
    let who = client.who_has(&[blob.key()])?;
    assert_eq!(
        who[0].nbytes as usize,
        N as usize + 5,
        "msgpack bin32 header is 5 bytes"
    );
    assert_eq!(who[0].workers.len(), 2, "A computed it and B holds a replica: {who:?}");
    Ok(())
}

#[test]
fn dropping_futures_releases_everything() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    {
        let xs = client.map(inc, 0..200i64)?;
        let total = client.submit(sum, (client.gather(&xs)?,))?;
        let pairs: Vec<_> = xs
            .chunks(2)
            .map(|p| client.submit(add, (&p[0], &p[1])))
            .collect::<Result<_, _>>()?;
        assert_eq!(total.result()?, (1..=200).sum::<i64>());
        assert_eq!(client.gather(&pairs)?.iter().sum::<i64>(), (1..=200).sum::<i64>());
        let info = cluster.scheduler_info().unwrap();
        assert!(info.ntasks >= 301, "tasks held: {}", info.ntasks);
    }
    assert_settles(&cluster, &client);
    Ok(())
}

#[test]
fn several_clients_share_keys_and_release_only_their_own() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let c1 = cluster.client()?;
    let c2 = cluster.client()?;
    assert_ne!(c1.id(), c2.id());
    let f1 = c1.submit(inc, (100i64,))?;
    let f2 = c2.submit(inc, (100i64,))?;
    assert_eq!(f1.key(), f2.key());
    assert_eq!(f1.result()?, 101);
    let only1 = c1.submit(inc, (5i64,))?;
    only1.result()?;
    drop(f1);
    drop(c1);
    drop(only1);
    // c2's future stays valid after c1 let go and left.
    std::thread::sleep(Duration::from_millis(100));
    assert_eq!(f2.result()?, 101);
    let info = cluster.scheduler_info().unwrap();
    assert_eq!(info.ntasks, 1, "only c2's key is left: {:?}", info.tasks_by_state);
    drop(f2);
    assert_settles(&cluster, &c2);
    Ok(())
}

/// Thousands of futures dropped at once leave as a few merged
/// `ReleaseKeys` (issue 15): keys the other client still holds stay, with
/// their results; the rest go, on the workers too.
#[test]
fn a_mass_release_keeps_the_keys_another_client_holds() -> anyhow::Result<()> {
    const N: i64 = 5_000;
    let cluster = cluster(2);
    let c1 = cluster.client()?;
    let c2 = cluster.client()?;
    let all = c1.map(inc, 0..N)?;
    c1.gather(&all)?;
    // c2 wants every other key too (same function and argument: same key).
    let evens = c2.map(inc, (0..N).step_by(2))?;
    assert_eq!(evens[1].key(), all[2].key());
    drop(all);
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let n = cluster.scheduler_info().expect("scheduler info").ntasks;
        if n as usize == evens.len() {
            break;
        }
        assert!(Instant::now() < deadline, "{n} tasks left, expected {}", evens.len());
        std::thread::sleep(Duration::from_millis(20));
    }
    let got: Vec<i64> = c2.gather(&evens)?;
    assert_eq!(got, (0..N).step_by(2).map(|i| i + 1).collect::<Vec<_>>());
    drop(evens);
    assert_settles(&cluster, &c1);
    Ok(())
}

#[test]
fn a_client_that_vanishes_releases_what_it_held() -> anyhow::Result<()> {
    use rdask::wire::messages::{FromClient, TaskSpec};
    let cluster = cluster(1);
    let observer = cluster.client()?;
    // A raw client submits 50 tasks, then its socket simply goes away.
    let mut s = raw_connect(&cluster);
    s.write_all(&handshake(rdask::wire::messages::PROTOCOL_VERSION))?;
    let tasks: Vec<TaskSpec> = (0..50i64)
        .map(|i| TaskSpec {
            key: format!("vanish-{i}"),
            function: "rdask::builtins::inc".into(),
            args: vec![Arg::Value(rdask::task::encode_value(&i).unwrap())],
            priority: 0,
            workers: vec![],
            allow_other_workers: false,
            retries: 0,
            resources: Vec::new(),
        })
        .collect();
    let wanted = tasks.iter().map(|t| t.key.clone()).collect();
    s.write_all(&frame(&rmp_serde_named(&vec![FromClient::UpdateGraph {
        tasks,
        wanted,
    }])))?;
    let deadline = Instant::now() + Duration::from_secs(10);
    while observer
        .scheduler_info()?
        .tasks_by_state
        .iter()
        .find(|(st, _)| st == "memory")
        .map(|x| x.1)
        != Some(50)
    {
        assert!(Instant::now() < deadline, "tasks did not run");
        std::thread::sleep(Duration::from_millis(10));
    }
    drop(s);
    assert_settles(&cluster, &observer);
    Ok(())
}

#[test]
fn task_errors_reach_the_client_and_dependents() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let bad = client.submit(fail, ("disk on fire",))?;
    match bad.result() {
        Err(Error::Task { failure, .. }) => {
            assert_eq!(failure.kind, ErrorKind::Failed);
            assert_eq!(failure.message, "disk on fire");
        }
        other => panic!("expected a task error, got {other:?}"),
    }
    assert_eq!(bad.status(), "error");
    // A task depending on the erred one fails naming it.
    let dep = client.submit_raw::<i64>(
        "rdask::builtins::inc",
        vec![Arg::Key(bad.key().to_string())],
        &SubmitOptions::default(),
    )?;
    match dep.result() {
        Err(Error::Task { failure, .. }) => {
            assert_eq!(failure.kind, ErrorKind::DependencyFailed);
            assert!(failure.message.contains(bad.key()), "{}", failure.message);
            assert!(failure.message.contains("disk on fire"), "{}", failure.message);
        }
        other => panic!("expected a dependency error, got {other:?}"),
    }
    // The cluster carries on.
    assert_eq!(client.submit(inc, (1i64,))?.result()?, 2);
    Ok(())
}

#[test]
fn a_panicking_task_errs_and_the_worker_lives() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let p = client.submit(panic, ("kaboom",))?;
    match p.result() {
        Err(Error::Task { failure, .. }) => {
            assert_eq!(failure.kind, ErrorKind::Panicked);
            assert!(failure.message.contains("kaboom"), "{}", failure.message);
            assert!(
                failure.message.contains("builtins.rs:"),
                "location: {}",
                failure.message
            );
        }
        other => panic!("expected a panic error, got {other:?}"),
    }
    let futures = client.map(inc, 0..10i64)?;
    assert_eq!(client.gather(&futures)?.len(), 10);
    Ok(())
}

#[test]
fn wrong_argument_types_and_unknown_functions_are_reported() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let text = rdask::task::encode_value("not a number")?;
    let f = client.submit_raw::<i64>(
        "rdask::builtins::inc",
        vec![Arg::Value(text)],
        &SubmitOptions::default(),
    )?;
    match f.result() {
        Err(Error::Task { failure, .. }) => {
            assert_eq!(failure.kind, ErrorKind::BadArguments);
            assert!(failure.message.contains("i64"), "{}", failure.message);
        }
        other => panic!("expected bad arguments, got {other:?}"),
    }
    // No worker has this function: the task waits in no-worker, reported.
    let ghost = client.submit_raw::<i64>("no::such::function", vec![], &SubmitOptions::default())?;
    let err = ghost.result_timeout(Some(Duration::from_millis(300))).unwrap_err();
    assert!(matches!(err, Error::Timeout(_)), "{err}");
    let info = client.scheduler_info()?;
    let no_worker = info
        .tasks_by_state
        .iter()
        .find(|(s, _)| s == "no-worker")
        .map(|(_, n)| *n);
    assert_eq!(no_worker, Some(1), "{:?}", info.tasks_by_state);
    assert_eq!(client.submit(inc, (1i64,))?.result()?, 2);
    Ok(())
}

#[test]
fn scatter_cancel_wait_and_as_completed() -> anyhow::Result<()> {
    // Two threads per worker, so the three sleeps below run side by side.
    let cluster = LocalCluster::builder().workers(2).threads_per_worker(2).build()?;
    assert!(cluster.wait_for_workers(2, Duration::from_secs(10)));
    let client = cluster.client()?;
    let data = client.scatter(vec![10i64, 20, 30])?;
    let incs: Vec<_> = data
        .iter()
        .map(|d| client.submit(inc, (d,)))
        .collect::<Result<_, _>>()?;
    assert_eq!(client.gather(&incs)?, vec![11, 21, 31]);
    assert_eq!(client.gather(&data)?, vec![10, 20, 30]);

    // as_completed first: a cancelled task still occupies its thread below.
    let ms = [300u64, 1, 150];
    let fs = ms
        .iter()
        .map(|&m| client.submit_with(sleep_ms, (m,), &SubmitOptions::impure()))
        .collect::<Result<Vec<_>, _>>()?;
    let order: Vec<u64> = client.as_completed(fs).map(|f| f.result()).collect::<Result<_, _>>()?;
    assert_eq!(order.len(), 3);
    assert_eq!(order[2], 300, "the slowest comes last: {order:?}");

    let slow = client.submit_with(sleep_ms, (5_000u64,), &SubmitOptions::impure())?;
    let fast = client.submit_with(sleep_ms, (1u64,), &SubmitOptions::impure())?;
    let both = vec![slow.clone(), fast.clone()];
    let r = client.wait(&both, ReturnWhen::FirstCompleted, Some(Duration::from_secs(4)))?;
    assert_eq!(r.done, vec![1]);
    assert_eq!(r.not_done, vec![0]);
    let err = client
        .wait(&both, ReturnWhen::AllCompleted, Some(Duration::from_millis(50)))
        .unwrap_err();
    assert!(matches!(err, Error::Timeout(_)));
    client.cancel(std::slice::from_ref(&slow));
    assert_eq!(slow.status(), "cancelled");
    assert!(matches!(slow.result(), Err(Error::Cancelled(_))));
    Ok(())
}

#[test]
fn async_api_works_inside_async_code() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let address = cluster.scheduler_address().to_string();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    rt.block_on(async move {
        let client = rdask::AsyncClient::connect(&address).await?;
        let futures = client.map(inc, 0..20i64)?;
        let out = client.gather(&futures).await?;
        assert_eq!(out, (1..=20).collect::<Vec<i64>>());
        let f = client.submit(add, (&futures[0], &futures[1]))?;
        assert_eq!(f.result_async().await?, 3);
        let info = client.scheduler_info().await?;
        assert_eq!(info.workers.len(), 2);
        Ok::<_, anyhow::Error>(())
    })
}

#[test]
fn noop_tasks_return_unit() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let fs = client.map(noop, 0..1000i64)?;
    assert_eq!(client.gather(&fs)?.len(), 1000);
    Ok(())
}

fn frame(header: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(header.len() as u32).to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(header);
    f
}

fn raw_connect(cluster: &LocalCluster) -> TcpStream {
    let addr = cluster.scheduler_address().trim_start_matches("tcp://").to_string();
    let s = TcpStream::connect(addr).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s
}

fn handshake(version: u32) -> Vec<u8> {
    let hello = rdask::wire::messages::Handshake {
        magic: "rdask".into(),
        protocol_version: version,
        role: rdask::wire::messages::Role::Client,
        name: "raw".into(),
        token: None,
    };
    frame(&rmp_serde_named(&hello))
}

fn rmp_serde_named<T: serde::Serialize>(v: &T) -> Vec<u8> {
    rdask::wire::codec::encode(v).unwrap().0
}

fn read_to_end(mut s: TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
}

#[test]
fn a_mismatched_protocol_version_is_refused_clearly() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let mut s = raw_connect(&cluster);
    s.write_all(&handshake(999))?;
    let reply = read_to_end(s);
    let text = String::from_utf8_lossy(&reply);
    assert!(text.contains("protocol version mismatch"), "{text}");
    assert_eq!(client.submit(inc, (1i64,))?.result()?, 2);
    Ok(())
}

#[test]
fn bad_bytes_close_only_the_offending_connection() -> anyhow::Result<()> {
    let cluster = cluster(1);
    let client = cluster.client()?;
    let held = client.submit(inc, (7i64,))?;
    held.result()?;
    // Random bytes instead of a handshake.
    let mut s = raw_connect(&cluster);
    s.write_all(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")?;
    read_to_end(s);
    // A 4 GiB length prefix after a valid handshake.
    let mut s = raw_connect(&cluster);
    s.write_all(&handshake(rdask::wire::messages::PROTOCOL_VERSION))?;
    s.write_all(&[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0])?;
    read_to_end(s);
    // Garbage msgpack in a well-formed frame.
    let mut s = raw_connect(&cluster);
    s.write_all(&handshake(rdask::wire::messages::PROTOCOL_VERSION))?;
    s.write_all(&frame(b"\x91\xc1\xc1\xc1"))?;
    read_to_end(s);
    // A worker-only message from a client.
    let mut s = raw_connect(&cluster);
    s.write_all(&handshake(rdask::wire::messages::PROTOCOL_VERSION))?;
    let msg = vec![rdask::wire::messages::FromWorker::Heartbeat {
        nkeys: 0,
        nbytes: 0,
        executing: 0,
        ready: 0,
        spilled_bytes: 0,
        rss_bytes: 0,
        cpu_percent: 0.0,
        bytes_fetched: 0,
        bytes_served: 0,
        spills: Vec::new(),
        log: Vec::new(),
    }];
    s.write_all(&frame(&rmp_serde_named(&msg)))?;
    read_to_end(s);
    // A truncated frame, then the peer goes away.
    let mut s = raw_connect(&cluster);
    s.write_all(&handshake(rdask::wire::messages::PROTOCOL_VERSION))?;
    s.write_all(&[0, 0, 0, 100, 0, 0, 0, 0, 1, 2, 3])?;
    drop(s);
    // Everyone else carries on; the held key is intact.
    assert_eq!(held.result()?, 8);
    assert_eq!(client.submit(inc, (1i64,))?.result()?, 2);
    let info = client.scheduler_info()?;
    assert_eq!(info.workers.len(), 1);
    Ok(())
}
