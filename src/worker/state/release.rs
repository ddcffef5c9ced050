//! Forgetting keys: `FreeKeys`, and the cascade to dependencies nobody
//! needs any more (the lifetime rule in the parent module's docs).

use super::{WorkerEffect, WorkerState, WorkerTaskState};
use crate::wire::messages::Key;

impl WorkerState {
    pub(super) fn free_keys(&mut self, keys: Vec<Key>) {
        let mut stack = Vec::with_capacity(keys.len());
        for key in keys {
            if let Some(e) = self.tasks.get_mut(&key) {
                e.held = false;
                stack.push(key);
            }
        }
        // The worklist pops from the end; this keeps deletes in message order.
        stack.reverse();
        self.release_unneeded(stack);
    }

    /// `dependent` no longer reads `deps`; forget those nobody needs now.
    pub(super) fn release_dependencies(&mut self, dependent: &Key, mut deps: Vec<Key>) {
        if deps.is_empty() {
            return;
        }
        deps.reverse();
        for d in &deps {
            if let Some(de) = self.tasks.get_mut(d) {
                de.dependents.remove(dependent);
            }
        }
        self.release_unneeded(deps);
    }

    /// Forgets each key of `stack` that is neither held nor needed locally,
    /// cascading to the dependencies of forgotten tasks. A worklist rather
    /// than recursion: a long local chain must not overflow the stack.
    pub(super) fn release_unneeded(&mut self, mut stack: Vec<Key>) {
        while let Some(k) = stack.pop() {
            let Some(e) = self.tasks.get_mut(&k) else {
                continue;
            };
            if e.held || !e.dependents.is_empty() {
                continue;
            }
            if e.on_thread {
                if e.state == WorkerTaskState::Memory {
                    self.mem_keys -= 1;
                    self.mem_bytes -= e.nbytes;
                    self.deletes.push(k.clone());
                }
                e.state = WorkerTaskState::Cancelled;
                e.cancelled_from = WorkerTaskState::Executing;
                continue;
            }
            match e.state {
                WorkerTaskState::Memory => {
                    self.mem_keys -= 1;
                    self.mem_bytes -= e.nbytes;
                    self.tasks.remove(&k);
                    self.deletes.push(k);
                }
                WorkerTaskState::Waiting | WorkerTaskState::Ready => {
                    if e.state == WorkerTaskState::Ready {
                        self.ready_count -= 1;
                    }
                    let deps = std::mem::take(&mut e.dependencies);
                    self.tasks.remove(&k);
                    for d in deps {
                        if let Some(de) = self.tasks.get_mut(&d) {
                            de.dependents.remove(&k);
                        }
                        stack.push(d);
                    }
                }
                WorkerTaskState::Fetch => {
                    self.fetch_queue.remove_all(&e.who_has, e.fetch_seq);
                    self.tasks.remove(&k);
                }
                WorkerTaskState::Error => {
                    self.tasks.remove(&k);
                }
                WorkerTaskState::Flight => {
                    e.state = WorkerTaskState::Cancelled;
                    e.cancelled_from = WorkerTaskState::Flight;
                    e.deferred = None;
                }
                // Executing implies on_thread, handled above.
                WorkerTaskState::Executing | WorkerTaskState::Cancelled => {}
            }
        }
    }
}

impl WorkerState {
    /// The scheduler connection was lost and the worker will register
    /// again: results in memory are kept (they are announced in the new
    /// registration, [`Self::held_keys`]); everything else is dropped, as
    /// the scheduler that answers will assign its tasks afresh. A task on a
    /// thread or a fetch under way cannot be recalled: it waits in
    /// `cancelled` for its outcome, which is then discarded.
    pub fn scheduler_lost(&mut self, out: &mut Vec<WorkerEffect>) {
        let mut lost: Vec<Key> = self
            .tasks
            .iter()
            .filter(|(_, e)| e.state != WorkerTaskState::Memory)
            .map(|(k, _)| k.clone())
            .collect();
        lost.sort();
        self.free_keys(lost);
        self.flush(out);
    }

    /// Keys in memory and their sizes, for a registration.
    pub fn held_keys(&self) -> Vec<(Key, u64)> {
        let mut keys: Vec<(Key, u64)> = self
            .tasks
            .iter()
            .filter(|(_, e)| e.state == WorkerTaskState::Memory)
            .map(|(k, e)| (k.clone(), e.nbytes))
            .collect();
        keys.sort();
        keys
    }
}
