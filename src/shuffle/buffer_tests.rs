//! The receiver's bookkeeping, without sockets: runs, stale shards,
//! duplicates, spilling past the memory bound, missing inputs.

use super::*;

fn buf(limit: u64) -> (tempfile::TempDir, ShuffleBuffer) {
    let dir = tempfile::tempdir().expect("temp dir");
    let b = ShuffleBuffer::new(dir.path().join("shuffle"), limit);
    (dir, b)
}

#[test]
fn shards_come_back_in_input_order() {
    let (_d, mut b) = buf(1 << 20);
    b.receive("s", 1, 1, vec![(0, b"b0".to_vec()), (1, b"b1".to_vec())])
        .unwrap();
    b.receive("s", 1, 0, vec![(0, b"a0".to_vec()), (1, b"a1".to_vec())])
        .unwrap();
    assert_eq!(b.take("s", 1, 0, 2).unwrap(), vec![b"a0".to_vec(), b"b0".to_vec()]);
    assert_eq!(b.memory_bytes(), 4);
    assert_eq!(b.take("s", 1, 1, 2).unwrap(), vec![b"a1".to_vec(), b"b1".to_vec()]);
    assert_eq!(b.memory_bytes(), 0);
}

#[test]
fn a_resent_shard_replaces_the_first() {
    let (_d, mut b) = buf(1 << 20);
    b.receive("s", 1, 0, vec![(0, b"old".to_vec())]).unwrap();
    b.receive("s", 1, 0, vec![(0, b"new!".to_vec())]).unwrap();
    assert_eq!(b.memory_bytes(), 4);
    assert_eq!(b.take("s", 1, 0, 1).unwrap(), vec![b"new!".to_vec()]);
}

#[test]
fn stale_runs_are_refused_and_newer_runs_replace() {
    let (_d, mut b) = buf(1 << 20);
    b.receive("s", 5, 0, vec![(0, b"x".to_vec())]).unwrap();
    let e = b.receive("s", 4, 1, vec![(0, b"y".to_vec())]).unwrap_err();
    assert!(matches!(e, BufferError::Stale { got: 4, current: 5, .. }), "{e}");
    b.receive("s", 6, 1, vec![(0, b"z".to_vec())]).unwrap();
    assert_eq!(b.run_of("s"), Some(6));
    // Run 5's shard is gone with its run.
    assert_eq!(b.memory_bytes(), 1);
    let e = b.take("s", 5, 0, 1).unwrap_err();
    assert!(matches!(e, BufferError::NoRun { held: Some(6), .. }), "{e}");
    let e = b.take("s", 6, 0, 2).unwrap_err();
    assert!(
        matches!(&e, BufferError::Missing { missing, .. } if missing == &vec![0]),
        "{e}"
    );
}

#[test]
fn past_the_bound_shards_go_to_disk_and_come_back() {
    let (d, mut b) = buf(10);
    let shard = |i: u8| vec![i; 6];
    for i in 0..4u32 {
        b.receive("s", 1, i, vec![(0, shard(i as u8)), (1, shard(10 + i as u8))])
            .unwrap();
    }
    assert_eq!(b.memory_bytes(), 6, "one shard fits the 10-byte bound");
    assert_eq!(b.spilled_bytes(), 42);
    let files = std::fs::read_dir(d.path().join("shuffle")).unwrap().count();
    assert_eq!(files, 2, "one file per output partition");
    let out0 = b.take("s", 1, 0, 4).unwrap();
    assert_eq!(out0, (0..4u8).map(shard).collect::<Vec<_>>());
    let out1 = b.take("s", 1, 1, 4).unwrap();
    assert_eq!(out1, (10..14u8).map(shard).collect::<Vec<_>>());
    assert_eq!(b.memory_bytes(), 0);
    let files = std::fs::read_dir(d.path().join("shuffle")).unwrap().count();
    assert_eq!(files, 0, "taken outputs' files are deleted");
}

#[test]
fn forgetting_a_shuffle_deletes_its_files() {
    let (d, mut b) = buf(0);
    b.receive("s", 1, 0, vec![(0, vec![1, 2, 3])]).unwrap();
    b.receive("t", 1, 0, vec![(0, vec![4])]).unwrap();
    b.forget("s");
    let files = std::fs::read_dir(d.path().join("shuffle")).unwrap().count();
    assert_eq!(files, 1);
    assert_eq!(b.take("t", 1, 0, 1).unwrap(), vec![vec![4]]);
    assert!(b.take("s", 1, 0, 1).is_err());
}

#[test]
fn a_memory_limit_caps_the_buffer_at_a_quarter_of_it() {
    assert_eq!(
        effective_buffer_bytes(256 << 20, 0),
        256 << 20,
        "no limit: as configured"
    );
    assert_eq!(effective_buffer_bytes(256 << 20, 64 << 20), 16 << 20);
    assert_eq!(
        effective_buffer_bytes(1 << 20, 64 << 20),
        1 << 20,
        "a smaller bound stays"
    );
}

#[test]
fn spilling_the_memory_keeps_every_shard() {
    let (_d, mut b) = buf(1 << 20);
    b.receive("s", 1, 0, vec![(0, b"a0".to_vec()), (1, b"a1".to_vec())])
        .unwrap();
    assert_eq!(b.spill_memory().unwrap(), 4);
    assert_eq!((b.memory_bytes(), b.spilled_bytes()), (0, 4));
    b.receive("s", 1, 1, vec![(0, b"b0".to_vec()), (1, b"b1".to_vec())])
        .unwrap();
    assert_eq!(b.memory_bytes(), 4, "new shards are kept in memory again");
    assert_eq!(b.take("s", 1, 0, 2).unwrap(), vec![b"a0".to_vec(), b"b0".to_vec()]);
    assert_eq!(b.take("s", 1, 1, 2).unwrap(), vec![b"a1".to_vec(), b"b1".to_vec()]);
    assert_eq!(b.memory_bytes(), 0);
}
