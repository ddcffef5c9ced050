//! Work stealing, worker side: giving up a task the scheduler moves away.

use super::{WorkerState, WorkerTaskState};

impl WorkerState {
    /// A `StealRequest`: forgets `key` if it is a task that has not been
    /// handed to a thread (waiting or ready), and says whether it did. A
    /// task on a thread, done, or unknown is kept (false): the scheduler
    /// then leaves it here, so it never runs twice.
    pub(super) fn give_up(&mut self, key: &str) -> bool {
        let Some(e) = self.tasks.get_mut(key) else {
            return false;
        };
        if e.on_thread || !matches!(e.state, WorkerTaskState::Waiting | WorkerTaskState::Ready) || !e.held {
            return false;
        }
        if !e.dependents.is_empty() {
            // A local task reads its result: it stays until that one goes.
            return false;
        }
        e.held = false;
        self.release_unneeded(vec![key.to_owned()]);
        true
    }
}
