//! The scheduler's side of peer-to-peer shuffles (Dask's
//! `ShuffleSchedulerPlugin`), as plain bookkeeping: each shuffle's current
//! run (its id and the owner of every output partition), created when the
//! first transfer task asks, and ended when a worker owning one of its
//! outputs leaves, so the next ask creates a new run (a restart). The
//! scheduler glue (`scheduler::shuffle`) pins the unpack tasks to their
//! owners and resets the shuffle's tasks on a restart.

use std::collections::HashMap;

use crate::wire::messages::ShuffleRunSpec;

/// Why a run cannot be created or joined.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum RunError {
    /// No worker is running.
    #[error("shuffle {0}: no running worker to own its output partitions")]
    NoWorkers(String),
    /// A shuffle of zero outputs or inputs.
    #[error("shuffle {0}: a shuffle needs at least one input and one output partition")]
    Empty(String),
    /// The same id asked with other counts.
    #[error("shuffle {id}: asked with {asked:?} (inputs, outputs), but its run has {has:?}")]
    Mismatch {
        /// The shuffle.
        id: String,
        /// Counts asked.
        asked: (u32, u32),
        /// Counts of the run.
        has: (u32, u32),
    },
}

/// A running shuffle, with its owners as the scheduler's worker handles.
#[derive(Debug)]
struct Active<W> {
    spec: ShuffleRunSpec,
    owners: Vec<W>,
}

/// Every shuffle's current run.
#[derive(Debug)]
pub struct ShuffleRuns<W> {
    next_run: u64,
    active: HashMap<String, Active<W>>,
}

impl<W> Default for ShuffleRuns<W> {
    fn default() -> Self {
        ShuffleRuns {
            next_run: 1,
            active: HashMap::new(),
        }
    }
}

/// The owner of output `j` of `n` among `k` workers: contiguous ranges
/// (as Dask's `_calculate_worker_for`), so neighbouring outputs of a
/// sort land together.
pub fn owner_index(j: u32, n: u32, k: usize) -> usize {
    (j as u64 * k as u64 / n.max(1) as u64) as usize
}

impl<W: Clone + PartialEq> ShuffleRuns<W> {
    /// The current run of `id`, created over `workers` (`(handle, peer
    /// address)`, any order: they are sorted by address so the assignment
    /// is deterministic) if there is none. The flag says whether it is new.
    pub fn get_or_create(
        &mut self,
        id: &str,
        ninputs: u32,
        npartitions: u32,
        workers: &[(W, String)],
    ) -> Result<(&ShuffleRunSpec, bool), RunError> {
        if ninputs == 0 || npartitions == 0 {
            return Err(RunError::Empty(id.to_string()));
        }
        let created = !self.active.contains_key(id);
        if created {
            if workers.is_empty() {
                return Err(RunError::NoWorkers(id.to_string()));
            }
            let mut sorted: Vec<&(W, String)> = workers.iter().collect();
            sorted.sort_by(|a, b| a.1.cmp(&b.1));
            let picked: Vec<&(W, String)> = (0..npartitions)
                .map(|j| sorted[owner_index(j, npartitions, sorted.len())])
                .collect();
            let spec = ShuffleRunSpec {
                shuffle_id: id.to_string(),
                run_id: self.next_run,
                ninputs,
                owners: picked.iter().map(|w| w.1.clone()).collect(),
            };
            self.next_run += 1;
            let owners = picked.iter().map(|w| w.0.clone()).collect();
            self.active.insert(id.to_string(), Active { spec, owners });
        }
        let a = &self.active[id];
        let has = (a.spec.ninputs, a.spec.owners.len() as u32);
        if has != (ninputs, npartitions) {
            return Err(RunError::Mismatch {
                id: id.to_string(),
                asked: (ninputs, npartitions),
                has,
            });
        }
        Ok((&a.spec, created))
    }

    /// The owners (handles) of `id`'s current run.
    pub fn owners(&self, id: &str) -> Option<&[W]> {
        self.active.get(id).map(|a| &a.owners[..])
    }

    /// Worker `w` left: every run it owned an output of ends (the next
    /// [`get_or_create`](Self::get_or_create) starts a new run). Returns
    /// the ended runs, for the caller to reset their tasks.
    pub fn worker_removed(&mut self, w: &W) -> Vec<ShuffleRunSpec> {
        let ended: Vec<String> = self
            .active
            .iter()
            .filter(|(_, a)| a.owners.contains(w))
            .map(|(id, _)| id.clone())
            .collect();
        let mut out: Vec<ShuffleRunSpec> = ended
            .into_iter()
            .filter_map(|id| self.active.remove(&id))
            .map(|a| a.spec)
            .collect();
        out.sort_by(|a, b| a.shuffle_id.cmp(&b.shuffle_id));
        out
    }

    /// Number of shuffles with a current run.
    pub fn len(&self) -> usize {
        self.active.len()
    }

    /// Whether no shuffle has a current run.
    pub fn is_empty(&self) -> bool {
        self.active.is_empty()
    }
}

#[cfg(test)]
#[path = "runs_tests.rs"]
mod tests;
