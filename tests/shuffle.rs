//! The core's peer-to-peer shuffle (`rdask::shuffle::p2p`) with a
//! collection of its own (partitions of `u64`s, shards as msgpack), on a
//! `LocalCluster` of two workers over TCP and on the local thread pool:
//! exact results, O(partitions) tasks, and a split function breaking its
//! contract failing the computation with a message that says so.

use rdask::delayed::{compute_all, compute_all_local, delayed, ComputeOptions, Delayed};
use rdask::shuffle::p2p;
use rdask::LocalCluster;
use serde_bytes::ByteBuf;

/// A partition of numbers.
#[rdask::task]
fn numbers(from: u64, to: u64) -> Vec<u64> {
    (from..to).collect()
}

/// Output `x % n` for each `x`; `extra` is a modulus applied first (to
/// check it arrives), and a wrong shard count when `extra` is 0.
#[rdask::task]
fn split_mod(part: Vec<u64>, n: u32, extra: u64) -> Result<Vec<ByteBuf>, String> {
    if extra == 0 {
        return Ok(vec![ByteBuf::new()]); // one shard, whatever n: a broken split
    }
    let mut out: Vec<Vec<u64>> = vec![Vec::new(); n as usize];
    for x in part {
        out[((x % extra) % n as u64) as usize].push(x);
    }
    out.into_iter()
        .map(|v| {
            rdask::task::encode_value(&v)
                .map(ByteBuf::from)
                .map_err(|e| e.to_string())
        })
        .collect()
}

/// An output partition: its shards concatenated, then sorted if asked.
#[rdask::task]
fn unpack_sorted(shards: Vec<ByteBuf>, sort: bool) -> Result<Vec<u64>, String> {
    let mut all = Vec::new();
    for s in shards {
        let v: Vec<u64> = rdask::task::decode_value(&s).map_err(|e| e.to_string())?;
        all.extend(v);
    }
    if sort {
        all.sort_unstable();
    }
    Ok(all)
}

fn inputs(nparts: u64, per: u64) -> Vec<Delayed<Vec<u64>>> {
    (0..nparts)
        .map(|i| delayed(numbers, (i * per, (i + 1) * per)))
        .collect()
}

fn want(nparts: u64, per: u64, n: u32) -> Vec<Vec<u64>> {
    let mut out = vec![Vec::new(); n as usize];
    for x in 0..nparts * per {
        out[(x % n as u64) as usize].push(x);
    }
    out
}

#[test]
fn p2p_shuffle_is_exact_on_a_cluster_and_locally() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    for (nparts, per, n) in [(6u64, 1_000u64, 4u32), (1, 10, 1), (1, 0, 3), (3, 1, 5), (5, 7, 9)] {
        let outs = p2p(&inputs(nparts, per), split_mod, &u64::MAX, unpack_sorted, &false, n)?;
        let refs: Vec<&Delayed<Vec<u64>>> = outs.iter().collect();
        // 2 × inputs + 1 tasks (each input fused into its transfer) + n unpacks.
        let tasks = rdask::delayed::task_count_all(&refs, &ComputeOptions::default())?;
        assert_eq!(tasks, nparts as usize + 1 + n as usize, "{nparts} inputs, {n} outputs");
        let got = compute_all(&client, &refs, &ComputeOptions::default())?;
        assert_eq!(got, want(nparts, per, n), "cluster, {nparts} × {per} into {n}");
        let local = compute_all_local(&refs, &ComputeOptions::default())?;
        assert_eq!(local, want(nparts, per, n), "local, {nparts} × {per} into {n}");
        // Computed again: the same shuffle, exact again.
        assert_eq!(
            compute_all(&client, &refs, &ComputeOptions::default())?,
            want(nparts, per, n)
        );
    }
    Ok(())
}

#[test]
fn a_split_breaking_its_contract_fails_clearly() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = LocalCluster::new(2)?;
    let client = cluster.client()?;
    let outs = p2p(&inputs(3, 10), split_mod, &0u64, unpack_sorted, &true, 4)?;
    let err = compute_all(&client, &outs.iter().collect::<Vec<_>>(), &ComputeOptions::default())
        .unwrap_err()
        .to_string();
    assert!(err.contains("returned 1 shards for 4 output partitions"), "{err}");
    // The cluster carries on.
    let ok = p2p(&inputs(3, 10), split_mod, &u64::MAX, unpack_sorted, &true, 2)?;
    let got = compute_all(&client, &ok.iter().collect::<Vec<_>>(), &ComputeOptions::default())?;
    assert_eq!(got, want(3, 10, 2));
    assert!(p2p(&inputs(1, 1), split_mod, &1u64, unpack_sorted, &true, 0).is_err());
    assert!(p2p(&[] as &[Delayed<Vec<u64>>], split_mod, &1u64, unpack_sorted, &true, 1).is_err());
    Ok(())
}
