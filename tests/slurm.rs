//! SLURM with a real single-node SLURM (slurmctld, slurmd and munge from
//! Debian, started by `ci/slurm/start` from `.ci/run`): worker jobs from
//! `rdask cluster up` with a `[slurm]` section and from the library's
//! `SlurmCluster`, running the count_letters example; no job is left in
//! the queue afterwards. Without SLURM the tests skip, except under CI
//! where they fail (`cannot_run`).

use std::path::Path;
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdask::launch::{ClusterState, SlurmCluster, SlurmSpec, WorkerTemplate};
use rdask::Client;

mod common;
use common::*;

/// How long jobs may take to start, register or leave the queue.
const QUEUE_BOUND: Duration = Duration::from_secs(60);

/// Whether a SLURM controller answers; else why not (after `cannot_run`).
fn slurm_here() -> bool {
    let out = Command::new("squeue").arg("-h").stdin(Stdio::null()).output();
    match out {
        Ok(o) if o.status.success() => true,
        Ok(o) => {
            cannot_run(&format!(
                "squeue fails ({}): no SLURM controller (ci/slurm/start starts one)",
                String::from_utf8_lossy(&o.stderr).trim()
            ));
            false
        }
        Err(e) => {
            cannot_run(&format!("squeue: {e} (apt-get install slurm-wlm; ci/slurm/start)"));
            false
        }
    }
}

/// Job ids SLURM lists of these.
fn queued(ids: &[String]) -> Vec<String> {
    let out = Command::new("squeue")
        .args(["-h", "-o", "%i"])
        .output()
        .expect("squeue runs");
    assert!(out.status.success(), "squeue: {}", text(&out));
    String::from_utf8_lossy(&out.stdout)
        .lines()
        .map(|l| l.trim().to_string())
        .filter(|id| ids.contains(id))
        .collect()
}

/// Waits until SLURM lists none of `ids`.
fn wait_gone(ids: &[String], what: &str) {
    let deadline = Instant::now() + QUEUE_BOUND;
    loop {
        let left = queued(ids);
        if left.is_empty() {
            return;
        }
        assert!(Instant::now() < deadline, "{what}: jobs {left:?} still queued");
        std::thread::sleep(Duration::from_millis(200));
    }
}

fn wait_workers(client: &Client, n: usize) {
    let deadline = Instant::now() + QUEUE_BOUND;
    loop {
        let have = client.scheduler_info().expect("info").workers.len();
        if have == n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{have} workers, not {n}, after {QUEUE_BOUND:?}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

/// The count_letters example as a client of `scheduler`: it checks that
/// the cluster's counts agree with its own sequential ones.
fn count_letters(bin: &str, scheduler: &str, dir: &Path) {
    let out = Command::new(bin)
        .args(["--scheduler", scheduler, "--files", "8", "--size", "200000"])
        .arg("--dir")
        .arg(dir)
        .stdin(Stdio::null())
        .output()
        .expect("count_letters runs");
    assert!(out.status.success(), "count_letters: {}", text(&out));
}

#[test]
fn cluster_up_with_slurm_jobs_runs_count_letters_and_down_cancels_them() {
    if !slurm_here() {
        return;
    }
    let Some(bin) = example_bin("count_letters") else {
        return;
    };
    let dir = TempDir::new("up");
    let spec = format!(
        r#"
[scheduler]
port = 0
binary = "{bin}"

[slurm]
jobs = 4
cores = 1
memory = "512MB"
walltime = "00:10:00"
job_name = "rdask-ci-up"
log_directory = "{logs}"

[slurm.worker]
binary = "{bin}"
"#,
        logs = dir.0.join("jobs").display()
    );
    std::fs::write(dir.0.join("cluster.toml"), spec).expect("write");
    let state = dir.0.join("state.json");
    let state_arg = state.to_string_lossy().into_owned();
    let rdask = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_rdask"))
            .args(args)
            .current_dir(&dir.0)
            .stdin(Stdio::null())
            .output()
            .expect("rdask runs")
    };
    let out = rdask(&["cluster", "up", "cluster.toml", "--state", &state_arg]);
    let recorded = ClusterState::read(&state);
    let ids: Vec<String> = recorded
        .as_ref()
        .ok()
        .and_then(|s| s.slurm.as_ref())
        .map(|(_, jobs)| jobs.iter().map(|j| j.job_id.clone()).collect())
        .unwrap_or_default();
    // Whatever happens next, no job outlives the test.
    struct Cancel(Vec<String>);
    impl Drop for Cancel {
        fn drop(&mut self) {
            if !self.0.is_empty() {
                let _ = Command::new("scancel").args(&self.0).status();
            }
        }
    }
    let _cancel = Cancel(ids.clone());
    assert!(out.status.success(), "cluster up: {}", text(&out));
    let recorded = recorded.expect("state written");
    assert_eq!(ids.len(), 4, "four worker jobs recorded");
    assert_eq!(queued(&ids).len(), 4, "four jobs in the queue");

    let client = Client::connect(&recorded.scheduler_address).expect("connect");
    wait_workers(&client, 4);
    count_letters(&bin, &recorded.scheduler_address, &dir.0.join("letters"));

    let out = rdask(&["cluster", "status", "--state", &state_arg]);
    assert!(out.status.success(), "cluster status: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches(" RUNNING").count(), 4, "{stdout}");
    drop(client);

    let out = rdask(&["cluster", "down", "--state", &state_arg]);
    assert!(out.status.success(), "cluster down: {}", text(&out));
    assert!(queued(&ids).is_empty(), "down returns once the jobs left the queue");
}

fn library_spec(bin: &str, dir: &Path, job_name: &str) -> SlurmSpec {
    SlurmSpec {
        cores: 1,
        walltime: Some("00:10:00".into()),
        job_name: job_name.into(),
        log_directory: dir.join("jobs"),
        scheduler_host: Some("127.0.0.1".into()),
        worker: WorkerTemplate {
            binary: Some(bin.into()),
            ..WorkerTemplate::default()
        },
        ..SlurmSpec::default()
    }
}

#[test]
fn slurm_cluster_scales_to_four_jobs_runs_count_letters_and_scales_down() {
    if !slurm_here() {
        return;
    }
    let Some(bin) = example_bin("count_letters") else {
        return;
    };
    let dir = TempDir::new("lib");
    let mut cluster = SlurmCluster::new(library_spec(&bin, &dir.0, "rdask-ci-lib")).expect("scheduler starts");
    let client = cluster.client();
    cluster.scale(4).expect("scale(4)");
    let ids = cluster.job_ids();
    assert_eq!(ids.len(), 4);
    wait_workers(&client, 4);
    count_letters(&bin, cluster.scheduler_address(), &dir.0.join("letters"));

    cluster.scale(1).expect("scale(1)");
    wait_workers(&client, 1);
    let kept = cluster.job_ids();
    assert_eq!(kept.len(), 1);
    let stopped: Vec<String> = ids.iter().filter(|i| !kept.contains(i)).cloned().collect();
    wait_gone(&stopped, "after scale(1)");
    assert_eq!(queued(&ids), kept);

    cluster.close().expect("close");
    assert!(queued(&ids).is_empty(), "close leaves no job in the queue");
}

#[test]
fn worker_jobs_end_when_the_scheduler_goes_away() {
    if !slurm_here() {
        return;
    }
    let Some(bin) = example_bin("count_letters") else {
        return;
    };
    let dir = TempDir::new("gone");
    // A worker that loses its scheduler keeps trying to reach it for
    // worker.reconnect_timeout_s (60 s by default, Dask's death timeout),
    // then exits and its job ends; 5 s here keeps the test short.
    let spec = SlurmSpec {
        job_script_prologue: vec!["export RDASK_WORKER__RECONNECT_TIMEOUT_S=5".into()],
        ..library_spec(&bin, &dir.0, "rdask-ci-gone")
    };
    let mut cluster = SlurmCluster::new(spec).expect("scheduler starts");
    cluster.scale(2).expect("scale(2)");
    let ids = cluster.job_ids();
    wait_workers(&cluster.client(), 2);
    // SIGKILL: the scheduler cancels nothing; the workers see it go.
    let pid = cluster.scheduler_pid();
    let status = Command::new("kill")
        .args(["-KILL", &pid.to_string()])
        .status()
        .expect("kill");
    assert!(status.success());
    wait_gone(&ids, "after the scheduler was killed");
}

#[test]
fn slurm_cluster_adapts_to_a_burst_and_back() {
    use rdask::builtins::sleep_ms;
    use rdask::SubmitOptions;
    if !slurm_here() {
        return;
    }
    let dir = TempDir::new("adapt");
    let mut spec = library_spec(rdask_bin(), &dir.0, "rdask-ci-adapt");
    spec.worker.nanny = false;
    let mut cluster = SlurmCluster::new(spec).expect("scheduler starts");
    let client = cluster.client();
    cluster
        .adapt_with(1, 3, |a| a.interval(Duration::from_millis(200)).wait_count(2))
        .expect("adapt");
    wait_workers(&client, 1);
    let futures = client
        .map_with(sleep_ms, vec![200u64; 90], &SubmitOptions::impure())
        .expect("submit");
    let deadline = Instant::now() + QUEUE_BOUND;
    let mut most = 0;
    while !futures.iter().all(|f| f.done()) {
        assert!(Instant::now() < deadline, "burst not done");
        most = most.max(client.scheduler_info().expect("info").workers.len());
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(client.gather(&futures).expect("results"), vec![200u64; 90]);
    assert_eq!(most, 3, "adapt(1, 3) reaches 3 worker jobs");
    wait_workers(&client, 1);
    // One job left in the queue: the retired ones ended.
    cluster.scale(1).expect("back to manual");
    let ids = cluster.job_ids();
    assert_eq!(ids.len(), 1);
    cluster.close().expect("close");
    assert!(queued(&ids).is_empty());
}
