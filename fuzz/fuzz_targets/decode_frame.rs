//! Fuzz target: arbitrary bytes through the frame reader and the decoder of
//! every message enum. Neither may panic, hang or allocate past the frame
//! limits; errors are the expected outcome for almost every input.
//!
//! Run with `cargo +nightly fuzz run decode_frame -- -max_total_time=60`
//! from the repository root (see docs/resilience.md).

#![no_main]

use libfuzzer_sys::fuzz_target;
use rdask::wire::codec::{decode, read_frame, Frame, FrameLimits};
use rdask::wire::messages::{
    decode_inbound, FromClient, FromPeer, FromWorker, Handshake, HandshakeReply, ToClient, ToPeer, ToWorker,
};

/// Small limits, so that a claimed length cannot make the fuzzer allocate
/// gigabytes (the limits themselves are what is being exercised).
const LIMITS: FrameLimits = FrameLimits {
    max_header_bytes: 1 << 20,
    max_payloads: 64,
    max_frame_bytes: 4 << 20,
};

fn decode_all(frame: Frame) {
    let _ = decode_inbound::<FromClient>(frame.clone());
    let _ = decode_inbound::<FromWorker>(frame.clone());
    let _ = decode::<Vec<ToClient>>(frame.clone());
    let _ = decode::<Vec<ToWorker>>(frame.clone());
    let _ = decode::<Vec<ToPeer>>(frame.clone());
    let _ = decode::<Vec<FromPeer>>(frame.clone());
    let _ = decode::<Handshake>(frame.clone());
    let _ = decode::<HandshakeReply>(frame);
}

fuzz_target!(|data: &[u8]| {
    let rt = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("a current-thread runtime");
    rt.block_on(async {
        let mut input = data;
        // Every frame in the input, as a connection would read them.
        while let Ok(Some(frame)) = read_frame(&mut input, &LIMITS).await {
            decode_all(frame);
        }
    });
    // The bytes as a bare header too, past the framing checks.
    decode_all(Frame {
        header: bytes::Bytes::copy_from_slice(data),
        payloads: Vec::new(),
    });
});
