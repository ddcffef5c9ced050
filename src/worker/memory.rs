//! The worker's memory policy, free of I/O: which results stay in memory,
//! which are spilled to disk, and when the worker pauses.
//!
//! [`SpillBuffer`] tracks the bytes of every result in the worker's data
//! store, least-recently-used first. Past `target` × the memory limit of
//! managed (store) bytes it spills the oldest results; past `spill` × the
//! limit of *process* memory (RSS, which also counts task temporaries and
//! allocator slack) it spills more; past `pause` × the limit it tells the
//! worker to stop starting tasks until memory falls again. These are Dask's
//! `distributed.worker.memory.{target,spill,pause}` thresholds.
//!
//! The buffer only decides: it returns [`SpillOp`]s (write this value to a
//! file, remove that file) that the data store actor carries out off its
//! thread, and is told when a write finished. That keeps the policy
//! unit-testable without a disk.
//!
//! A spilled value is not brought back into memory when read: a task gets
//! the file to read on its own thread, a peer or client gets bytes read for
//! that one request. So scanning many spilled results (a reduction) costs
//! reads, but never pushes other results out (no write churn) and never
//! raises managed memory past `target`.

use std::collections::BTreeMap;

use bytes::Bytes;

use crate::util::FxMap as HashMap;
use crate::wire::messages::Key;

/// Default fraction of the memory limit that managed (store) bytes may use
/// before least-recently-used results are spilled (Dask's 0.6).
pub const DEFAULT_MEMORY_TARGET: f64 = 0.6;
/// Default fraction of the memory limit that process memory (RSS) may use
/// before more results are spilled (Dask's 0.7).
pub const DEFAULT_MEMORY_SPILL: f64 = 0.7;
/// Default fraction of the memory limit of process memory past which the
/// worker starts no new tasks (Dask's 0.8).
pub const DEFAULT_MEMORY_PAUSE: f64 = 0.8;
/// Fraction of the memory limit of process memory past which a worker's
/// nanny kills and restarts it (Dask's `distributed.worker.memory.terminate`).
pub const DEFAULT_MEMORY_TERMINATE: f64 = 0.95;
/// Default interval between measurements of process memory, milliseconds
/// (Dask's `monitor-interval`, 100 ms).
pub const DEFAULT_MEMORY_MONITOR_INTERVAL_MS: u64 = 100;

/// The memory of this machine available to the process: the smaller of
/// `MemTotal` in `/proc/meminfo` and a cgroup (container) memory limit;
/// None where neither can be read.
pub fn system_memory() -> Option<u64> {
    let total = std::fs::read_to_string("/proc/meminfo").ok().and_then(|text| {
        let line = text.lines().find(|l| l.starts_with("MemTotal:"))?;
        let kib: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
        Some(kib * 1024)
    });
    // cgroup v2, then v1; "max" (v2) or a huge number (v1) mean no limit.
    let cgroup = [
        "/sys/fs/cgroup/memory.max",
        "/sys/fs/cgroup/memory/memory.limit_in_bytes",
    ]
    .iter()
    .find_map(|p| std::fs::read_to_string(p).ok()?.trim().parse::<u64>().ok());
    match (total, cgroup) {
        (Some(t), Some(c)) => Some(t.min(c)),
        (t, c) => t.or(c),
    }
}

/// Dask's `memory_limit="auto"`: the machine's memory times this worker's
/// share of its CPUs (`nthreads` / CPUs, at most 1), so workers started one
/// per group of cores split the memory between them. 0 (no limit) if the
/// machine's memory cannot be read.
pub fn auto_memory_limit(nthreads: u32) -> u64 {
    let cpus = std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1) as f64;
    let share = (f64::from(nthreads.max(1)) / cpus).min(1.0);
    system_memory().map(|m| (m as f64 * share) as u64).unwrap_or(0)
}

/// The memory limit and its thresholds. A fraction of 0 disables that
/// threshold; a limit of 0 disables them all.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct MemoryThresholds {
    /// Memory limit of the worker in bytes; 0 for none.
    pub limit: u64,
    /// Fraction of `limit` of managed bytes kept in memory.
    pub target: f64,
    /// Fraction of `limit` of process memory past which more is spilled.
    pub spill: f64,
    /// Fraction of `limit` of process memory past which tasks stop starting.
    pub pause: f64,
}

impl Default for MemoryThresholds {
    fn default() -> Self {
        MemoryThresholds {
            limit: 0,
            target: DEFAULT_MEMORY_TARGET,
            spill: DEFAULT_MEMORY_SPILL,
            pause: DEFAULT_MEMORY_PAUSE,
        }
    }
}

impl MemoryThresholds {
    /// `fraction` × the limit in bytes, or None when disabled.
    pub fn bytes(&self, fraction: f64) -> Option<u64> {
        (self.limit > 0 && fraction > 0.0).then_some((self.limit as f64 * fraction) as u64)
    }
}

/// What the store actor must do for the buffer.
#[derive(Clone, Debug, PartialEq)]
pub enum SpillOp {
    /// Write `data` to the file `name` in the spill directory, then call
    /// [`SpillBuffer::write_done`] with `key` and `file`.
    Write {
        /// The key.
        key: Key,
        /// File id, echoed in `write_done`.
        file: u64,
        /// File name within the spill directory.
        name: String,
        /// The value.
        data: Bytes,
    },
    /// Remove the file `name` from the spill directory.
    Remove {
        /// File name within the spill directory.
        name: String,
    },
}

/// Where a value can be read.
#[derive(Clone, Debug, PartialEq)]
pub enum Lookup {
    /// In memory.
    Memory(Bytes),
    /// Only on disk, in this file of the spill directory.
    Disk(String),
}

/// Whether the worker should pause or resume starting tasks.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PauseChange {
    /// Process memory passed `pause`: start no new tasks.
    Pause,
    /// Process memory fell back below `pause`.
    Resume,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum FileState {
    /// Not on disk.
    None,
    /// Being written as file id n; the value is still in memory.
    Writing(u64),
    /// On disk as file id n; the value is no longer in memory.
    Written(u64),
}

#[derive(Debug)]
struct Slot {
    nbytes: u64,
    /// The value while in memory (also while being written).
    data: Option<Bytes>,
    /// Position in the LRU order while in memory and not being spilled.
    tick: Option<u64>,
    file: FileState,
}

/// Figures for the worker's memory report.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct MemoryFigures {
    /// Keys held (in memory or on disk).
    pub nkeys: u64,
    /// Bytes of values in memory (including those being written out).
    pub memory_bytes: u64,
    /// Keys whose value is only on disk.
    pub spilled_keys: u64,
    /// Bytes of values only on disk.
    pub spilled_bytes: u64,
    /// Whether the worker is paused.
    pub paused: bool,
}

/// The LRU bookkeeping of one worker's store.
#[derive(Debug, Default)]
pub struct SpillBuffer {
    thresholds: MemoryThresholds,
    slots: HashMap<Key, Slot>,
    /// Access tick → key, oldest first, for values in memory that are not
    /// being written out.
    lru: BTreeMap<u64, Key>,
    next_tick: u64,
    next_file: u64,
    memory_bytes: u64,
    writing_bytes: u64,
    spilled_bytes: u64,
    spilled_keys: u64,
    paused: bool,
    /// A write failed: no new write starts until the store calls
    /// [`SpillBuffer::retry_spilling`] (a failing disk is not hammered).
    spilling_blocked: bool,
}

impl SpillBuffer {
    /// An empty buffer with these thresholds.
    pub fn new(thresholds: MemoryThresholds) -> Self {
        SpillBuffer {
            thresholds,
            ..Default::default()
        }
    }

    /// The thresholds.
    pub fn thresholds(&self) -> MemoryThresholds {
        self.thresholds
    }

    /// File name of a value: a stable hash of the key (keys may hold any
    /// character) and a sequence number, so a key stored again never reuses
    /// the file of an older value still being written or removed.
    fn file_name(key: &str, file: u64) -> String {
        format!("{:016x}-{file}", crate::util::fnv1a64(&[key.as_bytes()]))
    }

    fn touch(&mut self, key: &str) {
        let tick = self.next_tick;
        if let Some(slot) = self.slots.get_mut(key) {
            if let Some(old) = slot.tick.replace(tick) {
                self.lru.remove(&old);
            }
            self.lru.insert(tick, key.to_string());
            self.next_tick += 1;
        }
    }

    /// Stores a value (replacing any previous one), then spills what
    /// `target` requires.
    pub fn put(&mut self, key: Key, data: Bytes, out: &mut Vec<SpillOp>) {
        if self.slots.contains_key(&key) {
            self.delete(&key, out);
        }
        let nbytes = data.len() as u64;
        self.memory_bytes += nbytes;
        // Made the most recently used here rather than by `touch`, so a new
        // value costs one insert into a table that may hold a million keys.
        let tick = self.next_tick;
        self.next_tick += 1;
        self.lru.insert(tick, key.clone());
        self.slots.insert(
            key,
            Slot {
                nbytes,
                data: Some(data),
                tick: Some(tick),
                file: FileState::None,
            },
        );
        self.spill_to_target(out);
    }

    /// Forgets a value; its file, if any, is removed (at once, or when its
    /// write finishes).
    pub fn delete(&mut self, key: &str, out: &mut Vec<SpillOp>) {
        let Some(slot) = self.slots.remove(key) else {
            return;
        };
        if let Some(t) = slot.tick {
            self.lru.remove(&t);
        }
        if slot.data.is_some() {
            self.memory_bytes -= slot.nbytes;
        }
        match slot.file {
            FileState::None => {}
            // write_done finds no slot for this file and removes it then.
            FileState::Writing(_) => self.writing_bytes -= slot.nbytes,
            FileState::Written(file) => {
                self.spilled_bytes -= slot.nbytes;
                self.spilled_keys -= 1;
                out.push(SpillOp::Remove {
                    name: Self::file_name(key, file),
                });
            }
        }
    }

    /// Where `key`'s value can be read; a value in memory becomes the most
    /// recently used.
    pub fn get(&mut self, key: &str) -> Option<Lookup> {
        let slot = self.slots.get(key)?;
        let found = match (&slot.data, slot.file) {
            (Some(d), _) => Lookup::Memory(d.clone()),
            (None, FileState::Written(file)) => Lookup::Disk(Self::file_name(key, file)),
            // Unreachable by construction: a slot without data is written.
            (None, _) => return None,
        };
        if slot.tick.is_some() {
            self.touch(key);
        }
        Some(found)
    }

    /// Whether `key` is held.
    pub fn contains(&self, key: &str) -> bool {
        self.slots.contains_key(key)
    }

    /// Every key held.
    pub fn keys(&self) -> impl Iterator<Item = &Key> {
        self.slots.keys()
    }

    /// A write the store started finished (`ok`) or failed. On success the
    /// value leaves memory; on failure it stays there, as the most recently
    /// used so the next spill tries other values first.
    pub fn write_done(&mut self, key: &str, file: u64, ok: bool, out: &mut Vec<SpillOp>) {
        let current = self.slots.get(key).is_some_and(|s| s.file == FileState::Writing(file));
        if !current {
            // Deleted or replaced while being written: the file is garbage.
            if ok {
                out.push(SpillOp::Remove {
                    name: Self::file_name(key, file),
                });
            }
            return;
        }
        let Some(slot) = self.slots.get_mut(key) else {
            return;
        };
        self.writing_bytes -= slot.nbytes;
        if ok {
            slot.file = FileState::Written(file);
            slot.data = None;
            self.memory_bytes -= slot.nbytes;
            self.spilled_bytes += slot.nbytes;
            self.spilled_keys += 1;
        } else {
            slot.file = FileState::None;
            self.touch(key);
            self.spilling_blocked = true;
        }
    }

    /// Whether a failed write stopped spilling (until
    /// [`SpillBuffer::retry_spilling`]).
    pub fn spilling_blocked(&self) -> bool {
        self.spilling_blocked
    }

    /// Lets spilling start again after a failed write, and spills what the
    /// target requires.
    pub fn retry_spilling(&mut self, out: &mut Vec<SpillOp>) {
        self.spilling_blocked = false;
        self.spill_to_target(out);
    }

    /// Starts spilling the least recently used value; false if none is left.
    fn spill_oldest(&mut self, out: &mut Vec<SpillOp>) -> bool {
        if self.spilling_blocked {
            return false;
        }
        let Some((_, key)) = self.lru.pop_first() else {
            return false;
        };
        let Some(slot) = self.slots.get_mut(&key) else {
            return true;
        };
        slot.tick = None;
        let Some(data) = slot.data.clone() else {
            return true;
        };
        let file = self.next_file;
        self.next_file += 1;
        slot.file = FileState::Writing(file);
        self.writing_bytes += slot.nbytes;
        out.push(SpillOp::Write {
            name: Self::file_name(&key, file),
            key,
            file,
            data,
        });
        true
    }

    /// Bytes in memory that are not already on their way out.
    fn staying_bytes(&self) -> u64 {
        self.memory_bytes - self.writing_bytes
    }

    /// Spills least recently used values until managed memory (minus what is
    /// being written) is at most `target` × the limit.
    pub fn spill_to_target(&mut self, out: &mut Vec<SpillOp>) {
        let Some(target) = self.thresholds.bytes(self.thresholds.target) else {
            return;
        };
        while self.staying_bytes() > target {
            if !self.spill_oldest(out) {
                break;
            }
        }
    }

    /// A measurement of process memory (RSS): past `spill` × the limit,
    /// spills least recently used values until the excess over `target`
    /// is on its way out; returns a change of the pause state past `pause`.
    pub fn memory_measured(&mut self, rss: u64, out: &mut Vec<SpillOp>) -> Option<PauseChange> {
        self.spill_to_target(out);
        if let Some(spill) = self.thresholds.bytes(self.thresholds.spill) {
            if rss > spill {
                // What must go to bring the process down to target; values
                // already being written count as gone.
                let floor = self.thresholds.bytes(self.thresholds.target).unwrap_or(spill);
                let excess = rss.saturating_sub(floor);
                let mut freed = self.writing_bytes;
                while freed < excess {
                    let before = self.writing_bytes;
                    if !self.spill_oldest(out) {
                        break;
                    }
                    freed += self.writing_bytes - before;
                }
            }
        }
        let pause = self.thresholds.bytes(self.thresholds.pause)?;
        match (self.paused, rss > pause) {
            (false, true) => {
                self.paused = true;
                Some(PauseChange::Pause)
            }
            (true, false) => {
                self.paused = false;
                Some(PauseChange::Resume)
            }
            _ => None,
        }
    }

    /// Current figures.
    pub fn figures(&self) -> MemoryFigures {
        MemoryFigures {
            nkeys: self.slots.len() as u64,
            memory_bytes: self.memory_bytes,
            spilled_keys: self.spilled_keys,
            spilled_bytes: self.spilled_bytes,
            paused: self.paused,
        }
    }
}

#[cfg(test)]
mod tests;
