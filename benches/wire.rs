//! Micro-benchmarks of the wire codec (issue 3): encoding and decoding a
//! batch of 1,000 task messages as one frame.
//!
//! * `compute_task`: 1,000 `ToWorker::ComputeTask` (key `inc-<16 hex>`,
//!   function `rdask::builtins::inc`, one `Arg::Value` holding a small
//!   msgpack int, no dependencies), scheduler → worker.
//! * `task_finished`: 1,000 `FromWorker::TaskFinished` each with a small
//!   inline payload (one payload frame per message), worker → scheduler.
//!
//! For each: `encode` (msgpack header + payload list), `decode` (header back
//! into messages, payloads resolved), and `frame_roundtrip` (encode,
//! `write_frame` into a `Vec`, `read_frame` from it, decode: the whole
//! in-memory path of a batch, without a socket). Throughput is per message.
//!
//! Run with `cargo bench --bench wire`.

use std::hint::black_box;

use bytes::Bytes;
use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use futures_util::FutureExt;
use rdask::wire::codec::{decode, encode, read_frame, write_frame, Frame, FrameLimits};
use rdask::wire::messages::{FromWorker, Payload, ToWorker};
use serde::de::DeserializeOwned;
use serde::Serialize;

mod common;

/// Messages per frame.
const BATCH: usize = 1000;

fn compute_tasks() -> Vec<ToWorker> {
    (0..BATCH)
        .map(|i| common::compute_task(common::task_key(i), i))
        .collect()
}

fn task_finished() -> Vec<FromWorker> {
    (0..BATCH)
        .map(|i| {
            let value = rmp_serde::to_vec(&(i as i64 + 1)).expect("encode an int");
            FromWorker::TaskFinished {
                key: format!("inc-{:016x}", i as u64 * 0x9e37_79b9),
                nbytes: value.len() as u64,
                inline: Some(Payload(Bytes::from(value))),
                duration_us: 3,
                thread: 0,
                run_id: i as u64 + 1,
            }
        })
        .collect()
}

/// Encode, write the frame into memory, read it back and decode. The writer
/// and reader are in-memory, so their futures complete on the first poll.
fn frame_roundtrip<M: Serialize + DeserializeOwned>(msgs: &[M], buf: &mut Vec<u8>) -> Vec<M> {
    let (header, payloads) = encode(msgs).expect("encode");
    buf.clear();
    write_frame(buf, &header, &payloads)
        .now_or_never()
        .expect("in-memory write completes at once")
        .expect("write to a Vec");
    let mut reader = &buf[..];
    let frame = read_frame(&mut reader, &FrameLimits::default())
        .now_or_never()
        .expect("in-memory read completes at once")
        .expect("read")
        .expect("one frame");
    decode(frame).expect("decode")
}

fn bench_batch<M>(c: &mut Criterion, name: &str, msgs: Vec<M>)
where
    M: Serialize + DeserializeOwned + PartialEq + std::fmt::Debug,
{
    let (header, payloads) = encode(&msgs[..]).expect("encode");
    let frame = Frame {
        header: Bytes::from(header),
        payloads,
    };
    // Sanity: the batch survives the trip unchanged.
    let mut buf = Vec::new();
    assert_eq!(decode::<Vec<M>>(frame.clone()).expect("decode"), msgs);
    assert_eq!(frame_roundtrip(&msgs, &mut buf), msgs);
    eprintln!(
        "{name}: header {} B for {BATCH} messages ({:.1} B/message), {} payload frames",
        frame.header.len(),
        frame.header.len() as f64 / BATCH as f64,
        frame.payloads.len()
    );

    let mut g = c.benchmark_group(format!("wire/{name}"));
    g.throughput(Throughput::Elements(BATCH as u64));
    g.bench_function("encode", |b| b.iter(|| encode(black_box(&msgs[..])).expect("encode")));
    g.bench_function("decode", |b| {
        // The frame is consumed by decode: hand each iteration its own
        // (cheap: reference-counted bytes), outside the measurement.
        b.iter_batched(
            || frame.clone(),
            |f| decode::<Vec<M>>(black_box(f)).expect("decode"),
            BatchSize::PerIteration,
        )
    });
    g.bench_function("frame_roundtrip", |b| {
        b.iter(|| frame_roundtrip(black_box(&msgs[..]), &mut buf))
    });
    g.finish();
}

fn wire(c: &mut Criterion) {
    bench_batch(c, "compute_task", compute_tasks());
    bench_batch(c, "task_finished", task_finished());
}

criterion_group! {
    name = benches;
    config = common::config();
    targets = wire
}
criterion_main!(benches);
