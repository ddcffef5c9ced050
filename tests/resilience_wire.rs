//! Resilience tests on the wire with real processes (issue 4): clients
//! that vanish mid-computation, bad bytes on a worker's peer port, a flood
//! of silent connections, and thousands of mutated frames through the
//! decoder. Each scenario checks that the answer is exactly right and that
//! the scheduler carries on; no assertion depends on timing. (Faults of
//! whole processes: `resilience.rs`.)

use std::io::{Read, Write};
use std::net::TcpStream;

use rdask::builtins::{inc, make_blob};
use rdask::wire::messages::{Arg, FromClient, FromWorker, Handshake, Role, TaskSpec, ToPeer, PROTOCOL_VERSION};
use rdask::{Blob, Client};

mod common;
use common::resilience::*;
use common::*;

/// Bytes of the value a client holds while bad bytes arrive: too large to
/// travel inline, so it must stay fetchable from its worker.
const HELD_BLOB: u64 = 200_000;

/// A raw client connection that speaks the protocol by hand, so it can
/// vanish without `CloseClient`.
struct RawClient(TcpStream);

fn frame(header: &[u8]) -> Vec<u8> {
    let mut f = Vec::new();
    f.extend_from_slice(&(header.len() as u32).to_be_bytes());
    f.extend_from_slice(&0u32.to_be_bytes());
    f.extend_from_slice(header);
    f
}

fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
    rdask::wire::codec::encode(v).expect("encodes").0
}

fn handshake(role: Role, version: u32) -> Vec<u8> {
    frame(&encode(&Handshake {
        magic: "rdask".into(),
        protocol_version: version,
        role,
        name: "raw".into(),
        token: None,
    }))
}

fn raw_connect(addr: &str) -> TcpStream {
    let s = TcpStream::connect(addr.trim_start_matches("tcp://")).expect("connects");
    s.set_read_timeout(Some(DEADLINE)).expect("timeout set");
    s
}

/// Reads one frame (header length, payload count, payload lengths, header,
/// payloads) and returns its msgpack header.
fn read_frame(s: &mut TcpStream) -> Vec<u8> {
    let mut head = [0u8; 8];
    s.read_exact(&mut head).expect("frame head");
    let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
    let npayloads = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
    let mut payload_bytes = 0u64;
    for _ in 0..npayloads {
        let mut n = [0u8; 8];
        s.read_exact(&mut n).expect("payload length");
        payload_bytes += u64::from_be_bytes(n);
    }
    let mut body = vec![0u8; len];
    s.read_exact(&mut body).expect("frame body");
    std::io::copy(&mut s.take(payload_bytes), &mut std::io::sink()).expect("payloads");
    body
}

impl RawClient {
    fn connect(addr: &str) -> RawClient {
        let mut s = raw_connect(addr);
        s.write_all(&handshake(Role::Client, PROTOCOL_VERSION))
            .expect("handshake");
        read_frame(&mut s); // handshake reply
        read_frame(&mut s); // Welcome
        RawClient(s)
    }
    fn send(&mut self, msgs: &[FromClient]) {
        self.0.write_all(&frame(&encode(&msgs))).expect("send");
    }
    /// The variant names of the next frame's messages.
    fn recv(&mut self) -> Vec<String> {
        let body = read_frame(&mut self.0);
        // Each message is a map {variant: fields}; only the names matter.
        type Named = std::collections::BTreeMap<String, serde::de::IgnoredAny>;
        let batch: Vec<Named> = rmp_serde::from_slice(&body).expect("a batch of messages");
        batch.into_iter().flat_map(|m| m.into_keys()).collect()
    }
}

fn inc_spec(key: &str, x: i64) -> TaskSpec {
    TaskSpec {
        key: key.into(),
        function: "rdask::builtins::inc".into(),
        args: vec![Arg::Value(rmp_serde::to_vec(&x).expect("encodes"))],
        priority: 0,
        workers: Vec::new(),
        allow_other_workers: false,
        retries: 0,
        resources: Vec::new(),
    }
}

#[test]
fn a_vanished_clients_keys_are_kept_for_the_grace_period_then_released() {
    let cfg = config("grace", "client_grace_s = 1");
    let (_s, addr) = scheduler_with(&cfg);
    let (_w, waddr) = worker(&addr, "w");
    let observer = Client::connect(&addr).expect("client connects");
    wait_until("worker registered", || nworkers(&observer) == 1);
    let mut raw = RawClient::connect(&addr);
    raw.send(&[FromClient::UpdateGraph {
        tasks: vec![inc_spec("vanishing", 1)],
        wanted: vec!["vanishing".into()],
    }]);
    assert_eq!(raw.recv(), ["KeyInMemory"]);
    drop(raw); // no CloseClient
    let info = observer.scheduler_info().expect("info");
    if info.nclients == 2 {
        // Still within the grace period: the key is kept.
        assert_eq!(info.ntasks, 1);
    }
    wait_until("the grace period ends", || {
        observer.scheduler_info().expect("info").nclients == 1
    });
    assert_settles(&observer);
    wait_until("the worker freed the data", || {
        observer.worker_info(&waddr).expect("worker info").nkeys == 0
    });
}

#[test]
fn another_clients_futures_survive_a_vanished_client() {
    let cfg = config("grace-shared", "client_grace_s = 0.3");
    let (_s, addr) = scheduler_with(&cfg);
    let (_w, waddr) = worker(&addr, "w");
    let client = Client::connect(&addr).expect("client connects");
    wait_until("worker registered", || nworkers(&client) == 1);
    let blob = client.submit(make_blob, (200_000u64, 3u64)).expect("submit");
    let expected: Blob = blob.result().expect("result");
    let mut raw = RawClient::connect(&addr);
    raw.send(&[FromClient::UpdateGraph {
        tasks: Vec::new(),
        wanted: vec![blob.key().to_string()],
    }]);
    assert_eq!(raw.recv(), ["KeyInMemory"]);
    drop(raw);
    wait_until("the vanished client is dropped", || {
        client.scheduler_info().expect("info").nclients == 1
    });
    // Still here, fetched from the worker, not recomputed.
    let again: Blob = blob.result().expect("the future is still valid");
    assert_eq!(again, expected);
    assert_eq!(client.worker_info(&waddr).expect("info").tasks_executed, 1);
    assert_eq!(client.scheduler_info().expect("info").ntasks, 1);
    drop(blob);
    assert_settles(&client);
}

fn read_to_end(mut s: TcpStream) -> Vec<u8> {
    let mut buf = Vec::new();
    let _ = s.read_to_end(&mut buf);
    buf
}

#[test]
fn bad_bytes_on_a_workers_peer_port_close_only_that_connection() {
    let (_s, addr) = scheduler_with(&config("peer-bad-bytes", ""));
    let (_w, waddr) = worker(&addr, "w");
    let client = Client::connect(&addr).expect("client connects");
    wait_until("worker registered", || nworkers(&client) == 1);
    let held = client.submit(make_blob, (HELD_BLOB, 9u64)).expect("submit");
    let expected: Blob = held.result().expect("result");
    // Sends, optionally hangs up its sending side, and reads until the
    // worker closes the connection.
    let send_then = |bytes: &[&[u8]], hang_up: bool| {
        let mut s = raw_connect(&waddr);
        for b in bytes {
            let _ = s.write_all(b);
        }
        if hang_up {
            let _ = s.shutdown(std::net::Shutdown::Write);
        }
        read_to_end(s)
    };
    let peer = |bytes: &[&[u8]]| send_then(bytes, false);
    let hello = handshake(Role::Peer, PROTOCOL_VERSION);
    // Random bytes instead of a handshake.
    let mut rng = Rng(7);
    let noise: Vec<u8> = (0..4096).map(|_| rng.next() as u8).collect();
    peer(&[&noise]);
    // A 4 GiB length prefix after a valid handshake.
    peer(&[&hello, &[0xff, 0xff, 0xff, 0xff, 0, 0, 0, 0]]);
    // A truncated frame, then the peer goes away.
    send_then(&[&hello, &[0, 0, 0, 100, 0, 0, 0, 0, 1, 2, 3]], true);
    // A valid frame of the wrong direction (a scheduler message).
    peer(&[&hello, &frame(&encode(&vec![FromClient::CloseClient]))]);
    // An unknown variant.
    peer(&[&hello, &frame(b"\x91\x81\xa7Nothing\x80")]);
    // Another protocol version is refused with a reason.
    let reply = peer(&[&handshake(Role::Peer, PROTOCOL_VERSION + 1)]);
    assert!(String::from_utf8_lossy(&reply).contains("protocol version mismatch"));
    // A client role on the peer port is refused too.
    peer(&[&handshake(Role::Worker, PROTOCOL_VERSION)]);
    // A well-behaved peer request still works, and so does the client.
    let mut s = raw_connect(&waddr);
    s.write_all(&hello).expect("handshake");
    read_frame(&mut s);
    s.write_all(&frame(&encode(&vec![ToPeer::Info { request_id: 1 }])))
        .expect("request");
    assert!(!read_frame(&mut s).is_empty());
    let again: Blob = held.result().expect("result");
    assert_eq!(again, expected);
    assert_eq!(client.worker_info(&waddr).expect("info").tasks_executed, 1);
    assert_eq!(
        client.submit(inc, (1i64,)).expect("submit").result().expect("result"),
        2
    );
    assert_eq!(nworkers(&client), 1);
}

#[test]
fn a_flood_of_silent_connections_does_not_lock_clients_out() {
    let cfg = config("flood", "max_pending_handshakes = 16\nhandshake_timeout_s = 0.5");
    let (_s, addr) = scheduler_with(&cfg);
    let (_w, _) = worker(&addr, "w");
    // Connections that never speak: beyond the cap they are refused at
    // accept, the others are closed after the handshake timeout.
    let silent: Vec<TcpStream> = (0..64).map(|_| raw_connect(&addr)).collect();
    for mut s in silent {
        // Ok (end of stream, maybe after a refusal) rather than our own
        // read timeout: the scheduler hung up.
        let mut buf = Vec::new();
        assert!(s.read_to_end(&mut buf).is_ok(), "a silent connection was left open");
    }
    let client = Client::connect(&addr).expect("a normal client connects after the flood");
    wait_until("worker registered", || nworkers(&client) == 1);
    assert_eq!(
        client.submit(inc, (1i64,)).expect("submit").result().expect("result"),
        2
    );
    // Unknown-variant and garbage frames from a client close only that client.
    let mut s = raw_connect(&addr);
    s.write_all(&handshake(Role::Client, PROTOCOL_VERSION))
        .expect("handshake");
    s.write_all(&frame(b"\x91\x81\xa7Nothing\x80")).expect("frame");
    read_to_end(s);
    assert_eq!(
        client.submit(inc, (2i64,)).expect("submit").result().expect("result"),
        3
    );
}

/// Limits small enough that a mutated length cannot make the test allocate
/// much; the decoder is what is exercised.
const FUZZ_LIMITS: rdask::wire::FrameLimits = rdask::wire::FrameLimits {
    max_header_bytes: 1 << 20,
    max_payloads: 64,
    max_frame_bytes: 4 << 20,
};

/// Frames a connection could carry, to mutate.
fn sample_frames() -> Vec<Vec<u8>> {
    use rdask::wire::messages::{DependencyLocation, Payload, ToWorker};
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let mut frames = Vec::new();
    let mut push = |encoded: (Vec<u8>, Vec<bytes::Bytes>)| {
        let mut out = Vec::new();
        rt.block_on(rdask::wire::codec::write_frame(&mut out, &encoded.0, &encoded.1))
            .expect("written");
        frames.push(out);
    };
    let enc = |v: &dyn erased::Encode| v.encode();
    push(enc(&vec![
        FromClient::UpdateGraph {
            tasks: vec![inc_spec("a", 1)],
            wanted: vec!["a".into()],
        },
        FromClient::RetireWorkers {
            request_id: 1,
            workers: vec!["w".into()],
        },
    ]));
    push(enc(&vec![
        FromWorker::TasksStarted {
            keys: vec!["a".into()],
            run_ids: Vec::new(),
        },
        FromWorker::TaskFinished {
            key: "a".into(),
            nbytes: 3,
            inline: Some(Payload::new(vec![1u8, 2, 3])),
            duration_us: 5,
            thread: 0,
            run_id: 1,
        },
    ]));
    push(enc(&vec![ToWorker::AcquireReplicas {
        keys: vec![DependencyLocation {
            key: "a".into(),
            who_has: vec!["tcp://127.0.0.1:1".into()],
            nbytes: 3,
        }],
    }]));
    push(enc(&vec![ToPeer::GetData {
        request_id: 2,
        keys: vec!["a".into(), "b".into()],
    }]));
    push(enc(&Handshake {
        magic: "rdask".into(),
        protocol_version: PROTOCOL_VERSION,
        role: Role::Worker,
        name: "w".into(),
        token: None,
    }));
    frames
}

/// Type-erased encoding of the sample values (each is a different type).
mod erased {
    pub trait Encode {
        fn encode(&self) -> (Vec<u8>, Vec<bytes::Bytes>);
    }
    impl<T: serde::Serialize> Encode for T {
        fn encode(&self) -> (Vec<u8>, Vec<bytes::Bytes>) {
            rdask::wire::codec::encode(self).expect("encodes")
        }
    }
}

/// Reads every frame of `input` and decodes each as every message type;
/// returns how many frames decoded as at least one type.
fn read_and_decode_all(rt: &tokio::runtime::Runtime, input: &[u8]) -> usize {
    use rdask::wire::codec::{decode, read_frame};
    use rdask::wire::messages::{decode_inbound, FromPeer, HandshakeReply, ToWorker};
    rt.block_on(async {
        let mut reader = input;
        let mut ok = 0;
        while let Ok(Some(frame)) = read_frame(&mut reader, &FUZZ_LIMITS).await {
            let any = [
                // With the refusal of a message of the other kind by name.
                decode_inbound::<FromClient>(frame.clone()).is_ok(),
                decode_inbound::<FromWorker>(frame.clone()).is_ok(),
                decode::<Vec<rdask::wire::messages::ToClient>>(frame.clone()).is_ok(),
                decode::<Vec<ToWorker>>(frame.clone()).is_ok(),
                decode::<Vec<ToPeer>>(frame.clone()).is_ok(),
                decode::<Vec<FromPeer>>(frame.clone()).is_ok(),
                decode::<Handshake>(frame.clone()).is_ok(),
                decode::<HandshakeReply>(frame).is_ok(),
            ];
            ok += usize::from(any.contains(&true));
        }
        ok
    })
}

#[test]
fn thousands_of_mutated_frames_never_panic_the_decoder() {
    const ROUNDS: usize = 5000;
    let rt = tokio::runtime::Builder::new_current_thread().build().expect("runtime");
    let samples = sample_frames();
    // The harness sees valid frames as valid, so it can tell the difference.
    for f in &samples {
        assert_eq!(read_and_decode_all(&rt, f), 1);
    }
    let mut rng = Rng(0x5eed);
    let mut rejected = 0;
    for round in 0..ROUNDS {
        let mut input = samples[round % samples.len()].clone();
        match rng.next() % 5 {
            // Flip a few bytes (lengths, msgpack markers, strings).
            0 | 1 => {
                for _ in 0..1 + rng.next() % 4 {
                    let i = (rng.next() % input.len() as u64) as usize;
                    input[i] = rng.next() as u8;
                }
            }
            // Truncate anywhere.
            2 => input.truncate((rng.next() % input.len() as u64) as usize),
            // Splice random bytes in.
            3 => {
                let at = (rng.next() % input.len() as u64) as usize;
                let noise: Vec<u8> = (0..rng.next() % 32).map(|_| rng.next() as u8).collect();
                input.splice(at..at, noise);
            }
            // Pure noise.
            _ => input = (0..rng.next() % 256).map(|_| rng.next() as u8).collect(),
        }
        if read_and_decode_all(&rt, &input) == 0 {
            rejected += 1;
        }
    }
    assert!(rejected > ROUNDS / 10, "mutations were rejected only {rejected} times");
}
