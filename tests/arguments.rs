//! Collections of futures as task arguments (Dask's
//! `client.submit(summarize, futures)`): lists and maps of futures reach the
//! task as lists and maps of values, every key is a dependency (release,
//! recompute), and a peer of the old protocol is refused with the
//! documented error. In-process `LocalCluster` over real TCP.

use std::collections::{BTreeMap, HashMap};
use std::io::{Read, Write};
use std::net::{TcpListener, TcpStream};
use std::time::{Duration, Instant};

use rdask::builtins::{add, inc, sum};
use rdask::wire::messages::{Handshake, HandshakeReply, Role};
use rdask::{Client, Future, LocalCluster, SubmitOptions};

mod common;
use common::*;

/// Joins a map of named numbers into `name=value` lines, in key order.
#[rdask::task]
fn describe(values: BTreeMap<String, i64>) -> String {
    values.iter().map(|(k, v)| format!("{k}={v}\n")).collect()
}

/// Sums the values of a hash map.
#[rdask::task]
fn sum_map(values: HashMap<u32, i64>) -> i64 {
    values.values().sum()
}

/// Sums two lists separately: two list arguments in one call.
#[rdask::task]
fn sum_two(xs: Vec<i64>, ys: Vec<i64>) -> (i64, i64) {
    (xs.iter().sum(), ys.iter().sum())
}

const DEADLINE: Duration = Duration::from_secs(30);

fn cluster(workers: usize) -> LocalCluster {
    let c = LocalCluster::new(workers).expect("cluster starts");
    assert!(c.wait_for_workers(workers, Duration::from_secs(10)));
    c
}

/// Polls until the scheduler holds exactly `n` tasks, or fails.
fn wait_for_ntasks(cluster: &LocalCluster, n: u64) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let info = cluster.scheduler_info().expect("scheduler info");
        if info.ntasks == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "scheduler still holds {:?}, expected {n} tasks",
            info.tasks_by_state
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[test]
fn sum_of_ten_thousand_futures() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    let futures = client.map(inc, 0..10_000i64)?;
    // As Dask's `client.submit(sum, futures)`: the list is one argument.
    let total = client.submit(sum, &futures)?;
    assert_eq!(total.result()?, (1..=10_000i64).sum::<i64>());
    // The same list submitted again is the same pure key.
    assert_eq!(client.submit(sum, &futures)?.key(), total.key());
    Ok(())
}

#[test]
fn every_collection_of_futures_is_accepted() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    let fs: Vec<Future<i64>> = client.map(inc, 0..4i64)?; // 1 2 3 4
    assert_eq!(client.submit(sum, &fs[..])?.result()?, 10);
    assert_eq!(client.submit(sum, (&fs,))?.result()?, 10);
    let refs: Vec<&Future<i64>> = vec![&fs[3], &fs[3], &fs[0]];
    assert_eq!(client.submit(sum, refs)?.result()?, 9);
    let array = [fs[0].clone(), fs[1].clone()];
    assert_eq!(client.submit(sum, &array)?.result()?, 3);
    assert_eq!(client.submit(sum, array)?.result()?, 3);
    assert_eq!(client.submit(sum, fs.clone())?.result()?, 10);
    let empty: Vec<Future<i64>> = Vec::new();
    assert_eq!(client.submit(sum, &empty)?.result()?, 0);
    // Lists next to plain values and single futures, and two lists whose
    // boundaries differ are different calls.
    let a = client.submit(sum_two, (&fs[..1], &fs[1..]))?;
    let b = client.submit(sum_two, (&fs[..2], &fs[2..]))?;
    assert_ne!(a.key(), b.key());
    assert_eq!(a.result()?, (1, 9));
    assert_eq!(b.result()?, (3, 7));
    let list_result = client.submit(sum, &fs)?;
    assert_eq!(client.submit(add, (&list_result, 5i64))?.result()?, 15);
    // Maps of futures where the task takes maps of values.
    let named: BTreeMap<String, Future<i64>> =
        [("b".to_string(), fs[1].clone()), ("a".to_string(), fs[0].clone())].into();
    assert_eq!(client.submit(describe, (&named,))?.result()?, "a=1\nb=2\n");
    let by_id: HashMap<u32, Future<i64>> = fs.iter().cloned().enumerate().map(|(i, f)| (i as u32, f)).collect();
    assert_eq!(client.submit(sum_map, (by_id,))?.result()?, 10);
    Ok(())
}

#[test]
fn releasing_the_summary_releases_inputs_no_one_else_holds() -> anyhow::Result<()> {
    let cluster = cluster(2);
    let client = cluster.client()?;
    let inputs = client.map(inc, 0..50i64)?;
    let kept = inputs[7].clone();
    let total = client.submit(sum, &inputs)?;
    drop(inputs);
    assert_eq!(total.result()?, (1..=50i64).sum::<i64>());
    // The summary and the input the client still holds.
    drop(total);
    wait_for_ntasks(&cluster, 1);
    assert_eq!(kept.result()?, 8);
    drop(kept);
    wait_for_ntasks(&cluster, 0);
    Ok(())
}

#[test]
fn an_input_lost_with_its_worker_is_recomputed_for_the_summary() -> anyhow::Result<()> {
    let mut cluster = cluster(2);
    let client = cluster.client()?;
    let inputs = client.map(inc, 0..40i64)?;
    client.gather(&inputs)?;
    // Kill a worker that holds some of the inputs: the summary still sees
    // every value, recomputed on the other worker.
    let (name, address) = cluster
        .workers()
        .into_iter()
        .find(|(_, addr)| client.worker_info(addr).map(|i| i.nkeys > 0).unwrap_or(false))
        .expect("some worker holds inputs");
    let held = client.worker_info(&address)?.nkeys;
    assert!(cluster.kill_worker(&name));
    let total = client.submit(sum, &inputs)?;
    assert_eq!(total.result()?, (1..=40i64).sum::<i64>(), "{held} inputs were lost");
    Ok(())
}

/// A handshake frame of the previous protocol version (2: before
/// `WorkerStatus`).
fn old_handshake(role: Role) -> Vec<u8> {
    let header = rmp_serde::to_vec_named(&Handshake {
        magic: "rdask".into(),
        protocol_version: 2,
        role,
        name: "old".into(),
        token: None,
    })
    .expect("encodes");
    let mut frame = (header.len() as u32).to_be_bytes().to_vec();
    frame.extend_from_slice(&0u32.to_be_bytes());
    frame.extend_from_slice(&header);
    frame
}

fn read_frame_header(s: &mut TcpStream) -> Vec<u8> {
    let mut lens = [0u8; 8];
    s.read_exact(&mut lens).expect("frame lengths");
    let mut header = vec![0u8; u32::from_be_bytes([lens[0], lens[1], lens[2], lens[3]]) as usize];
    s.read_exact(&mut header).expect("frame header");
    header
}

#[test]
fn a_previous_version_peer_gets_the_documented_error() -> anyhow::Result<()> {
    let cluster = cluster(1);
    // An old client connecting to this scheduler is refused.
    let mut s = TcpStream::connect(cluster.scheduler_address().trim_start_matches("tcp://"))?;
    s.set_read_timeout(Some(DEADLINE))?;
    s.write_all(&old_handshake(Role::Client))?;
    let reply: HandshakeReply = rmp_serde::from_slice(&read_frame_header(&mut s))?;
    assert_eq!(reply.protocol_version, 3);
    assert_eq!(
        reply.error.as_deref(),
        Some("protocol version mismatch: peer speaks 2, this side speaks 3")
    );
    // This client connecting to an old scheduler refuses it.
    let old = TcpListener::bind("127.0.0.1:0")?;
    let address = format!("tcp://{}", old.local_addr()?);
    let server = std::thread::spawn(move || {
        let (mut s, _) = old.accept().expect("accepts");
        let _hello = read_frame_header(&mut s);
        let header = rmp_serde::to_vec_named(&HandshakeReply {
            protocol_version: 2,
            error: None,
        })
        .expect("encodes");
        let mut frame = (header.len() as u32).to_be_bytes().to_vec();
        frame.extend_from_slice(&0u32.to_be_bytes());
        frame.extend_from_slice(&header);
        s.write_all(&frame).expect("replies");
    });
    let Err(err) = Client::connect(&address) else {
        panic!("an old scheduler was accepted");
    };
    assert_eq!(
        err.to_string(),
        format!("handshake failed: {address} speaks protocol version 2, this build speaks 3")
    );
    server.join().expect("old server");
    Ok(())
}

#[test]
fn a_list_of_futures_on_real_processes_survives_a_worker_death() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (mut w1, w1_addr) = worker_with(&addr, "w1", &["--nthreads", "1"]);
    let (_w2, _) = worker_with(&addr, "w2", &["--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    // Half the inputs on each worker, so the summary fetches from a peer.
    let on = |w: &str| SubmitOptions::default().workers([w]).allow_other_workers(true);
    let mut inputs = client.map_with(inc, 0..500i64, &on("w1"))?;
    inputs.extend(client.map_with(inc, 500..1000i64, &on("w2"))?);
    let expected = (1..=1000i64).sum::<i64>();
    assert_eq!(client.submit(sum, &inputs)?.result()?, expected);
    assert!(client.worker_info(&w1_addr)?.nkeys >= 500);
    // w1 dies with its inputs: a new summary gets them recomputed on w2.
    w1.signal("KILL");
    w1.wait_exit();
    let again = client.submit_with(sum, (&inputs,), &SubmitOptions::impure())?;
    assert_eq!(again.result()?, expected);
    Ok(())
}
