//! The cluster file's model: the scheduler, the worker groups, ssh and
//! security settings that `rdask cluster up FILE` reads.

use serde::{Deserialize, Serialize};

use super::*;

/// `ssh` settings for remote hosts.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SshSpec {
    /// The ssh client to run.
    pub command: String,
    /// Options passed before the destination, e.g. `["-F", "ssh_config"]`.
    pub options: Vec<String>,
    /// Directory on remote hosts for the processes' logs.
    pub log_directory: PathBuf,
}

impl Default for SshSpec {
    fn default() -> Self {
        SshSpec {
            command: "ssh".into(),
            // Never stop at a password prompt: `up` runs unattended.
            options: vec!["-o".into(), "BatchMode=yes".into()],
            log_directory: PathBuf::from("/tmp/rdask-cluster-logs"),
        }
    }
}

/// `[scheduler]` of a cluster file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SchedulerSpec {
    /// Where to run it: `local` or `[user@]host[:ssh_port]`.
    pub host: String,
    /// Scheduler port (0: any free port, read back from its log).
    pub port: u16,
    /// HTTP endpoint port (unset: none; 0: any free port).
    pub http_port: Option<u16>,
    /// Interface to listen on; default: the address others reach its host by.
    pub listen_host: Option<String>,
    /// Binary to run; default: this executable.
    pub binary: Option<PathBuf>,
}

impl Default for SchedulerSpec {
    fn default() -> Self {
        SchedulerSpec {
            host: LOCAL.into(),
            port: DEFAULT_SCHEDULER_PORT,
            http_port: None,
            listen_host: None,
            binary: None,
        }
    }
}

/// One `[[workers]]` group of a cluster file.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct WorkerGroup {
    /// Name prefix; workers are named `<name>-<i>` (default `g<group index>`).
    pub name: Option<String>,
    /// Where to run them: `local` or `[user@]host[:ssh_port]`.
    pub host: String,
    /// How many workers.
    pub count: usize,
    /// Task threads per worker.
    pub nthreads: u32,
    /// Memory limit per worker (bytes or a string such as "4GB"; 0: none).
    pub memory_limit: ByteSize,
    /// Abstract resources per worker, e.g. `{ GPU = 1 }`.
    pub resources: BTreeMap<String, f64>,
    /// Directory for the workers' files (each gets a subdirectory by name).
    pub local_directory: Option<PathBuf>,
    /// Interface of the workers' peer ports; default: the address others
    /// reach their host by. It is also the address they announce.
    pub listen_host: Option<String>,
    /// First HTTP endpoint port; worker i gets `http_port + i` (0: any free
    /// port for each; unset: none).
    pub http_port: Option<u16>,
    /// Binary to run, e.g. a user's own `#[task]` binary embedding
    /// `rdask::cli::main`; default: this executable.
    pub binary: Option<PathBuf>,
    /// Run each worker under a nanny (`rdask worker --nanny`), which
    /// restarts it when it crashes or passes its memory's terminate
    /// fraction; on by default, as in Dask.
    pub nanny: bool,
}

impl Default for WorkerGroup {
    fn default() -> Self {
        WorkerGroup {
            name: None,
            host: LOCAL.into(),
            count: 1,
            nthreads: 1,
            memory_limit: ByteSize(0),
            resources: BTreeMap::new(),
            local_directory: None,
            listen_host: None,
            http_port: None,
            binary: None,
            nanny: true,
        }
    }
}

/// A cluster file (`config/cluster.toml`).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSpec {
    /// The address other machines reach this one by (used for processes
    /// on `local`).
    pub local_address: Option<String>,
    /// The scheduler.
    pub scheduler: SchedulerSpec,
    /// Worker groups.
    pub workers: Vec<WorkerGroup>,
    /// ssh settings.
    pub ssh: SshSpec,
    /// TLS and token settings for every process the file starts.
    pub security: ClusterSecurity,
    /// Worker jobs on SLURM (`[slurm]`), besides any `[[workers]]`.
    pub slurm: Option<SlurmSpec>,
}

/// `[security]` of a cluster file: passed as flags to the scheduler and
/// every worker it starts (paths as seen on the machine each process runs
/// on), and used by `up` and `status` to reach the scheduler, so one file
/// deploys a TLS cluster. Certificates from `rdask certs new DIR`.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct ClusterSecurity {
    /// PEM file of the cluster CA; setting it switches the cluster to TLS.
    pub tls_ca_file: Option<PathBuf>,
    /// The scheduler's certificate and key.
    pub tls_scheduler_cert: Option<PathBuf>,
    /// See `tls_scheduler_cert`.
    pub tls_scheduler_key: Option<PathBuf>,
    /// The workers' certificate and key.
    pub tls_worker_cert: Option<PathBuf>,
    /// See `tls_worker_cert`.
    pub tls_worker_key: Option<PathBuf>,
    /// The certificate and key `up`/`status` connect with.
    pub tls_client_cert: Option<PathBuf>,
    /// See `tls_client_cert`.
    pub tls_client_key: Option<PathBuf>,
    /// Shared token every connection must present.
    pub token: Option<String>,
}

impl ClusterSecurity {
    /// Command-line flags for one role's process.
    fn flags(&self, cert: &Option<PathBuf>, key: &Option<PathBuf>) -> Vec<String> {
        let mut args = Vec::new();
        for (flag, value) in [
            ("--tls-ca-file", &self.tls_ca_file),
            ("--tls-cert", cert),
            ("--tls-key", key),
        ] {
            if let Some(v) = value {
                args.extend([flag.to_string(), v.to_string_lossy().into_owned()]);
            }
        }
        if let Some(t) = &self.token {
            args.extend(["--token".to_string(), t.clone()]);
        }
        args
    }

    pub(super) fn scheduler_flags(&self) -> Vec<String> {
        self.flags(&self.tls_scheduler_cert, &self.tls_scheduler_key)
    }

    pub(super) fn worker_flags(&self) -> Vec<String> {
        self.flags(&self.tls_worker_cert, &self.tls_worker_key)
    }

    /// How `up` and `status` connect, if the file says anything about it.
    pub fn client_security(&self) -> Result<Option<Security>, LaunchError> {
        if self.tls_ca_file.is_none() && self.token.is_none() {
            return Ok(None);
        }
        let files = TlsFiles::from_parts(
            self.tls_ca_file.clone(),
            self.tls_client_cert.clone(),
            self.tls_client_key.clone(),
            [
                "security.tls_ca_file",
                "security.tls_client_cert",
                "security.tls_client_key",
            ],
        )
        .map_err(|e| LaunchError::Security(e.to_string()))?;
        let security = match files {
            Some(f) => Security::tls(&f).map_err(|e| LaunchError::Security(e.to_string()))?,
            None => Security::default(),
        };
        Ok(Some(security.with_token(self.token.clone().unwrap_or_default())))
    }
}

impl ClusterSpec {
    /// Reads and checks a cluster file.
    pub fn from_file(path: &Path) -> Result<ClusterSpec, LaunchError> {
        let spec_err = |message: String| LaunchError::Spec {
            path: path.to_path_buf(),
            message,
        };
        let text = std::fs::read_to_string(path).map_err(|e| spec_err(e.to_string()))?;
        let spec: ClusterSpec = toml::from_str(&text).map_err(|e| spec_err(e.to_string().trim().to_string()))?;
        for (i, g) in spec.workers.iter().enumerate() {
            if g.count == 0 || g.nthreads == 0 {
                return Err(spec_err(format!(
                    "[[workers]] group {i}: count and nthreads must be at least 1"
                )));
            }
        }
        if let Some(sl) = &spec.slurm {
            if sl.jobs == 0 || sl.cores == 0 {
                return Err(spec_err("[slurm]: jobs and cores must be at least 1".into()));
            }
        }
        let mut names = std::collections::HashSet::new();
        for (i, g) in spec.workers.iter().enumerate() {
            if !names.insert(group_prefix(g, i)) {
                return Err(spec_err(format!(
                    "[[workers]] group {i}: name {:?} is used twice",
                    g.name
                )));
            }
        }
        Ok(spec)
    }

    /// The address processes on `target` are reached at.
    pub(super) fn reachable(&self, target: &str) -> String {
        if target == LOCAL {
            self.local_address.clone().unwrap_or_else(|| "127.0.0.1".into())
        } else {
            SshTarget::parse(target).host
        }
    }
}
