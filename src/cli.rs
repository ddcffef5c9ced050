//! The `rdask` command line, embeddable: a user's binary that calls
//! [`main`] gets the same subcommands, and its own `#[task]` functions are
//! served by `my-app worker tcp://...`.

use std::io::Write as _;
use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use tracing::{error, info};

use crate::actors::scheduler::{start_scheduler, SchedulerOptions};
use crate::actors::worker::{start_worker, WorkerOptions};
use crate::client::{Client, SubmitOptions};

/// Command-line interface of rdask.
#[derive(Parser, Debug)]
#[command(
    name = "rdask",
    version,
    about = "A distributed task runtime in the model of Dask.distributed"
)]
pub struct Cli {
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scheduler.
    Scheduler {
        /// Interface to listen on.
        #[arg(long, default_value = "127.0.0.1")]
        host: String,
        /// Port to listen on (0: any free port; the chosen address is printed).
        #[arg(long, default_value_t = 8786)]
        port: u16,
        /// Seconds without any message after which a worker is removed.
        #[arg(long, default_value_t = 30.0)]
        worker_timeout: f64,
    },
    /// Run a worker connected to a scheduler.
    Worker {
        /// Scheduler address, tcp://host:port.
        scheduler: String,
        /// Task threads.
        #[arg(long, default_value_t = 1)]
        nthreads: u32,
        /// Unique worker name (default: its address).
        #[arg(long)]
        name: Option<String>,
        /// Memory limit, e.g. 4GB, 512MiB, or 0 for none.
        #[arg(long, default_value = "0")]
        memory_limit: String,
        /// Abstract resources, e.g. "GPU=2,MEM=10e9".
        #[arg(long, default_value = "")]
        resources: String,
        /// Directory for the worker's files.
        #[arg(long)]
        local_directory: Option<PathBuf>,
        /// Interface for the worker's peer port (must be reachable by peers).
        #[arg(long, default_value = "127.0.0.1")]
        listen_host: String,
        /// Port for the worker's peer port (0: any).
        #[arg(long, default_value_t = 0)]
        listen_port: u16,
    },
    /// Print the scheduler's workers and task counts.
    Info {
        /// Scheduler address.
        scheduler: String,
    },
    /// Run a shell command on a worker of the cluster and print its output;
    /// exits with the command's status.
    Shell {
        /// Scheduler address.
        scheduler: String,
        /// The command line, run with `sh -c`.
        command: String,
    },
    /// List the task functions this binary can serve as a worker.
    Functions,
}

/// Parses a size such as `4GB`, `512MiB`, `1.5e9` or `0`.
pub fn parse_bytes(s: &str) -> Result<u64, String> {
    let t = s.trim();
    let split = t.find(|c: char| c.is_ascii_alphabetic()).unwrap_or(t.len());
    let (num, unit) = t.split_at(split);
    // Allow scientific notation like 1e9 where the `e` is part of the number.
    let (num, unit) = if unit.starts_with(['e', 'E']) && unit[1..].chars().all(|c| c.is_ascii_digit() || c == '-') {
        (t, "")
    } else {
        (num, unit)
    };
    let value: f64 = num.trim().parse().map_err(|_| format!("not a size: {s:?}"))?;
    let mult: f64 = match unit.trim().to_ascii_lowercase().as_str() {
        "" | "b" => 1.0,
        "kb" | "k" => 1e3,
        "mb" | "m" => 1e6,
        "gb" | "g" => 1e9,
        "tb" | "t" => 1e12,
        "kib" => 1024.0,
        "mib" => 1024.0 * 1024.0,
        "gib" => 1024.0 * 1024.0 * 1024.0,
        "tib" => 1024.0f64.powi(4),
        other => return Err(format!("unknown size unit {other:?} in {s:?}")),
    };
    if value < 0.0 {
        return Err(format!("negative size {s:?}"));
    }
    Ok((value * mult) as u64)
}

/// Parses `NAME=AMOUNT,...`.
pub fn parse_resources(s: &str) -> Result<Vec<(String, f64)>, String> {
    s.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|p| {
            let (k, v) = p
                .split_once('=')
                .ok_or_else(|| format!("resource {p:?} is not NAME=AMOUNT"))?;
            let v: f64 = v
                .trim()
                .parse()
                .map_err(|_| format!("resource amount {v:?} is not a number"))?;
            Ok((k.trim().to_string(), v))
        })
        .collect()
}

/// Sets up `tracing` output on stderr, filtered by `RUST_LOG` (default `info`).
pub fn init_logging() {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env()
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    let _ = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .try_init();
}

/// Parses the process's arguments and runs the command; returns the exit code.
pub fn main() -> i32 {
    run(Cli::parse())
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> i32 {
    init_logging();
    match cli.command {
        Command::Scheduler {
            host,
            port,
            worker_timeout,
        } => {
            let options = SchedulerOptions {
                worker_timeout: Duration::from_secs_f64(worker_timeout),
                ..Default::default()
            };
            actix_rt::System::new().block_on(async move {
                let listener = match tokio::net::TcpListener::bind((host.as_str(), port)).await {
                    Ok(l) => l,
                    Err(e) => {
                        error!("cannot listen on {host}:{port}: {e}");
                        return 1;
                    }
                };
                let handle = match start_scheduler(listener, options) {
                    Ok(h) => h,
                    Err(e) => {
                        error!("cannot start the scheduler: {e}");
                        return 1;
                    }
                };
                println!("rdask scheduler listening on {}", handle.address);
                let _ = std::io::stdout().flush();
                let _ = tokio::signal::ctrl_c().await;
                info!("interrupted; scheduler exiting");
                0
            })
        }
        Command::Worker {
            scheduler,
            nthreads,
            name,
            memory_limit,
            resources,
            local_directory,
            listen_host,
            listen_port,
        } => {
            let memory_limit = match parse_bytes(&memory_limit) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("--memory-limit: {e}");
                    return 2;
                }
            };
            let resources = match parse_resources(&resources) {
                Ok(v) => v,
                Err(e) => {
                    eprintln!("--resources: {e}");
                    return 2;
                }
            };
            if let Some(dir) = &local_directory {
                if let Err(e) = std::fs::create_dir_all(dir) {
                    eprintln!("--local-directory {}: {e}", dir.display());
                    return 2;
                }
            }
            let options = WorkerOptions {
                scheduler,
                name,
                nthreads,
                memory_limit,
                resources,
                local_directory,
                listen_host,
                listen_port,
                ..Default::default()
            };
            actix_rt::System::new().block_on(async move {
                let handle = match start_worker(options).await {
                    Ok(h) => h,
                    Err(e) => {
                        error!("worker failed to start: {e}");
                        return 1;
                    }
                };
                println!("rdask worker {} listening on {}", handle.name, handle.address);
                let _ = std::io::stdout().flush();
                tokio::select! {
                    _ = handle.closed() => {
                        error!("worker {} stopped: lost the scheduler", handle.name);
                        1
                    }
                    _ = tokio::signal::ctrl_c() => {
                        info!("interrupted; worker exiting");
                        0
                    }
                }
            })
        }
        Command::Info { scheduler } => match Client::connect(&scheduler).and_then(|c| c.scheduler_info()) {
            Ok(info) => {
                println!("tasks: {}", info.ntasks);
                for (state, n) in &info.tasks_by_state {
                    println!("  {state}: {n}");
                }
                println!("clients: {}", info.nclients);
                println!("workers: {}", info.workers.len());
                for w in &info.workers {
                    println!(
                        "  {} {} nthreads={} keys={} bytes={} processing={}",
                        w.name, w.address, w.nthreads, w.nkeys, w.nbytes, w.processing
                    );
                }
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        Command::Shell { scheduler, command } => {
            let result = Client::connect(&scheduler).and_then(|c| {
                c.submit_with(crate::builtins::shell, (command,), &SubmitOptions::impure())?
                    .result()
            });
            match result {
                Ok(out) => {
                    print!("{}", out.stdout);
                    eprint!("{}", out.stderr);
                    out.status
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Functions => {
            for name in crate::task::Registry::global().names() {
                println!("{name}");
            }
            0
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_bytes("0").unwrap(), 0);
        assert_eq!(parse_bytes("4GB").unwrap(), 4_000_000_000);
        assert_eq!(parse_bytes("512MiB").unwrap(), 512 * 1024 * 1024);
        assert_eq!(parse_bytes("1e9").unwrap(), 1_000_000_000);
        assert!(parse_bytes("lots").is_err());
        assert!(parse_bytes("5 parsecs").is_err());
    }

    #[test]
    fn resources_parse() {
        assert_eq!(
            parse_resources("GPU=2, MEM=1e9").unwrap(),
            vec![("GPU".into(), 2.0), ("MEM".into(), 1e9)]
        );
        assert!(parse_resources("GPU").is_err());
        assert!(parse_resources("").unwrap().is_empty());
    }
}
