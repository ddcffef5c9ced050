//! The seed's array snippet on an embedded cluster:
//!
//! ```python
//! x = da.from_array(f['/big-data'], chunks=(1000, 1000))
//! x - x.mean(axis=1)
//! ```
//!
//! with x a seeded random 4000 × 4000 array in 1000 × 1000 blocks (the
//! seed's HDF5 file is not at hand), centred with the row means kept as a
//! column (`keepdims`), then summed to a checksum: each row of the centred
//! array sums to about 0, and its standard deviation is printed too.
//!
//! `cargo run --release -p rdask-array --example array_seed [-- --n 4000 --chunk 1000]`;
//! with `-- --scheduler tcp://HOST:PORT` it runs on a cluster whose workers
//! link this crate (`rdask-array worker …`); with `worker …` (or any other
//! subcommand of `rdask`) it is that worker.

use rdask::delayed::compute;
use rdask_array as da;

fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let args: Vec<String> = std::env::args().collect();
    if args.get(1).is_some_and(|a| !a.starts_with("--")) {
        // A subcommand: this binary is an rdask worker (or scheduler) that
        // can run the array kernels.
        std::process::exit(rdask::cli::main());
    }
    let (n, chunk) = (arg(&args, "--n", 4000), arg(&args, "--chunk", 1000));
    let scheduler = args
        .iter()
        .position(|a| a == "--scheduler")
        .and_then(|i| args.get(i + 1));
    let cluster;
    let client = match scheduler {
        Some(addr) => rdask::Client::connect(addr)?,
        None => {
            cluster = rdask::LocalCluster::new(2)?;
            cluster.client()?
        }
    };
    let t0 = std::time::Instant::now();
    let x = da::random(&[n, n], &[chunk, chunk], 2015)?;
    let centered = (&x - &x.mean_axes(&[1], true)?)?;
    // Both results in one submission: the blocks of x are made once.
    let checksum = centered.sum().to_delayed().pop().ok_or("no block")?;
    let std = centered.std(0.0).to_delayed().pop().ok_or("no block")?;
    let (checksum, std) = compute(&client, (&checksum, &std))?;
    println!(
        "x: {n}x{n} in {chunk}x{chunk} chunks; sum(x - x.mean(axis=1, keepdims)) = {:.6e}, std = {:.6} ({:.2} s)",
        checksum.0.sum(),
        std.0.sum(),
        t0.elapsed().as_secs_f64()
    );
    Ok(())
}
