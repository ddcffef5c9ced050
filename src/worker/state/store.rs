//! Values entering the data store (computed, fetched or sent by the
//! scheduler), and the waiting tasks they wake.

use std::cmp::Reverse;

use bytes::Bytes;

use super::{TaskEntry, WorkerEffect, WorkerState, WorkerTaskState};
use crate::wire::messages::Key;

impl WorkerState {
    pub(super) fn store_data(&mut self, key: Key, data: Bytes, out: &mut Vec<WorkerEffect>) {
        // Confirmed with `AddKeys`: the scheduler answers the scatter once
        // the data is here (scheduler/scatter_acks.rs).
        let nbytes = data.len() as u64;
        self.add_keys.push((key.clone(), nbytes));
        if let Some(e) = self.tasks.get_mut(&key) {
            e.held = true;
            self.put_in_memory(&key, data, out);
            return;
        }
        let mut e = TaskEntry::new(WorkerTaskState::Memory);
        e.held = true;
        e.nbytes = data.len() as u64;
        self.mem_keys += 1;
        self.mem_bytes += e.nbytes;
        self.unqueue_delete(&key);
        self.tasks.insert(key.clone(), e);
        out.push(WorkerEffect::StorePut { key, data });
    }

    /// Moves an existing entry to memory from whatever state it is in,
    /// storing `data` and waking its dependents.
    pub(super) fn put_in_memory(&mut self, key: &Key, data: Bytes, out: &mut Vec<WorkerEffect>) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        let prev = e.state;
        let nbytes = data.len() as u64;
        let mut released = Vec::new();
        match prev {
            WorkerTaskState::Memory => self.mem_bytes -= e.nbytes,
            WorkerTaskState::Fetch => self.fetch_queue.remove_all(&e.who_has, e.fetch_seq),
            WorkerTaskState::Waiting | WorkerTaskState::Ready => {
                if prev == WorkerTaskState::Ready {
                    self.ready_count -= 1;
                }
                // The value replaces the run, so its inputs are not needed.
                e.run = None;
                released = std::mem::take(&mut e.dependencies);
            }
            // A running thread keeps its dependencies until it finishes.
            _ => {}
        }
        if prev != WorkerTaskState::Memory {
            self.mem_keys += 1;
        }
        self.mem_bytes += nbytes;
        e.state = WorkerTaskState::Memory;
        e.nbytes = nbytes;
        e.who_has = Vec::new();
        e.deferred = None;
        e.flight_id = 0;
        e.waiting_on = 0;
        // Checked here, so a result nothing local waits for (the common
        // case) costs no second lookup of its entry.
        let wakes = prev != WorkerTaskState::Memory && !e.dependents.is_empty();
        self.unqueue_delete(key);
        out.push(WorkerEffect::StorePut { key: key.clone(), data });
        if wakes {
            self.notify_dependents(key);
        }
        self.release_dependencies(key, released);
    }

    /// A delete queued earlier in this event must not follow a new put of
    /// the same key out of the door.
    pub(super) fn unqueue_delete(&mut self, key: &Key) {
        if !self.deletes.is_empty() {
            self.deletes.retain(|k| k != key);
        }
    }

    pub(super) fn notify_dependents(&mut self, key: &Key) {
        let Some(e) = self.tasks.get_mut(key) else {
            return;
        };
        if e.dependents.is_empty() {
            return;
        }
        let dependents = std::mem::take(&mut e.dependents);
        for d in &dependents {
            if let Some(de) = self.tasks.get_mut(d) {
                de.waiting_on = de.waiting_on.saturating_sub(1);
                if de.waiting_on == 0 && de.state == WorkerTaskState::Waiting {
                    de.state = WorkerTaskState::Ready;
                    self.ready.push((de.priority, Reverse(de.sequence), d.clone()));
                    self.ready_count += 1;
                }
            }
        }
        if let Some(e) = self.tasks.get_mut(key) {
            e.dependents = dependents;
        }
    }
}
