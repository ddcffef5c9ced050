//! What the scheduler journals, without I/O: the records the state machine
//! emits as it changes ([`JournalRecord`]), the live state they add up to
//! ([`JournalImage`], rebuilt by a plain fold over the records), and the
//! snapshot of the live state that compaction writes in their place.
//!
//! The actor layer (`actors::journal`) frames and appends the records;
//! `recovery` turns an image back into a running state. What is journaled
//! and what is not: docs/resilience.md, "Scheduler restart".

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::coordination::HOLDER;
use super::ids::TaskId;
use super::state::SchedulerState;
use super::types::{ClientId, TaskState};
use crate::util::FxMap;
use crate::wire::messages::{Key, TaskSpec};

/// One change of the scheduler's durable state. The actor appends the
/// records of each batch of events as one journal entry.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub enum JournalRecord {
    /// Tasks submitted (`UpdateGraph`); a key already known is ignored on
    /// replay, as the scheduler ignored it.
    Submit {
        /// The tasks, as the client sent them.
        tasks: Vec<TaskSpec>,
    },
    /// A task's result is in memory on the worker named `worker`.
    Finished {
        /// The task.
        key: Key,
        /// The worker's name (its address unless named).
        worker: String,
        /// Size of the serialized result.
        nbytes: u64,
    },
    /// A task's result left memory (freed, lost with its worker, or the
    /// task was reset to run again).
    Released {
        /// The task.
        key: Key,
    },
    /// A task was forgotten.
    Forgotten {
        /// The task.
        key: Key,
    },
    /// A client session wants a key (holds a future for it).
    Want {
        /// The scheduler's id of the session.
        client: u64,
        /// The key.
        key: Key,
    },
    /// A client session released a key.
    Unwant {
        /// The session.
        client: u64,
        /// The key.
        key: Key,
    },
    /// A client session ended: it wants nothing any more.
    ClientGone {
        /// The session.
        client: u64,
    },
}

/// The durable state the records add up to.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct JournalImage {
    /// Live tasks by key, with their submission number (graph order).
    pub tasks: FxMap<Key, (u64, TaskSpec)>,
    /// Results in memory: key → (worker name, bytes).
    pub memory: FxMap<Key, (String, u64)>,
    /// Keys each client session wants.
    pub wants: BTreeMap<u64, Vec<Key>>,
    /// The highest client or worker session id seen, so that a restarted
    /// scheduler hands out ids above it.
    pub max_session_id: u64,
    next_seq: u64,
    /// Wants as sets while folding (`wants` is built by [`Self::finish`]).
    want_sets: BTreeMap<u64, indexmap::IndexSet<Key>>,
}

impl JournalImage {
    /// Folds `records`, in journal order, into an image.
    pub fn from_records(records: impl IntoIterator<Item = JournalRecord>) -> Self {
        let mut image = JournalImage::default();
        for r in records {
            image.apply(r);
        }
        image.finish();
        image
    }

    /// Applies one record.
    pub fn apply(&mut self, record: JournalRecord) {
        match record {
            JournalRecord::Submit { tasks } => {
                for spec in tasks {
                    if !self.tasks.contains_key(&spec.key) {
                        self.next_seq += 1;
                        self.tasks.insert(spec.key.clone(), (self.next_seq, spec));
                    }
                }
            }
            JournalRecord::Finished { key, worker, nbytes } => {
                if self.tasks.contains_key(&key) {
                    self.memory.insert(key, (worker, nbytes));
                }
            }
            JournalRecord::Released { key } => {
                self.memory.remove(&key);
            }
            JournalRecord::Forgotten { key } => {
                self.memory.remove(&key);
                self.tasks.remove(&key);
            }
            JournalRecord::Want { client, key } => {
                self.max_session_id = self.max_session_id.max(client);
                self.want_sets.entry(client).or_default().insert(key);
            }
            JournalRecord::Unwant { client, key } => {
                if let Some(set) = self.want_sets.get_mut(&client) {
                    set.swap_remove(&key);
                }
            }
            JournalRecord::ClientGone { client } => {
                self.want_sets.remove(&client);
            }
        }
    }

    /// Ends the fold: wants of keys no longer known are dropped.
    pub fn finish(&mut self) {
        let sets = std::mem::take(&mut self.want_sets);
        self.wants = sets
            .into_iter()
            .map(|(c, set)| {
                (
                    c,
                    set.into_iter()
                        .filter(|k| self.tasks.contains_key(k))
                        .collect::<Vec<_>>(),
                )
            })
            .filter(|(_, keys)| !keys.is_empty())
            .collect();
    }

    /// Whether nothing is to be restored.
    pub fn is_empty(&self) -> bool {
        self.tasks.is_empty()
    }

    /// The records that rebuild this image (compaction of an image not
    /// loaded into a state yet).
    pub fn to_records(&self) -> Vec<JournalRecord> {
        let mut specs: Vec<&(u64, TaskSpec)> = self.tasks.values().collect();
        specs.sort_by_key(|(seq, _)| *seq);
        let mut records = vec![JournalRecord::Submit {
            tasks: specs.into_iter().map(|(_, s)| s.clone()).collect(),
        }];
        let mut memory: Vec<_> = self.memory.iter().collect();
        memory.sort();
        records.extend(
            memory
                .into_iter()
                .map(|(key, (worker, nbytes))| JournalRecord::Finished {
                    key: key.clone(),
                    worker: worker.clone(),
                    nbytes: *nbytes,
                }),
        );
        for (&client, keys) in &self.wants {
            records.extend(keys.iter().map(|key| JournalRecord::Want {
                client,
                key: key.clone(),
            }));
        }
        records
    }
}

impl SchedulerState {
    /// Starts emitting [`JournalRecord`]s (taken with
    /// [`Self::take_journal_records`] after each batch of events).
    pub fn enable_journal(&mut self) {
        self.journal.get_or_insert_with(Vec::new);
    }

    /// The records emitted since the last call.
    pub fn take_journal_records(&mut self) -> Vec<JournalRecord> {
        self.journal.as_mut().map(std::mem::take).unwrap_or_default()
    }

    /// Appends a record when journaling (a branch otherwise).
    pub(super) fn journal_push(&mut self, record: impl FnOnce() -> JournalRecord) {
        if let Some(j) = self.journal.as_mut() {
            j.push(record());
        }
    }

    /// Journals that client `c` wants / no longer wants task `t`. The
    /// coordination primitives' holder is not journaled (nor are the
    /// primitives).
    pub(super) fn journal_want(&mut self, c: ClientId, t: TaskId, wanted: bool) {
        if self.journal.is_none() || c == HOLDER {
            return;
        }
        let key = self.slot(t).key.clone();
        self.journal_push(|| match wanted {
            true => JournalRecord::Want { client: c.0, key },
            false => JournalRecord::Unwant { client: c.0, key },
        });
    }

    /// The live state as records, for compaction: every task not forgotten
    /// (scattered data excepted: it cannot be recomputed, and is not
    /// journaled), where each result in memory is, and what each client
    /// session wants.
    pub fn journal_snapshot(&self) -> Vec<JournalRecord> {
        if let Some(r) = &self.recovery {
            // Nothing was loaded yet: the image is the state.
            return r.image.to_records();
        }
        let mut live: Vec<&super::tasks::TaskSlot> = self
            .keys
            .ids()
            .map(|t| self.slot(super::ids::TaskId(t)))
            .filter(|s| !s.scattered)
            .collect();
        live.sort_by_key(|s| s.sequence);
        let tasks = live
            .iter()
            .map(|s| {
                let extra = s.extra.as_deref();
                TaskSpec {
                    key: s.key.clone(),
                    function: self.fns[s.func as usize].name.clone(),
                    args: s.args.to_vec(),
                    priority: s.priority,
                    workers: extra.map(|e| e.restrictions.clone()).unwrap_or_default(),
                    allow_other_workers: extra.is_some_and(|e| e.allow_other_workers),
                    retries: s.retries,
                    resources: extra.map(|e| e.resources.clone()).unwrap_or_default(),
                }
            })
            .collect();
        let mut records = vec![JournalRecord::Submit { tasks }];
        for s in &live {
            if s.state == TaskState::Memory {
                if let Some(&w) = s.who_has.first() {
                    records.push(JournalRecord::Finished {
                        key: s.key.clone(),
                        worker: self.worker(w).name.clone(),
                        nbytes: s.nbytes,
                    });
                }
            }
        }
        let mut clients: Vec<ClientId> = self.clients.keys().copied().filter(|&c| c != HOLDER).collect();
        clients.sort();
        for c in clients {
            let mut keys: Vec<&Key> = (self.wanted_by_client(c).into_iter())
                .map(|t| &self.slot(t).key)
                .filter(|k| !k.is_empty())
                .collect();
            keys.sort();
            records.extend(keys.into_iter().map(|key| JournalRecord::Want {
                client: c.0,
                key: key.clone(),
            }));
        }
        records
    }
}

impl SchedulerState {
    /// Stops emitting journal records (the journal could not be written).
    pub fn disable_journal(&mut self) {
        self.journal = None;
    }

    /// [`super::SchedulerConfig::journal_worker_wait_s`], for the log.
    pub fn config_journal_worker_wait_s(&self) -> f64 {
        self.config.journal_worker_wait_s
    }
}
