//! Unit tests of the memory policy (spilling and pausing), without a disk.

use super::*;

const MB: u64 = 1_000_000;

fn buffer(limit: u64) -> SpillBuffer {
    SpillBuffer::new(MemoryThresholds {
        limit,
        ..Default::default()
    })
}

fn value(n: u64) -> Bytes {
    Bytes::from(vec![7u8; n as usize])
}

fn writes(ops: &[SpillOp]) -> Vec<(String, u64)> {
    ops.iter()
        .filter_map(|op| match op {
            SpillOp::Write { key, file, .. } => Some((key.clone(), *file)),
            SpillOp::Remove { .. } => None,
        })
        .collect()
}

fn finish_writes(b: &mut SpillBuffer, ops: &[SpillOp]) -> Vec<SpillOp> {
    let mut out = Vec::new();
    for (key, file) in writes(ops) {
        b.write_done(&key, file, true, &mut out);
    }
    out
}

#[test]
fn auto_limit_is_a_share_of_system_memory() {
    let Some(total) = system_memory() else {
        return;
    };
    assert!(total > 0);
    let one = auto_memory_limit(1);
    assert!(one > 0 && one <= total, "{one} of {total}");
    // Asking for more threads than CPUs caps the share at the whole machine.
    assert_eq!(auto_memory_limit(u32::MAX), total);
}

#[test]
fn without_a_limit_nothing_is_spilled() {
    let mut b = buffer(0);
    let mut out = Vec::new();
    for i in 0..10 {
        b.put(format!("k{i}"), value(MB), &mut out);
    }
    assert!(out.is_empty());
    assert_eq!(b.memory_measured(u64::MAX, &mut out), None);
    assert!(out.is_empty());
    assert_eq!(b.figures().memory_bytes, 10 * MB);
}

#[test]
fn past_target_the_least_recently_used_values_are_spilled() {
    // Limit 10 MB: target 6 MB.
    let mut b = buffer(10 * MB);
    let mut out = Vec::new();
    for i in 0..6 {
        b.put(format!("k{i}"), value(MB), &mut out);
    }
    assert!(out.is_empty(), "6 MB is at target, not past it");
    // Reading k0 makes k1 the oldest.
    assert!(matches!(b.get("k0"), Some(Lookup::Memory(_))));
    b.put("k6".into(), value(MB), &mut out);
    assert_eq!(writes(&out), vec![("k1".to_string(), 0)]);
    // Until the write finishes the value is still in memory and readable.
    assert!(matches!(b.get("k1"), Some(Lookup::Memory(_))));
    assert_eq!(b.figures().memory_bytes, 7 * MB);
    let more = finish_writes(&mut b, &out);
    assert!(more.is_empty());
    let f = b.figures();
    assert_eq!(
        (f.memory_bytes, f.spilled_bytes, f.spilled_keys, f.nkeys),
        (6 * MB, MB, 1, 7)
    );
    match b.get("k1") {
        Some(Lookup::Disk(name)) => assert!(name.ends_with("-0"), "{name}"),
        other => panic!("k1 should be on disk: {other:?}"),
    }
}

#[test]
fn a_write_in_flight_counts_as_gone_so_nothing_more_is_spilled_for_it() {
    let mut b = buffer(10 * MB);
    let mut out = Vec::new();
    for i in 0..7 {
        b.put(format!("k{i}"), value(MB), &mut out);
    }
    assert_eq!(writes(&out).len(), 1);
    // A measurement before the write finished spills nothing more.
    let mut more = Vec::new();
    b.memory_measured(5 * MB, &mut more);
    assert!(more.is_empty(), "{more:?}");
}

#[test]
fn deleting_a_spilled_value_removes_its_file_and_a_value_being_written_is_removed_after() {
    let mut b = buffer(2 * MB);
    let mut out = Vec::new();
    b.put("a".into(), value(MB), &mut out);
    b.put("b".into(), value(MB), &mut out);
    // target 1.2 MB: a spilled.
    let w = writes(&out);
    assert_eq!(w, vec![("a".to_string(), 0)]);
    finish_writes(&mut b, &out);
    out.clear();
    b.delete("a", &mut out);
    assert!(matches!(&out[..], [SpillOp::Remove { name }] if name.ends_with("-0")));
    assert_eq!(b.figures().spilled_bytes, 0);

    out.clear();
    b.put("c".into(), value(MB), &mut out);
    let w = writes(&out);
    assert_eq!(w, vec![("b".to_string(), 1)]);
    b.delete("b", &mut out);
    let mut after = Vec::new();
    b.write_done("b", 1, true, &mut after);
    assert!(matches!(&after[..], [SpillOp::Remove { name }] if name.ends_with("-1")));
    let f = b.figures();
    assert_eq!((f.nkeys, f.memory_bytes, f.spilled_bytes), (1, MB, 0));
}

#[test]
fn replacing_a_value_being_written_keeps_the_new_one_and_drops_the_old_file() {
    let mut b = buffer(2 * MB);
    let mut out = Vec::new();
    b.put("a".into(), value(MB), &mut out);
    b.put("b".into(), value(MB), &mut out);
    assert_eq!(writes(&out), vec![("a".to_string(), 0)]);
    let mut again = Vec::new();
    b.put("a".into(), value(MB / 2), &mut again);
    let mut after = Vec::new();
    b.write_done("a", 0, true, &mut after);
    assert_eq!(after.len(), 1, "the stale file is removed: {after:?}");
    assert!(matches!(b.get("a"), Some(Lookup::Memory(v)) if v.len() as u64 == MB / 2));
}

#[test]
fn a_failed_write_keeps_the_value_in_memory() {
    let mut b = buffer(2 * MB);
    let mut out = Vec::new();
    b.put("a".into(), value(MB), &mut out);
    b.put("b".into(), value(MB), &mut out);
    let mut after = Vec::new();
    b.write_done("a", 0, false, &mut after);
    assert!(after.is_empty());
    let f = b.figures();
    assert_eq!((f.memory_bytes, f.spilled_bytes), (2 * MB, 0));
    assert!(matches!(b.get("a"), Some(Lookup::Memory(_))));
}

#[test]
fn a_failed_write_stops_spilling_until_the_store_retries() {
    // Default thresholds: target 0.6 of 10 MB.
    let mut b = buffer(10 * MB);
    let mut out = Vec::new();
    for i in 0..7 {
        b.put(format!("k{i}"), value(MB), &mut out);
    }
    assert_eq!(writes(&out), vec![("k0".to_string(), 0)]);
    let mut after = Vec::new();
    b.write_done("k0", 0, false, &mut after);
    assert!(b.spilling_blocked());
    // Neither new values nor memory measurements start writes while blocked:
    // a failing disk is not tried again and again.
    let mut more = Vec::new();
    b.put("k7".into(), value(MB), &mut more);
    assert_eq!(b.memory_measured(9 * MB, &mut more), Some(PauseChange::Pause));
    assert!(writes(&more).is_empty(), "{:?}", writes(&more));
    // Retrying spills down to target again, oldest first (k0 went to the
    // back of the line when its write failed).
    let mut retry = Vec::new();
    b.retry_spilling(&mut retry);
    assert!(!b.spilling_blocked());
    let keys: Vec<String> = writes(&retry).into_iter().map(|(k, _)| k).collect();
    assert_eq!(keys, vec!["k1", "k2"]);
}

#[test]
fn process_memory_past_spill_spills_more_and_past_pause_pauses_until_it_falls() {
    let mut b = buffer(10 * MB);
    let mut out = Vec::new();
    for i in 0..5 {
        b.put(format!("k{i}"), value(MB), &mut out);
    }
    assert!(out.is_empty());
    // 7.5 MB measured (> spill 7 MB): 1.5 MB over target 6 MB must go,
    // so the two oldest values are written out.
    assert_eq!(b.memory_measured(7_500_000, &mut out), None);
    assert_eq!(writes(&out), vec![("k0".to_string(), 0), ("k1".to_string(), 1)]);
    out.clear();
    assert_eq!(b.memory_measured(8_500_000, &mut out), Some(PauseChange::Pause));
    assert!(b.figures().paused);
    assert_eq!(b.memory_measured(8_600_000, &mut out), None);
    assert_eq!(b.memory_measured(5 * MB, &mut out), Some(PauseChange::Resume));
    assert!(!b.figures().paused);
}

#[test]
fn a_value_larger_than_target_goes_to_disk_alone() {
    let mut b = buffer(10 * MB);
    let mut out = Vec::new();
    b.put("small".into(), value(MB), &mut out);
    b.put("huge".into(), value(20 * MB), &mut out);
    // Oldest first: small goes, then huge itself.
    assert_eq!(writes(&out), vec![("small".to_string(), 0), ("huge".to_string(), 1)]);
}
