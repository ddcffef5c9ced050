//! The scheduler's journal file (`rdask scheduler --journal FILE`): an
//! append-only log of [`JournalRecord`]s, one entry per batch of events,
//! compacted by writing the live state as a snapshot to a new file and
//! renaming it over the old one.
//!
//! # Format
//!
//! The file starts with the 8 bytes [`JOURNAL_MAGIC`]. Each entry is a
//! little-endian `u32` length, a little-endian `u32` CRC-32 (IEEE) of the
//! body, and the body: a msgpack array of records (rmp-serde, as the wire
//! protocol encodes messages). A last entry cut short (the process died in
//! the middle of a write) or whose checksum does not match is dropped with
//! a log line, and the file is truncated to the entries before it, so that
//! new entries follow good ones.
//!
//! # Durability
//!
//! Entries are written with one `write` each, before the batch's messages
//! leave the scheduler: a scheduler killed (SIGKILL) loses nothing it
//! told anyone. They reach the disk (`fdatasync`) at most
//! `journal_fsync_interval_s` later (0: after every entry), which bounds
//! what a crash of the whole machine loses.

use std::fs::{File, OpenOptions};
use std::io::{Read, Write};
use std::path::{Path, PathBuf};
use std::time::Instant;

use tracing::warn;

use crate::scheduler::JournalRecord;

/// The first bytes of a journal file (format version 1).
pub const JOURNAL_MAGIC: &[u8; 8] = b"RDASKJ1\n";
/// An entry longer than this is taken as corruption (a batch of events
/// never comes near it; a snapshot is written as several entries).
pub const MAX_JOURNAL_ENTRY_BYTES: u32 = 1 << 30;
/// Records per entry when a snapshot is written.
pub const SNAPSHOT_RECORDS_PER_ENTRY: usize = 65_536;
/// Bytes of entry header: length and checksum.
const ENTRY_HEADER_BYTES: usize = 8;

/// Errors of the journal file.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// Reading or writing the file failed.
    #[error("journal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// The file is not a journal.
    #[error(
        "journal {0}: not an rdask journal (it does not start with \"RDASKJ1\"); move it away or name another file"
    )]
    NotAJournal(PathBuf),
    /// A record could not be encoded.
    #[error("journal: cannot encode a record: {0}")]
    Encode(String),
}

/// What reading a journal found.
#[derive(Debug, Default)]
pub struct JournalContents {
    /// The good records, in order.
    pub records: Vec<JournalRecord>,
    /// Good entries read.
    pub entries: usize,
    /// Why the tail was dropped, if it was (torn or corrupt last entry).
    pub dropped_tail: Option<String>,
    /// Length of the good prefix, bytes.
    good_len: u64,
}

/// Splits `bytes` (a whole journal file) into its good records.
pub fn parse_journal(bytes: &[u8]) -> Result<JournalContents, String> {
    if bytes.is_empty() {
        return Ok(JournalContents::default());
    }
    if bytes.len() < JOURNAL_MAGIC.len() || &bytes[..JOURNAL_MAGIC.len()] != JOURNAL_MAGIC {
        return Err("not a journal".into());
    }
    let mut contents = JournalContents {
        good_len: JOURNAL_MAGIC.len() as u64,
        ..Default::default()
    };
    let mut at = JOURNAL_MAGIC.len();
    while at < bytes.len() {
        let rest = &bytes[at..];
        if rest.len() < ENTRY_HEADER_BYTES {
            contents.dropped_tail = Some(format!("entry at byte {at}: header cut short ({} bytes)", rest.len()));
            break;
        }
        let len = u32::from_le_bytes([rest[0], rest[1], rest[2], rest[3]]);
        let crc = u32::from_le_bytes([rest[4], rest[5], rest[6], rest[7]]);
        if len > MAX_JOURNAL_ENTRY_BYTES {
            contents.dropped_tail = Some(format!("entry at byte {at}: length {len} past the limit"));
            break;
        }
        let body = &rest[ENTRY_HEADER_BYTES..];
        if body.len() < len as usize {
            contents.dropped_tail = Some(format!("entry at byte {at}: cut short ({} of {len} bytes)", body.len()));
            break;
        }
        let body = &body[..len as usize];
        if crc32fast::hash(body) != crc {
            contents.dropped_tail = Some(format!("entry at byte {at}: checksum mismatch"));
            break;
        }
        match rmp_serde::from_slice::<Vec<JournalRecord>>(body) {
            Ok(records) => contents.records.extend(records),
            Err(e) => {
                contents.dropped_tail = Some(format!("entry at byte {at}: cannot decode: {e}"));
                break;
            }
        }
        contents.entries += 1;
        at += ENTRY_HEADER_BYTES + len as usize;
        contents.good_len = at as u64;
    }
    Ok(contents)
}

/// Encodes one entry.
fn entry(records: &[JournalRecord]) -> Result<Vec<u8>, JournalError> {
    let body = rmp_serde::to_vec_named(records).map_err(|e| JournalError::Encode(e.to_string()))?;
    let mut out = Vec::with_capacity(ENTRY_HEADER_BYTES + body.len());
    out.extend_from_slice(&(body.len() as u32).to_le_bytes());
    out.extend_from_slice(&crc32fast::hash(&body).to_le_bytes());
    out.extend_from_slice(&body);
    Ok(out)
}

/// An open journal, appended to by the scheduler actor.
#[derive(Debug)]
pub struct JournalFile {
    path: PathBuf,
    file: File,
    /// Bytes appended since the last snapshot.
    pub appended: u64,
    /// Entries written since the last `fdatasync`.
    unsynced: bool,
    last_sync: Instant,
}

impl JournalFile {
    /// Opens (or creates) the journal at `path` and reads it. A torn or
    /// corrupt tail is logged and cut off.
    pub fn open(path: &Path) -> Result<(JournalFile, JournalContents), JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let mut file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .open(path)
            .map_err(io)?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes).map_err(io)?;
        let contents = parse_journal(&bytes).map_err(|_| JournalError::NotAJournal(path.to_path_buf()))?;
        if let Some(why) = &contents.dropped_tail {
            warn!(
                journal = %path.display(),
                "dropping the journal's last {} bytes ({why}): the scheduler stopped in the middle of a write; \
                 the {} entries before it are used",
                bytes.len() as u64 - contents.good_len,
                contents.entries
            );
        }
        if bytes.is_empty() {
            file.write_all(JOURNAL_MAGIC).map_err(io)?;
        } else if contents.dropped_tail.is_some() {
            file.set_len(contents.good_len).map_err(io)?;
        }
        drop(file);
        let file = OpenOptions::new().append(true).open(path).map_err(io)?;
        Ok((
            JournalFile {
                path: path.to_path_buf(),
                file,
                appended: 0,
                unsynced: false,
                last_sync: Instant::now(),
            },
            contents,
        ))
    }

    /// The file's path.
    pub fn path(&self) -> &Path {
        &self.path
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }

    /// Appends one entry (one `write`).
    pub fn append(&mut self, records: &[JournalRecord]) -> Result<(), JournalError> {
        if records.is_empty() {
            return Ok(());
        }
        let bytes = entry(records)?;
        self.file.write_all(&bytes).map_err(|e| self.io(e))?;
        self.appended += bytes.len() as u64;
        self.unsynced = true;
        Ok(())
    }

    /// `fdatasync`s what was appended if `interval` has passed since the
    /// last one (a zero interval: always).
    pub fn sync_if_due(&mut self, interval: std::time::Duration) -> Result<(), JournalError> {
        if self.unsynced && self.last_sync.elapsed() >= interval {
            self.file.sync_data().map_err(|e| self.io(e))?;
            self.unsynced = false;
            self.last_sync = Instant::now();
        }
        Ok(())
    }

    /// Replaces the journal with `snapshot` (the live state): written to
    /// `FILE.tmp`, synced, renamed over `FILE`, and the directory synced,
    /// so that a crash at any point leaves either journal whole.
    pub fn compact(&mut self, snapshot: &[JournalRecord]) -> Result<(), JournalError> {
        let mut tmp_name = self.path.as_os_str().to_owned();
        tmp_name.push(".tmp");
        let tmp = PathBuf::from(tmp_name);
        let io = |source| JournalError::Io {
            path: tmp.clone(),
            source,
        };
        let mut out = File::create(&tmp).map_err(io)?;
        let mut bytes = JOURNAL_MAGIC.to_vec();
        for chunk in snapshot.chunks(SNAPSHOT_RECORDS_PER_ENTRY) {
            bytes.extend_from_slice(&entry(chunk)?);
        }
        out.write_all(&bytes).map_err(io)?;
        out.sync_all().map_err(io)?;
        drop(out);
        std::fs::rename(&tmp, &self.path).map_err(|e| self.io(e))?;
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            if let Ok(d) = File::open(dir) {
                let _ = d.sync_all();
            }
        }
        self.file = OpenOptions::new()
            .append(true)
            .open(&self.path)
            .map_err(|e| self.io(e))?;
        self.appended = 0;
        self.unsynced = false;
        self.last_sync = Instant::now();
        Ok(())
    }
}

#[cfg(test)]
#[path = "journal_tests.rs"]
mod tests;
