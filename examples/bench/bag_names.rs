//! The `bag_names` case of `examples/bench.rs`: the seed's bag pipeline,
//! `read_text('*.json.gz').map(json.loads).pluck('name').frequencies().topk(10, key=1)`,
//! over [`BAG_TEXT_BYTES`] of JSON lines (uncompressed) in [`BAG_FILES`]
//! gzipped files, a partition per file. Dask's side is
//! `benches/dask_bag.py`, on the same files.
//!
//! The files are made once into `BAG_DIR` (default `<tmp>/rdask-bag-json`)
//! and reused while their manifest matches; the manifest holds the exact
//! count of every name, which each run's top 10 is checked against (on both
//! sides).

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use anyhow::{ensure, Context as _, Result};
use rdask::bag;
use serde_json::Value;

use super::{median, secs, Ctx, Rec, J};

/// Gzipped input files (Dask's `read_text` makes a partition of each).
const BAG_FILES: usize = 32;
/// Uncompressed size of all files together (2 GiB).
const BAG_TEXT_BYTES: u64 = 2 << 30;
/// Timed runs of the pipeline.
const BAG_RUNS: usize = 3;
/// Longest one run may take.
const BAG_RUN_TIMEOUT: Duration = Duration::from_secs(300);

/// The names of the records, drawn with a skew so the top 10 is well
/// defined (those of `examples/bag_names.rs`).
const NAMES: &[&str] = &[
    "Alice", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia",
    "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yolanda",
];

fn bag_dir() -> PathBuf {
    std::env::var_os("BAG_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| std::env::temp_dir().join("rdask-bag-json"))
}

/// What the files hold (`manifest.json`, also read by `dask_bag.py`).
#[derive(serde::Serialize, serde::Deserialize, PartialEq)]
struct Manifest {
    files: usize,
    text_bytes: u64,
    gz_bytes: u64,
    lines: u64,
    counts: BTreeMap<String, u64>,
}

/// What one file holds: (text bytes, lines, count per name).
type FileStats = (u64, u64, BTreeMap<String, u64>);

/// One file: records `{"id":i,"name":…,"amount":…,"file":f}` until it
/// holds `BAG_TEXT_BYTES / BAG_FILES` bytes of text. Returns (text bytes,
/// lines, counts).
fn write_file(f: usize, path: &std::path::Path) -> Result<FileStats> {
    let tmp = path.with_extension("tmp");
    let file = std::fs::File::create(&tmp).with_context(|| format!("create {}", tmp.display()))?;
    let mut gz = flate2::write::GzEncoder::new(std::io::BufWriter::new(file), flate2::Compression::fast());
    let target = BAG_TEXT_BYTES / BAG_FILES as u64;
    let mut counts = vec![0u64; NAMES.len()];
    let (mut written, mut lines) = (0u64, 0u64);
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (f as u64 + 1);
    let mut line = Vec::with_capacity(128);
    while written < target {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        let a = (state % NAMES.len() as u64) as usize;
        let b = ((state >> 32) % NAMES.len() as u64) as usize;
        line.clear();
        writeln!(
            line,
            r#"{{"id":{lines},"name":"{}","amount":{},"file":{f}}}"#,
            NAMES[a.min(b)],
            state % 1000
        )?;
        gz.write_all(&line)?;
        counts[a.min(b)] += 1;
        written += line.len() as u64;
        lines += 1;
    }
    gz.finish()?.flush()?;
    std::fs::rename(&tmp, path)?;
    let counts = NAMES.iter().map(|n| n.to_string()).zip(counts).collect();
    Ok((written, lines, counts))
}

fn file_path(f: usize) -> PathBuf {
    bag_dir().join(format!("names-{f:03}.json.gz"))
}

/// The files and their manifest, made unless they are there already;
/// whether they were made now, and how long that took.
fn ensure_bag_files() -> Result<(Manifest, bool, f64)> {
    let dir = bag_dir();
    let manifest_path = dir.join("manifest.json");
    let present = std::fs::read(&manifest_path)
        .ok()
        .and_then(|b| serde_json::from_slice::<Manifest>(&b).ok())
        .filter(|m| m.files == BAG_FILES && (0..BAG_FILES).all(|f| file_path(f).exists()));
    if let Some(m) = present {
        return Ok((m, false, 0.0));
    }
    std::fs::create_dir_all(&dir).with_context(|| format!("mkdir {}", dir.display()))?;
    let t0 = Instant::now();
    // Two writer threads, files interleaved between them.
    let results: Vec<Result<FileStats>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    (0..BAG_FILES)
                        .filter(|f| f % 2 == t)
                        .map(|f| write_file(f, &file_path(f)))
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        handles
            .into_iter()
            .flat_map(|h| {
                h.join()
                    .unwrap_or_else(|_| vec![Err(anyhow::anyhow!("a writer panicked"))])
            })
            .collect()
    });
    let mut m = Manifest {
        files: BAG_FILES,
        text_bytes: 0,
        gz_bytes: 0,
        lines: 0,
        counts: BTreeMap::new(),
    };
    for r in results {
        let (bytes, lines, counts) = r?;
        m.text_bytes += bytes;
        m.lines += lines;
        for (k, n) in counts {
            *m.counts.entry(k).or_default() += n;
        }
    }
    for f in 0..BAG_FILES {
        m.gz_bytes += std::fs::metadata(file_path(f))?.len();
    }
    std::fs::write(&manifest_path, serde_json::to_vec(&m)?)?;
    Ok((m, true, secs(t0)))
}

pub(super) fn case_bag_names(ctx: &mut Ctx) -> Result<()> {
    let (m, generated, gen_s) = ensure_bag_files()?;
    for f in 0..BAG_FILES {
        // warm the page cache for both sides alike
        std::hint::black_box(std::fs::read(file_path(f))?);
    }
    let mut expect: Vec<u64> = m.counts.values().copied().collect();
    expect.sort_unstable_by(|a, b| b.cmp(a));
    expect.truncate(10);
    let glob = bag_dir().join("names-*.json.gz").to_string_lossy().into_owned();
    ctx.acct_start();
    let mut walls = Vec::new();
    let mut cpus = Vec::new();
    let mut top = Vec::new();
    for _ in 0..BAG_RUNS {
        let cpu0 = ctx.cpu_now().2;
        let t0 = Instant::now();
        // db.read_text(glob).map(json.loads).pluck('name').frequencies().topk(10, key=1)
        let b = bag::read_text(&glob)?
            .map(bag::json_loads)
            .pluck::<Value>("name")
            .frequencies()
            .topk_by(10, 1);
        let fut = b
            .to_delayed()
            .pop()
            .context("topk has one partition")?
            .persist(&ctx.client)?;
        top = fut.result_timeout(Some(BAG_RUN_TIMEOUT))?;
        walls.push(secs(t0));
        cpus.push(ctx.cpu_now().2 - cpu0);
        drop(fut);
        let got: Vec<u64> = top.iter().map(|(_, n)| *n).collect();
        ensure!(got == expect, "top-10 counts {got:?}, expected {expect:?}");
        ctx.settle(Duration::from_secs(60))?;
    }
    let mut sorted = walls.clone();
    sorted.sort_by(f64::total_cmp);
    let best = sorted[0];
    let tasks = bag::read_text(&glob)?
        .map(bag::json_loads)
        .pluck::<Value>("name")
        .frequencies()
        .topk_by(10, 1)
        .task_count(&Default::default())?;
    ctx.emit(
        Rec::new("bag_names")
            .int("files", m.files)
            .int("lines", m.lines)
            .int("text_bytes", m.text_bytes)
            .int("gz_bytes", m.gz_bytes)
            .bool("generated_now", generated)
            .num("gen_s", gen_s, 2)
            .int("tasks", tasks)
            .int("runs", BAG_RUNS)
            .val(
                "rdask_s",
                J::Arr(walls.iter().map(|w| J::Num(super::round(*w, 3))).collect()),
            )
            .num("rdask_best_s", best, 3)
            .num("rdask_median_s", median(&sorted), 3)
            .val(
                "rdask_cpu_workers_s",
                J::Arr(cpus.iter().map(|c| J::Num(super::round(*c, 3))).collect()),
            )
            .num("rdask_text_mb_per_s", m.text_bytes as f64 / best / 1e6, 1)
            .num("rdask_lines_per_s", m.lines as f64 / best, 1)
            .val(
                "top",
                J::Arr(
                    top.iter()
                        .map(|(k, n)| J::Arr(vec![J::Str(k.as_str().unwrap_or("?").into()), J::Int(*n as i64)]))
                        .collect(),
                ),
            ),
        true,
    );
    Ok(())
}
