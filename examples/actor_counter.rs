//! An actor shared by tasks: a `Counter` that lives on one worker, bumped
//! by 100 tasks at once and read by the client, with calls going straight
//! to its worker; then `Client::run` on every worker. `tests/actors.rs`
//! and `tests/run.rs` run this binary as worker processes.
//!
//! ```text
//! actor_counter worker tcp://HOST:PORT   # a worker that can host Counter and run bump
//! actor_counter                          # the demo, on a local cluster of 2 workers
//! actor_counter --calls N                # time N calls, one at a time and all at once
//! ```

use std::time::Duration;

use rdask::{Actor, Client, Error, LocalCluster, SubmitOptions};

/// A counter living on one worker; calls on it run one at a time.
pub struct Counter {
    n: i64,
}

#[rdask::actor]
impl Counter {
    /// A counter starting at `start`.
    pub fn new(start: i64) -> Counter {
        Counter { n: start }
    }

    /// Adds `by`; the new value.
    pub fn increment(&mut self, by: i64) -> i64 {
        self.n += by;
        self.n
    }

    /// The value.
    pub fn value(&self) -> i64 {
        self.n
    }

    /// The value after sleeping `ms` milliseconds: a call that is still
    /// running when the tests kill the actor's worker.
    pub fn slow_value(&self, ms: u64) -> i64 {
        std::thread::sleep(Duration::from_millis(ms));
        self.n
    }

    /// Fails with `why` (a method returning `Err`).
    pub fn fail(&self, why: String) -> Result<i64, String> {
        Err(why)
    }
}

/// A task that bumps the counter through the handle it was given: the
/// call goes from this task's worker to the actor's worker.
#[rdask::task]
fn bump(counter: Actor<Counter>) -> Result<i64, Error> {
    counter.increment(1).result()
}

/// This worker's process id: `Client::run` of it shows where it ran.
#[rdask::task]
fn worker_pid() -> u32 {
    std::process::id()
}

fn demo(client: &Client) -> Result<(), Error> {
    client.wait_for_workers(2, Duration::from_secs(30))?;
    let counter = client.submit_actor::<Counter>((0,))?;
    println!("counter lives on {}", Actor::actor_ref(&counter).worker());
    // Impure: the 100 calls have the same argument, and pure keys would
    // make them one task.
    let impure = SubmitOptions {
        pure: false,
        ..Default::default()
    };
    let tasks = client.map_with(bump, std::iter::repeat_n(&counter, 100), &impure)?;
    let seen: Vec<i64> = client.gather(&tasks)?;
    let value = counter.value().result()?;
    println!("100 tasks bumped it; each saw a distinct value: {}", {
        let mut s = seen.clone();
        s.sort();
        s.dedup();
        s.len() == 100
    });
    println!("counter: {value}");
    // Client::run: one call on every worker, each answered by address.
    for (worker, pid) in client.run(worker_pid, ())? {
        println!("worker {worker} runs in process {}", pid?);
    }
    Ok(())
}

/// Times `n` calls from the client: one after the other (the round trip),
/// then all sent at once (the actor's throughput, calls serialized).
fn time_calls(client: &Client, n: i64) -> Result<(), Error> {
    let counter = client.submit_actor::<Counter>((0,))?;
    let start = std::time::Instant::now();
    for _ in 0..n {
        counter.increment(1).result()?;
    }
    let one_by_one = start.elapsed();
    let start = std::time::Instant::now();
    let calls: Vec<_> = (0..n).map(|_| counter.increment(1)).collect();
    for c in calls {
        c.result()?;
    }
    let at_once = start.elapsed();
    assert_eq!(counter.value().result()?, 2 * n);
    let per = |d: Duration| d.as_secs_f64() * 1e6 / n as f64;
    println!(
        "{n} calls one by one: {:.0} µs per call; {n} at once: {:.0} µs per call",
        per(one_by_one),
        per(at_once)
    );
    Ok(())
}

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    // `actor_counter worker tcp://...` (and the other rdask subcommands)
    // make this binary a worker that can host the actor and run `bump`.
    if args.first().is_some_and(|a| !a.starts_with('-')) {
        std::process::exit(rdask::cli::main());
    }
    rdask::init_logging();
    let calls = match args.as_slice() {
        [] => None,
        [flag, n] if flag == "--calls" => match n.parse::<i64>() {
            Ok(n) if n > 0 => Some(n),
            _ => {
                eprintln!("error: --calls takes a positive number, not {n:?}");
                std::process::exit(2);
            }
        },
        other => {
            eprintln!("error: unknown arguments {other:?} (see the header of examples/actor_counter.rs)");
            std::process::exit(2);
        }
    };
    let run = || -> Result<(), Error> {
        let cluster = LocalCluster::new(2)?;
        let client = cluster.client()?;
        match calls {
            Some(n) => time_calls(&client, n),
            None => demo(&client),
        }
    };
    if let Err(e) = run() {
        eprintln!("error: {e}");
        std::process::exit(1);
    }
}
