//! k-means|| initialisation (Bahmani et al., "Scalable K-Means++", 2012),
//! as dask-ml's `init_scalable`: one random point as the first candidate;
//! then `round(ln φ)` rounds (at most `init_max_iter`), each keeping every
//! point with probability `l · d²(x) / φ`, as tasks per block; then each
//! candidate weighted by how many points are nearest to it and the
//! candidates reclustered on the driver by weighted k-means++ (`local`).
//! Every round's candidates are sent once, one graph node named by key
//! (`dist::broadcast`).
//!
//! Each block's nearest candidate and distance to it are kept on the
//! workers between rounds (persisted), and a round measures the points
//! against its new candidates only; the weights are counts of the kept
//! labels, with no pass of their own. The result is the same, bit for
//! bit, as measuring against every candidate each time.

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use rdask::delayed::{compute_all, delayed, persist_all, ComputeOptions, Delayed};
use rdask::{Client, Future};
use rdask_array::{ndarray, Chunk};

use super::dist::{broadcast, sum_on, tree_sum, Rows};
use super::kernels::{
    block_seed, label_counts, nearest_candidates, nearest_candidates_update, nearest_cost, sample_rows, take_rows,
};
use super::{local, Error};

/// Where global row `i` is: (block, row within it).
fn locate(lens: &[usize], mut i: usize) -> (usize, usize) {
    for (b, &len) in lens.iter().enumerate() {
        if i < len {
            return (b, i);
        }
        i -= len;
    }
    (lens.len().saturating_sub(1), 0)
}

/// The given global rows of the data, fetched from their blocks.
pub(crate) fn fetch_rows(client: &Client, rows: &Rows, which: &[usize]) -> Result<Vec<f64>, Error> {
    let mut by_block: Vec<Vec<usize>> = vec![Vec::new(); rows.lens.len()];
    for &i in which {
        let (b, r) = locate(&rows.lens, i);
        by_block[b].push(r);
    }
    let parts: Vec<Delayed<Chunk>> = by_block
        .into_iter()
        .enumerate()
        .filter(|(_, r)| !r.is_empty())
        .map(|(b, r)| delayed(take_rows, (&rows.blocks[b], r)))
        .collect();
    let refs: Vec<&Delayed<Chunk>> = parts.iter().collect();
    let got = compute_all(client, &refs, &ComputeOptions::default())?;
    Ok(got.into_iter().flat_map(|c| c.into_inner().into_iter()).collect())
}

fn matrix(flat: Vec<f64>, d: usize) -> Result<Chunk, Error> {
    let m = flat.len() / d;
    ndarray::ArrayD::from_shape_vec(ndarray::IxDyn(&[m, d]), flat)
        .map(Chunk)
        .map_err(|e| Error::Result(e.to_string()))
}

/// What [`init_scalable`] needs of the estimator.
pub(crate) struct InitParams {
    pub n_clusters: usize,
    pub init_max_iter: Option<usize>,
    pub oversampling_factor: f64,
    pub random_state: u64,
    pub split_every: usize,
}

/// The `n_clusters` starting centres (row-major) by k-means||.
pub(crate) fn init_scalable(client: &Client, rows: &Rows, p: &InitParams) -> Result<Vec<f64>, Error> {
    let d = rows.n_features;
    let mut rng = XorShiftRng::seed_from_u64(p.random_state);
    let first = (rng.next_u64() % rows.n_samples as u64) as usize;
    let mut candidates = fetch_rows(client, rows, &[first])?;
    let centers = broadcast(matrix(candidates.clone(), d)?);
    let mut known = persist(
        client,
        rows.blocks
            .iter()
            .map(|b| delayed(nearest_candidates, (b, &centers)))
            .collect(),
    )?;
    // φ of the first candidate gives the number of rounds, as dask-ml.
    let cost = sum_on(client, costs(&known), p.split_every, 1)?[0];
    let mut rounds = if cost > 1.0 { cost.ln().round() as usize } else { 0 };
    if let Some(cap) = p.init_max_iter {
        rounds = rounds.min(cap);
    }
    // How many of the candidates `known` has measured.
    let mut measured = 1;
    for round in 0..rounds {
        let phi = tree_sum(costs(&known), p.split_every)?;
        let samples: Vec<Delayed<Chunk>> = rows
            .blocks
            .iter()
            .zip(&known)
            .enumerate()
            .map(|(i, (b, v))| {
                let seed = block_seed(p.random_state, round, i);
                delayed(sample_rows, (b, v, &phi, p.oversampling_factor, seed))
            })
            .collect();
        let refs: Vec<&Delayed<Chunk>> = samples.iter().collect();
        for s in compute_all(client, &refs, &ComputeOptions::default())? {
            candidates.extend(s.iter());
        }
        // The last round's candidates are measured below, with any made up.
        if round + 1 < rounds {
            known = update(client, rows, &known, &candidates, measured)?;
            measured = candidates.len() / d;
        }
    }
    let mut m = candidates.len() / d;
    if m < p.n_clusters {
        // Too few candidates (tiny φ or few rounds): random rows make up
        // the difference, as dask-ml does.
        let mut extra = Vec::new();
        while extra.len() < p.n_clusters - m {
            let i = (rng.next_u64() % rows.n_samples as u64) as usize;
            if i != first && !extra.contains(&i) {
                extra.push(i);
            }
        }
        candidates.extend(fetch_rows(client, rows, &extra)?);
        m = candidates.len() / d;
    }
    // Step 7: each candidate's weight, the points nearest to it.
    known = update(client, rows, &known, &candidates, measured)?;
    let counts = known.iter().map(|s| delayed(label_counts, (s, m as u64))).collect();
    let weights = sum_on(client, counts, p.split_every, m)?;
    // Step 8: recluster the weighted candidates into n_clusters.
    Ok(local::recluster(&candidates, &weights, d, p.n_clusters, rng.next_u64()))
}

/// Persists one task per block, waiting for none of them.
fn persist(client: &Client, tasks: Vec<Delayed<Chunk>>) -> Result<Vec<Future<Chunk>>, Error> {
    let refs: Vec<&Delayed<Chunk>> = tasks.iter().collect();
    Ok(persist_all(client, &refs, &ComputeOptions::default())?)
}

/// Each block's φ part, from its state.
fn costs(known: &[Future<Chunk>]) -> Vec<Delayed<Chunk>> {
    known.iter().map(|s| delayed(nearest_cost, (s,))).collect()
}

/// The blocks' states `known`, which measured the first `measured`
/// candidates, brought up to date with the rest of `candidates` (the
/// same states when there are none).
fn update(
    client: &Client,
    rows: &Rows,
    known: &[Future<Chunk>],
    candidates: &[f64],
    measured: usize,
) -> Result<Vec<Future<Chunk>>, Error> {
    let d = rows.n_features;
    if candidates.len() / d <= measured {
        return Ok(known.to_vec());
    }
    let new = broadcast(matrix(candidates[measured * d..].to_vec(), d)?);
    persist(
        client,
        rows.blocks
            .iter()
            .zip(known)
            .map(|(b, s)| delayed(nearest_candidates_update, (b, s, &new, measured as u64)))
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::locate;

    #[test]
    fn rows_are_located_in_uneven_blocks() {
        assert_eq!(locate(&[3, 3, 1], 0), (0, 0));
        assert_eq!(locate(&[3, 3, 1], 5), (1, 2));
        assert_eq!(locate(&[3, 3, 1], 6), (2, 0));
    }
}
