//! Config-driven cluster launch: `rdask cluster up FILE` starts a scheduler
//! and the worker groups a TOML file describes, on this machine or on other
//! machines through the system's `ssh` client (as Dask's SSHCluster does),
//! records what it started in a state file, and `status`/`down` read that
//! file from any shell.
//!
//! Every process, local or remote, is started the same way: a small `sh`
//! script starts it in the background in its own session (`setsid`, or
//! `nohup` where there is none) with its output in a log file, and prints its
//! pid. Locally `sh -c` runs the script; remotely `ssh host sh -c` does. So
//! `up` returns while the processes live on, they are not children of the
//! launching process (no zombies), and `down` sends `kill -TERM` the same way
//! on every host.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::config::{ByteSize, ClusterSection, DEFAULT_SCHEDULER_PORT};
use crate::wire::messages::SchedulerInfo;
use crate::wire::security::{Security, TlsFiles};

/// Where a process runs: this machine.
pub const LOCAL: &str = "local";
/// How often `up` and `down` poll for processes and registrations.
pub const POLL_INTERVAL: Duration = Duration::from_millis(100);
/// Lines of a process's log quoted in an error.
pub const LOG_TAIL_LINES: usize = 20;
/// What the scheduler prints once it listens; its last word is the address.
const SCHEDULER_READY: &str = "rdask scheduler listening on ";
/// What a process prints once its HTTP endpoint listens.
const HTTP_READY: &str = "rdask http endpoint on ";

/// Errors of cluster launch.
#[derive(Debug, thiserror::Error)]
pub enum LaunchError {
    /// The cluster file could not be read or is invalid.
    #[error("cluster file {path}: {message}")]
    Spec {
        /// The file.
        path: PathBuf,
        /// Why (toml's message names the line and key).
        message: String,
    },
    /// The state file is missing or unreadable.
    #[error("state file {path}: {message}")]
    State {
        /// The file.
        path: PathBuf,
        /// Why.
        message: String,
    },
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// Why.
        source: std::io::Error,
    },
    /// The cluster file's `[security]` settings are incomplete or unreadable.
    #[error("cluster file [security]: {0}")]
    Security(String),
    /// A command (`sh`, `ssh`, `kill`) failed.
    #[error("{what} failed: {message}")]
    Command {
        /// What was run.
        what: String,
        /// Its error output or status.
        message: String,
    },
    /// A process did not come up in time, or died while starting.
    #[error("{what}\n--- last lines of {log} ---\n{tail}")]
    Startup {
        /// What went wrong.
        what: String,
        /// Its log file (on its host).
        log: String,
        /// The end of that log.
        tail: String,
    },
    /// The scheduler could not be asked for its workers.
    #[error("cannot query the scheduler at {address}: {message}")]
    Scheduler {
        /// Its address.
        address: String,
        /// Why.
        message: String,
    },
}

mod adaptive;
mod job_cluster;
mod remote;
mod scale;
mod slurm;
mod spec;

pub use adaptive::*;
pub use job_cluster::*;
use remote::*;
pub use scale::*;
pub use slurm::*;
pub use spec::*;

fn group_prefix(g: &WorkerGroup, index: usize) -> String {
    g.name.clone().unwrap_or_else(|| format!("g{index}"))
}

/// One process started by `up`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProcessRecord {
    /// `scheduler` or `worker`.
    pub role: String,
    /// Worker name (or `scheduler`).
    pub name: String,
    /// Where it runs: `local` or the ssh target.
    pub host: String,
    /// Its pid on that host.
    pub pid: u32,
    /// Its log file on that host.
    pub log: PathBuf,
}

/// The state file `up` writes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ClusterState {
    /// The scheduler's address, `tcp://host:port`.
    pub scheduler_address: String,
    /// The scheduler's HTTP endpoint, if any.
    pub http_address: Option<String>,
    /// Processes, the scheduler first.
    pub processes: Vec<ProcessRecord>,
    /// ssh settings used, so `down` reaches the same hosts the same way.
    pub ssh: SshSpec,
    /// The cluster file's `[security]`, so `status` from another shell
    /// connects the way `up` did (the file holds paths, and the token if the
    /// cluster file had one: keep the state file as private as that file).
    #[serde(default)]
    pub security: ClusterSecurity,
    /// The `[slurm]` settings and the worker jobs submitted, so `down`
    /// cancels them.
    #[serde(default)]
    pub slurm: Option<(SlurmSpec, Vec<SlurmJob>)>,
}

impl ClusterState {
    /// Reads a state file.
    pub fn read(path: &Path) -> Result<ClusterState, LaunchError> {
        let text = std::fs::read_to_string(path).map_err(|e| LaunchError::State {
            path: path.to_path_buf(),
            message: format!("{e} (is a cluster up? `rdask cluster up` writes this file)"),
        })?;
        serde_json::from_str(&text).map_err(|e| LaunchError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        })
    }

    fn write(&self, path: &Path) -> Result<(), LaunchError> {
        let text = serde_json::to_string_pretty(self).map_err(|e| LaunchError::State {
            path: path.to_path_buf(),
            message: e.to_string(),
        })?;
        // Write then rename, so a reader never sees half a file.
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, text)
            .and_then(|_| std::fs::rename(&tmp, path))
            .map_err(|source| LaunchError::Io {
                what: format!("writing {}", path.display()),
                source,
            })
    }
}

/// Timeouts and the state file location (from the `[cluster]` config section).
#[derive(Clone, Debug)]
pub struct LaunchOptions {
    /// State file.
    pub state_file: PathBuf,
    /// How long `up` waits for the scheduler and the workers.
    pub startup_timeout: Duration,
    /// How long `down` waits after SIGTERM before SIGKILL.
    pub shutdown_timeout: Duration,
    /// How `up` and `status` connect to the scheduler (TLS, token): the
    /// `[security]` client settings of the launching machine.
    pub client: crate::client::ClientOptions,
}

impl From<&ClusterSection> for LaunchOptions {
    fn from(c: &ClusterSection) -> Self {
        LaunchOptions {
            state_file: c.state_file.clone(),
            startup_timeout: Duration::from_secs_f64(c.startup_timeout_s.max(0.0)),
            shutdown_timeout: Duration::from_secs_f64(c.shutdown_timeout_s.max(0.0)),
            client: crate::client::ClientOptions::default(),
        }
    }
}

impl Default for LaunchOptions {
    fn default() -> Self {
        LaunchOptions::from(&ClusterSection::default())
    }
}

/// The directory next to the state file that holds local processes' logs.
pub fn local_log_dir(state_file: &Path) -> Result<PathBuf, LaunchError> {
    let abs = std::path::absolute(state_file).map_err(|source| LaunchError::Io {
        what: format!("resolving {}", state_file.display()),
        source,
    })?;
    let stem = abs
        .file_stem()
        .map_or("rdask-cluster".into(), |s| s.to_string_lossy().into_owned());
    Ok(abs.with_file_name(format!("{stem}-logs")))
}

fn this_binary() -> Result<PathBuf, LaunchError> {
    std::env::current_exe().map_err(|source| LaunchError::Io {
        what: "finding this executable".into(),
        source,
    })
}

/// Starts the cluster `spec` describes, waits until every worker has
/// registered, and writes the state file. On failure, stops what it started.
pub fn up(spec: &ClusterSpec, options: &LaunchOptions) -> Result<ClusterState, LaunchError> {
    if options.state_file.exists() {
        if let Ok(old) = ClusterState::read(&options.state_file) {
            let running = old
                .processes
                .iter()
                .any(|p| alive(&p.host, &old.ssh, &[p.pid]).is_ok_and(|a| !a.is_empty()));
            if running {
                return Err(LaunchError::State {
                    path: options.state_file.clone(),
                    message: "a cluster recorded here is still running; `rdask cluster down` first".into(),
                });
            }
        }
    }
    let mut state = ClusterState {
        scheduler_address: String::new(),
        http_address: None,
        processes: Vec::new(),
        ssh: spec.ssh.clone(),
        security: spec.security.clone(),
        slurm: None,
    };
    let mut options = options.clone();
    if let Some(security) = spec.security.client_security()? {
        options.client.security = security;
    }
    let options = &options;
    match start_all(spec, options, &mut state) {
        Ok(()) => {
            state.write(&options.state_file)?;
            Ok(state)
        }
        Err(e) => {
            stop_processes(&state, options.shutdown_timeout);
            Err(e)
        }
    }
}

fn log_path(spec: &ClusterSpec, target: &str, local_dir: &Path, name: &str) -> PathBuf {
    let dir = if target == LOCAL {
        local_dir.to_path_buf()
    } else {
        spec.ssh.log_directory.clone()
    };
    dir.join(format!("{name}.log"))
}

fn start_all(spec: &ClusterSpec, options: &LaunchOptions, state: &mut ClusterState) -> Result<(), LaunchError> {
    let local_dir = local_log_dir(&options.state_file)?;
    let deadline = Instant::now() + options.startup_timeout;
    let ssh = &spec.ssh;

    // The scheduler, and its address read back from its log.
    let s = &spec.scheduler;
    let contact = spec.reachable(&s.host);
    let listen = s.listen_host.clone().unwrap_or_else(|| contact.clone());
    let mut args = vec![
        "scheduler".into(),
        "--host".into(),
        listen,
        "--port".into(),
        s.port.to_string(),
    ];
    if let Some(p) = s.http_port {
        args.extend(["--http-port".into(), p.to_string()]);
    }
    args.extend(spec.security.scheduler_flags());
    let binary = s.binary.clone().map_or_else(this_binary, Ok)?;
    let log = log_path(spec, &s.host, &local_dir, "scheduler");
    let pid = spawn_detached(&s.host, ssh, &binary, &args, &log)?;
    state.processes.push(ProcessRecord {
        role: "scheduler".into(),
        name: "scheduler".into(),
        host: s.host.clone(),
        pid,
        log: log.clone(),
    });
    let text = wait_for_line(&s.host, ssh, pid, &log, SCHEDULER_READY, deadline, "the scheduler")?;
    let printed = last_word_of_line(&text, SCHEDULER_READY).unwrap_or_default();
    state.scheduler_address = with_host(&printed, &contact);
    if s.http_port.is_some() {
        let text = wait_for_line(
            &s.host,
            ssh,
            pid,
            &log,
            HTTP_READY,
            deadline,
            "the scheduler's HTTP endpoint",
        )?;
        let printed = last_word_of_line(&text, HTTP_READY).unwrap_or_default();
        state.http_address = Some(with_host(&printed, &contact));
    }

    // The workers.
    let mut total = 0;
    for (gi, g) in spec.workers.iter().enumerate() {
        let binary = g.binary.clone().map_or_else(this_binary, Ok)?;
        let listen = g.listen_host.clone().unwrap_or_else(|| spec.reachable(&g.host));
        for i in 0..g.count {
            let name = format!("{}-{i}", group_prefix(g, gi));
            let mut args = vec![
                "worker".into(),
                state.scheduler_address.clone(),
                "--name".into(),
                name.clone(),
                "--nthreads".into(),
                g.nthreads.to_string(),
                "--memory-limit".into(),
                g.memory_limit.0.to_string(),
                "--listen-host".into(),
                listen.clone(),
            ];
            if !g.resources.is_empty() {
                let r: Vec<String> = g.resources.iter().map(|(k, v)| format!("{k}={v}")).collect();
                args.extend(["--resources".into(), r.join(",")]);
            }
            if let Some(d) = &g.local_directory {
                args.extend(["--local-directory".into(), d.join(&name).to_string_lossy().into_owned()]);
            }
            if let Some(p) = g.http_port {
                let port = if p == 0 { 0 } else { p.saturating_add(i as u16) };
                args.extend(["--http-port".into(), port.to_string()]);
            }
            if g.nanny {
                args.push("--nanny".into());
            }
            args.extend(spec.security.worker_flags());
            let log = log_path(spec, &g.host, &local_dir, &name);
            let pid = spawn_detached(&g.host, ssh, &binary, &args, &log)?;
            state.processes.push(ProcessRecord {
                role: "worker".into(),
                name,
                host: g.host.clone(),
                pid,
                log,
            });
            total += 1;
        }
    }
    if let Some(sl) = &spec.slurm {
        total += submit_jobs(sl, state)?;
    }
    wait_for_workers(state, total, deadline, &options.client)
}

fn last_word_of_line(text: &str, prefix: &str) -> Option<String> {
    text.lines()
        .find_map(|l| l.strip_prefix(prefix))
        .and_then(|rest| rest.split_whitespace().last())
        .map(str::to_string)
}

/// Polls `log` on `target` until a line starts with `prefix`; fails early if
/// the process died.
fn wait_for_line(
    target: &str,
    ssh: &SshSpec,
    pid: u32,
    log: &Path,
    prefix: &str,
    deadline: Instant,
    what: &str,
) -> Result<String, LaunchError> {
    loop {
        let text = read_log(target, ssh, log);
        if text.lines().any(|l| l.starts_with(prefix)) {
            return Ok(text);
        }
        let failure = if alive(target, ssh, &[pid])?.is_empty() {
            Some(format!("{what} (pid {pid} on {target}) exited while starting"))
        } else if Instant::now() >= deadline {
            Some(format!("{what} (pid {pid} on {target}) did not start in time"))
        } else {
            None
        };
        if let Some(what) = failure {
            return Err(LaunchError::Startup {
                what,
                log: format!("{target}:{}", log.display()),
                tail: tail(&read_log(target, ssh, log)),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// Asks the scheduler for its figures.
pub fn scheduler_info(address: &str) -> Result<SchedulerInfo, LaunchError> {
    scheduler_info_with(address, &crate::client::ClientOptions::default())
}

/// Asks the scheduler for its figures, connecting with `client` (TLS, token).
pub fn scheduler_info_with(address: &str, client: &crate::client::ClientOptions) -> Result<SchedulerInfo, LaunchError> {
    crate::client::Client::connect_with(address, client.clone())
        .and_then(|c| c.scheduler_info())
        .map_err(|e| LaunchError::Scheduler {
            address: address.to_string(),
            message: e.to_string(),
        })
}

fn wait_for_workers(
    state: &ClusterState,
    total: usize,
    deadline: Instant,
    client: &crate::client::ClientOptions,
) -> Result<(), LaunchError> {
    let client = crate::client::Client::connect_with(&state.scheduler_address, client.clone()).map_err(|e| {
        LaunchError::Scheduler {
            address: state.scheduler_address.clone(),
            message: e.to_string(),
        }
    })?;
    loop {
        let info = client.scheduler_info().map_err(|e| LaunchError::Scheduler {
            address: state.scheduler_address.clone(),
            message: e.to_string(),
        })?;
        let registered: std::collections::HashSet<&str> = info.workers.iter().map(|w| w.name.as_str()).collect();
        if registered.len() >= total {
            return Ok(());
        }
        // A worker that died will never register: report it with its log.
        let missing: Vec<&ProcessRecord> = state
            .processes
            .iter()
            .filter(|p| p.role == "worker" && !registered.contains(p.name.as_str()))
            .collect();
        for p in &missing {
            if alive(&p.host, &state.ssh, &[p.pid])?.is_empty() {
                return Err(LaunchError::Startup {
                    what: format!("worker {} (pid {} on {}) exited while starting", p.name, p.pid, p.host),
                    log: format!("{}:{}", p.host, p.log.display()),
                    tail: tail(&read_log(&p.host, &state.ssh, &p.log)),
                });
            }
        }
        if Instant::now() >= deadline && missing.is_empty() {
            return Err(jobs_late(state, registered.len(), total));
        }
        if Instant::now() >= deadline {
            let p = missing[0];
            return Err(LaunchError::Startup {
                what: format!(
                    "{} of {total} workers registered in time; {} (pid {} on {}) did not",
                    registered.len(),
                    p.name,
                    p.pid,
                    p.host
                ),
                log: format!("{}:{}", p.host, p.log.display()),
                tail: tail(&read_log(&p.host, &state.ssh, &p.log)),
            });
        }
        std::thread::sleep(POLL_INTERVAL);
    }
}

/// What `status` reports.
#[derive(Clone, Debug)]
pub struct ClusterStatus {
    /// The state file's contents.
    pub state: ClusterState,
    /// Each recorded process and whether it is alive.
    pub processes: Vec<(ProcessRecord, bool)>,
    /// The scheduler's figures, or why they could not be had.
    pub info: Result<SchedulerInfo, String>,
    /// Each recorded SLURM job and its queue state (`None`: no longer
    /// queued), or why `squeue` failed.
    pub jobs: Result<Vec<(SlurmJob, Option<String>)>, String>,
}

/// Reads the state file, checks the processes and asks the scheduler.
pub fn status(options: &LaunchOptions) -> Result<ClusterStatus, LaunchError> {
    let state = ClusterState::read(&options.state_file)?;
    let mut processes = Vec::new();
    for (host, records) in by_host(&state.processes) {
        let pids: Vec<u32> = records.iter().map(|p| p.pid).collect();
        let live = alive(&host, &state.ssh, &pids)?;
        processes.extend(records.into_iter().map(|p| {
            let up = live.contains(&p.pid);
            (p, up)
        }));
    }
    let mut client = options.client.clone();
    if let Some(security) = state.security.client_security()? {
        client.security = security;
    }
    let info = scheduler_info_with(&state.scheduler_address, &client).map_err(|e| e.to_string());
    let jobs = job_states(&state).map_err(|e| e.to_string());
    Ok(ClusterStatus {
        state,
        processes,
        info,
        jobs,
    })
}

fn by_host(processes: &[ProcessRecord]) -> BTreeMap<String, Vec<ProcessRecord>> {
    let mut m: BTreeMap<String, Vec<ProcessRecord>> = BTreeMap::new();
    for p in processes {
        m.entry(p.host.clone()).or_default().push(p.clone());
    }
    m
}

/// SIGTERM to the workers, then the scheduler (so workers do not see it go
/// first and log errors), each waited for; SIGKILL after the timeout.
fn stop_processes(state: &ClusterState, timeout: Duration) -> Vec<String> {
    let mut problems = cancel_jobs(state, timeout);
    for role in ["worker", "scheduler"] {
        let group: Vec<ProcessRecord> = state.processes.iter().filter(|p| p.role == role).cloned().collect();
        let hosts = by_host(&group);
        for (host, records) in &hosts {
            let pids: Vec<u32> = records.iter().map(|p| p.pid).collect();
            if let Err(e) = signal(host, &state.ssh, &pids, "TERM") {
                problems.push(e.to_string());
            }
        }
        let deadline = Instant::now() + timeout;
        for (host, records) in &hosts {
            let pids: Vec<u32> = records.iter().map(|p| p.pid).collect();
            loop {
                let live = match alive(host, &state.ssh, &pids) {
                    Ok(l) => l,
                    Err(e) => {
                        problems.push(e.to_string());
                        break;
                    }
                };
                if live.is_empty() {
                    break;
                }
                if Instant::now() >= deadline {
                    problems.push(format!("{role} pids {live:?} on {host} ignored SIGTERM; sent SIGKILL"));
                    let _ = signal(host, &state.ssh, &live, "KILL");
                    break;
                }
                std::thread::sleep(POLL_INTERVAL);
            }
        }
    }
    problems
}

/// Stops the cluster recorded in the state file and removes the file.
/// Returns notes on anything that needed force.
pub fn down(options: &LaunchOptions) -> Result<Vec<String>, LaunchError> {
    let state = ClusterState::read(&options.state_file)?;
    let problems = stop_processes(&state, options.shutdown_timeout);
    std::fs::remove_file(&options.state_file).map_err(|source| LaunchError::Io {
        what: format!("removing {}", options.state_file.display()),
        source,
    })?;
    Ok(problems)
}

#[cfg(test)]
mod tests;
