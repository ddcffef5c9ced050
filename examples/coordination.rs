//! Coordination primitives between tasks and clients: tasks that share a
//! `Semaphore`, fill a `Queue`, and small client programs that hold a lock,
//! publish a dataset or fire and forget a task, then exit or get killed.
//! `tests/coordination.rs` runs them as real processes.
//!
//! ```text
//! coordination worker tcp://HOST:PORT            # serve the tasks below
//! coordination --hold-lock ADDR NAME MARKER     # take lock NAME, touch MARKER, hold it
//! coordination --hold-semaphore ADDR NAME MARKER
//! coordination --publish ADDR NAME N             # publish inc(0..N) as NAME, exit
//! coordination --fire ADDR COMMAND               # fire_and_forget a shell command, exit
//! coordination                                   # a demo on a local cluster
//! ```

use std::io::Write;
use std::time::{Duration, Instant};

use rdask::builtins::{inc, shell};
use rdask::{Client, Error, Lock, Queue, Semaphore, SubmitOptions};

/// How long a task waits for a lease before it fails: far above what the
/// tests' contention needs.
const ACQUIRE_TIMEOUT: Duration = Duration::from_secs(120);

/// How long the holder programs keep what they hold (they are killed or
/// stopped long before).
const HOLD_FOR: Duration = Duration::from_secs(300);

/// Takes a lease of semaphore `name` (of `max` leases), and while holding
/// it counts the holders marked in `dir` (its own mark included), holds
/// for `hold_ms`, unmarks and releases. Returns the count it saw: never
/// above `max` if the semaphore holds.
#[rdask::task]
fn guarded(name: String, max: u32, dir: String, hold_ms: u64, i: u64) -> Result<u32, Error> {
    let client = rdask::worker_client()?;
    let sem = Semaphore::new(&client, &name, max);
    if !sem.acquire(ACQUIRE_TIMEOUT)? {
        return Err(Error::Timeout(format!(
            "task {i}: no lease of {name} in {ACQUIRE_TIMEOUT:?}"
        )));
    }
    let mark = std::path::Path::new(&dir).join(format!("holder-{i}"));
    let seen = (|| -> std::io::Result<u32> {
        std::fs::write(&mark, b"")?;
        let seen = std::fs::read_dir(&dir)?.count() as u32;
        std::thread::sleep(Duration::from_millis(hold_ms));
        std::fs::remove_file(&mark)?;
        Ok(seen)
    })();
    sem.release()?;
    seen.map_err(|e| Error::Input(format!("{}: {e}", mark.display())))
}

/// Takes a lease of semaphore `name`, writes `marker`, holds the lease
/// for `hold_ms`.
#[rdask::task]
fn hold_semaphore(name: String, max: u32, marker: String, hold_ms: u64) -> Result<(), Error> {
    let client = rdask::worker_client()?;
    let sem = Semaphore::new(&client, &name, max);
    if !sem.acquire(ACQUIRE_TIMEOUT)? {
        return Err(Error::Timeout(format!("no lease of {name}")));
    }
    std::fs::write(&marker, b"held").map_err(|e| Error::Input(e.to_string()))?;
    std::thread::sleep(Duration::from_millis(hold_ms));
    sem.release().map(drop)
}

/// Puts `start..start + n` on queue `name`, appending each number to
/// `ack` once the scheduler has acknowledged it, `delay_ms` apart.
#[rdask::task]
fn produce(name: String, start: u64, n: u64, ack: String, delay_ms: u64) -> Result<u64, Error> {
    let client = rdask::worker_client()?;
    let queue = Queue::<u64>::new(&client, &name);
    let mut file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&ack)
        .map_err(|e| Error::Input(format!("{ack}: {e}")))?;
    for i in start..start + n {
        queue.put(&i)?;
        writeln!(file, "{i}").map_err(|e| Error::Input(format!("{ack}: {e}")))?;
        std::thread::sleep(Duration::from_millis(delay_ms));
    }
    Ok(n)
}

/// Submits `inc(x)` from inside a task and puts its future on queue
/// `name`, then returns (dropping the future: the queue keeps it alive).
#[rdask::task]
fn enqueue_child(name: String, x: i64) -> Result<(), Error> {
    let client = rdask::worker_client()?;
    let child = client.submit(inc, (x,))?;
    Queue::<i64>::new(&client, &name).put_future(&child)
}

fn arg(args: &[String], i: usize, what: &str) -> Result<String, Error> {
    args.get(i)
        .cloned()
        .ok_or_else(|| Error::Input(format!("missing {what}")))
}

fn touch(marker: &str) -> Result<(), Error> {
    std::fs::write(marker, b"held").map_err(|e| Error::Input(format!("{marker}: {e}")))
}

fn run(args: &[String]) -> Result<(), Error> {
    match args.first().map(String::as_str) {
        Some("--hold-lock") => {
            let client = Client::connect(&arg(args, 1, "ADDR")?)?;
            let lock = Lock::new(&client, &arg(args, 2, "NAME")?);
            if !lock.acquire(ACQUIRE_TIMEOUT)? {
                return Err(Error::Timeout("lock not acquired".into()));
            }
            touch(&arg(args, 3, "MARKER")?)?;
            std::thread::sleep(HOLD_FOR);
            Ok(())
        }
        Some("--hold-semaphore") => {
            let client = Client::connect(&arg(args, 1, "ADDR")?)?;
            let sem = Semaphore::new(&client, &arg(args, 2, "NAME")?, 1);
            if !sem.acquire(ACQUIRE_TIMEOUT)? {
                return Err(Error::Timeout("semaphore not acquired".into()));
            }
            touch(&arg(args, 3, "MARKER")?)?;
            std::thread::sleep(HOLD_FOR);
            Ok(())
        }
        Some("--publish") => {
            let client = Client::connect(&arg(args, 1, "ADDR")?)?;
            let n: i64 = arg(args, 3, "N")?
                .parse()
                .map_err(|e| Error::Input(format!("N: {e}")))?;
            let futures = client.map(inc, 0..n)?;
            client.wait(&futures, rdask::ReturnWhen::AllCompleted, Some(ACQUIRE_TIMEOUT))?;
            client.publish_dataset(&arg(args, 2, "NAME")?, &futures)?;
            Ok(())
        }
        Some("--fire") => {
            let client = Client::connect(&arg(args, 1, "ADDR")?)?;
            let f = client.submit_with(shell, (arg(args, 2, "COMMAND")?,), &SubmitOptions::impure())?;
            client.fire_and_forget(std::slice::from_ref(&f))?;
            // A round trip: the scheduler has the fire-and-forget before
            // this process exits (its messages are only queued until then).
            client.scheduler_info().map(drop)
        }
        Some(other) => Err(Error::Input(format!("unknown flag {other:?}"))),
        None => demo(),
    }
}

/// A semaphore of 2 over 20 tasks on a local cluster.
fn demo() -> Result<(), Error> {
    let cluster = rdask::LocalCluster::new(2)?;
    let client = cluster.client()?;
    let dir = std::env::temp_dir().join(format!("rdask-coordination-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| Error::Input(e.to_string()))?;
    let t0 = Instant::now();
    let dir_s = dir.to_string_lossy().into_owned();
    let futures = (0..20u64)
        .map(|i| client.submit(guarded, ("demo".to_string(), 2u32, dir_s.clone(), 50u64, i)))
        .collect::<Result<Vec<_>, _>>()?;
    let seen = client.gather(&futures)?;
    println!(
        "20 tasks under Semaphore(2): at most {} holders at once, {:.2} s",
        seen.iter().max().unwrap_or(&0),
        t0.elapsed().as_secs_f64()
    );
    let _ = std::fs::remove_dir_all(&dir);
    Ok(())
}

fn main() {
    // `coordination worker tcp://...` (and the other rdask subcommands)
    // make this binary a worker that runs its own tasks.
    if let Some(first) = std::env::args().nth(1) {
        if !first.starts_with('-') {
            std::process::exit(rdask::cli::main());
        }
    }
    rdask::init_logging();
    let args: Vec<String> = std::env::args().skip(1).collect();
    if let Err(e) = run(&args) {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
