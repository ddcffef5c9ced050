//! Tests of the scheduler's inbound message types: the variant names the
//! refusal relies on, and a message on the wrong kind of connection refused
//! by name, as `docs/protocol.md` §8.4 documents.

use super::*;
use crate::wire::codec::encode;

/// A frame holding `header` and no payloads.
fn frame_of(header: Vec<u8>) -> Frame {
    Frame {
        header: header.into(),
        payloads: Vec::new(),
    }
}

/// The frame a batch of `msgs` is sent as.
fn frame<M: Serialize>(msgs: &[M]) -> Frame {
    let (header, payloads) = encode(&msgs).expect("encodes");
    Frame {
        header: header.into(),
        payloads,
    }
}

fn heartbeat() -> FromWorker {
    FromWorker::Heartbeat {
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
    }
}

fn error_text<M: Inbound + fmt::Debug>(frame: Frame) -> String {
    decode_inbound::<M>(frame).expect_err("refused").to_string()
}

#[test]
fn variant_names_come_from_serde_and_each_belongs_to_one_sender() {
    let client = variant_names::<FromClient>();
    let worker = variant_names::<FromWorker>();
    for name in ["UpdateGraph", "ReleaseKeys", "Scatter", "CloseClient", "Rebalance"] {
        assert!(client.contains(&name), "{name} in {client:?}");
    }
    for name in [
        "RegisterWorker",
        "TaskFinished",
        "Heartbeat",
        "RetireMe",
        "TransferStats",
    ] {
        assert!(worker.contains(&name), "{name} in {worker:?}");
    }
    // A name in both would be accepted on either connection, so it could
    // not be refused as the wrong direction.
    for name in client {
        assert!(!worker.contains(name), "{name} is both a client and a worker message");
    }
    assert!(variant_names::<u32>().is_empty());
}

#[test]
fn a_worker_message_from_a_client_is_refused_by_name() {
    assert_eq!(
        error_text::<FromClient>(frame(&[heartbeat()])),
        "malformed message: message Heartbeat is not valid from a client"
    );
    // Behind a valid client message in the same frame: the frame is refused
    // as a whole, before any of it is handled.
    let mut header = vec![0x92];
    header.extend(encode(&FromClient::Info { request_id: 1 }).expect("encodes").0);
    header.extend(encode(&heartbeat()).expect("encodes").0);
    assert_eq!(
        error_text::<FromClient>(frame_of(header)),
        "malformed message: message Heartbeat is not valid from a client"
    );
    assert_eq!(
        error_text::<FromClient>(frame(&[FromWorker::RetireMe])),
        "malformed message: message RetireMe is not valid from a client"
    );
}

#[test]
fn a_client_message_from_a_worker_is_refused_by_name() {
    let update = FromClient::UpdateGraph {
        tasks: Vec::new(),
        wanted: vec!["k".into()],
    };
    assert_eq!(
        error_text::<FromWorker>(frame(&[update])),
        "malformed message: message UpdateGraph is not valid from a worker"
    );
    // A unit variant travels as its bare name.
    assert_eq!(
        error_text::<FromWorker>(frame(&[FromClient::CloseClient])),
        "malformed message: message CloseClient is not valid from a worker"
    );
}

#[test]
fn other_bad_frames_keep_the_decoder_error() {
    let bogus = rmp_serde::to_vec_named(&vec![std::collections::BTreeMap::from([("Bogus", 0u8)])]).expect("encodes");
    let text = error_text::<FromClient>(frame_of(bogus));
    assert!(text.starts_with("malformed message: unknown variant `Bogus`"), "{text}");
    // An own message with a missing field is not a direction problem.
    let partial = rmp_serde::to_vec_named(&vec![std::collections::BTreeMap::from([(
        "TaskFinished",
        std::collections::BTreeMap::from([("key", "k")]),
    )])])
    .expect("encodes");
    let text = error_text::<FromWorker>(frame_of(partial));
    assert!(text.contains("missing field"), "{text}");
    // Not msgpack at all.
    let text = error_text::<FromWorker>(frame_of(vec![0x91, 0xc1]));
    assert!(text.starts_with("malformed message: "), "{text}");
    assert!(!text.contains("not valid from"), "{text}");
}

#[test]
fn valid_batches_decode_for_their_sender() {
    let msgs = vec![FromClient::Info { request_id: 7 }, FromClient::CloseClient];
    assert_eq!(decode_inbound::<FromClient>(frame(&msgs)).expect("decodes"), msgs);
    let msgs = vec![heartbeat(), FromWorker::RetireMe];
    assert_eq!(decode_inbound::<FromWorker>(frame(&msgs)).expect("decodes"), msgs);
}

#[test]
fn the_wire_form_is_the_variant_name() {
    // What the single enum before the split sent: the enum's own name is
    // never on the wire.
    assert_eq!(encode(&FromClient::CloseClient).expect("encodes").0, b"\xabCloseClient");
    assert_eq!(encode(&FromWorker::RetireMe).expect("encodes").0, b"\xa8RetireMe");
    let (info, _) = encode(&FromClient::Info { request_id: 1 }).expect("encodes");
    assert_eq!(info, b"\x81\xa4Info\x81\xaarequest_id\x01");
}
