//! A scheduler process plus workers from a [`ScaleBackend`], scaled by hand
//! (`scale`) or adaptively (`adapt`): dask-jobqueue's `JobQueueCluster`
//! shape. [`SlurmCluster`] is the one on SLURM.

use super::*;
use crate::client::Client;

/// How long [`JobCluster::close`] waits for cancelled jobs to leave the queue.
pub const JOB_CANCEL_TIMEOUT: Duration = Duration::from_secs(30);

enum Scaling<B: ScaleBackend + 'static> {
    Manual(B),
    Adaptive(AdaptiveHandle<B>),
}

/// A scheduler process started by this process (`rdask scheduler`, a child
/// stopped when this is dropped) and workers from backend `B`.
pub struct JobCluster<B: ScaleBackend + 'static> {
    scheduler: std::process::Child,
    address: String,
    log: PathBuf,
    client: Client,
    scaling: Option<Scaling<B>>,
}

/// dask-jobqueue's `SLURMCluster`: workers as `sbatch` jobs.
///
/// ```no_run
/// use rdask::launch::{SlurmCluster, SlurmSpec};
/// let spec = SlurmSpec { cores: 4, partition: Some("short".into()), ..SlurmSpec::default() };
/// let mut cluster = SlurmCluster::new(spec)?;
/// cluster.scale(10)?; // or cluster.adapt(1, 20)?
/// let client = cluster.client();
/// # Ok::<(), rdask::launch::LaunchError>(())
/// ```
pub type SlurmCluster = JobCluster<SlurmJobs>;

impl SlurmCluster {
    /// Starts a scheduler on this machine (this executable, or
    /// `spec.worker.binary`, as `rdask scheduler`) listening on
    /// `spec.scheduler_host` (default: the host name), with no workers yet.
    pub fn new(spec: SlurmSpec) -> Result<SlurmCluster, LaunchError> {
        let host = match &spec.scheduler_host {
            Some(h) => h.clone(),
            None => run_script(LOCAL, &SshSpec::default(), "hostname")?.trim().to_string(),
        };
        let binary = spec.worker.binary()?;
        let log = spec.log_directory.join("scheduler.log");
        JobCluster::start(&binary, &host, &log, |address| SlurmJobs::new(spec, address))
    }

    /// SLURM job ids of the workers asked for (not while adapting: empty).
    pub fn job_ids(&mut self) -> Vec<String> {
        match self.manual() {
            Ok(b) => b.jobs().iter().map(|j| j.job_id.clone()).collect(),
            Err(_) => Vec::new(),
        }
    }

    /// The job script a worker gets (dask-jobqueue's `job_script()`).
    pub fn job_script(&self) -> Result<String, LaunchError> {
        let spec = match &self.scaling {
            Some(Scaling::Manual(b)) => b.spec().clone(),
            _ => {
                return Err(LaunchError::Command {
                    what: "job_script".into(),
                    message: "not while adapting".into(),
                })
            }
        };
        spec.job_script(&self.address, &format!("{}-N", spec.job_name))
    }
}

impl<B: ScaleBackend + 'static> JobCluster<B> {
    /// Starts `binary scheduler --host HOST --port 0` (output in `log`),
    /// connects a client, and makes the backend for its address.
    pub fn start(binary: &Path, host: &str, log: &Path, backend: impl FnOnce(&str) -> B) -> Result<Self, LaunchError> {
        let io = |what: String| move |source| LaunchError::Io { what, source };
        if let Some(dir) = log.parent() {
            std::fs::create_dir_all(dir).map_err(io(format!("creating {}", dir.display())))?;
        }
        let file = std::fs::File::create(log).map_err(io(format!("creating {}", log.display())))?;
        let err = file.try_clone().map_err(io(format!("opening {}", log.display())))?;
        let mut child = Command::new(binary)
            .args(["scheduler", "--host", host, "--port", "0"])
            .stdin(Stdio::null())
            .stdout(file)
            .stderr(err)
            .spawn()
            .map_err(io(format!("starting {} scheduler", binary.display())))?;
        let deadline = Instant::now() + LaunchOptions::default().startup_timeout;
        let ssh = SshSpec::default();
        let text = match wait_for_line(LOCAL, &ssh, child.id(), log, SCHEDULER_READY, deadline, "the scheduler") {
            Ok(t) => t,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(e);
            }
        };
        let printed = last_word_of_line(&text, SCHEDULER_READY).unwrap_or_default();
        let address = with_host(&printed, host);
        let client = match Client::connect(&address) {
            Ok(c) => c,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                return Err(LaunchError::Scheduler {
                    address,
                    message: e.to_string(),
                });
            }
        };
        Ok(JobCluster {
            scaling: Some(Scaling::Manual(backend(&address))),
            scheduler: child,
            address,
            log: log.to_path_buf(),
            client,
        })
    }

    /// The scheduler's address.
    pub fn scheduler_address(&self) -> &str {
        &self.address
    }

    /// The scheduler process's pid.
    pub fn scheduler_pid(&self) -> u32 {
        self.scheduler.id()
    }

    /// The scheduler's log file.
    pub fn scheduler_log(&self) -> &Path {
        &self.log
    }

    /// A client of the scheduler.
    pub fn client(&self) -> Client {
        self.client.clone()
    }

    fn manual(&mut self) -> Result<&mut B, LaunchError> {
        if matches!(self.scaling, Some(Scaling::Adaptive(_))) {
            let Some(Scaling::Adaptive(h)) = self.scaling.take() else {
                unreachable!("matched above");
            };
            let backend = h
                .stop()
                .map(Adaptive::into_backend)
                .ok_or_else(|| LaunchError::Command {
                    what: "stopping adaptive scaling".into(),
                    message: "its thread panicked; the backend is lost".into(),
                })?;
            self.scaling = Some(Scaling::Manual(backend));
        }
        match &mut self.scaling {
            Some(Scaling::Manual(b)) => Ok(b),
            _ => Err(LaunchError::Command {
                what: "scaling".into(),
                message: "the cluster is closed".into(),
            }),
        }
    }

    /// Dask's `scale(n)`: `n` workers asked for (stops adaptive scaling).
    pub fn scale(&mut self, n: usize) -> Result<(), LaunchError> {
        self.manual()?.scale(n)
    }

    /// Names of the workers asked for (not while adapting: empty).
    pub fn requested(&mut self) -> Vec<String> {
        match self.manual() {
            Ok(b) => b.requested(),
            Err(_) => Vec::new(),
        }
    }

    /// Dask's `adapt(minimum, maximum)` with Dask's interval, wait count
    /// and target duration; [`adapt_with`](Self::adapt_with) to set them.
    pub fn adapt(&mut self, minimum: u32, maximum: u32) -> Result<(), LaunchError> {
        self.adapt_with(minimum, maximum, |a| a)
    }

    /// `adapt`, with the [`Adaptive`] adjusted by `configure`.
    pub fn adapt_with(
        &mut self,
        minimum: u32,
        maximum: u32,
        configure: impl FnOnce(Adaptive<B>) -> Adaptive<B>,
    ) -> Result<(), LaunchError> {
        self.manual()?;
        let Some(Scaling::Manual(backend)) = self.scaling.take() else {
            unreachable!("manual() left a manual backend");
        };
        let adaptive = configure(Adaptive::new(backend, self.client.clone(), minimum, maximum));
        self.scaling = Some(Scaling::Adaptive(adaptive.start()));
        Ok(())
    }

    /// Stops scaling, ends every worker (scale to 0) and the scheduler.
    pub fn close(mut self) -> Result<(), LaunchError> {
        let result = self.manual().and_then(|b| b.scale(0));
        self.scaling = None;
        result
    }
}

impl<B: ScaleBackend + 'static> Drop for JobCluster<B> {
    fn drop(&mut self) {
        // The backend first (its Drop ends its workers), then the scheduler.
        self.scaling = None;
        let _ = signal(LOCAL, &SshSpec::default(), &[self.scheduler.id()], "TERM");
        let deadline = Instant::now() + LaunchOptions::default().shutdown_timeout;
        while Instant::now() < deadline {
            if matches!(self.scheduler.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(POLL_INTERVAL);
        }
        let _ = self.scheduler.kill();
        let _ = self.scheduler.wait();
    }
}
