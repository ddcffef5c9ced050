//! The cases that measure work and scale: `count_letters`, the
//! scheduler's memory, a million tasks and the `delayed_graph` lazy graph.

use super::*;

pub(super) fn letter_dir() -> PathBuf {
    std::env::var_os("LETTER_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rdask-letters"))
}

/// The letter files (the Dask baseline's names and sizes; made if missing).
pub(super) fn ensure_letter_files() -> Result<(Vec<String>, bool, f64)> {
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let dir = letter_dir();
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let t0 = Instant::now();
    let mut generated = false;
    let mut paths = Vec::new();
    let mut state = 12345u64 ^ 0x9E37_79B9_7F4A_7C15;
    for i in 0..N_LETTER_FILES {
        let p = dir.join(format!("letters_{i:02}.txt"));
        let ok = std::fs::metadata(&p).is_ok_and(|m| m.len() == LETTERS_PER_FILE as u64);
        if !ok {
            let data: Vec<u8> = (0..LETTERS_PER_FILE)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ALPHABET[((state >> 32) % ALPHABET.len() as u64) as usize]
                })
                .collect();
            std::fs::write(&p, data).with_context(|| format!("write {}", p.display()))?;
            generated = true;
        }
        paths.push(p.to_string_lossy().into_owned());
    }
    Ok((paths, generated, secs(t0)))
}

pub(super) fn case_count_letters(ctx: &mut Ctx) -> Result<()> {
    let (paths, generated, gen_s) = ensure_letter_files()?;
    for p in &paths {
        // warm the page cache for both variants alike
        std::hint::black_box(std::fs::read(p)?);
    }
    ctx.acct_start();
    let t0 = Instant::now();
    let seq = paths
        .iter()
        .map(|p| count_letters(p.clone()))
        .collect::<std::io::Result<Vec<u64>>>()?;
    let seq_s = secs(t0);
    let c = &ctx.client;
    let t0 = Instant::now();
    let futs = c.map(count_letters, &paths)?;
    wait_all(c, &futs, 300)?;
    let par: Vec<u64> = c.gather(&futs)?;
    let par_s = secs(t0);
    let expect = vec![LETTERS_PER_FILE as u64; N_LETTER_FILES];
    ensure!(seq == par && par == expect, "sequential {seq:?} vs rdask {par:?}");
    ctx.emit(
        Rec::new("count_letters")
            .int("files", N_LETTER_FILES)
            .int("letters_per_file", LETTERS_PER_FILE)
            .bool("generated_now", generated)
            .num("gen_s", gen_s, 3)
            .num("sequential_s", seq_s, 4)
            .num("rdask_s", par_s, 4)
            .num("speedup", seq_s / par_s, 3)
            .num("seq_per_file_s", seq_s / N_LETTER_FILES as f64, 4),
        true,
    );
    Ok(())
}

pub(super) fn case_scheduler_memory(ctx: &mut Ctx) -> Result<()> {
    let n = 100_000usize;
    let (rss0, rss_source) = ctx.sched_rss()?;
    let t0 = Instant::now();
    let futs = ctx.client.map(noop, 0..n as i64)?;
    let map_s = secs(t0);
    // map may return before the scheduler has the whole graph: poll until it does
    let mut registered = 0;
    while secs(t0) < 120.0 {
        registered = ctx.client.scheduler_info()?.ntasks;
        if registered >= n as u64 || futs.iter().all(|f| f.done()) {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let registered_s = secs(t0);
    let rss_submitted = ctx.sched_rss()?.0;
    ctx.emit(
        Rec::new("scheduler_memory_submitted")
            .int("n", n)
            .num("map_s", map_s, 4)
            .num("registered_s", registered_s, 4)
            .int("sched_tasks", registered)
            .num("sched_rss_before_mb", rss0 as f64 / MIB, 1)
            .num("sched_rss_submitted_mb", rss_submitted as f64 / MIB, 1)
            .num(
                "sched_bytes_per_task_submitted",
                (rss_submitted as f64 - rss0 as f64) / n as f64,
                1,
            ),
        false,
    );
    let t1 = t0 + Duration::from_secs_f64(map_s);
    if let Err(e) = wait_all(&ctx.client, &futs, MEM_CASE_WAIT_S) {
        let done = futs.iter().filter(|f| f.status() == "finished").count();
        bail!(
            "not finished within {MEM_CASE_WAIT_S}s ({e}): finished={done}, tasks_per_s_so_far={:.1}",
            done as f64 / secs(t0)
        );
    }
    let t2 = Instant::now();
    let res: Vec<()> = ctx.client.gather(&futs)?;
    let t3 = Instant::now();
    ensure!(res.len() == n);
    let rss_held = ctx.sched_rss()?.0;
    let ntasks = ctx.client.scheduler_info()?.ntasks;
    let client_rss = status_kb("self", "VmRSS").unwrap_or(0);
    let worker_rss: Vec<(String, J)> = ctx
        .worker_pids
        .iter()
        .enumerate()
        .map(|(i, p)| {
            let mb = status_kb(&p.to_string(), "VmRSS").unwrap_or(0) as f64 / MIB;
            (format!("w{}", i + 1), J::Num(round(mb, 1)))
        })
        .collect();
    drop(futs);
    drop(res);
    ctx.settle(Duration::from_secs(120))?;
    let t4 = Instant::now();
    let rss_after = ctx.sched_rss()?.0;
    let mut rec = Rec::new("scheduler_memory")
        .int("n", n)
        .bool("sched_in_client_process", !ctx.processes)
        .num("map_s", map_s, 4)
        .num("wait_s", (t2 - t1).as_secs_f64(), 4)
        .num("gather_s", (t3 - t2).as_secs_f64(), 4)
        .num("total_s", (t3 - t0).as_secs_f64(), 4)
        .num("release_s", (t4 - t3).as_secs_f64(), 4)
        .num("tasks_per_s", n as f64 / (t3 - t0).as_secs_f64(), 1)
        .int("sched_tasks_held", ntasks)
        .num("sched_rss_before_mb", rss0 as f64 / MIB, 1)
        .num("sched_rss_held_mb", rss_held as f64 / MIB, 1)
        .num("sched_rss_delta_mb", (rss_held as f64 - rss0 as f64) / MIB, 1)
        .num("sched_bytes_per_task", (rss_held as f64 - rss0 as f64) / n as f64, 1)
        .num("sched_rss_after_release_mb", rss_after as f64 / MIB, 1)
        .num("client_rss_held_mb", client_rss as f64 / MIB, 1)
        .str("sched_rss_source", rss_source);
    if !worker_rss.is_empty() {
        rec = rec.val("worker_rss_held_mb", J::Obj(worker_rss));
    }
    ctx.emit(rec, true);
    Ok(())
}

pub(super) fn case_million_tasks(ctx: &mut Ctx) -> Result<()> {
    let n = MILLION;
    let proc_name = ctx.sched_proc();
    // Reset the scheduler process's VmHWM so it is this case's peak.
    let hwm_reset = std::fs::write(format!("/proc/{proc_name}/clear_refs"), "5").is_ok();
    let stop = Arc::new(AtomicBool::new(false));
    let peak = Arc::new(AtomicU64::new(0));
    let poller = {
        let (stop, peak, proc_name) = (stop.clone(), peak.clone(), proc_name.clone());
        std::thread::spawn(move || {
            while !stop.load(Ordering::Relaxed) {
                if let Some(rss) = status_kb(&proc_name, "VmRSS") {
                    peak.fetch_max(rss, Ordering::Relaxed);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
        })
    };
    let run = || -> Result<(f64, f64, f64, f64, f64)> {
        let c = &ctx.client;
        let t0 = Instant::now();
        let futs = c.map(noop, 0..n as i64)?;
        let map_s = secs(t0);
        wait_all(c, &futs, 300)?;
        let wait_s = secs(t0) - map_s;
        let res: Vec<()> = c.gather(&futs)?;
        let wall = secs(t0);
        ensure!(res.len() == n, "gathered {} of {n}", res.len());
        let t1 = Instant::now();
        drop(futs);
        // The client's side of the release (dropping the futures and
        // queueing their `ReleaseKeys`); the rest is the scheduler's.
        let drop_s = secs(t1);
        ctx.settle(Duration::from_secs(120))?;
        Ok((wall, map_s, wait_s, secs(t1), drop_s))
    };
    let r = run();
    stop.store(true, Ordering::Relaxed);
    let _ = poller.join();
    let (wall, map_s, wait_s, release_s, release_drop_s) = r?;
    let polled = peak.load(Ordering::Relaxed);
    let hwm = status_kb(&proc_name, "VmHWM").filter(|_| hwm_reset);
    let (peak_b, source) = match hwm {
        Some(h) => (h.max(polled), "VmHWM"),
        None => (polled, "polled"),
    };
    ctx.emit(
        Rec::new("million_tasks")
            .int("n", n)
            .num("wall_s", wall, 4)
            .num("map_s", map_s, 4)
            .num("wait_s", wait_s, 4)
            .num("gather_s", wall - map_s - wait_s, 4)
            .num("release_s", release_s, 4)
            .num("release_drop_s", release_drop_s, 4)
            .num("tasks_per_s", n as f64 / wall, 1)
            .num("sched_peak_rss_mb", peak_b as f64 / MIB, 1)
            .num("sched_peak_rss_polled_mb", polled as f64 / MIB, 1)
            .str("sched_peak_source", source)
            .bool("sched_in_client_process", !ctx.processes),
        true,
    );
    Ok(())
}

/// The lazy graph of `delayed_graph`: `leaves` chains `inc(inc(i))`, then
/// a sum tree of fan-in 8 (`benches/dask_delayed.py` builds the same).
pub(super) fn delayed_tree(leaves: usize) -> (Delayed<i64>, usize) {
    let mut nodes = 2 * leaves;
    let mut level: Vec<Delayed<i64>> = (0..leaves as i64)
        .map(|i| delayed(inc, (delayed(inc, (i,)),)))
        .collect();
    while level.len() > 1 {
        level = level.chunks(8).map(|c| delayed(sum, c.to_vec())).collect();
        nodes += level.len();
    }
    (level.pop().unwrap_or_else(|| delayed(inc, (0i64,))), nodes)
}

pub(super) fn case_delayed_graph(ctx: &mut Ctx) -> Result<()> {
    let c = &ctx.client;
    let leaves = 46_000usize;
    let expect: i64 = (0..leaves as i64).map(|i| i + 2).sum();
    let mut rec = Rec::new("delayed_graph").int("leaves", leaves);
    for (label, fuse) in [("fused", true), ("unfused", false)] {
        let opts = ComputeOptions::default().fuse(fuse);
        let t0 = Instant::now();
        let (root, nodes) = delayed_tree(leaves);
        let build_s = secs(t0);
        let fut = root.persist_with(c, &opts)?;
        let submit_s = secs(t0) - build_s;
        let r = fut.result_timeout(Some(Duration::from_secs(120)))?;
        let wall = secs(t0);
        // Counted after the clock stops: it plans the graph once more, which
        // neither a user's compute nor Dask's side does.
        let tasks = root.task_count(&opts)?;
        ensure!(r == expect, "delayed sum {r}, expected {expect}");
        // RDASK_CAPTURE_GRAPH=FILE keeps the fused graph with its measured
        // durations, for `rdask simulate --shape replay --graph FILE`.
        if let (true, Some(path)) = (fuse, std::env::var_os("RDASK_CAPTURE_GRAPH")) {
            let graph = rdask::simulate::shapes::capture(&root.task_specs(&opts)?, &c.get_task_stream()?, 8);
            rdask::simulate::shapes::write_graph(Path::new(&path), &graph)?;
        }
        drop(fut);
        ctx.settle(Duration::from_secs(60))?;
        rec = rec
            .int("nodes", nodes)
            .int(&format!("{label}_tasks"), tasks)
            .num(&format!("{label}_build_s"), build_s, 4)
            .num(&format!("{label}_submit_s"), submit_s, 4)
            .num(&format!("{label}_wall_s"), wall, 4)
            .num(&format!("{label}_nodes_per_s"), nodes as f64 / wall, 1);
    }
    // A million lazy calls: building, optimizing and submitting them.
    let t0 = Instant::now();
    let (root, nodes) = delayed_tree(MILLION / 2);
    let build_s = secs(t0);
    let fut = root.persist(c)?;
    let submit_s = secs(t0) - build_s;
    let expect: i64 = (0..(MILLION / 2) as i64).map(|i| i + 2).sum();
    let r = fut.result_timeout(Some(Duration::from_secs(200)))?;
    ensure!(r == expect, "delayed sum {r}, expected {expect}");
    ctx.emit(
        rec.int("million_nodes", nodes)
            .num("million_build_s", build_s, 4)
            .num("million_submit_s", submit_s, 4)
            .num("million_wall_s", secs(t0), 4),
        true,
    );
    Ok(())
}
