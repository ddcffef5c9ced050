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
//! # 10 GiB of plain JSON lines in 64 MiB blocks, on a scheduler and two
//! # 1-thread worker processes limited to 1 GiB each; files deleted after
//! cargo run --release --example bag_names -- --plain-mib 10240 --blocksize 64MiB \
//!     --processes --memory-limit 1GiB --cleanup
//! ```
//!
//! With `--scheduler`, the workers must see the files (same machine, or
//! `--dir` on a shared file system). Plain `rdask worker`s suffice: the
//! pipeline uses only built-ins (`rdask::bag::json_loads` and the bag
//! runners). The binary also serves as a scheduler and a worker itself
//! (`bag_names worker tcp://...`), as a program with its own tasks would;
//! `--processes` starts those as child processes and reports their peak
//! memory (`VmHWM`). With `--plain-mib`, the input is uncompressed files of
//! at most [`PLAIN_FILE_MIB`] MiB read in line-aligned blocks, and the
//! result is checked against the counts the generator wrote down (a
//! sequential re-count would take as long as the run).

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdask::bag;
use serde_json::Value;

const NAMES: &[&str] = &[
    "Alice", "Bob", "Carol", "Dan", "Eve", "Frank", "Grace", "Heidi", "Ivan", "Judy", "Mallory", "Niaj", "Olivia",
    "Peggy", "Rupert", "Sybil", "Trent", "Victor", "Walter", "Yolanda",
];

/// Largest file `--plain-mib` writes (the rest of the input goes to more files).
const PLAIN_FILE_MIB: u64 = 1024;
/// Longest a child scheduler or worker may take to say where it listens.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(30);
/// Longest the workers may take to join.
const JOIN_TIMEOUT: Duration = Duration::from_secs(60);

type Res<T> = Result<T, Box<dyn std::error::Error>>;

struct Args {
    files: usize,
    lines: usize,
    workers: usize,
    scheduler: Option<String>,
    dir: Option<PathBuf>,
    plain_mib: Option<u64>,
    blocksize: u64,
    processes: bool,
    memory_limit: Option<String>,
    cleanup: bool,
}

fn parse_args() -> Result<Args, String> {
    let mut args = Args {
        files: 8,
        lines: 50_000,
        workers: 2,
        scheduler: None,
        dir: None,
        plain_mib: None,
        blocksize: 64 << 20,
        processes: false,
        memory_limit: None,
        cleanup: false,
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
            "--plain-mib" => args.plain_mib = Some(value()?.parse().map_err(|e| format!("--plain-mib: {e}"))?),
            "--blocksize" => {
                let v = value()?;
                let size: bytesize::ByteSize = v.parse().map_err(|e| format!("--blocksize {v}: {e}"))?;
                args.blocksize = size.as_u64();
            }
            "--processes" => args.processes = true,
            "--memory-limit" => args.memory_limit = Some(value()?),
            "--cleanup" => args.cleanup = true,
            "-h" | "--help" => {
                println!(
                    "usage: bag_names [--files N] [--lines N] [--workers N] [--scheduler tcp://HOST:PORT | --processes [--memory-limit SIZE]]\n                 [--dir DIR] [--plain-mib N [--blocksize SIZE]] [--cleanup]\n       bag_names worker tcp://HOST:PORT   (serve as a worker; also `scheduler`)"
                );
                std::process::exit(0);
            }
            other => return Err(format!("unknown flag {other:?} (try --help)")),
        }
    }
    Ok(args)
}

/// Writes JSON records `{"id":i,"name":…,"amount":…,"file":f}` until
/// `lines` lines or `bytes` bytes, names drawn with a skew (so the top 10
/// is well defined); returns (lines, bytes, count per name).
fn write_records(out: &mut impl Write, f: usize, lines: u64, bytes: u64) -> std::io::Result<(u64, u64, Vec<u64>)> {
    let mut state = 0x9E37_79B9_7F4A_7C15u64 ^ (f as u64 + 1);
    let (mut n, mut written) = (0u64, 0u64);
    let mut counts = vec![0u64; NAMES.len()];
    let mut line = Vec::with_capacity(128);
    while n < lines && written < bytes {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        // The minimum of two draws favours the first names.
        let a = (state % NAMES.len() as u64) as usize;
        let b = ((state >> 32) % NAMES.len() as u64) as usize;
        line.clear();
        writeln!(
            line,
            r#"{{"id":{n},"name":"{}","amount":{},"file":{f}}}"#,
            NAMES[a.min(b)],
            state % 1000
        )?;
        out.write_all(&line)?;
        counts[a.min(b)] += 1;
        written += line.len() as u64;
        n += 1;
    }
    Ok((n, written, counts))
}

/// Writes `files` gzipped files of `lines` JSON records each, unless present.
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
        write_records(&mut gz, f, lines as u64, u64::MAX)?;
        gz.finish()?.flush()?;
        std::fs::rename(&tmp, &path)?;
    }
    Ok(())
}

/// Writes `mib` MiB of plain JSON lines (two writer threads), unless the
/// counts file says they are there; returns the count of every name.
fn ensure_plain_files(dir: &Path, mib: u64) -> Res<BTreeMap<String, u64>> {
    let counts_path = dir.join("counts.json");
    if let Ok(bytes) = std::fs::read(&counts_path) {
        return Ok(serde_json::from_slice(&bytes)?);
    }
    std::fs::create_dir_all(dir)?;
    let total = mib << 20;
    let per_file = PLAIN_FILE_MIB << 20;
    let nfiles = total.div_ceil(per_file) as usize;
    let t0 = Instant::now();
    let results: Vec<std::io::Result<Vec<u64>>> = std::thread::scope(|s| {
        let handles: Vec<_> = (0..2)
            .map(|t| {
                s.spawn(move || {
                    let mut sum = vec![0u64; NAMES.len()];
                    for f in (0..nfiles).filter(|f| f % 2 == t) {
                        let bytes = per_file.min(total - f as u64 * per_file);
                        let path = dir.join(format!("names-{f:03}.json"));
                        let mut out = std::io::BufWriter::with_capacity(1 << 20, std::fs::File::create(&path)?);
                        let (_, _, counts) = write_records(&mut out, f, u64::MAX, bytes)?;
                        out.flush()?;
                        sum.iter_mut().zip(counts).for_each(|(s, c)| *s += c);
                    }
                    Ok(sum)
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(std::io::Error::other("a writer panicked")))
            })
            .collect()
    });
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
    for r in results {
        for (name, n) in NAMES.iter().zip(r?) {
            *counts.entry(name.to_string()).or_default() += n;
        }
    }
    std::fs::write(&counts_path, serde_json::to_vec(&counts)?)?;
    println!(
        "wrote {mib} MiB in {nfiles} files in {:.1} s",
        t0.elapsed().as_secs_f64()
    );
    Ok(counts)
}

/// The same count without rdask, to check the result.
fn sequential(glob: &str) -> Res<BTreeMap<String, u64>> {
    let mut counts: BTreeMap<String, u64> = BTreeMap::new();
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
    Ok(counts)
}

/// The ten largest counts, largest first.
fn top_counts(counts: &BTreeMap<String, u64>) -> Vec<u64> {
    let mut v: Vec<u64> = counts.values().copied().collect();
    v.sort_unstable_by(|a, b| b.cmp(a));
    v.truncate(10);
    v
}

/// Child processes (a scheduler and its workers), killed when dropped.
struct Children(Vec<Child>);

impl Drop for Children {
    fn drop(&mut self) {
        for c in &mut self.0 {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

/// Starts this binary with `args` and returns where it says it listens.
fn spawn(children: &mut Children, args: &[&str]) -> Res<String> {
    let mut child = Command::new(std::env::current_exe()?)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    children.0.push(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        // Read on to the end, so the child never blocks on a full pipe.
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.contains("listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
    });
    let line = rx.recv_timeout(SPAWN_TIMEOUT).map_err(|_| {
        format!(
            "`{}` did not say where it listens within {SPAWN_TIMEOUT:?}",
            args.join(" ")
        )
    })?;
    Ok(line.split_whitespace().last().unwrap_or_default().to_string())
}

/// A kernel-reported memory figure of a process, in MiB.
fn proc_mib(pid: u32, field: &str) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with(field))?;
    let kb: u64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb >> 10)
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

fn run(args: Args) -> Res<()> {
    let dir = args.dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(match args.plain_mib {
            Some(mib) => format!("rdask-bag-names-plain-{mib}mib"),
            None => format!("rdask-bag-names-{}x{}", args.files, args.lines),
        })
    });
    let (glob, expected) = match args.plain_mib {
        Some(mib) => (dir.join("names-*.json"), Some(ensure_plain_files(&dir, mib)?)),
        None => {
            ensure_files(&dir, args.files, args.lines)?;
            (dir.join("2015-*-*.json.gz"), None)
        }
    };
    let glob = glob.to_string_lossy().into_owned();

    let mut children = Children(Vec::new());
    let cluster;
    let client = if let Some(address) = &args.scheduler {
        rdask::Client::connect(address)?
    } else if args.processes {
        let address = spawn(&mut children, &["scheduler", "--host", "127.0.0.1", "--port", "0"])?;
        for i in 0..args.workers {
            let name = format!("w{}", i + 1);
            let mut wargs = vec!["worker", &address, "--nthreads", "1", "--name", &name];
            if let Some(limit) = &args.memory_limit {
                wargs.extend(["--memory-limit", limit]);
            }
            spawn(&mut children, &wargs)?;
        }
        let client = rdask::Client::connect(&address)?;
        let t0 = Instant::now();
        while client.scheduler_info()?.workers.len() < args.workers {
            if t0.elapsed() > JOIN_TIMEOUT {
                return Err(format!("the workers did not join within {JOIN_TIMEOUT:?}").into());
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        client
    } else {
        cluster = rdask::LocalCluster::new(args.workers)?;
        cluster.client()?
    };

    let t0 = Instant::now();
    let source = match args.plain_mib {
        Some(_) => bag::read_text_blocks(&glob, args.blocksize)?,
        None => bag::read_text(&glob)?,
    };
    let partitions = source.npartitions();
    // db.read_text(glob).map(json.loads).pluck('name').frequencies().topk(10, key=1)
    let top = source
        .map(bag::json_loads)
        .pluck::<Value>("name")
        .frequencies()
        .topk_by(10, 1)
        .compute(&client)?;
    let rdask_s = t0.elapsed().as_secs_f64();

    let t1 = Instant::now();
    let want = match expected {
        Some(counts) => counts,
        None => sequential(&glob)?,
    };
    let check_s = t1.elapsed().as_secs_f64();

    match args.plain_mib {
        Some(mib) => println!(
            "input: {mib} MiB of JSON lines in {partitions} blocks of {} bytes in {}",
            args.blocksize,
            dir.display()
        ),
        None => println!("files: {} x {} lines in {}", args.files, args.lines, dir.display()),
    }
    for (name, n) in &top {
        println!("{:>10} {n}", name.as_str().unwrap_or("?"));
    }
    println!("rdask: {rdask_s:.3} s, check: {check_s:.3} s");
    for (i, c) in children.0.iter().enumerate().skip(1) {
        println!(
            "worker w{i} (pid {}): peak RSS {} MiB, RSS now {} MiB",
            c.id(),
            proc_mib(c.id(), "VmHWM:").unwrap_or(0),
            proc_mib(c.id(), "VmRSS:").unwrap_or(0)
        );
    }
    if args.cleanup {
        std::fs::remove_dir_all(&dir)?;
        println!("removed {}", dir.display());
    }
    // Ties may be ordered differently; compare the counts.
    let got: Vec<u64> = top.iter().map(|(_, n)| *n).collect();
    if got != top_counts(&want) {
        eprintln!("MISMATCH: rdask {top:?} vs expected {want:?}");
        std::process::exit(1);
    }
    println!("results agree");
    Ok(())
}
