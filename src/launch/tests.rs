//! Unit tests of launch: ssh targets, quoting, job scripts.

use super::*;

#[test]
fn ssh_targets_parse() {
    let t = SshTarget::parse("me@box:2222");
    assert_eq!((t.destination.as_str(), t.host.as_str()), ("me@box", "box"));
    assert_eq!(t.port.as_deref(), Some("2222"));
    let t = SshTarget::parse("box");
    assert_eq!((t.destination.as_str(), t.host.as_str(), t.port), ("box", "box", None));
}

#[test]
fn quoting_survives_quotes() {
    assert_eq!(sh_quote("it's"), r"'it'\''s'");
    assert_eq!(with_host("tcp://0.0.0.0:8786", "node1"), "tcp://node1:8786");
}

#[test]
fn job_scripts_carry_every_directive() {
    let spec = SlurmSpec {
        cores: 4,
        memory: ByteSize(3 << 30),
        walltime: Some("01:30:00".into()),
        partition: Some("short".into()),
        account: Some("proj1".into()),
        job_extra_directives: vec!["--qos=debug".into()],
        job_script_prologue: vec!["module load rust".into()],
        log_directory: PathBuf::from("/shared/logs"),
        worker: WorkerTemplate {
            binary: Some(PathBuf::from("/opt/my app/bin")),
            ..WorkerTemplate::default()
        },
        ..SlurmSpec::default()
    };
    let s = spec.job_script("tcp://login1:8786", "rdask-worker-3").expect("script");
    for line in [
        "#SBATCH --job-name=rdask-worker",
        "#SBATCH --output=/shared/logs/rdask-worker-3-%j.log",
        "#SBATCH --cpus-per-task=4",
        "#SBATCH --mem=3072M",
        "#SBATCH --time=01:30:00",
        "#SBATCH --partition=short",
        "#SBATCH --account=proj1",
        "#SBATCH --qos=debug",
        "module load rust",
        "exec '/opt/my app/bin' 'worker' 'tcp://login1:8786' '--name' 'rdask-worker-3' '--nthreads' '4' \
         '--memory-limit' '3221225472' '--nanny'",
    ] {
        assert!(s.lines().any(|l| l == line), "missing {line:?} in\n{s}");
    }
    // The directives come before the first command, or sbatch ignores them.
    let first_command = s.lines().position(|l| l == "module load rust").expect("prologue");
    assert!(s.lines().skip(first_command).all(|l| !l.starts_with("#SBATCH")));
}

#[test]
fn a_slurm_section_is_read_and_checked() {
    let dir = tempfile::tempdir().expect("tmp");
    let path = dir.path().join("c.toml");
    std::fs::write(
        &path,
        "[slurm]\njobs = 4\ncores = 2\nmemory = \"1GB\"\nqueue = \"debug\"\n[slurm.worker]\nnanny = false\n",
    )
    .expect("write");
    let spec = ClusterSpec::from_file(&path).expect("valid");
    let sl = spec.slurm.expect("a slurm section");
    assert_eq!((sl.jobs, sl.cores, sl.partition.as_deref()), (4, 2, Some("debug")));
    assert!(!sl.worker.nanny);
    std::fs::write(&path, "[slurm]\njobs = 0\n").expect("write");
    let e = ClusterSpec::from_file(&path).expect_err("jobs = 0");
    assert!(
        e.to_string().contains("[slurm]: jobs and cores must be at least 1"),
        "{e}"
    );
    std::fs::write(&path, "[slurm]\nqueu = \"x\"\n").expect("write");
    let e = ClusterSpec::from_file(&path).expect_err("typo");
    assert!(e.to_string().contains("queu"), "{e}");
}
