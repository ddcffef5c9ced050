//! What the distributed estimators share: the data held on the workers
//! ([`Rows`], an array's row blocks computed once and kept there), the
//! model scattered by key once per step ([`broadcast`]),
//! and partial results summed as a tree ([`tree_sum`], Dask's
//! `split_every`) with `rdask_array::kernels::add_all` at each node.

use rdask::delayed::{delayed, persist_all, ComputeOptions, Delayed};
use rdask::{Client, Future};
use rdask_array::{kernels::add_all, Array, Chunk};
use serde::{Deserialize, Serialize};

use super::Error;

/// Dask's default `split_every`: at most this many partials are summed by
/// one task of the tree.
pub const DEFAULT_SPLIT_EVERY: usize = rdask_array::DEFAULT_SPLIT_EVERY;

/// A 2-d array's row blocks, computed and kept on the workers (Dask's
/// `X.persist()` before an iterative fit): every pass of a fit reads them
/// where they are instead of recomputing the array's graph.
pub(crate) struct Rows {
    /// One future per row block, in order.
    pub blocks: Vec<Future<Chunk>>,
    /// Rows per block.
    pub lens: Vec<usize>,
    /// Number of samples.
    pub n_samples: usize,
    /// Number of features.
    pub n_features: usize,
}

/// Longest a fit waits for its input blocks to be made before spreading
/// them over the workers (their making is the user's computation: a
/// generous bound, past which the fit errs naming a block not done).
pub const BLOCKS_READY_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(3600);

impl Rows {
    /// Checks that `x` is a non-empty 2-d array, puts each row whole in
    /// one block (the features axis in one chunk, as dask-ml rechunks) and
    /// persists it. `what` names the array in errors.
    pub fn persist(client: &Client, x: &Array, what: &str) -> Result<Rows, Error> {
        let (n_samples, n_features) = shape2(x, what)?;
        let x = if x.numblocks()[1] == 1 {
            x.clone()
        } else {
            x.rechunk_to(vec![x.chunks()[0].clone(), vec![n_features]])?
        };
        let lens = x.chunks()[0].clone();
        // Already persisted (the usual `X.persist()` before a fit): its
        // blocks as they are. Persisting its pass-through blocks again
        // would copy every block on the workers (twice the memory), and
        // place the copies by how busy each worker was at that moment.
        let blocks = match x.persisted_blocks() {
            Some(held) => held.to_vec(),
            None => {
                let blocks = x.to_delayed();
                let refs: Vec<&Delayed<Chunk>> = blocks.iter().collect();
                persist_all(client, &refs, &ComputeOptions::default())?
            }
        };
        // Every step of an iterative fit runs one task per block where the
        // block lives, so the step takes as long as the worker holding the
        // most blocks: 12 of 20 blocks on one of two workers caps the speed-up
        // at 1.67×. Blocks land where a thread was free when each was made,
        // which is seldom even; spreading them once (Dask's `rebalance`: a
        // few blocks copied, the surplus copies freed) pays on every step.
        // Only blocks in memory can move: a fresh persist is still making them.
        client.wait(&blocks, rdask::ReturnWhen::AllCompleted, Some(BLOCKS_READY_TIMEOUT))?;
        client.rebalance(&blocks)?;
        Ok(Rows {
            blocks,
            lens,
            n_samples,
            n_features,
        })
    }
}

/// `(samples, features)` of a non-empty 2-d array.
pub(crate) fn shape2(x: &Array, what: &str) -> Result<(usize, usize), Error> {
    match x.shape() {
        [n, d] if *n > 0 && *d > 0 => Ok((*n, *d)),
        [n, d] => Err(Error::Input(format!("{what} is empty ({n} samples × {d} features)"))),
        s => Err(Error::Input(format!(
            "{what} must be 2-d (samples × features), not of shape {s:?}"
        ))),
    }
}

/// `value` as one node of the step's graph (a task that returns it), that
/// every task of the step names by key: it travels once, inside the
/// submission, is made by one task, and each worker fetches it once, with
/// the first task that needs it, then serves every later task of the step
/// from its store. It is never embedded in each task.
///
/// Why not `Client::scatter` (plus `replicate`, Dask's `broadcast=True`):
/// with rdask at this commit, a task on another worker fetching a value
/// scattered just before was seen to fail now and then with "data of
/// \"Step-…\" lost with worker …" (the holder not yet having stored it),
/// and `replicate` right after a scatter to stall until its 60 s
/// deadline: about one fit in three of the k-means|| test. A graph node
/// has the scheduler's ordinary dependency tracking.
pub(crate) fn broadcast(value: Chunk) -> Delayed<Step> {
    delayed(
        step_value,
        (Step {
            id: next_step_id(),
            value,
        },),
    )
}

/// A step's value, made by one task (see [`broadcast`]).
#[rdask::task]
pub fn step_value(step: Step) -> Step {
    step
}

/// A value sent for one step (centres, candidates, coefficients), tagged
/// with an id unique to this process's run, so that its key (derived from
/// the content) is new every step even when the value is not: a key is
/// then never submitted again while its release from the last step is
/// under way.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Step {
    /// Unique per scatter.
    pub id: u64,
    /// The value.
    pub value: Chunk,
}

/// A fresh step id: the process's start time mixed with a counter.
fn next_step_id() -> u64 {
    use std::sync::atomic::{AtomicU64, Ordering};
    use std::sync::OnceLock;
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    static BASE: OnceLock<u64> = OnceLock::new();
    let base = *BASE.get_or_init(|| {
        let nanos = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map(|d| d.as_nanos() as u64)
            .unwrap_or(0);
        nanos ^ (u64::from(std::process::id()) << 32)
    });
    base.wrapping_add(COUNTER.fetch_add(1, Ordering::Relaxed))
}

/// The element-wise sum of `parts` (1-d partials of one length) as a tree:
/// each task sums at most `split_every` of them, as Dask's reductions do.
pub(crate) fn tree_sum(mut parts: Vec<Delayed<Chunk>>, split_every: usize) -> Result<Delayed<Chunk>, Error> {
    let split_every = split_every.max(2);
    while parts.len() > 1 {
        parts = parts
            .chunks(split_every)
            .map(|group| match group {
                [one] => one.clone(),
                _ => delayed(add_all, group.to_vec()),
            })
            .collect();
    }
    parts.pop().ok_or_else(|| Error::Input("nothing to sum".into()))
}

/// Computes a tree sum and checks the partial's length.
pub(crate) fn sum_on(
    client: &Client,
    parts: Vec<Delayed<Chunk>>,
    split_every: usize,
    len: usize,
) -> Result<Vec<f64>, Error> {
    let total = tree_sum(parts, split_every)?.compute(client)?;
    let v: Vec<f64> = total.iter().copied().collect();
    if v.len() != len {
        return Err(Error::Result(format!(
            "a partial of {} numbers, expected {len}",
            v.len()
        )));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rows_of_a_persisted_array_are_its_blocks_not_copies() -> Result<(), Box<dyn std::error::Error>> {
        let cluster = rdask::LocalCluster::new(2)?;
        let client = cluster.client()?;
        let x = rdask_array::random(&[40, 3], &[10, 3], 1)?.persist(&client)?;
        let rows = Rows::persist(&client, &x, "X")?;
        let keys = |b: &[Future<Chunk>]| b.iter().map(|f| f.key().to_string()).collect::<Vec<_>>();
        assert_eq!(keys(&rows.blocks), keys(x.persisted_blocks().unwrap_or_default()));
        assert_eq!(
            (rows.lens.clone(), rows.n_samples, rows.n_features),
            (vec![10; 4], 40, 3)
        );
        // A lazy array is persisted here, once.
        let lazy = rdask_array::random(&[40, 3], &[10, 3], 1)?;
        let rows = Rows::persist(&client, &lazy, "X")?;
        assert_eq!(rows.blocks.len(), 4);
        Ok(())
    }

    #[test]
    fn the_blocks_of_a_fit_are_spread_evenly_over_the_workers() -> Result<(), Box<dyn std::error::Error>> {
        // All eight blocks (800 kB each, so the few bytes of other results
        // on the first worker do not count in the byte balance) made while
        // the cluster has one worker; a second joins before the fit.
        let mut cluster = rdask::LocalCluster::new(1)?;
        let client = cluster.client()?;
        let x = rdask_array::random(&[8000, 100], &[1000, 100], 2)?.persist(&client)?;
        let made = x.persisted_blocks().unwrap_or_default();
        client.wait(made, rdask::ReturnWhen::AllCompleted, Some(BLOCKS_READY_TIMEOUT))?;
        cluster.add_worker()?;
        assert!(cluster.wait_for_workers(2, std::time::Duration::from_secs(60)));
        let rows = Rows::persist(&client, &x, "X")?;
        let keys: Vec<&str> = rows.blocks.iter().map(|f| f.key()).collect();
        let mut per_worker: std::collections::BTreeMap<String, usize> = Default::default();
        for w in client.who_has(&keys)? {
            assert_eq!(w.workers.len(), 1, "{} is held {} times", w.key, w.workers.len());
            *per_worker.entry(w.workers[0].clone()).or_default() += 1;
        }
        let counts: Vec<usize> = per_worker.values().copied().collect();
        assert_eq!(counts, vec![4, 4], "blocks per worker: {per_worker:?}");
        Ok(())
    }
}
