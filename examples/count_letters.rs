//! The seed workload: count the letters of N files of random ASCII letters by
//! reading and sorting each, once sequentially and once through rdask
//! `map` + `gather`, check that both agree, and print both times and the
//! speedup.
//!
//! ```text
//! cargo run --release --example count_letters                  # embedded 2-worker cluster
//! cargo run --release --example count_letters -- --files 100 --size 10000000
//! cargo run --release --example count_letters -- --scheduler tcp://127.0.0.1:8786
//! ```
//!
//! The binary also serves as a worker for its own `count_letters` task
//! (`count_letters worker tcp://...`): that is how a user's `#[task]`
//! functions reach a real cluster.

use std::path::{Path, PathBuf};
use std::time::Instant;

/// Reads a file and sorts its bytes; the count is the file's length.
#[rdask::task]
fn count_letters(path: String) -> std::io::Result<usize> {
    let mut data = std::fs::read(&path)?;
    data.sort_unstable();
    Ok(std::hint::black_box(data).len())
}

struct Args {
    files: usize,
    size: usize,
    workers: usize,
    scheduler: Option<String>,
    dir: Option<PathBuf>,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        files: 16,
        size: 4_000_000,
        workers: 2,
        scheduler: None,
        dir: None,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = || it.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "--files" => args.files = value()?.parse().map_err(|e| format!("--files: {e}"))?,
            "--size" => args.size = value()?.parse().map_err(|e| format!("--size: {e}"))?,
            "--workers" => args.workers = value()?.parse().map_err(|e| format!("--workers: {e}"))?,
            "--scheduler" => args.scheduler = Some(value()?),
            "--dir" => args.dir = Some(PathBuf::from(value()?)),
            "-h" | "--help" => {
                println!(
                    "usage: count_letters [--files N] [--size BYTES] [--workers N] [--scheduler tcp://HOST:PORT] [--dir DIR]\n       count_letters worker tcp://HOST:PORT   (serve this binary's tasks)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Writes `files` files of `size` random letters (skipping files that are
/// already there at the right size).
fn ensure_files(dir: &Path, files: usize, size: usize) -> std::io::Result<Vec<String>> {
    std::fs::create_dir_all(dir)?;
    const ALPHABET: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ";
    let mut paths = Vec::with_capacity(files);
    for i in 0..files {
        let path = dir.join(format!("letters_{i:03}.txt"));
        if std::fs::metadata(&path).map(|m| m.len() as usize).ok() != Some(size) {
            let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (i as u64 + 1);
            let data: Vec<u8> = (0..size)
                .map(|_| {
                    state ^= state << 13;
                    state ^= state >> 7;
                    state ^= state << 17;
                    ALPHABET[(state % ALPHABET.len() as u64) as usize]
                })
                .collect();
            std::fs::write(&path, data)?;
        }
        paths.push(path.to_string_lossy().into_owned());
    }
    Ok(paths)
}

fn main() {
    // `count_letters worker tcp://...` (and the other rdask subcommands) make
    // this binary a worker that can run its own task.
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
        .unwrap_or_else(|| std::env::temp_dir().join(format!("rdask-letters-{}x{}", args.files, args.size)));
    let paths = ensure_files(&dir, args.files, args.size)?;
    // Warm the page cache for both runs alike.
    for p in &paths {
        std::hint::black_box(std::fs::read(p)?);
    }

    let t0 = Instant::now();
    let sequential: Vec<usize> = paths
        .iter()
        .map(|p| count_letters(p.clone()))
        .collect::<Result<_, _>>()?;
    let sequential_s = t0.elapsed().as_secs_f64();

    // The embedded cluster (or a connection to a real one) is set up before
    // the clock starts, as Dask's benchmark does.
    let cluster;
    let client = match &args.scheduler {
        Some(address) => rdask::Client::connect(address)?,
        None => {
            cluster = rdask::LocalCluster::new(args.workers)?;
            if let Some(link) = cluster.dashboard_link() {
                println!("dashboard: {link}");
            }
            cluster.client()?
        }
    };
    let t1 = Instant::now();
    let futures = client.map(count_letters, &paths)?;
    let counts: Vec<usize> = client.gather(&futures)?;
    let rdask_s = t1.elapsed().as_secs_f64();

    println!("files: {} x {} bytes", args.files, args.size);
    println!("sequential: {sequential_s:.3} s");
    println!("rdask: {rdask_s:.3} s");
    println!("speedup: {:.2}", sequential_s / rdask_s);
    if counts != sequential {
        eprintln!("MISMATCH: sequential {sequential:?} vs rdask {counts:?}");
        std::process::exit(1);
    }
    println!(
        "results agree: {} files, {} letters",
        counts.len(),
        counts.iter().sum::<usize>()
    );
    Ok(())
}
