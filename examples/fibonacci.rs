//! Dask's recursive Fibonacci: a task that submits tasks and waits for them.
//!
//! `fib(n)` submits `fib(n - 1)` and `fib(n - 2)` through
//! `rdask::worker_client()` and adds their results. While it waits, its
//! thread secedes from the worker's pool, so the tasks it waits for run
//! even on a single one-thread worker. Pure keys make `fib(k)` one task
//! however many callers submit it.
//!
//! ```text
//! cargo run --example fibonacci -- 20            # in-process, 1 worker, 1 thread
//! cargo run --example fibonacci -- 20 tcp://host:8786
//! ```
//!
//! Against a real cluster, the workers must run this binary
//! (`target/debug/examples/fibonacci worker tcp://host:8786`), since `fib`
//! lives in it.

use rdask::{Client, LocalCluster};

/// The n-th Fibonacci number, computed by tasks.
#[rdask::task]
fn fib(n: u64) -> Result<u64, rdask::Error> {
    if n < 2 {
        return Ok(n);
    }
    let client = rdask::worker_client()?;
    let a = client.submit(fib, (n - 1,))?;
    let b = client.submit(fib, (n - 2,))?;
    Ok(a.result()? + b.result()?)
}

fn main() -> anyhow::Result<()> {
    let mut args = std::env::args().skip(1);
    let first = args.next().unwrap_or_else(|| "20".into());
    if first.parse::<u64>().is_err() {
        // `fibonacci worker tcp://...` (and the other rdask subcommands)
        // serve `fib` as a worker of an existing cluster.
        std::process::exit(rdask::cli::main());
    }
    let n: u64 = first.parse()?;
    let (_cluster, client) = match args.next() {
        Some(address) => (None, Client::connect(&address)?),
        None => {
            let cluster = LocalCluster::builder().workers(1).threads_per_worker(1).build()?;
            let client = cluster.client()?;
            (Some(cluster), client)
        }
    };
    let started = std::time::Instant::now();
    let result = client.submit(fib, (n,))?.result()?;
    println!("fib({n}) = {result} in {:?}", started.elapsed());
    Ok(())
}
