//! SLURM: workers as batch jobs (dask-jobqueue's `SLURMCluster`). Each
//! worker is one `sbatch` job whose script runs `rdask worker` in the
//! foreground, so the job ends when the worker does: when it is retired,
//! when the scheduler goes away (the worker exits when it loses its
//! scheduler), or when `scancel` ends it. [`SlurmJobs`] is the
//! [`ScaleBackend`]; `[slurm]` in a cluster file submits its `jobs` at
//! `rdask cluster up` and `down` cancels them.

use super::*;

/// `[slurm]` of a cluster file, and the settings of [`SlurmJobs`] and
/// [`SlurmCluster`](super::SlurmCluster) (dask-jobqueue's names where it
/// has them).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct SlurmSpec {
    /// Worker jobs `rdask cluster up` submits.
    pub jobs: usize,
    /// CPUs per job (`--cpus-per-task`), also the worker's task threads.
    pub cores: u32,
    /// Memory per job (`--mem`), also the worker's memory limit (bytes or
    /// "4GB"; 0: SLURM's default and no limit).
    pub memory: ByteSize,
    /// Time limit (`--time`, e.g. "01:00:00"); unset: the partition's.
    pub walltime: Option<String>,
    /// Partition (`--partition`; dask-jobqueue's `queue`).
    #[serde(alias = "queue")]
    pub partition: Option<String>,
    /// Account to charge (`--account`; dask-jobqueue's `account`).
    pub account: Option<String>,
    /// Job name (`--job-name`); workers are named `<job_name>-<i>`.
    pub job_name: String,
    /// More `#SBATCH` lines, without the prefix, e.g. `["--qos=debug"]`.
    pub job_extra_directives: Vec<String>,
    /// Shell lines run before the worker, e.g. `["module load foo"]`.
    pub job_script_prologue: Vec<String>,
    /// Where job scripts and job logs go (a shared file system on a real
    /// cluster: the nodes write the logs).
    pub log_directory: PathBuf,
    /// How workers are started (binary, nanny, extra flags); `cores` and
    /// `memory` set its threads and memory limit.
    pub worker: WorkerTemplate,
    /// Interface the scheduler of a [`SlurmCluster`](super::SlurmCluster)
    /// listens on and the address workers reach it by; default: this
    /// machine's host name.
    pub scheduler_host: Option<String>,
    /// The `sbatch`, `scancel` and `squeue` commands.
    pub sbatch: String,
    /// See `sbatch`.
    pub scancel: String,
    /// See `sbatch`.
    pub squeue: String,
}

impl Default for SlurmSpec {
    fn default() -> Self {
        SlurmSpec {
            jobs: 1,
            cores: 1,
            memory: ByteSize(0),
            walltime: None,
            partition: None,
            account: None,
            job_name: "rdask-worker".into(),
            job_extra_directives: Vec::new(),
            job_script_prologue: Vec::new(),
            log_directory: PathBuf::from("rdask-slurm-logs"),
            worker: WorkerTemplate::default(),
            scheduler_host: None,
            sbatch: "sbatch".into(),
            scancel: "scancel".into(),
            squeue: "squeue".into(),
        }
    }
}

/// One worker job.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct SlurmJob {
    /// The worker's name.
    pub name: String,
    /// SLURM's job id.
    pub job_id: String,
}

/// Runs a SLURM command; its stdout, or why it failed.
fn slurm_command(program: &str, args: &[String]) -> Result<String, LaunchError> {
    let what = format!("{program} {}", args.join(" "));
    let out = Command::new(program)
        .args(args)
        .stdin(Stdio::null())
        .output()
        .map_err(|e| LaunchError::Command {
            what: what.clone(),
            message: format!("{e} (is SLURM installed and on the PATH?)"),
        })?;
    if !out.status.success() {
        return Err(LaunchError::Command {
            what,
            message: format!("{}: {}", out.status, String::from_utf8_lossy(&out.stderr).trim()),
        });
    }
    Ok(String::from_utf8_lossy(&out.stdout).into_owned())
}

impl SlurmSpec {
    /// The job script of worker `name` of `scheduler` (dask-jobqueue's
    /// `job_script()`).
    pub fn job_script(&self, scheduler: &str, name: &str) -> Result<String, LaunchError> {
        let log_dir = std::path::absolute(&self.log_directory).map_err(|source| LaunchError::Io {
            what: format!("resolving {}", self.log_directory.display()),
            source,
        })?;
        let mut s = String::from("#!/bin/sh\n");
        let mut directive = |d: String| {
            s.push_str("#SBATCH ");
            s.push_str(&d);
            s.push('\n');
        };
        directive(format!("--job-name={}", self.job_name));
        directive(format!("--output={}", log_dir.join(format!("{name}-%j.log")).display()));
        directive("--ntasks=1".into());
        directive(format!("--cpus-per-task={}", self.cores));
        if self.memory.0 > 0 {
            // SLURM counts in MiB; round up so the worker's limit fits.
            directive(format!("--mem={}M", self.memory.0.div_ceil(1 << 20)));
        }
        if let Some(t) = &self.walltime {
            directive(format!("--time={t}"));
        }
        if let Some(p) = &self.partition {
            directive(format!("--partition={p}"));
        }
        if let Some(a) = &self.account {
            directive(format!("--account={a}"));
        }
        for d in &self.job_extra_directives {
            directive(d.clone());
        }
        for line in &self.job_script_prologue {
            s.push_str(line);
            s.push('\n');
        }
        let template = WorkerTemplate {
            nthreads: self.cores,
            memory_limit: self.memory,
            ..self.worker.clone()
        };
        // exec: the job is the worker, so it ends when the worker does.
        s.push_str("exec ");
        s.push_str(&sh_quote(&template.binary()?.to_string_lossy()));
        for a in template.args(scheduler, name) {
            s.push(' ');
            s.push_str(&sh_quote(&a));
        }
        s.push('\n');
        Ok(s)
    }

    /// Submits worker `name`'s job; returns its job id.
    fn submit(&self, scheduler: &str, name: &str) -> Result<String, LaunchError> {
        let script = self.job_script(scheduler, name)?;
        let path = self.log_directory.join(format!("{name}.sh"));
        std::fs::create_dir_all(&self.log_directory)
            .and_then(|_| std::fs::write(&path, script))
            .map_err(|source| LaunchError::Io {
                what: format!("writing {}", path.display()),
                source,
            })?;
        let out = slurm_command(
            &self.sbatch,
            &["--parsable".into(), path.to_string_lossy().into_owned()],
        )?;
        // `--parsable` prints `id` or `id;cluster`.
        let id = out.trim().split(';').next().unwrap_or("").to_string();
        if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
            return Err(LaunchError::Command {
                what: format!("{} --parsable {}", self.sbatch, path.display()),
                message: format!("expected a job id, got {:?}", out.trim()),
            });
        }
        Ok(id)
    }

    /// Cancels jobs (`scancel`); jobs already gone are no error.
    pub fn cancel(&self, job_ids: &[String]) -> Result<(), LaunchError> {
        if job_ids.is_empty() {
            return Ok(());
        }
        slurm_command(&self.scancel, job_ids).map(|_| ())
    }

    /// Of `job_ids`, those SLURM still lists (pending or running), with
    /// their state (`squeue`).
    pub fn queued(&self, job_ids: &[String]) -> Result<Vec<(String, String)>, LaunchError> {
        if job_ids.is_empty() {
            return Ok(Vec::new());
        }
        // All jobs, filtered here: `squeue -j` errs on ids it forgot.
        let out = slurm_command(&self.squeue, &["-h".into(), "-o".into(), "%i %T".into()])?;
        Ok(out
            .lines()
            .filter_map(|l| l.split_once(' '))
            .filter(|(id, _)| job_ids.iter().any(|j| j == id))
            .map(|(id, st)| (id.to_string(), st.trim().to_string()))
            .collect())
    }

    /// Cancels `job_ids` and waits, up to `timeout`, until SLURM lists none
    /// of them; returns those still listed then.
    pub fn cancel_and_wait(&self, job_ids: &[String], timeout: Duration) -> Result<Vec<String>, LaunchError> {
        self.cancel(job_ids)?;
        let deadline = Instant::now() + timeout;
        loop {
            let left: Vec<String> = self.queued(job_ids)?.into_iter().map(|j| j.0).collect();
            if left.is_empty() || Instant::now() >= deadline {
                return Ok(left);
            }
            std::thread::sleep(POLL_INTERVAL);
        }
    }
}

/// Worker jobs of one scheduler: the SLURM [`ScaleBackend`].
#[derive(Debug)]
pub struct SlurmJobs {
    spec: SlurmSpec,
    scheduler: String,
    next: usize,
    jobs: Vec<SlurmJob>,
    cancel_on_drop: bool,
}

impl SlurmJobs {
    /// Jobs running workers of `scheduler`. Dropping it cancels them.
    pub fn new(spec: SlurmSpec, scheduler: &str) -> Self {
        SlurmJobs {
            spec,
            scheduler: scheduler.to_string(),
            next: 0,
            jobs: Vec::new(),
            cancel_on_drop: true,
        }
    }

    /// Leaves the jobs running when dropped (`rdask cluster up` records
    /// them for `down`).
    pub fn keep_on_drop(mut self) -> Self {
        self.cancel_on_drop = false;
        self
    }

    /// The jobs asked for and not ended.
    pub fn jobs(&self) -> &[SlurmJob] {
        &self.jobs
    }

    /// The settings.
    pub fn spec(&self) -> &SlurmSpec {
        &self.spec
    }
}

impl ScaleBackend for SlurmJobs {
    fn describe(&self) -> String {
        format!("slurm jobs {:?}", self.spec.job_name)
    }

    fn refresh(&mut self) -> Result<(), LaunchError> {
        let ids: Vec<String> = self.jobs.iter().map(|j| j.job_id.clone()).collect();
        let listed = self.spec.queued(&ids)?;
        self.jobs.retain(|j| listed.iter().any(|(id, _)| *id == j.job_id));
        Ok(())
    }

    fn requested(&self) -> Vec<String> {
        self.jobs.iter().map(|j| j.name.clone()).collect()
    }

    fn start_workers(&mut self, n: usize) -> Result<Vec<String>, LaunchError> {
        let mut names = Vec::new();
        for _ in 0..n {
            let name = format!("{}-{}", self.spec.job_name, self.next);
            self.next += 1;
            let job_id = self.spec.submit(&self.scheduler, &name)?;
            tracing::info!(%name, %job_id, "submitted a worker job");
            self.jobs.push(SlurmJob {
                name: name.clone(),
                job_id,
            });
            names.push(name);
        }
        Ok(names)
    }

    fn stop_workers(&mut self, names: &[String]) -> Result<(), LaunchError> {
        let ids: Vec<String> = self
            .jobs
            .iter()
            .filter(|j| names.contains(&j.name))
            .map(|j| j.job_id.clone())
            .collect();
        // Stopped means gone from the queue, as a stopped process is gone.
        let left = self.spec.cancel_and_wait(&ids, JOB_CANCEL_TIMEOUT)?;
        self.jobs.retain(|j| !names.contains(&j.name));
        if left.is_empty() {
            Ok(())
        } else {
            Err(LaunchError::Command {
                what: format!("{} {}", self.spec.scancel, ids.join(" ")),
                message: format!("jobs {left:?} still queued after {JOB_CANCEL_TIMEOUT:?}"),
            })
        }
    }
}

impl Drop for SlurmJobs {
    fn drop(&mut self) {
        if self.cancel_on_drop {
            let ids: Vec<String> = self.jobs.iter().map(|j| j.job_id.clone()).collect();
            if let Err(e) = self.spec.cancel(&ids) {
                tracing::warn!("cancelling worker jobs {ids:?}: {e}");
            }
        }
    }
}

/// `rdask cluster up`'s part: submits `[slurm]`'s jobs of workers of the
/// state's scheduler, recording them in the state; returns how many.
pub(super) fn submit_jobs(spec: &SlurmSpec, state: &mut ClusterState) -> Result<usize, LaunchError> {
    let mut jobs = SlurmJobs::new(spec.clone(), &state.scheduler_address).keep_on_drop();
    let result = jobs.start_workers(spec.jobs);
    // Recorded even on failure, so the caller's clean-up cancels them.
    state.slurm = Some((spec.clone(), jobs.jobs().to_vec()));
    result.map(|n| n.len())
}

/// `down`'s part: cancels the recorded jobs and waits until SLURM lists
/// none of them; returns notes on what went wrong.
pub(super) fn cancel_jobs(state: &ClusterState, timeout: Duration) -> Vec<String> {
    let Some((spec, jobs)) = &state.slurm else {
        return Vec::new();
    };
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    match spec.cancel_and_wait(&ids, timeout.max(JOB_CANCEL_TIMEOUT)) {
        Ok(left) if left.is_empty() => Vec::new(),
        Ok(left) => vec![format!("slurm jobs {left:?} still queued after scancel")],
        Err(e) => vec![e.to_string()],
    }
}

/// The error when worker jobs did not all register in time.
pub(super) fn jobs_late(state: &ClusterState, registered: usize, total: usize) -> LaunchError {
    let (queue, log) = match &state.slurm {
        Some((spec, jobs)) => {
            let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
            let queue = match spec.queued(&ids) {
                Ok(q) => format!("{q:?}"),
                Err(e) => e.to_string(),
            };
            (queue, spec.log_directory.display().to_string())
        }
        None => (String::new(), String::new()),
    };
    LaunchError::Startup {
        what: format!(
            "{registered} of {total} workers registered in time; the worker jobs in the queue (id, state): {queue}"
        ),
        log: format!("{log}/<job name>-<i>-<job id>.log"),
        tail: String::new(),
    }
}

/// `status`'s part: each recorded job and its queue state (`None`: no
/// longer queued).
pub fn job_states(state: &ClusterState) -> Result<Vec<(SlurmJob, Option<String>)>, LaunchError> {
    let Some((spec, jobs)) = &state.slurm else {
        return Ok(Vec::new());
    };
    let ids: Vec<String> = jobs.iter().map(|j| j.job_id.clone()).collect();
    let queued = spec.queued(&ids)?;
    Ok(jobs
        .iter()
        .map(|j| {
            let st = queued.iter().find(|(id, _)| *id == j.job_id).map(|q| q.1.clone());
            (j.clone(), st)
        })
        .collect())
}
