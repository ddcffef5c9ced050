//! Tests of the shared-memory pieces without workers: memory files,
//! descriptors over a socket pair, binding, and route learning. The whole
//! path between real worker processes is tested in
//! `tests/shared_memory.rs`.

use std::io::Write;
use std::sync::Arc;

use tokio::io::AsyncReadExt;

use super::client::Route;
use super::*;
use crate::actors::store::WorkerCounters;
use crate::wire::codec::FrameLimits;

fn pattern(n: usize) -> Vec<u8> {
    (0..n).map(|i| (i * 31 % 251) as u8).collect()
}

#[test]
fn a_shared_value_maps_back_to_the_same_bytes() {
    let data = pattern(1_000_003);
    let fd = fds::share(&data).expect("share");
    let mapped = fds::map(fd, data.len() as u64).expect("map");
    assert_eq!(&mapped[..], &data[..]);
}

#[test]
fn an_unsealed_file_is_refused() {
    let fd = rustix::fs::memfd_create("test", rustix::fs::MemfdFlags::CLOEXEC).expect("memfd");
    let mut file = std::fs::File::from(fd);
    file.write_all(&pattern(4096)).expect("write");
    let err = fds::map(file.into(), 4096).expect_err("unsealed");
    assert!(err.to_string().contains("not sealed"), "{err}");
}

#[test]
fn a_file_of_another_length_than_announced_is_refused() {
    let fd = fds::share(&pattern(10_000)).expect("share");
    let err = fds::map(fd, 10_001).expect_err("wrong length");
    assert!(err.to_string().contains("announced as 10001 bytes"), "{err}");
}

#[test]
fn the_host_id_is_the_host_name_and_boot_id() {
    let id = host_id().expect("Linux has both");
    let (host, boot) = id.split_once('/').expect("host/boot");
    assert!(!host.is_empty());
    assert_eq!(boot.len(), 36, "a boot id is a UUID: {boot}");
    assert_eq!(host_id(), Some(id), "stable");
}

#[tokio::test]
async fn descriptors_arrive_with_the_first_bytes_of_a_long_message() {
    let (mut a, b) = tokio::net::UnixStream::pair().expect("pair");
    let message = pattern(3 * FIRST_READ_BYTES + 17);
    let values = [pattern(100), pattern(200)];
    let files: Vec<_> = values.iter().map(|v| fds::share(v).expect("share")).collect();
    let send = {
        let message = message.clone();
        tokio::spawn(async move { unix::send_with_fds(&mut a, &message, &files).await.map(|_| a) })
    };
    let mut first = vec![0u8; FIRST_READ_BYTES];
    let (n, received) = unix::recv_with_fds(&b, &mut first).await.expect("recv");
    assert!(n > 0);
    assert_eq!(received.len(), 2);
    let mut rest = Vec::new();
    let mut b = b;
    let _a = send.await.expect("join").expect("send");
    let mut got = first[..n].to_vec();
    let want = message.len() - n;
    rest.resize(want, 0);
    b.read_exact(&mut rest).await.expect("rest");
    got.extend_from_slice(&rest);
    assert_eq!(got, message);
    for (fd, value) in received.into_iter().zip(&values) {
        assert_eq!(&fds::map(fd, value.len() as u64).expect("map")[..], &value[..]);
    }
}

#[test]
fn a_socket_path_too_long_for_a_unix_address_is_refused_clearly() {
    let base = std::env::temp_dir().join("x".repeat(MAX_SOCKET_PATH_BYTES));
    let err = bind(&base).err().expect("too long");
    assert!(err.to_string().contains("longer than"), "{err}");
    assert!(!base.exists(), "nothing is created");
}

#[test]
fn only_a_peer_on_this_host_with_a_socket_is_reached_through_shared_memory() {
    let fetcher = ShmFetcher::new("h/1", Arc::new(WorkerCounters::default()), FrameLimits::default());
    assert_eq!(fetcher.route("tcp://p:1"), None, "unknown until asked");
    let shared = fetcher.learned("tcp://p:1", "h/1", Some("/s".into()));
    assert_eq!(shared, Route::Shared("/s".into()));
    assert_eq!(fetcher.route("tcp://p:1"), Some(shared));
    for (host, socket) in [("h/2", Some("/s")), ("h/1", None), ("", Some("/s"))] {
        let route = fetcher.learned("tcp://q:1", host, socket.map(String::from));
        assert!(matches!(route, Route::Tcp(_)), "{host:?} {socket:?}: {route:?}");
    }
    fetcher.use_tcp("tcp://p:1");
    assert!(matches!(fetcher.route("tcp://p:1"), Some(Route::Tcp(_))));
}

#[test]
fn a_value_encoded_for_a_push_is_the_ordinary_encoding_in_a_sealed_file_once_large() {
    use super::push_files::encode_shared;
    let small: Vec<u64> = (0..100).collect();
    let (bytes, file) = encode_shared(&small).expect("encode").expect("made");
    assert!(file.is_none(), "a small value needs no memory file");
    assert_eq!(&bytes[..], &crate::task::encode_value(&small).expect("encode")[..]);
    // Many small writes (one per element) and one large one (a blob).
    let many: Vec<u64> = (0..200_000u64).map(|i| i.wrapping_mul(0x9e37_79b9_7f4a_7c15)).collect();
    let blob = crate::Blob((0..3_000_000u32).map(|i| (i % 251) as u8).collect());
    let cases = [
        (crate::task::encode_value(&many).expect("encode"), encode_shared(&many)),
        (crate::task::encode_value(&blob).expect("encode"), encode_shared(&blob)),
    ];
    for (want, got) in cases {
        let (bytes, file) = got.expect("encode").expect("made");
        assert_eq!(bytes.len(), want.len());
        assert!(bytes[..] == want[..], "the file's bytes differ from the encoding");
        // What a worker gets: the same bytes, and a file it accepts
        // (sealed, of the announced length).
        let fd = file.expect("a large value goes in a memory file");
        let dup = fd.try_clone().expect("dup");
        let mapped = fds::map(dup, want.len() as u64).expect("a worker maps it");
        assert!(mapped[..] == want[..]);
    }
}

/// A value that is a memory file's whole mapping is served as that file
/// (a new descriptor of the same inode), a value in ordinary memory as a
/// copy, and the record of the file goes with the mapping.
#[test]
fn a_mapped_value_is_passed_on_as_its_own_file_and_others_are_copied() {
    use std::os::fd::AsFd;
    let inode = |fd: &std::os::fd::OwnedFd| rustix::fs::fstat(fd.as_fd()).expect("fstat").st_ino;
    let blob = crate::Blob((0..2_000_000u32).map(|i| (i % 253) as u8).collect());
    let (bytes, file) = super::push_files::encode_shared_from(&blob, crate::task::SHARED_OUTPUT_MIN_BYTES)
        .expect("encode")
        .expect("made");
    let file = file.expect("2 MB goes in a memory file");
    let served = fds::share_value(&bytes).expect("served");
    assert_eq!(inode(&served), inode(&file), "served as its own file");
    assert!(
        fds::file_of(&bytes.slice(1..)).is_none(),
        "a part of a mapping is not the file"
    );
    // Mapped again by a peer, the peer's mapping is recorded too.
    let theirs = fds::map(served, bytes.len() as u64).expect("mapped");
    assert_eq!(inode(&fds::file_of(&theirs).expect("recorded")), inode(&file));
    let ordinary = bytes::Bytes::from(bytes.to_vec());
    assert!(fds::file_of(&ordinary).is_none());
    let copy = fds::share_value(&ordinary).expect("copied");
    assert_ne!(inode(&copy), inode(&file), "ordinary memory is copied into a new file");
    drop(theirs);
    let len = bytes.len();
    drop(bytes);
    // The record goes with the mapping: a value later at the same address
    // (the allocator may reuse it) is not taken for the file.
    let fresh = bytes::Bytes::from(vec![0u8; len]);
    assert!(fds::file_of(&fresh).is_none());
    // Below the threshold a result stays in memory.
    let (small, no_file) =
        super::push_files::encode_shared_from(&crate::Blob(vec![1; 1000]), crate::task::SHARED_OUTPUT_MIN_BYTES)
            .expect("encode")
            .expect("made");
    assert!(no_file.is_none() && fds::file_of(&small).is_none());
}
