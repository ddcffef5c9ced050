//! The seed's bag example,
//! `db.read_text('2015-*-*.json.gz').map(json.loads).pluck('name').frequencies().topk(10, key=1).compute()`,
//! in Rust: writes its own gzipped JSON-lines files (skipped when they are
//! there already), runs the pipeline on an embedded 2-worker cluster or a
//! real one, and checks the result against a sequential count.
//!
//! ```text
//! cargo run --example bag_names                                  # embedded cluster
//! cargo run --example bag_names -- --files 16 --lines 200000
//! cargo run --example bag_names -- --scheduler tcp://127.0.0.1:8786
//! ```
//!
//! With `--scheduler`, the workers must see the files (same machine, or
//! `--dir` on a shared file system). Plain `rdask worker`s suffice: the
//! pipeline uses only built-ins (`rdask::bag::json_loads` and the bag
//! runners). The binary also serves as a worker itself
//! (`bag_names worker tcp://...`), as a program with its own tasks would.

use std::collections::HashMap;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::time::Instant;

use rdask::bag;
use serde_json::Value;

const NAMES: &[&str] = &[
    "Alice", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia",
    "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yolanda",
];

struct Args {
    files: usize,
    lines: usize,
    workers: usize,
    scheduler: Option<String>,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        files: 8,
        lines: 50_000,
        workers: 2,
        scheduler: None,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--files" => args.files = value()?.parse().map_err(|e| format!("--files: {e}"))?,
            "--lines" => args.lines = value()?.parse().map_err(|e| format!("--lines: {e}"))?,
            "--workers" => args.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--scheduler" => args.scheduler = Some(value()?),
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!(
                    "usage: bag_names [--files N] [--lines N] [--workers N] [--scheduler tcp://HOST:PORT] [--dir DIR]\n       bag_names worker tcp://HOST:PORT   (serve as a worker)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Writes `files` gzipped files of `lines` JSON records each, names drawn
/// with a skew (so the top 10 is well defined), unless present.
fn ensure_files(dir: &Path, files: usize, lines: usize) -> std::io::Result<()> {
    std::fs::create_dir_all(dir)?;
    for f in 0..files {
        let path = dir.join(format!("2015-{:02}-{:02}.json.gz", f / 28 + 1, f % 28 + 1));
        if path.exists() {
            continue;
        }
        let tmp = path.with_extension("tmp");
        let mut gz = flate2::write::GzEncoder::new(
            std::io::BufWriter::new(std::fs::File::create(&tmp)?),
            flate2::Compression::fast(),
        );
        let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (f as u64 + 1);
        for i in 0..lines {
            state ^= state << 13;
            state ^= state >> 7;
            state ^= state << 17;
            // The minimum of two draws favours the first names.
            let a = (state % NAMES.len() as u64) as usize;
            let b = ((state >> 32) % NAMES.len() as u64) as usize;
            writeln!(
                gz,
                r#"{{"id":{i},"name":"{}","amount":{},"file":{f}}}"#,
                NAMES[a.min(b)],
                state % 1000
            )?;
        }
        gz.finish()?.flush()?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// The same count without rdask, to check the result.
fn sequential(glob: &str) -> Result<Vec<(Value, u64)>, Box<dyn std::error::Error>> {
    let mut counts: HashMap<String, u64> = HashMap::new();
    let mut paths: Vec<PathBuf> = Vec::new();
    for p in glob::glob(glob)? {
        paths.push(p?);
    }
    paths.sort();
    for p in paths {
        for line in bag::read_to_string(&p)?.lines() {
            let v: Value = serde_json::from_str(line)?;
            let name = v["name"].as_str().unwrap_or_default().to_string();
            *counts.entry(name).or_default() += 1;
        }
    }
    let mut top: Vec<(Value, u64)> = counts.into_iter().map(|(k, n)| (Value::from(k), n)).collect();
    top.sort_by_key(|t| std::cmp::Reverse(t.1));
    top.truncate(10);
    Ok(top)
}

fn main() {
    // `bag_names worker tcp://...` (and the other rdask subcommands) make
    // this binary a worker.
    if let Some(first) = std::env::args().nth(1) {
        if !first.starts_with('-') {
            std::process::exit(rdask::cli::main());
        }
    }
    rdask::init_logging();
    let args = match parse_args() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    };
    if let Err(e) = run(args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run(args: Args) -> Result<(), Box<dyn std::error::Error>> {
    let dir = args
        .dir
        .clone()
        .unwrap_or_else(|| std::env::temp_dir().join(format!("rdask-bag-names-{}x{}", args.files, args.lines)));
    ensure_files(&dir, args.files, args.lines)?;
    let glob = dir.join("2015-*-*.json.gz").to_string_lossy().into_owned();

    let cluster;
    let client = match &args.scheduler {
        Some(address) => rdask::Client::connect(address)?,
        None => {
            cluster = rdask::LocalCluster::new(args.workers)?;
            cluster.client()?
        }
    };

    let t0 = Instant::now();
    // db.read_text(glob).map(json.loads).pluck('name').frequencies().topk(10, key=1)
    let top = bag::read_text(&glob)?
        .map(bag::json_loads)
        .pluck::<Value>("name")
        .frequencies()
        .topk_by(10, 1)
        .compute(&client)?;
    let rdask_s = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let want = sequential(&glob)?;
    let sequential_s = t1.elapsed().as_secs_f64();

    println!("files: {} x {} lines in {}", args.files, args.lines, dir.display());
    for (name, n) in &top {
        println!("{:>10} {n}", name.as_str().unwrap_or("?"));
    }
    println!("rdask: {rdask_s:.3} s, sequential: {sequential_s:.3} s");
    // Ties may be ordered differently; compare the counts and the sets.
    let counts = |v: &[(Value, u64)]| v.iter().map(|(_, n)| *n).collect::<Vec<_>>();
    if counts(&top) != counts(&want) {
        eprintln!("MISMATCH: rdask {top:?} vs sequential {want:?}");
        std::process::exit(1);
    }
    println!("results agree");
    Ok(())
}
