//! What the scheduler records for people to look at (the dashboard,
//! `Client::get_task_stream`, performance reports): the task stream and the
//! event log, each a ring of the last records, so their memory is bounded
//! however long the scheduler runs. Recording is a push of a small record;
//! names and times are turned into wire records only when someone reads.

use std::collections::VecDeque;
use std::time::{Instant, SystemTime, UNIX_EPOCH};

use super::ids::{FnId, WIdx};
use super::types::TaskState;
use crate::wire::messages::{FunctionProgress, Key, SchedulerEvent, SpillEvent, StreamKind, TaskStreamRecord};

/// Task-stream records kept (Dask keeps 100,000 too): about 100 bytes
/// each with a short key, so about 10 MB at most.
pub const TASK_STREAM_CAPACITY: usize = 100_000;
/// Event-log lines kept.
pub const EVENT_LOG_CAPACITY: usize = 1_000;
/// Most records one read returns, so one answer stays a modest frame.
pub const MAX_RECORDS_PER_READ: usize = 20_000;

/// The scheduler's clock for records: µs since the Unix epoch, from a
/// monotonic clock anchored once (the wall clock may step).
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    base: Instant,
    base_unix_us: u64,
}

impl Clock {
    fn new() -> Clock {
        let base_unix_us = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_micros() as u64);
        Clock {
            base: Instant::now(),
            base_unix_us,
        }
    }

    /// Now, µs since the Unix epoch.
    pub fn now_us(&self) -> u64 {
        self.base_unix_us + self.base.elapsed().as_micros() as u64
    }
}

/// One recorded bar, with ids instead of names.
#[derive(Debug)]
struct Entry {
    key: Key,
    /// None: a transfer or spill (`kind` says which).
    func: Option<FnId>,
    kind: StreamKind,
    worker: WIdx,
    thread: u32,
    start_us: u64,
    stop_us: u64,
}

/// The task stream and the event log.
#[derive(Debug)]
pub struct Diagnostics {
    clock: Clock,
    stream: VecDeque<Entry>,
    /// Sequence number of `stream[0]`.
    stream_first: u64,
    /// Worker names by index, kept after a worker leaves (its bars stay).
    worker_names: Vec<String>,
    events: VecDeque<SchedulerEvent>,
    next_event: u64,
}

impl Default for Diagnostics {
    fn default() -> Self {
        Diagnostics {
            clock: Clock::new(),
            stream: VecDeque::new(),
            stream_first: 0,
            worker_names: Vec::new(),
            events: VecDeque::new(),
            next_event: 0,
        }
    }
}

impl Diagnostics {
    /// The clock records are stamped with.
    pub fn clock(&self) -> Clock {
        self.clock
    }

    /// Remembers worker `w`'s name for its bars.
    pub(super) fn name_worker(&mut self, w: WIdx, name: &str) {
        let i = w.0 as usize;
        if self.worker_names.len() <= i {
            self.worker_names.resize(i + 1, String::new());
        }
        self.worker_names[i] = name.to_string();
    }

    fn push(&mut self, e: Entry) {
        if self.stream.len() == TASK_STREAM_CAPACITY {
            self.stream.pop_front();
            self.stream_first += 1;
        }
        self.stream.push_back(e);
    }

    /// A task of `func` finished on `w`'s `thread` after `duration_us`.
    pub(super) fn task_ran(&mut self, key: &str, func: FnId, w: WIdx, thread: u32, duration_us: u64) {
        let stop_us = self.clock.now_us();
        self.push(Entry {
            key: key.to_string(),
            func: Some(func),
            kind: StreamKind::Compute,
            worker: w,
            thread,
            start_us: stop_us.saturating_sub(duration_us),
            stop_us,
        });
    }

    /// `w` fetched data from a peer for `duration_us`.
    pub(super) fn transfer(&mut self, w: WIdx, duration_us: u64) {
        let stop_us = self.clock.now_us();
        self.push(Entry {
            key: Key::new(),
            func: None,
            kind: StreamKind::Transfer,
            worker: w,
            thread: 0,
            start_us: stop_us.saturating_sub(duration_us),
            stop_us,
        });
    }

    /// `w` wrote (or read back) spilled results, as its heartbeat
    /// received at `now_us` reports; on the worker's first lane.
    pub(super) fn spill(&mut self, w: WIdx, s: &SpillEvent, now_us: u64) {
        let stop_us = now_us.saturating_sub(s.ago_us);
        self.push(Entry {
            key: Key::new(),
            func: None,
            kind: if s.unspill {
                StreamKind::Unspill
            } else {
                StreamKind::Spill
            },
            worker: w,
            thread: 0,
            start_us: stop_us.saturating_sub(s.duration_us),
            stop_us,
        });
    }

    /// Adds a line to the event log.
    pub(super) fn event(&mut self, kind: &str, text: String) {
        if self.events.len() == EVENT_LOG_CAPACITY {
            self.events.pop_front();
        }
        self.events.push_back(SchedulerEvent {
            seq: self.next_event,
            time_us: self.clock.now_us(),
            kind: kind.to_string(),
            text,
        });
        self.next_event += 1;
    }

    /// The sequence number the next record will have.
    pub(super) fn next_seq(&self) -> u64 {
        self.stream_first + self.stream.len() as u64
    }

    /// The stream's records from sequence number `since` on (the oldest
    /// kept if `since` fell off the ring), at most `max`; `fn_name` names a
    /// function id.
    pub(super) fn records<'a>(
        &self,
        since: u64,
        max: usize,
        fn_name: impl Fn(FnId) -> &'a str,
    ) -> Vec<TaskStreamRecord> {
        let skip = since.saturating_sub(self.stream_first) as usize;
        self.stream
            .iter()
            .enumerate()
            .skip(skip)
            .take(max)
            .map(|(i, e)| TaskStreamRecord {
                seq: self.stream_first + i as u64,
                key: e.key.clone(),
                function: match (e.func, e.kind) {
                    (Some(f), _) => fn_name(f),
                    (None, StreamKind::Spill) => "spill",
                    (None, StreamKind::Unspill) => "unspill",
                    (None, _) => "transfer",
                }
                .to_string(),
                worker: self.worker_names.get(e.worker.0 as usize).cloned().unwrap_or_default(),
                thread: e.thread,
                start_us: e.start_us,
                stop_us: e.stop_us,
                kind: e.kind,
            })
            .collect()
    }

    /// The event log's lines from sequence number `since` on.
    pub(super) fn events(&self, since: u64) -> Vec<SchedulerEvent> {
        self.events.iter().filter(|e| e.seq >= since).cloned().collect()
    }
}

impl super::SchedulerState {
    /// Task-stream records from sequence number `since` on (see
    /// [`Diagnostics`]); read at the reader's pace, off the hot path.
    pub fn task_stream(&self, since: u64) -> Vec<TaskStreamRecord> {
        self.diag
            .records(since, MAX_RECORDS_PER_READ, |f| self.fns[f as usize].name.as_str())
    }

    /// The sequence number the next task-stream record will get.
    pub fn task_stream_next(&self) -> u64 {
        self.diag.next_seq()
    }

    /// At most the `max` newest task-stream records from `since` on (a
    /// live view skips what it could not draw anyway).
    pub fn task_stream_newest(&self, since: u64, max: usize) -> Vec<TaskStreamRecord> {
        let since = since.max(self.diag.next_seq().saturating_sub(max as u64));
        self.diag.records(since, max, |f| self.fns[f as usize].name.as_str())
    }

    /// Live tasks by state for each function that has any, by name.
    pub fn function_progress(&self) -> Vec<FunctionProgress> {
        let mut v: Vec<FunctionProgress> = self
            .fns
            .iter()
            .filter(|f| f.counts.iter().any(|&n| n > 0))
            .map(|f| {
                let c = |s: TaskState| f.counts[s.index()];
                FunctionProgress {
                    function: f.name.clone(),
                    released: c(TaskState::Released),
                    waiting: c(TaskState::Waiting),
                    no_worker: c(TaskState::NoWorker),
                    queued: c(TaskState::Queued),
                    processing: c(TaskState::Processing),
                    memory: c(TaskState::Memory),
                    erred: c(TaskState::Erred),
                }
            })
            .collect();
        v.sort_by(|a, b| a.function.cmp(&b.function));
        v
    }

    /// The clock the records are stamped with.
    pub fn diagnostics_clock(&self) -> Clock {
        self.diag.clock()
    }

    /// Event-log lines from sequence number `since` on.
    pub fn events(&self, since: u64) -> Vec<SchedulerEvent> {
        self.diag.events(since)
    }
}
