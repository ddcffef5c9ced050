//! Direct scatter (Dask's `direct=True`) with real processes, where the
//! push cannot happen: a worker (spoken by hand) registers a peer address
//! that refuses every connection, so the client's push to it fails, and
//! the values must reach it through the scheduler (`Scatter` → `StoreData`)
//! with the scatter still succeeding. A real worker alongside gets its
//! copy by the push.

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use rdask::wire::codec::{self, Frame, FrameLimits};
use rdask::wire::messages::{FromWorker, Key, Role, ToWorker};
use rdask::{Client, ScatterOptions};

mod common;
use common::*;

/// A worker spoken by hand, whose peer address (port 1) refuses pushes.
fn hand_worker(addr: &str, name: &str) -> TcpStream {
    let mut w = raw::connect(addr);
    w.write_all(&raw::handshake(Role::Worker)).expect("handshake");
    raw::read_frame(&mut w).expect("handshake reply");
    let register = [FromWorker::RegisterWorker {
        name: name.into(),
        address: "tcp://127.0.0.1:1".into(),
        nthreads: 1,
        memory_limit: 0,
        functions: Vec::new(),
        resources: Vec::new(),
        restarted: None,
        nanny: false,
        keys: Vec::new(),
    }];
    w.write_all(&raw::frame(&raw::encode(&register))).expect("register");
    w
}

/// Reads one whole frame (header and payloads) of `ToWorker` messages.
fn read_batch(rt: &tokio::runtime::Runtime, s: &mut TcpStream) -> Vec<ToWorker> {
    let std = s.try_clone().expect("clone");
    let frame: Frame = rt.block_on(async move {
        std.set_nonblocking(true).expect("nonblocking");
        let mut stream = tokio::net::TcpStream::from_std(std).expect("tokio stream");
        tokio::time::timeout(STARTUP, codec::read_frame(&mut stream, &FrameLimits::default()))
            .await
            .expect("a frame in time")
            .expect("a frame")
            .expect("not closed")
    });
    s.set_nonblocking(false).expect("blocking again");
    codec::decode(frame).expect("a batch of ToWorker")
}

/// Answers the scheduler until it sends `StoreData`: confirms the keys
/// with `AddKeys`, as a worker does, and returns them with their values.
fn store_data(rt: &tokio::runtime::Runtime, s: &mut TcpStream) -> Vec<(Key, Vec<u8>)> {
    loop {
        for m in read_batch(rt, s) {
            if let ToWorker::StoreData { data } = m {
                let keys = data.iter().map(|(k, p)| (k.clone(), p.len() as u64)).collect();
                let confirm = [FromWorker::AddKeys { keys }];
                let (header, _) = codec::encode(&confirm[..]).expect("encode");
                s.write_all(&raw::frame(&header)).expect("AddKeys");
                return data.into_iter().map(|(k, p)| (k, p.0.to_vec())).collect();
            }
        }
    }
}

#[test]
fn a_push_that_fails_reaches_the_worker_through_the_scheduler_and_the_scatter_succeeds() {
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let (_s, addr) = scheduler();
    let mut hand = hand_worker(&addr, "hand");
    let (_real, _) = worker_with(&addr, "real", &["--nthreads", "1"]);
    let client = Client::connect(&addr).expect("client");
    wait_for_workers(&client, 2);

    // A broadcast: the real worker's copy is pushed, the hand worker's
    // comes through the scheduler once the push to port 1 is refused.
    let value: Vec<u64> = (0..50_000).collect();
    let opts = ScatterOptions::default()
        .direct(true)
        .broadcast(true)
        .hash(false)
        .timeout(Duration::from_secs(60));
    let scatter = {
        let (client, value, opts) = (client.clone(), value.clone(), opts.clone());
        std::thread::spawn(move || client.scatter_with(vec![value], &opts).map_err(|e| e.to_string()))
    };
    let stored = store_data(&rt, &mut hand);
    let f = scatter
        .join()
        .expect("the scatter thread")
        .expect("the scatter succeeds")
        .remove(0);
    assert_eq!(stored.len(), 1);
    assert_eq!(stored[0].0, f.key());
    assert_eq!(stored[0].1, rdask::task::encode_value(&value).expect("encode"));
    let mut holders = client.who_has(&[f.key()]).expect("who_has").remove(0).workers;
    holders.sort();
    assert_eq!(holders.len(), 2, "both workers hold it: {holders:?}");
    let real = client.scheduler_info().expect("info").workers;
    let real_addr = real
        .iter()
        .find(|w| w.name == "real")
        .expect("real worker")
        .address
        .clone();
    let info = client.worker_info(&real_addr).expect("real's info");
    assert!(info.bytes_pushed > 0, "the real worker's copy was pushed: {info:?}");

    // Only on the hand worker, not broadcast: the push fails, and the
    // value goes there through the scheduler.
    let one: Vec<u64> = (7..9).collect();
    let opts = ScatterOptions::default()
        .direct(true)
        .workers(["hand"])
        .timeout(Duration::from_secs(60));
    let scatter = {
        let (client, one, opts) = (client.clone(), one.clone(), opts.clone());
        std::thread::spawn(move || client.scatter_with(vec![one], &opts).map_err(|e| e.to_string()))
    };
    let stored = store_data(&rt, &mut hand);
    let g = scatter
        .join()
        .expect("the scatter thread")
        .expect("the scatter succeeds")
        .remove(0);
    assert_eq!(stored[0].0, g.key());
    let holders = client.who_has(&[g.key()]).expect("who_has").remove(0).workers;
    assert_eq!(holders.len(), 1, "{holders:?}");
}
