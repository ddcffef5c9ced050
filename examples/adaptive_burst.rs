//! Adaptive scaling on a burst: a scheduler process, workers as local
//! processes started and retired by `Adaptive` between a minimum and a
//! maximum, and a burst of sleeping tasks. Prints how long the burst took,
//! the most workers seen, and how long the cluster took to shrink back.
//!
//! ```text
//! cargo run --example adaptive_burst                               # 1,000 × 1 s on adapt(1, 8)
//! cargo run --example adaptive_burst -- --tasks 200 --ms 200 --max 4
//! ```
//!
//! This binary is its own scheduler and workers (`adaptive_burst scheduler`
//! / `worker`, through `rdask::cli::main`).

use std::time::{Duration, Instant};

use rdask::builtins::sleep_ms;
use rdask::launch::{Adaptive, WorkerProcesses, WorkerTemplate};
use rdask::{Client, SubmitOptions};

/// The bound on each wait of this example.
const BOUND: Duration = Duration::from_secs(1800);

fn flag(args: &[String], name: &str, default: u64) -> Result<u64, String> {
    match args.iter().position(|a| a == name) {
        Some(i) => args
            .get(i + 1)
            .ok_or(format!("{name} needs a value"))?
            .parse()
            .map_err(|e| format!("{name}: {e}")),
        None => Ok(default),
    }
}

fn main() {
    if let Some(first) = std::env::args().nth(1) {
        if !first.starts_with('-') {
            std::process::exit(rdask::cli::main());
        }
    }
    rdask::init_logging();
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}

fn run() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let tasks = flag(&args, "--tasks", 1000)? as usize;
    let ms = flag(&args, "--ms", 1000)?;
    let min = flag(&args, "--min", 1)? as u32;
    let max = flag(&args, "--max", 8)? as u32;
    let me = std::env::current_exe()?;
    let dir = std::env::temp_dir().join(format!("rdask-adaptive-burst-{}", std::process::id()));
    std::fs::create_dir_all(&dir)?;
    // The scheduler: a child process of this one.
    let log = std::fs::File::create(dir.join("scheduler.log"))?;
    let mut scheduler = std::process::Command::new(&me)
        .args(["scheduler", "--host", "127.0.0.1", "--port", "0"])
        .stdout(log.try_clone()?)
        .stderr(log)
        .spawn()?;
    let started = Instant::now();
    let address = loop {
        let text = std::fs::read_to_string(dir.join("scheduler.log"))?;
        if let Some(line) = text.lines().find(|l| l.starts_with("rdask scheduler listening on ")) {
            break line.split_whitespace().last().unwrap_or_default().to_string();
        }
        if started.elapsed() > Duration::from_secs(30) {
            return Err(format!("the scheduler did not start; its log:\n{text}").into());
        }
        std::thread::sleep(Duration::from_millis(50));
    };
    let client = Client::connect(&address)?;
    let template = WorkerTemplate {
        binary: Some(me.clone()),
        nanny: false,
        ..WorkerTemplate::default()
    };
    let backend = WorkerProcesses::new(&address, "local", template, "burst", &dir);
    let adaptive = Adaptive::new(backend, client.clone(), min, max).start();
    client.wait_for_workers(min as usize, Duration::from_secs(60))?;

    let t0 = Instant::now();
    let futures = client.map_with(sleep_ms, vec![ms; tasks], &SubmitOptions::impure())?;
    let mut most = 0;
    let mut first_max = None;
    while !futures.iter().all(|f| f.done()) {
        if t0.elapsed() > BOUND {
            return Err(format!("the burst did not finish in {BOUND:?}").into());
        }
        let n = client.scheduler_info()?.workers.len();
        if n > most {
            most = n;
            first_max = Some(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let results: Vec<u64> = client.gather(&futures)?;
    let took = t0.elapsed();
    assert!(results.iter().all(|&r| r == ms), "every result is the task's own");
    drop(futures);
    let t1 = Instant::now();
    while client.scheduler_info()?.workers.len() > min as usize {
        if t1.elapsed() > BOUND {
            return Err("the cluster did not shrink back".into());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let shrink = t1.elapsed();
    println!(
        "{tasks} × {ms} ms on adapt({min}, {max}): {} results in {took:.1?} (ideal at {max} workers: {:.1?}); \
         most workers {most} (first at {:.1?}); back to {min} in {shrink:.1?}",
        results.len(),
        Duration::from_millis(ms * tasks as u64 / max as u64),
        first_max.unwrap_or_default()
    );
    if let Some(e) = adaptive.last_error() {
        println!("last adaptive error: {e}");
    }
    drop(adaptive);
    let _ = scheduler.kill();
    let _ = scheduler.wait();
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}
