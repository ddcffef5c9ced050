//! The cases of `dask_baseline.py` that measure the scheduler and the
//! network: no-op throughput, round trip, chain, tree reduction and a
//! transfer between workers.

use super::*;

pub(super) fn case_noop_throughput(ctx: &mut Ctx) -> Result<()> {
    for n in [10_000usize, 50_000] {
        ctx.acct_start();
        let c = &ctx.client;
        let t0 = Instant::now();
        let futs = c.map(noop, 0..n as i64)?;
        let map_s = secs(t0);
        wait_all(c, &futs, 120)?;
        let res: Vec<()> = c.gather(&futs)?;
        let wall = secs(t0);
        ensure!(res.len() == n, "gathered {} results of {n}", res.len());
        ctx.emit(
            Rec::new("noop_throughput")
                .int("n", n)
                .num("wall_s", wall, 4)
                .num("map_s", map_s, 4)
                .num("wait_gather_s", wall - map_s, 4)
                .rate(n, wall),
            true,
        );
        drop(futs);
        drop(res);
        ctx.settle(Duration::from_secs(60))?;
        if n == 10_000 && wall * 5.0 >= 60.0 {
            ctx.emit(
                Rec::new("noop_throughput")
                    .int("n", 50_000)
                    .str("skipped", "10k run extrapolates to >= 60 s"),
                false,
            );
            break;
        }
    }
    Ok(())
}

pub(super) fn case_roundtrip_latency(ctx: &mut Ctx) -> Result<()> {
    let c = &ctx.client;
    let n = 200usize;
    let opts = SubmitOptions::impure();
    let mut lat = Vec::with_capacity(n);
    let t0 = Instant::now();
    for i in 0..n as i64 {
        let s = Instant::now();
        let r: i64 = c
            .submit_with(inc, (i,), &opts)?
            .result_timeout(Some(Duration::from_secs(30)))?;
        lat.push(secs(s));
        ensure!(r == i + 1, "inc({i}) = {r}");
    }
    let wall = secs(t0);
    let mut ms: Vec<f64> = lat.iter().map(|x| x * 1e3).collect();
    ms.sort_by(f64::total_cmp);
    let p99 = ms[(n - 1).min(((0.99 * n as f64).round() as usize).saturating_sub(1))];
    ctx.emit(
        Rec::new("roundtrip_latency")
            .int("n", n)
            .num("wall_s", wall, 4)
            .num("median_ms", median(&ms), 3)
            .num("p99_ms", p99, 3)
            .num("min_ms", ms[0], 3)
            .num("max_ms", ms[n - 1], 3)
            .num("mean_ms", ms.iter().sum::<f64>() / n as f64, 3),
        true,
    );
    Ok(())
}

pub(super) fn case_chain(ctx: &mut Ctx) -> Result<()> {
    let c = &ctx.client;
    let n = 2000usize;
    let t0 = Instant::now();
    let mut f = c.submit(inc, (0i64,))?;
    for _ in 0..n - 1 {
        f = c.submit(inc, (&f,))?;
    }
    let submit_s = secs(t0);
    let r = f.result_timeout(Some(Duration::from_secs(120)))?;
    let wall = secs(t0);
    ensure!(r == n as i64, "chain result {r}, expected {n}");
    ctx.emit(
        Rec::new("chain")
            .int("n", n)
            .num("wall_s", wall, 4)
            .num("submit_s", submit_s, 4)
            .rate(n, wall),
        true,
    );
    Ok(())
}

pub(super) fn case_tree_reduce(ctx: &mut Ctx) -> Result<()> {
    let c = &ctx.client;
    let leaves = 8192usize;
    let t0 = Instant::now();
    let mut level = c.map(inc, 0..leaves as i64)?;
    let mut ntasks = leaves;
    while level.len() > 1 {
        let mut next = Vec::with_capacity(level.len() / 2 + 1);
        for pair in level.chunks_exact(2) {
            next.push(c.submit(add, (&pair[0], &pair[1]))?);
        }
        if level.len() % 2 == 1 {
            next.push(level[level.len() - 1].clone());
        }
        ntasks += level.len() / 2;
        level = next;
    }
    let submit_s = secs(t0);
    let r = level[0].result_timeout(Some(Duration::from_secs(120)))?;
    let wall = secs(t0);
    let expect = (leaves * (leaves + 1) / 2) as i64;
    ensure!(r == expect, "tree sum {r}, expected {expect}");
    ctx.emit(
        Rec::new("tree_reduce")
            .int("leaves", leaves)
            .int("total_tasks", ntasks)
            .num("wall_s", wall, 4)
            .num("submit_s", submit_s, 4)
            .rate(ntasks, wall),
        true,
    );
    Ok(())
}

pub(super) fn case_p2p_transfer(ctx: &mut Ctx) -> Result<()> {
    let mut workers = ctx.client.scheduler_info()?.workers;
    workers.sort_by(|x, y| x.address.cmp(&y.address));
    ensure!(workers.len() >= 2, "need 2 workers, have {}", workers.len());
    let (a, b) = (workers[0].clone(), workers[1].clone());
    let on_a = SubmitOptions::impure().workers([a.address.clone()]);
    let on_b = SubmitOptions::impure().workers([b.address.clone()]);
    // noop baseline: submit -> result of a trivial task on B with a tiny argument
    let mut base = Vec::new();
    for _ in 0..20 {
        let s = Instant::now();
        let n: u64 = ctx
            .client
            .submit_with(blob_len, (Blob(b"x".to_vec()),), &on_b)?
            .result_timeout(Some(Duration::from_secs(30)))?;
        base.push(secs(s));
        ensure!(n == 1);
    }
    base.sort_by(f64::total_cmp);
    let base_s = median(&base);
    // (all bytes fetched, of which through shared memory)
    let fetched0 = ctx
        .client
        .worker_info(&b.address)
        .map(|i| (i.bytes_fetched_from_peers, i.bytes_fetched_shared_memory))
        .ok();
    let mut reps = Vec::new();
    // Making the blob on A (not part of the transfer's figure): what its
    // result's encoding costs, into a heap buffer or a memory file.
    let mut makes = Vec::new();
    for rep in 0..5u64 {
        let s = Instant::now();
        let blob = ctx.client.submit_with(make_blob, (P2P_BYTES, rep), &on_a)?;
        wait_all(&ctx.client, std::slice::from_ref(&blob), 60)?;
        makes.push(secs(s));
        if let Some(f) = blob.exception() {
            bail!("make_blob failed: {}", f.message);
        }
        let s = Instant::now();
        let n: u64 = ctx
            .client
            .submit_with(blob_len, (&blob,), &on_b)?
            .result_timeout(Some(Duration::from_secs(120)))?;
        let dt = secs(s);
        ensure!(n == P2P_BYTES, "blob_len = {n}");
        reps.push(dt);
        drop(blob);
        ctx.settle(Duration::from_secs(60))?;
    }
    let fetched1 = ctx
        .client
        .worker_info(&b.address)
        .map(|i| (i.bytes_fetched_from_peers, i.bytes_fetched_shared_memory))
        .ok();
    let mut sorted = reps.clone();
    sorted.sort_by(f64::total_cmp);
    let best = sorted[0];
    let med = median(&sorted);
    let mb = P2P_BYTES as f64 / 1e6;
    let mut rec = Rec::new("p2p_transfer")
        .int("bytes", P2P_BYTES)
        .str("worker_a", a.address.clone())
        .str("worker_b", b.address.clone())
        .num("noop_baseline_ms", base_s * 1e3, 3)
        .val("reps_s", J::Arr(reps.iter().map(|x| J::Num(round(*x, 4))).collect()))
        .num("median_s", med, 4)
        .val("make_s", J::Arr(makes.iter().map(|x| J::Num(round(*x, 4))).collect()))
        .num("mb_per_s_median", mb / (med - base_s).max(1e-9), 1)
        .num("mb_per_s_best", mb / (best - base_s).max(1e-9), 1)
        .str("worker_a_name", a.name.clone())
        .str("worker_b_name", b.name.clone());
    // The fetches alone, as B timed them (its transfer reports, in the
    // scheduler's task stream): the reps above also hold the task's decode
    // of its 200 MB argument and the submit round trip.
    let mut fetches: Vec<f64> = ctx
        .client
        .get_task_stream()?
        .into_iter()
        .filter(|r| r.kind == rdask::wire::messages::StreamKind::Transfer && r.worker == b.name)
        .map(|r| r.stop_us.saturating_sub(r.start_us) as f64 / 1e6)
        .collect();
    let fetches = fetches.split_off(fetches.len().saturating_sub(reps.len()));
    if fetches.len() == reps.len() {
        let mut sorted = fetches.clone();
        sorted.sort_by(f64::total_cmp);
        rec = rec
            .val(
                "fetch_s",
                J::Arr(fetches.iter().map(|x| J::Num(round(*x, 4))).collect()),
            )
            .num("fetch_mb_per_s_median", mb / median(&sorted).max(1e-9), 1)
            .num("fetch_mb_per_s_best", mb / sorted[0].max(1e-9), 1);
    }
    if let (Some(f0), Some(f1)) = (fetched0, fetched1) {
        rec = rec
            .int("b_fetched_from_peers_bytes", f1.0.saturating_sub(f0.0))
            // Nonzero when the workers moved the blob through shared memory
            // (off with RDASK_WORKER__SHARED_MEMORY_TRANSFERS=false).
            .int("b_fetched_shared_memory_bytes", f1.1.saturating_sub(f0.1));
    }
    ctx.emit(rec, true);
    Ok(())
}
