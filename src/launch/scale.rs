//! What adaptive scaling asks of a cluster manager ([`ScaleBackend`]), and
//! the backend for worker processes started on this machine or over `ssh`
//! ([`WorkerProcesses`]) the way `rdask cluster up` starts them.

use super::*;

/// A cluster manager that starts and stops workers: local processes, ssh,
/// SLURM jobs. The [`Adaptive`](super::Adaptive) loop drives one; its
/// `scale` is Dask's `Cluster.scale(n)`.
pub trait ScaleBackend: Send {
    /// What it is, for logs (e.g. `local processes`, `slurm`).
    fn describe(&self) -> String;
    /// Forgets workers that ended on their own (retired, crashed, job
    /// finished), so that [`requested`](Self::requested) is current.
    fn refresh(&mut self) -> Result<(), LaunchError>;
    /// Names of the workers asked for and not stopped (running or still
    /// pending, e.g. a queued batch job), oldest first. Each registers with
    /// the scheduler under this name.
    fn requested(&self) -> Vec<String>;
    /// Asks for `n` more workers; returns their names.
    fn start_workers(&mut self, n: usize) -> Result<Vec<String>, LaunchError>;
    /// Ends these workers (processes killed, jobs cancelled). Retire them
    /// through the scheduler first to keep their data.
    fn stop_workers(&mut self, names: &[String]) -> Result<(), LaunchError>;
    /// Dask's `scale(n)`: starts workers, or stops the newest, until `n`
    /// are requested. Stopping here is abrupt (no retirement): adaptive
    /// scaling retires first.
    fn scale(&mut self, n: usize) -> Result<(), LaunchError> {
        self.refresh()?;
        let have = self.requested();
        if n > have.len() {
            self.start_workers(n - have.len())?;
        } else if n < have.len() {
            self.stop_workers(&have[n..])?;
        }
        Ok(())
    }
}

/// How a worker is started: the `rdask worker` flags every backend passes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerTemplate {
    /// Binary to run (`BIN worker ADDRESS ...`); default: this executable.
    pub binary: Option<PathBuf>,
    /// Task threads per worker.
    pub nthreads: u32,
    /// Memory limit per worker (bytes or "4GB"; 0: none).
    pub memory_limit: ByteSize,
    /// Run each worker under a nanny (`--nanny`).
    pub nanny: bool,
    /// More flags for `rdask worker`, e.g. `["--resources", "GPU=1"]`.
    pub extra_args: Vec<String>,
}

impl Default for WorkerTemplate {
    fn default() -> Self {
        WorkerTemplate {
            binary: None,
            nthreads: 1,
            memory_limit: ByteSize(0),
            nanny: true,
            extra_args: Vec::new(),
        }
    }
}

impl WorkerTemplate {
    /// The binary, or this executable.
    pub fn binary(&self) -> Result<PathBuf, LaunchError> {
        self.binary.clone().map_or_else(this_binary, Ok)
    }

    /// `worker SCHEDULER --name NAME --nthreads N --memory-limit B [--nanny] EXTRA`.
    pub fn args(&self, scheduler: &str, name: &str) -> Vec<String> {
        let mut args = vec![
            "worker".into(),
            scheduler.to_string(),
            "--name".into(),
            name.to_string(),
            "--nthreads".into(),
            self.nthreads.to_string(),
            "--memory-limit".into(),
            self.memory_limit.0.to_string(),
        ];
        if self.nanny {
            args.push("--nanny".into());
        }
        args.extend(self.extra_args.iter().cloned());
        args
    }
}

/// Workers as processes on one host, this machine ([`LOCAL`]) or an ssh
/// target, started detached as `rdask cluster up` starts them (Dask's
/// `LocalCluster` processes and `SSHCluster`). Dropping it stops the
/// workers it still runs.
#[derive(Debug)]
pub struct WorkerProcesses {
    scheduler: String,
    host: String,
    ssh: SshSpec,
    template: WorkerTemplate,
    prefix: String,
    log_dir: PathBuf,
    next: usize,
    running: Vec<(String, u32)>,
    shutdown_timeout: Duration,
}

impl WorkerProcesses {
    /// Workers of `scheduler` on `host` (`local` or `[user@]host[:port]`),
    /// named `<prefix>-<i>`, with logs in `log_dir` on that host.
    pub fn new(scheduler: &str, host: &str, template: WorkerTemplate, prefix: &str, log_dir: &Path) -> Self {
        WorkerProcesses {
            scheduler: scheduler.to_string(),
            host: host.to_string(),
            ssh: SshSpec::default(),
            template,
            prefix: prefix.to_string(),
            log_dir: log_dir.to_path_buf(),
            next: 0,
            running: Vec::new(),
            shutdown_timeout: LaunchOptions::default().shutdown_timeout,
        }
    }

    /// ssh settings for a remote host.
    pub fn with_ssh(mut self, ssh: SshSpec) -> Self {
        self.ssh = ssh;
        self
    }

    /// The pid of each worker it runs.
    pub fn pids(&self) -> Vec<(String, u32)> {
        self.running.clone()
    }
}

impl ScaleBackend for WorkerProcesses {
    fn describe(&self) -> String {
        format!("worker processes on {}", self.host)
    }

    fn refresh(&mut self) -> Result<(), LaunchError> {
        let pids: Vec<u32> = self.running.iter().map(|r| r.1).collect();
        let live = alive(&self.host, &self.ssh, &pids)?;
        self.running.retain(|r| live.contains(&r.1));
        Ok(())
    }

    fn requested(&self) -> Vec<String> {
        self.running.iter().map(|r| r.0.clone()).collect()
    }

    fn start_workers(&mut self, n: usize) -> Result<Vec<String>, LaunchError> {
        let binary = self.template.binary()?;
        let mut names = Vec::new();
        for _ in 0..n {
            let name = format!("{}-{}", self.prefix, self.next);
            self.next += 1;
            let log = self.log_dir.join(format!("{name}.log"));
            let pid = spawn_detached(
                &self.host,
                &self.ssh,
                &binary,
                &self.template.args(&self.scheduler, &name),
                &log,
            )?;
            self.running.push((name.clone(), pid));
            names.push(name);
        }
        Ok(names)
    }

    fn stop_workers(&mut self, names: &[String]) -> Result<(), LaunchError> {
        let pids: Vec<u32> = self
            .running
            .iter()
            .filter(|r| names.contains(&r.0))
            .map(|r| r.1)
            .collect();
        signal(&self.host, &self.ssh, &pids, "TERM")?;
        let deadline = Instant::now() + self.shutdown_timeout;
        loop {
            let live = alive(&self.host, &self.ssh, &pids)?;
            if live.is_empty() {
                break;
            }
            if Instant::now() >= deadline {
                tracing::warn!(?live, host = %self.host, "workers ignored SIGTERM; sending SIGKILL");
                signal(&self.host, &self.ssh, &live, "KILL")?;
                break;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        self.running.retain(|r| !names.contains(&r.0));
        Ok(())
    }
}

impl Drop for WorkerProcesses {
    fn drop(&mut self) {
        let names = self.requested();
        if let Err(e) = self.stop_workers(&names) {
            tracing::warn!("stopping workers on {}: {e}", self.host);
        }
    }
}
