//! The journal file's framing: good entries read back, a torn or corrupt
//! last entry dropped and cut off, a foreign file refused.

use super::*;

fn want(client: u64, key: &str) -> JournalRecord {
    JournalRecord::Want {
        client,
        key: key.to_string(),
    }
}

fn temp(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rdask-journal-test-{}", uuid::Uuid::new_v4().simple()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir.join(name)
}

#[test]
fn entries_are_read_back_in_order() {
    let path = temp("j");
    let (mut j, c) = JournalFile::open(&path).expect("open");
    assert!(c.records.is_empty());
    j.append(&[want(1, "a"), want(1, "b")]).expect("append");
    j.append(&[want(2, "c")]).expect("append");
    drop(j);
    let (_, c) = JournalFile::open(&path).expect("reopen");
    assert_eq!(c.records, vec![want(1, "a"), want(1, "b"), want(2, "c")]);
    assert_eq!(c.entries, 2);
    assert!(c.dropped_tail.is_none());
}

#[test]
fn a_torn_last_entry_is_dropped_and_cut_off() {
    let path = temp("j");
    let (mut j, _) = JournalFile::open(&path).expect("open");
    j.append(&[want(1, "a")]).expect("append");
    j.append(&[want(1, "b")]).expect("append");
    drop(j);
    let len = std::fs::metadata(&path).expect("meta").len();
    let f = OpenOptions::new().write(true).open(&path).expect("open");
    f.set_len(len - 3).expect("truncate");
    drop(f);
    let (mut j, c) = JournalFile::open(&path).expect("reopen");
    assert_eq!(c.records, vec![want(1, "a")]);
    let why = c.dropped_tail.expect("tail dropped");
    assert!(why.contains("cut short"), "{why}");
    // New entries follow the good ones.
    j.append(&[want(3, "z")]).expect("append");
    drop(j);
    let (_, c) = JournalFile::open(&path).expect("reopen");
    assert_eq!(c.records, vec![want(1, "a"), want(3, "z")]);
    assert!(c.dropped_tail.is_none());
}

#[test]
fn a_corrupt_last_entry_fails_its_checksum_and_is_dropped() {
    let path = temp("j");
    let (mut j, _) = JournalFile::open(&path).expect("open");
    j.append(&[want(1, "a")]).expect("append");
    j.append(&[want(1, "b")]).expect("append");
    drop(j);
    let mut bytes = std::fs::read(&path).expect("read");
    let last = bytes.len() - 1;
    bytes[last] ^= 0xff;
    std::fs::write(&path, &bytes).expect("write");
    let (_, c) = JournalFile::open(&path).expect("reopen");
    assert_eq!(c.records, vec![want(1, "a")]);
    assert!(c.dropped_tail.expect("dropped").contains("checksum"));
}

#[test]
fn compaction_replaces_the_file_with_the_snapshot() {
    let path = temp("j");
    let (mut j, _) = JournalFile::open(&path).expect("open");
    for i in 0..100 {
        j.append(&[want(1, &format!("k{i}"))]).expect("append");
    }
    j.compact(&[want(7, "only")]).expect("compact");
    j.append(&[want(7, "after")]).expect("append");
    drop(j);
    let (_, c) = JournalFile::open(&path).expect("reopen");
    assert_eq!(c.records, vec![want(7, "only"), want(7, "after")]);
}

#[test]
fn a_file_that_is_not_a_journal_is_refused() {
    let path = temp("j");
    std::fs::write(&path, b"hello, world").expect("write");
    let err = JournalFile::open(&path).expect_err("refused");
    assert!(err.to_string().contains("not an rdask journal"), "{err}");
}
