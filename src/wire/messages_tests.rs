//! Tests of the message types: the byte-level examples of
//! `docs/protocol.md` are checked against what rdask really encodes, so the
//! document stays exact.

use super::*;
use crate::wire::codec::encode;

/// The protocol document, read at compile time.
const PROTOCOL_DOC: &str = include_str!("../../docs/protocol.md");

/// The bytes of the hex block under the heading that starts with
/// `Hex: <title>`: on each line, the leading two-digit hex tokens (the
/// rest of the line is commentary).
fn doc_hex(title: &str) -> Vec<u8> {
    let heading = format!("Hex: {title}");
    let start = PROTOCOL_DOC
        .find(&heading)
        .unwrap_or_else(|| panic!("docs/protocol.md has no heading {heading:?}"));
    let block = &PROTOCOL_DOC[start..];
    let open = block.find("```text\n").expect("a text block follows the heading") + "```text\n".len();
    let close = block[open..].find("```").expect("the block is closed") + open;
    let mut bytes = Vec::new();
    for line in block[open..close].lines() {
        for token in line.split_whitespace() {
            if token.len() != 2 {
                break;
            }
            match u8::from_str_radix(token, 16) {
                Ok(b) => bytes.push(b),
                Err(_) => break,
            }
        }
    }
    bytes
}

/// A whole frame without payloads: lengths, then the header.
fn frame(header: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + header.len());
    out.extend_from_slice(&(header.len() as u32).to_be_bytes());
    out.extend_from_slice(&0u32.to_be_bytes());
    out.extend_from_slice(header);
    out
}

fn encoded<T: Serialize + ?Sized>(value: &T) -> Vec<u8> {
    let (header, payloads) = encode(value).expect("encodes");
    assert!(payloads.is_empty());
    header
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect::<Vec<_>>().join(" ")
}

#[test]
fn handshake_examples_in_the_protocol_doc_are_exact() {
    let hello = Handshake {
        magic: HANDSHAKE_MAGIC.into(),
        protocol_version: PROTOCOL_VERSION,
        role: Role::Client,
        name: "py".into(),
        token: None,
    };
    let sent = frame(&encoded(&hello));
    assert_eq!(hex(&sent), hex(&doc_hex("a client's handshake frame")));
    let reply = HandshakeReply {
        protocol_version: PROTOCOL_VERSION,
        error: None,
    };
    assert_eq!(hex(&frame(&encoded(&reply))), hex(&doc_hex("an accepting reply")));
    let welcome = [ToClient::Welcome { client_id: 1 }];
    assert_eq!(
        hex(&frame(&encoded(&welcome[..]))),
        hex(&doc_hex("the `Welcome` frame"))
    );
}

/// The arguments of `sum([inc-a, inc-b])` and of a task taking the map
/// `{"x": inc-a}`, as `docs/protocol.md` §6.2 shows them.
fn list_and_map_args() -> Vec<Arg> {
    vec![
        Arg::Keys(vec!["inc-a".into(), "inc-b".into()]),
        Arg::KeyMap(vec![(
            serde_bytes::ByteBuf::from(rmp_serde::to_vec_named("x").expect("encodes")),
            "inc-a".into(),
        )]),
    ]
}

#[test]
fn list_and_map_argument_example_in_the_protocol_doc_is_exact() {
    assert_eq!(
        hex(&encoded(&list_and_map_args())),
        hex(&doc_hex("a list argument and a map argument"))
    );
}

#[test]
fn long_running_example_in_the_protocol_doc_is_exact() {
    let batch = [FromWorker::LongRunning { key: "fib-1".into() }];
    assert_eq!(
        hex(&frame(&encoded(&batch[..]))),
        hex(&doc_hex("a `LongRunning` frame"))
    );
}

#[test]
fn actor_call_example_in_the_protocol_doc_is_exact() {
    let batch = [ToPeer::ActorCall {
        request_id: 1,
        actor: "Counter-1".into(),
        method: "increment".into(),
        args: vec![serde_bytes::ByteBuf::from(vec![1u8])],
    }];
    assert_eq!(hex(&frame(&encoded(&batch[..]))), hex(&doc_hex("an `ActorCall` frame")));
}

#[test]
fn worker_status_example_in_the_protocol_doc_is_exact() {
    let batch = [FromWorker::WorkerStatus {
        status: WorkerStatus::Paused,
        reason: None,
    }];
    assert_eq!(
        hex(&frame(&encoded(&batch[..]))),
        hex(&doc_hex("a `WorkerStatus` frame"))
    );
}

#[test]
fn fields_added_in_version_3_are_optional_when_read() {
    // A summary without `status` reads as running.
    #[derive(Serialize)]
    struct OldSummary {
        name: String,
        address: String,
        nthreads: u32,
        memory_limit: u64,
        nkeys: u64,
        nbytes: u64,
        processing: u64,
        functions: Vec<String>,
    }
    let old = OldSummary {
        name: "w".into(),
        address: "tcp://h:1".into(),
        nthreads: 1,
        memory_limit: 0,
        nkeys: 0,
        nbytes: 0,
        processing: 0,
        functions: Vec::new(),
    };
    let read: WorkerSummary = rmp_serde::from_slice(&encoded(&old)).expect("decodes");
    assert_eq!(read.status, WorkerStatus::Running);
}

#[test]
fn list_and_map_arguments_roundtrip() {
    let args = list_and_map_args();
    let back: Vec<Arg> = rmp_serde::from_slice(&encoded(&args)).expect("decodes");
    assert_eq!(back, args);
}

#[test]
fn keys_of_every_argument_kind() {
    let keys = |a: &Arg| a.keys().cloned().collect::<Vec<Key>>();
    assert!(keys(&Arg::Value(vec![1])).is_empty());
    assert_eq!(keys(&Arg::Key("k".into())), ["k"]);
    let args = list_and_map_args();
    assert_eq!(keys(&args[0]), ["inc-a", "inc-b"]);
    assert_eq!(keys(&args[1]), ["inc-a"]);
    for a in args.iter().chain([&Arg::Value(vec![]), &Arg::Key("k".into())]) {
        assert_eq!(a.key_count(), a.keys().count());
        assert_eq!(a.keys().len(), a.key_count());
    }
}

#[test]
fn hash_parts_tell_list_boundaries_apart() {
    let list = |ks: &[&str]| Arg::Keys(ks.iter().map(|k| k.to_string()).collect());
    let split_one = [list(&["a", "b"]), list(&["c"])];
    let split_two = [list(&["a"]), list(&["b", "c"])];
    let parts = |args: &[Arg]| args.iter().map(|a| a.hash_part().into_owned()).collect::<Vec<_>>();
    assert_ne!(parts(&split_one), parts(&split_two));
    // A list's part is the msgpack array of its keys (documented in §9).
    assert_eq!(&*list(&["a"]).hash_part(), &[0x91, 0xa1, b'a']);
    assert_eq!(&*Arg::Key("a".into()).hash_part(), b"a");
}

#[test]
fn coordination_examples_in_the_protocol_doc_are_exact() {
    let acquire = [FromClient::Coordinate {
        request_id: 1,
        op: CoordOp::LockAcquire {
            name: "l".into(),
            lease_id: "a".into(),
            timeout_ms: 1000,
        },
    }];
    assert_eq!(
        hex(&frame(&encoded(&acquire[..]))),
        hex(&doc_hex("a `LockAcquire` frame"))
    );
    let granted = [ToClient::CoordReply {
        request_id: 1,
        result: CoordResult::Bool(true),
    }];
    assert_eq!(
        hex(&frame(&encoded(&granted[..]))),
        hex(&doc_hex("its answer, granted"))
    );
    let put = [FromClient::Coordinate {
        request_id: 2,
        op: CoordOp::QueuePut {
            name: "q".into(),
            item: CoordItem::Value(serde_bytes::ByteBuf::from(vec![7])),
        },
    }];
    assert_eq!(
        hex(&frame(&encoded(&put[..]))),
        hex(&doc_hex("a `QueuePut` of the value 7"))
    );
    // The unit variants the document shows as bare strings.
    assert_eq!(encoded(&CoordResult::Done), b"\xa4Done");
    assert_eq!(encoded(&CoordOp::ListDatasets), b"\xacListDatasets");
}

#[test]
fn a_registration_without_nanny_reads_as_no_nanny() {
    #[derive(Serialize)]
    enum Old {
        RegisterWorker {
            name: String,
            address: String,
            nthreads: u32,
            memory_limit: u64,
            functions: Vec<String>,
            resources: Vec<(String, f64)>,
        },
    }
    let old = Old::RegisterWorker {
        name: "w".into(),
        address: "tcp://h:1".into(),
        nthreads: 1,
        memory_limit: 0,
        functions: Vec::new(),
        resources: Vec::new(),
    };
    let read: FromWorker = rmp_serde::from_slice(&encoded(&old)).expect("decodes");
    assert!(
        matches!(
            read,
            FromWorker::RegisterWorker {
                nanny: false,
                restarted: None,
                ..
            }
        ),
        "{read:?}"
    );
    let restart = FromClient::RestartCluster {
        request_id: 3,
        timeout_ms: 2000,
    };
    let back: FromClient = rmp_serde::from_slice(&encoded(&restart)).expect("decodes");
    assert_eq!(back, restart);
}

#[test]
fn adaptive_messages_round_trip() {
    let ask = FromClient::AdaptiveTarget {
        request_id: 4,
        target_duration_s: 5.0,
        minimum: 1,
        maximum: 8,
    };
    let back: FromClient = rmp_serde::from_slice(&encoded(&ask)).expect("decodes");
    assert_eq!(back, ask);
    let reply = ToClient::AdaptiveTargetReply {
        request_id: 4,
        target: 2,
        to_close: vec!["w-3".into()],
        workers: vec!["w-0".into(), "w-3".into()],
    };
    let back: ToClient = rmp_serde::from_slice(&encoded(&reply)).expect("decodes");
    assert_eq!(back, reply);
}
