//! The receiving side of a peer-to-peer shuffle on one worker: the shards
//! other workers sent for the output partitions this worker owns, kept by
//! shuffle, run, output partition and input partition until the output's
//! unpack task takes them. A plain struct (no sockets, no threads): the peer
//! port stores into it, the unpack task takes from it, both through one
//! mutex ([`ShuffleReceiver`]).
//!
//! Shards stay in memory up to a bound (`limit`, the worker's
//! `shuffle_buffer_bytes`); past it each new shard is appended to a file
//! per (shuffle, output partition) in the worker's spill directory, so a
//! shuffle larger than memory completes. A run newer than the one held
//! replaces it (its shards are dropped, files deleted); shards of an older
//! run are refused, as Dask's `ShuffleRun` refuses stale run ids.

use std::collections::{BTreeMap, HashMap};
use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::PathBuf;
use std::sync::{Arc, Mutex};

/// Default bound on the shard bytes one worker keeps in memory for all the
/// shuffles it receives; past it shards go to its spill directory.
pub const DEFAULT_SHUFFLE_BUFFER_BYTES: u64 = 256 * 1024 * 1024;

/// Most of a worker's `memory_limit` its shuffle shards may take in memory
/// (when it has a limit): the unpack task, which holds a whole output
/// partition, and the stored results need the rest.
pub const SHUFFLE_BUFFER_SHARE_OF_LIMIT: f64 = 0.25;

/// The bytes of shards a worker keeps in memory: its configured bound, but
/// no more than [`SHUFFLE_BUFFER_SHARE_OF_LIMIT`] of its memory limit
/// (0: no limit).
pub fn effective_buffer_bytes(configured: u64, memory_limit: u64) -> u64 {
    if memory_limit == 0 {
        configured
    } else {
        configured.min((memory_limit as f64 * SHUFFLE_BUFFER_SHARE_OF_LIMIT) as u64)
    }
}

/// Why shards could not be stored or taken.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum BufferError {
    /// Shards of a run older than the one this worker holds.
    #[error("shuffle {shuffle_id}: run {got} is stale (this worker is on run {current}); the shuffle was restarted")]
    Stale {
        /// The shuffle.
        shuffle_id: String,
        /// The run asked for.
        got: u64,
        /// The run held.
        current: u64,
    },
    /// The unpack task's run is not the one held here (none, or another).
    #[error(
        "shuffle {shuffle_id}: this worker holds no shards of run {run_id} (it holds {held:?}); \
         the worker restarted or the shuffle was restarted"
    )]
    NoRun {
        /// The shuffle.
        shuffle_id: String,
        /// The run asked for.
        run_id: u64,
        /// The run held, if any.
        held: Option<u64>,
    },
    /// Some inputs never sent their shard of an output partition.
    #[error("shuffle {shuffle_id} run {run_id}: output partition {partition} lacks the shards of inputs {missing:?}")]
    Missing {
        /// The shuffle.
        shuffle_id: String,
        /// The run.
        run_id: u64,
        /// The output partition.
        partition: u32,
        /// Inputs without a shard (at most the first few).
        missing: Vec<u32>,
    },
    /// Reading or writing the spill file.
    #[error("shuffle spill file {path}: {message}")]
    Io {
        /// The file.
        path: String,
        /// The OS error.
        message: String,
    },
}

/// Where one shard is.
enum Held {
    Memory(Vec<u8>),
    /// Offset and length in the output partition's spill file.
    Disk(u64, u64),
}

/// The shards of one output partition, by input partition.
#[derive(Default)]
struct Output {
    shards: BTreeMap<u32, Held>,
    /// Its spill file and how long it is, once a shard went to disk.
    file: Option<(PathBuf, u64)>,
}

/// One shuffle's current run on this worker.
struct Run {
    run_id: u64,
    outputs: HashMap<u32, Output>,
}

/// Shards received by one worker, for every shuffle it takes part in.
pub struct ShuffleBuffer {
    dir: PathBuf,
    limit: u64,
    in_memory: u64,
    spilled: u64,
    runs: HashMap<String, Run>,
}

/// Shown at most in [`BufferError::Missing`].
const MISSING_SHOWN: usize = 8;

impl ShuffleBuffer {
    /// A buffer keeping at most `limit` bytes in memory, spilling to files
    /// under `dir` (created at the first spill).
    pub fn new(dir: PathBuf, limit: u64) -> ShuffleBuffer {
        ShuffleBuffer {
            dir,
            limit,
            in_memory: 0,
            spilled: 0,
            runs: HashMap::new(),
        }
    }

    /// Bytes of shards held in memory.
    pub fn memory_bytes(&self) -> u64 {
        self.in_memory
    }

    /// Bytes of shards written to disk (still held or not).
    pub fn spilled_bytes(&self) -> u64 {
        self.spilled
    }

    /// The run of `shuffle_id` held here, if any.
    pub fn run_of(&self, shuffle_id: &str) -> Option<u64> {
        self.runs.get(shuffle_id).map(|r| r.run_id)
    }

    /// Stores the shards of input `input` (`(output partition, bytes)`).
    /// A newer run replaces the held one; an older one is refused.
    pub fn receive(
        &mut self,
        shuffle_id: &str,
        run_id: u64,
        input: u32,
        shards: Vec<(u32, Vec<u8>)>,
    ) -> Result<(), BufferError> {
        match self.runs.get(shuffle_id).map(|r| r.run_id) {
            Some(current) if current > run_id => {
                return Err(BufferError::Stale {
                    shuffle_id: shuffle_id.to_string(),
                    got: run_id,
                    current,
                })
            }
            Some(current) if current == run_id => {}
            _ => {
                self.forget(shuffle_id);
                let run = Run {
                    run_id,
                    outputs: HashMap::new(),
                };
                self.runs.insert(shuffle_id.to_string(), run);
            }
        }
        for (partition, bytes) in shards {
            let len = bytes.len() as u64;
            let held = if self.in_memory + len <= self.limit {
                self.in_memory += len;
                Held::Memory(bytes)
            } else {
                let path = self.dir.join(format!("{shuffle_id}-{run_id}-{partition}.shards"));
                let output = self.output_mut(shuffle_id, partition);
                let at = append(&path, output.file.as_ref().map_or(0, |f| f.1), &bytes)?;
                output.file = Some((path, at + len));
                self.spilled += len;
                Held::Disk(at, len)
            };
            let old = self.output_mut(shuffle_id, partition).shards.insert(input, held);
            if let Some(Held::Memory(b)) = old {
                self.in_memory -= b.len() as u64;
            }
        }
        Ok(())
    }

    fn output_mut(&mut self, shuffle_id: &str, partition: u32) -> &mut Output {
        self.runs
            .get_mut(shuffle_id)
            .expect("the run was created before its shards are stored")
            .outputs
            .entry(partition)
            .or_default()
    }

    /// Takes the shards of output `partition` of run `run_id`, one per input
    /// `0..ninputs` in input order, and forgets them (their spill file is
    /// deleted). Every input must have sent one.
    pub fn take(
        &mut self,
        shuffle_id: &str,
        run_id: u64,
        partition: u32,
        ninputs: u32,
    ) -> Result<Vec<Vec<u8>>, BufferError> {
        let held = self.run_of(shuffle_id);
        if held != Some(run_id) {
            return Err(BufferError::NoRun {
                shuffle_id: shuffle_id.to_string(),
                run_id,
                held,
            });
        }
        let run = self.runs.get_mut(shuffle_id).expect("checked above");
        let output = run.outputs.get(&partition);
        let missing: Vec<u32> = (0..ninputs)
            .filter(|i| output.is_none_or(|o| !o.shards.contains_key(i)))
            .take(MISSING_SHOWN)
            .collect();
        if !missing.is_empty() {
            return Err(BufferError::Missing {
                shuffle_id: shuffle_id.to_string(),
                run_id,
                partition,
                missing,
            });
        }
        let output = run.outputs.remove(&partition).expect("checked above");
        let mut file = match &output.file {
            Some((path, _)) => Some((File::open(path).map_err(|e| io_error(path, e))?, path.clone())),
            None => None,
        };
        let mut out = Vec::with_capacity(ninputs as usize);
        for (input, held) in output.shards {
            if input >= ninputs {
                continue; // an input past the count given: not part of this shuffle's graph
            }
            out.push(match held {
                Held::Memory(b) => {
                    self.in_memory -= b.len() as u64;
                    b
                }
                Held::Disk(at, len) => {
                    let (f, path) = file.as_mut().expect("a disk shard has its file");
                    read_at(f, path, at, len)?
                }
            });
        }
        if let Some((_, path)) = file {
            let _ = std::fs::remove_file(path);
        }
        Ok(out)
    }

    /// Writes every shard held in memory to its output's spill file and
    /// returns the bytes written: called while the worker is past its
    /// memory pause threshold, so shards waiting for their unpack task
    /// cannot keep it paused (the unpacks cannot start before every
    /// transfer ran, and no transfer starts on a paused worker).
    pub fn spill_memory(&mut self) -> Result<u64, BufferError> {
        let mut written = 0;
        for (shuffle_id, run) in &mut self.runs {
            for (partition, output) in &mut run.outputs {
                for held in output.shards.values_mut() {
                    let Held::Memory(bytes) = held else { continue };
                    let path = self.dir.join(format!("{shuffle_id}-{}-{partition}.shards", run.run_id));
                    let at = append(&path, output.file.as_ref().map_or(0, |f| f.1), bytes)?;
                    let len = bytes.len() as u64;
                    output.file = Some((path, at + len));
                    *held = Held::Disk(at, len);
                    written += len;
                    self.in_memory -= len;
                    self.spilled += len;
                }
            }
        }
        Ok(written)
    }

    /// Drops everything held for `shuffle_id` (its spill files deleted).
    pub fn forget(&mut self, shuffle_id: &str) {
        let Some(run) = self.runs.remove(shuffle_id) else {
            return;
        };
        for output in run.outputs.into_values() {
            for held in output.shards.into_values() {
                if let Held::Memory(b) = held {
                    self.in_memory -= b.len() as u64;
                }
            }
            if let Some((path, _)) = output.file {
                let _ = std::fs::remove_file(path);
            }
        }
    }
}

impl Drop for ShuffleBuffer {
    fn drop(&mut self) {
        let ids: Vec<String> = self.runs.keys().cloned().collect();
        for id in ids {
            self.forget(&id);
        }
    }
}

fn io_error(path: &std::path::Path, e: std::io::Error) -> BufferError {
    BufferError::Io {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// Appends `bytes` at offset `at` (the file's length) of `path`, creating
/// the file and its directory if needed; returns `at`.
fn append(path: &std::path::Path, at: u64, bytes: &[u8]) -> Result<u64, BufferError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(|e| io_error(dir, e))?;
    }
    let mut f = OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|e| io_error(path, e))?;
    f.write_all(bytes).map_err(|e| io_error(path, e))?;
    Ok(at)
}

fn read_at(f: &mut File, path: &std::path::Path, at: u64, len: u64) -> Result<Vec<u8>, BufferError> {
    f.seek(SeekFrom::Start(at)).map_err(|e| io_error(path, e))?;
    let mut b = vec![0u8; len as usize];
    f.read_exact(&mut b).map_err(|e| io_error(path, e))?;
    Ok(b)
}

/// A worker's [`ShuffleBuffer`], shared by its peer port (storing) and its
/// task threads (unpack tasks taking).
#[derive(Clone)]
pub struct ShuffleReceiver(Arc<Mutex<ShuffleBuffer>>);

impl ShuffleReceiver {
    /// A receiver over a new buffer.
    pub fn new(dir: PathBuf, limit: u64) -> ShuffleReceiver {
        ShuffleReceiver(Arc::new(Mutex::new(ShuffleBuffer::new(dir, limit))))
    }

    /// Runs `f` on the buffer (a poisoned lock is taken over: the buffer's
    /// counts are updated before any step that can panic).
    pub fn with<R>(&self, f: impl FnOnce(&mut ShuffleBuffer) -> R) -> R {
        f(&mut self.0.lock().unwrap_or_else(|e| e.into_inner()))
    }
}

#[cfg(test)]
#[path = "buffer_tests.rs"]
mod tests;
