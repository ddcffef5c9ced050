//! The `rdask` command line, embeddable: a user's binary that calls
//! [`main`] gets the same subcommands, and its own `#[task]` functions are
//! served by `my-app worker tcp://...`.
//!
//! This file holds the flags and the dispatch; running a scheduler or worker
//! in this process is in `serve.rs`, `rdask cluster ...` in `cluster.rs`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::client::{Client, SubmitOptions};
use crate::config::{self, FlagValue, RdaskConfig};

mod cluster;
mod nanny;
mod serve;
mod simulate;
pub mod top;

use cluster::run_cluster;
use serve::{run_scheduler, run_worker};

/// Command-line interface of rdask.
#[derive(Parser, Debug)]
#[command(
    name = "rdask",
    version,
    about = "A distributed task runtime in the model of Dask.distributed"
)]
pub struct Cli {
    /// Config file (default: ./rdask.toml, else ~/.config/rdask/rdask.toml).
    #[arg(long, global = true, value_name = "FILE")]
    pub config: Option<PathBuf>,
    /// What to run.
    #[command(subcommand)]
    pub command: Command,
}

/// TLS and token flags, shared by the commands that connect or listen; each
/// sets the `[security]` key of the command's role.
#[derive(clap::Args, Debug, Default)]
pub struct SecurityArgs {
    /// PEM file of the cluster CA; with --tls-cert and --tls-key, connections use TLS with mutual
    /// authentication [config: security.tls_ca_file].
    #[arg(long, value_name = "FILE")]
    pub tls_ca_file: Option<PathBuf>,
    /// PEM certificate of this process's role [config: security.tls_ROLE_cert].
    #[arg(long, value_name = "FILE")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert [config: security.tls_ROLE_key].
    #[arg(long, value_name = "FILE")]
    pub tls_key: Option<PathBuf>,
    /// Shared token checked in every handshake [config: security.token; env RDASK_SECURITY__TOKEN].
    #[arg(long, value_name = "TOKEN")]
    pub token: Option<String>,
}

impl SecurityArgs {
    /// The flags as config values for `role` (`scheduler`, `worker` or `client`).
    fn push_flags(self, role: &str, flags: &mut Vec<FlagValue>) {
        let (cert_key, key_key) = match role {
            "scheduler" => ("tls_scheduler_cert", "tls_scheduler_key"),
            "worker" => ("tls_worker_cert", "tls_worker_key"),
            _ => ("tls_client_cert", "tls_client_key"),
        };
        let path = |p: PathBuf| p.to_string_lossy().into_owned();
        if let Some(f) = self.tls_ca_file {
            flags.push(FlagValue::new("security", "tls_ca_file", "--tls-ca-file", path(f)));
        }
        if let Some(f) = self.tls_cert {
            flags.push(FlagValue::new("security", cert_key, "--tls-cert", path(f)));
        }
        if let Some(f) = self.tls_key {
            flags.push(FlagValue::new("security", key_key, "--tls-key", path(f)));
        }
        if let Some(t) = self.token {
            flags.push(FlagValue::new("security", "token", "--token", t));
        }
    }
}

/// Subcommands.
#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run a scheduler.
    Scheduler {
        /// Interface to listen on [config: scheduler.host, default 127.0.0.1].
        #[arg(long)]
        host: Option<String>,
        /// Port to listen on (0: any free port; the chosen address is printed) [config: scheduler.port, default 8786].
        #[arg(long)]
        port: Option<u16>,
        /// Seconds without any message after which a worker is removed [config: scheduler.worker_timeout_s].
        #[arg(long)]
        worker_timeout: Option<f64>,
        /// Seconds a task that none of the connected workers can run waits before it errs; 0 = for ever
        /// [config: scheduler.no_worker_timeout_s, default 10].
        #[arg(long)]
        no_worker_timeout: Option<f64>,
        /// Port of the HTTP endpoint (/health, /metrics, /api/v1/info); 0: any free port [config: scheduler.http_port].
        #[arg(long)]
        http_port: Option<u16>,
        /// Journal file: the scheduler appends its work to it and, started again on the same file, rebuilds
        /// its state from it, so a restart loses no work [config: scheduler.journal].
        #[arg(long, value_name = "FILE")]
        journal: Option<PathBuf>,
        /// TLS and token.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Run a worker connected to a scheduler.
    Worker {
        /// Scheduler address, tcp://host:port (default: scheduler.host and scheduler.port of the config).
        scheduler: Option<String>,
        /// Task threads [config: worker.nthreads].
        #[arg(long)]
        nthreads: Option<u32>,
        /// Unique worker name (default: its address).
        #[arg(long)]
        name: Option<String>,
        /// Memory limit, e.g. 4GB, 512MiB, auto (a share of the machine's memory), or 0 for none
        /// [config: worker.memory_limit].
        #[arg(long)]
        memory_limit: Option<String>,
        /// Abstract resources, e.g. "GPU=2,MEM=10e9" [config: worker.resources].
        #[arg(long)]
        resources: Option<String>,
        /// Directory for the worker's files [config: worker.local_directory].
        #[arg(long)]
        local_directory: Option<PathBuf>,
        /// Interface for the worker's peer port (must be reachable by peers) [config: worker.listen_host].
        #[arg(long)]
        listen_host: Option<String>,
        /// Port for the worker's peer port (0: any) [config: worker.listen_port].
        #[arg(long)]
        listen_port: Option<u16>,
        /// Port of the worker's HTTP endpoint; 0: any free port [config: worker.http_port].
        #[arg(long)]
        http_port: Option<u16>,
        /// Seconds to keep trying to reach the scheduler while nothing listens there
        /// [config: worker.connect_timeout_s, default 30].
        #[arg(long)]
        connect_timeout: Option<f64>,
        /// Run the worker under a nanny that restarts it when it crashes or passes
        /// worker.memory_terminate of its memory limit [config: worker.nanny].
        #[arg(long)]
        nanny: bool,
        /// TLS and token.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Print the scheduler's workers and task counts.
    Info {
        /// Scheduler address.
        scheduler: String,
        /// Seconds to keep trying to reach the scheduler while nothing listens there
        /// [config: client.connect_timeout_s, default 30].
        #[arg(long)]
        connect_timeout: Option<f64>,
        /// TLS and token.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// A compact live view of the cluster (workers, tasks per state,
    /// memory), refreshed in place; plain blocks when stdout is not a
    /// terminal. Ctrl-C ends it.
    Top {
        /// Scheduler address.
        scheduler: String,
        /// Seconds between refreshes (at least 0.1).
        #[arg(long, default_value_t = 1.0)]
        interval: f64,
        /// Stop after this many refreshes (default: until Ctrl-C).
        #[arg(long)]
        count: Option<u64>,
        /// Seconds to keep trying to reach the scheduler while nothing listens there
        /// [config: client.connect_timeout_s, default 30].
        #[arg(long)]
        connect_timeout: Option<f64>,
        /// TLS and token.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Run a shell command on a worker of the cluster and print its output;
    /// exits with the command's status.
    Shell {
        /// Scheduler address.
        scheduler: String,
        /// The command line, run with `sh -c`.
        command: String,
        /// Seconds to keep trying to reach the scheduler while nothing listens there
        /// [config: client.connect_timeout_s, default 30].
        #[arg(long)]
        connect_timeout: Option<f64>,
        /// TLS and token.
        #[command(flatten)]
        security: SecurityArgs,
    },
    /// Create TLS certificates for a cluster.
    Certs {
        /// What to do.
        #[command(subcommand)]
        action: CertsAction,
    },
    /// List the task functions this binary can serve as a worker.
    Functions,
    /// Show the configuration.
    Config {
        /// What to show.
        #[command(subcommand)]
        action: ConfigAction,
    },
    /// Start, inspect and stop a cluster described by a TOML file.
    Cluster {
        /// What to do.
        #[command(subcommand)]
        action: ClusterAction,
    },
    /// Run the real scheduler against simulated workers on a virtual clock
    /// (docs/scale.md); a JSON line per run.
    Simulate(simulate::SimulateArgs),
}

/// `rdask config ...`.
#[derive(Subcommand, Debug)]
pub enum ConfigAction {
    /// Print the effective configuration as TOML, with where each value came from.
    Show,
    /// Print a commented config file with every key and its default (config/rdask.toml).
    Default,
}

/// `rdask certs ...`.
#[derive(Subcommand, Debug)]
pub enum CertsAction {
    /// Create DIR with a new CA (ca.pem, ca-key.pem) and a certificate and key per role
    /// (scheduler.pem, worker.pem, client.pem and their -key.pem); refuses to overwrite.
    New {
        /// Directory to create the files in.
        dir: PathBuf,
        /// Extra host names or IP addresses for the certificates (localhost and 127.0.0.1 are always in).
        #[arg(long = "host", value_name = "HOST")]
        hosts: Vec<String>,
    },
}

/// `rdask cluster ...`.
#[derive(Subcommand, Debug)]
pub enum ClusterAction {
    /// Start the scheduler and workers FILE describes; returns once all workers registered.
    Up {
        /// Cluster file, e.g. config/cluster.toml.
        file: PathBuf,
        /// State file [config: cluster.state_file, default .rdask-cluster.json].
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// List the cluster's processes and workers.
    Status {
        /// State file [config: cluster.state_file].
        #[arg(long)]
        state: Option<PathBuf>,
    },
    /// Stop the cluster's processes (SIGTERM, then SIGKILL after cluster.shutdown_timeout_s).
    Down {
        /// State file [config: cluster.state_file].
        #[arg(long)]
        state: Option<PathBuf>,
    },
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

/// Parses the process's arguments and runs the command; returns the exit code.
pub fn main() -> i32 {
    run(Cli::parse())
}

/// Runs a parsed command line; returns the exit code.
pub fn run(cli: Cli) -> i32 {
    crate::logging::init_logging();
    let config_file = cli.config;
    match cli.command {
        Command::Scheduler {
            host,
            port,
            worker_timeout,
            no_worker_timeout,
            http_port,
            journal,
            security,
        } => {
            let mut flags = Vec::new();
            security.push_flags("scheduler", &mut flags);
            if let Some(j) = journal {
                flags.push(FlagValue::new(
                    "scheduler",
                    "journal",
                    "--journal",
                    j.to_string_lossy().into_owned(),
                ));
            }
            if let Some(h) = host {
                flags.push(FlagValue::new("scheduler", "host", "--host", h));
            }
            if let Some(p) = port {
                flags.push(FlagValue::new("scheduler", "port", "--port", i64::from(p)));
            }
            if let Some(t) = worker_timeout {
                flags.push(FlagValue::new("scheduler", "worker_timeout_s", "--worker-timeout", t));
            }
            if let Some(t) = no_worker_timeout {
                flags.push(FlagValue::new(
                    "scheduler",
                    "no_worker_timeout_s",
                    "--no-worker-timeout",
                    t,
                ));
            }
            if let Some(p) = http_port {
                flags.push(FlagValue::new("scheduler", "http_port", "--http-port", i64::from(p)));
            }
            match load_config(config_file, flags) {
                Ok(config) => run_scheduler(&config),
                Err(code) => code,
            }
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
            http_port,
            connect_timeout,
            nanny,
            security,
        } => {
            let mut flags = Vec::new();
            security.push_flags("worker", &mut flags);
            if nanny {
                flags.push(FlagValue::new("worker", "nanny", "--nanny", true));
            }
            if let Some(t) = connect_timeout {
                flags.push(FlagValue::new("worker", "connect_timeout_s", "--connect-timeout", t));
            }
            if let Some(n) = nthreads {
                flags.push(FlagValue::new("worker", "nthreads", "--nthreads", i64::from(n)));
            }
            if let Some(m) = memory_limit {
                flags.push(FlagValue::new("worker", "memory_limit", "--memory-limit", m));
            }
            if let Some(r) = resources {
                let parsed = match parse_resources(&r) {
                    Ok(v) => v,
                    Err(e) => {
                        eprintln!("--resources: {e}");
                        return 2;
                    }
                };
                let table: toml::Table = parsed.into_iter().map(|(k, v)| (k, toml::Value::Float(v))).collect();
                flags.push(FlagValue::new("worker", "resources", "--resources", table));
            }
            if let Some(d) = local_directory {
                let d = d.to_string_lossy().into_owned();
                flags.push(FlagValue::new("worker", "local_directory", "--local-directory", d));
            }
            if let Some(h) = listen_host {
                flags.push(FlagValue::new("worker", "listen_host", "--listen-host", h));
            }
            if let Some(p) = listen_port {
                flags.push(FlagValue::new("worker", "listen_port", "--listen-port", i64::from(p)));
            }
            if let Some(p) = http_port {
                flags.push(FlagValue::new("worker", "http_port", "--http-port", i64::from(p)));
            }
            match load_config(config_file, flags) {
                // The nanny's child sees the same settings and runs the worker.
                Ok(config) if config.worker.nanny && std::env::var_os(nanny::CHILD_ENV).is_none() => {
                    let args: Vec<std::ffi::OsString> =
                        std::env::args_os().skip(1).filter(|a| a != "--nanny").collect();
                    let w = &config.worker;
                    nanny::supervise(args, w.memory_limit.resolve(w.nthreads), w.memory_terminate)
                }
                Ok(config) => run_worker(&config, scheduler, name),
                Err(code) => code,
            }
        }
        Command::Info {
            scheduler,
            connect_timeout,
            security,
        } => match connect_client(config_file, &scheduler, connect_timeout, security)
            .and_then(|c| c.scheduler_info().map(|info| (c, info)).map_err(|e| e.to_string()))
        {
            Ok((client, info)) => {
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
                    // Memory is asked of each worker directly: the scheduler
                    // does not track spilling or process memory.
                    match client.worker_info(&w.address) {
                        Ok(m) => {
                            println!(
                                "    memory: managed={} spilled={} spilled_keys={} rss={} limit={}{}",
                                m.nbytes,
                                m.spilled_bytes,
                                m.spilled_keys,
                                m.rss_bytes,
                                m.memory_limit,
                                if m.paused { " paused" } else { "" }
                            );
                            if let Some(e) = &m.spill_error {
                                println!("    spilling fails: {e}");
                            }
                        }
                        Err(e) => println!("    memory: unavailable ({e})"),
                    }
                }
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
        Command::Top {
            scheduler,
            interval,
            count,
            connect_timeout,
            security,
        } => {
            let interval = match std::time::Duration::try_from_secs_f64(interval) {
                Ok(d) if !d.is_zero() => d,
                _ => {
                    eprintln!("error: --interval must be a positive number of seconds, not {interval}");
                    return 2;
                }
            };
            match connect_client(config_file, &scheduler, connect_timeout, security) {
                Ok(client) => top::run(&client, &scheduler, interval, count),
                Err(e) => {
                    eprintln!("error: {e}");
                    1
                }
            }
        }
        Command::Shell {
            scheduler,
            command,
            connect_timeout,
            security,
        } => {
            let result = connect_client(config_file, &scheduler, connect_timeout, security).and_then(|c| {
                c.submit_with(crate::builtins::shell, (command,), &SubmitOptions::impure())
                    .and_then(|f| f.result())
                    .map_err(|e| e.to_string())
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
            for name in crate::registry::Registry::global().names() {
                println!("{name}");
            }
            0
        }
        Command::Config { action } => match action {
            ConfigAction::Show => match config::load(&config::Inputs::from_process(config_file, Vec::new())) {
                Ok(loaded) => {
                    print!("{}", loaded.show());
                    0
                }
                Err(e) => {
                    eprintln!("error: {e}");
                    2
                }
            },
            ConfigAction::Default => {
                print!("{}", config::default_file_text());
                0
            }
        },
        Command::Cluster { action } => run_cluster(config_file, action),
        Command::Simulate(args) => match load_config(config_file, Vec::new()) {
            Ok(config) => simulate::run_simulate(&args, &config.scheduler_options().state),
            Err(code) => code,
        },
        Command::Certs {
            action: CertsAction::New { dir, hosts },
        } => match crate::certs::new_certs(&dir, &hosts) {
            Ok(files) => {
                println!("CA certificate: {}", files.ca.display());
                println!("CA key (keep it off the cluster): {}", files.ca_key.display());
                for (role, cert, key) in &files.roles {
                    println!("{role}: --tls-cert {} --tls-key {}", cert.display(), key.display());
                }
                0
            }
            Err(e) => {
                eprintln!("error: {e}");
                1
            }
        },
    }
}

/// Connects a client as the `rdask info` and `rdask shell` commands do: with
/// the `[security]` of the config, the flags taking precedence.
fn connect_client(
    config_file: Option<PathBuf>,
    scheduler: &str,
    connect_timeout: Option<f64>,
    security: SecurityArgs,
) -> Result<Client, String> {
    let mut flags = Vec::new();
    security.push_flags("client", &mut flags);
    if let Some(t) = connect_timeout {
        flags.push(FlagValue::new("client", "connect_timeout_s", "--connect-timeout", t));
    }
    let config = config::load(&config::Inputs::from_process(config_file, flags)).map_err(|e| e.to_string())?;
    let options = config.config.client_options().map_err(|e| e.to_string())?;
    Client::connect_with(scheduler, options).map_err(|e| e.to_string())
}

/// Loads the effective config (flags > env > file > defaults); prints the
/// error and returns exit code 2 when it is invalid.
fn load_config(file: Option<PathBuf>, flags: Vec<FlagValue>) -> Result<RdaskConfig, i32> {
    config::load(&config::Inputs::from_process(file, flags))
        .map(|l| l.config)
        .map_err(|e| {
            eprintln!("error: {e}");
            2
        })
}

#[cfg(test)]
mod tests {
    use super::*;

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
