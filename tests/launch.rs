//! Tests of `rdask cluster up/status/down` with the built binary: a cluster
//! of local processes, and one whose workers are started through `ssh` to an
//! `sshd` the test runs on 127.0.0.1 with throwaway keys.

use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Output, Stdio};
use std::time::{Duration, Instant};

use rdask::builtins::inc;
use rdask::launch::ClusterState;
use rdask::Client;

mod common;
use common::*;

/// Runs `rdask cluster down` when dropped, so a failing test leaves no processes.
struct Downer(PathBuf, PathBuf);

impl Drop for Downer {
    fn drop(&mut self) {
        if self.1.exists() {
            let _ = rdask(&self.0, &["cluster", "down", "--state", &self.1.to_string_lossy()]);
        }
    }
}

fn rdask(cwd: &Path, args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_rdask"))
        .args(args)
        .current_dir(cwd)
        .stdin(Stdio::null())
        .output()
        .expect("rdask runs")
}

fn text(out: &Output) -> String {
    format!(
        "status {}\nstdout:\n{}\nstderr:\n{}",
        out.status,
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn pid_alive(pid: u32) -> bool {
    Command::new("kill")
        .args(["-0", &pid.to_string()])
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Up, check, compute, status, down; returns after checking every process exited.
fn up_status_down(dir: &Path, spec: &str, workers: &[&str]) {
    std::fs::write(dir.join("cluster.toml"), spec).expect("write spec");
    let state = dir.join("state.json");
    let state_arg = state.to_string_lossy().into_owned();
    let _downer = Downer(dir.to_path_buf(), state.clone());
    let out = rdask(dir, &["cluster", "up", "cluster.toml", "--state", &state_arg]);
    assert!(out.status.success(), "cluster up: {}", text(&out));
    let recorded = ClusterState::read(&state).expect("state file written");
    assert_eq!(recorded.processes.len(), 1 + workers.len());

    let client = Client::connect(&recorded.scheduler_address).expect("connect");
    let info = client.scheduler_info().expect("info");
    let mut names: Vec<&str> = info.workers.iter().map(|w| w.name.as_str()).collect();
    names.sort();
    assert_eq!(names, workers, "every worker registered before `up` returned");
    let futures = client.map(inc, 0..100i64).expect("map");
    assert_eq!(
        client.gather(&futures).expect("gather").iter().sum::<i64>(),
        (1..=100).sum::<i64>()
    );
    drop(futures);
    drop(client);

    let out = rdask(dir, &["cluster", "status", "--state", &state_arg]);
    assert!(out.status.success(), "cluster status: {}", text(&out));
    let stdout = String::from_utf8_lossy(&out.stdout);
    for w in workers {
        assert!(stdout.contains(&format!("worker {w} on")), "{stdout}");
    }
    assert!(stdout.contains(&format!("workers: {}", workers.len())), "{stdout}");
    assert!(!stdout.contains("NOT RUNNING"), "{stdout}");

    let out = rdask(dir, &["cluster", "down", "--state", &state_arg]);
    assert!(out.status.success(), "cluster down: {}", text(&out));
    assert!(
        !String::from_utf8_lossy(&out.stderr).contains("SIGKILL"),
        "processes stopped on SIGTERM: {}",
        text(&out)
    );
    assert!(!state.exists(), "down removes the state file");
    for p in &recorded.processes {
        assert!(!pid_alive(p.pid), "{} (pid {}) still running", p.name, p.pid);
    }
    let out = rdask(dir, &["cluster", "status", "--state", &state_arg]);
    assert!(!out.status.success(), "status without a cluster fails: {}", text(&out));
}

#[test]
fn local_cluster_up_status_down() {
    let dir = TempDir::new("local");
    let spec = r#"
[scheduler]
port = 0
http_port = 0

[[workers]]
name = "a"
count = 2
nthreads = 2
memory_limit = "1GB"

[[workers]]
name = "b"
resources = { GPU = 1 }
http_port = 0
"#;
    up_status_down(&dir.0, spec, &["a-0", "a-1", "b-0"]);
    // The local processes' logs sit next to the state file.
    let logs = dir.0.join("state-logs");
    assert!(logs.join("scheduler.log").is_file());
    assert!(logs.join("a-1.log").is_file());
}

#[test]
fn a_tls_cluster_with_a_token_is_deployed_from_one_cluster_file() {
    use rdask::client::ClientOptions;
    use rdask::wire::security::{Security, TlsFiles};
    let dir = TempDir::new("tls");
    let certs = dir.0.join("certs");
    let out = rdask(&dir.0, &["certs", "new", certs.to_str().expect("utf-8 path")]);
    assert!(out.status.success(), "certs new: {}", text(&out));
    let c = |f: &str| certs.join(f).to_string_lossy().into_owned();
    let spec = format!(
        r#"
[scheduler]
port = 0

[[workers]]
name = "s"
count = 2

[security]
tls_ca_file = "{ca}"
tls_scheduler_cert = "{sc}"
tls_scheduler_key = "{sk}"
tls_worker_cert = "{wc}"
tls_worker_key = "{wk}"
tls_client_cert = "{cc}"
tls_client_key = "{ck}"
token = "s3cret"
"#,
        ca = c("ca.pem"),
        sc = c("scheduler.pem"),
        sk = c("scheduler-key.pem"),
        wc = c("worker.pem"),
        wk = c("worker-key.pem"),
        cc = c("client.pem"),
        ck = c("client-key.pem"),
    );
    std::fs::write(dir.0.join("cluster.toml"), spec).expect("write spec");
    let state = dir.0.join("state.json");
    let state_arg = state.to_string_lossy().into_owned();
    let _downer = Downer(dir.0.clone(), state.clone());
    // No [security] in any rdask.toml: everything comes from the cluster file.
    let out = rdask(&dir.0, &["cluster", "up", "cluster.toml", "--state", &state_arg]);
    assert!(out.status.success(), "cluster up: {}", text(&out));
    let recorded = ClusterState::read(&state).expect("state file written");
    assert!(
        recorded.scheduler_address.starts_with("tls://"),
        "{}",
        recorded.scheduler_address
    );

    let files = TlsFiles {
        ca_file: certs.join("ca.pem"),
        cert: certs.join("client.pem"),
        key: certs.join("client-key.pem"),
    };
    let security = Security::tls(&files).expect("client certificate").with_token("s3cret");
    let client =
        Client::connect_with(&recorded.scheduler_address, ClientOptions::with_security(security)).expect("connect");
    let futures = client.map(inc, 0..50i64).expect("map");
    assert_eq!(
        client.gather(&futures).expect("gather").iter().sum::<i64>(),
        (1..=50).sum::<i64>()
    );
    assert_eq!(client.scheduler_info().expect("info").workers.len(), 2);
    drop(futures);
    drop(client);
    // A client without the cluster's certificate is refused.
    let plain = recorded.scheduler_address.replacen("tls://", "tcp://", 1);
    assert!(Client::connect(&plain).is_err(), "a plaintext client got in");

    let out = rdask(&dir.0, &["cluster", "status", "--state", &state_arg]);
    assert!(out.status.success(), "cluster status: {}", text(&out));
    assert!(
        String::from_utf8_lossy(&out.stdout).contains("workers: 2"),
        "{}",
        text(&out)
    );
    let out = rdask(&dir.0, &["cluster", "down", "--state", &state_arg]);
    assert!(out.status.success(), "cluster down: {}", text(&out));
    for p in &recorded.processes {
        assert!(!pid_alive(p.pid), "{} (pid {}) still running", p.name, p.pid);
    }
}

#[test]
fn cluster_file_errors_name_the_line_and_key() {
    let dir = TempDir::new("badspec");
    std::fs::write(
        dir.0.join("bad.toml"),
        "[scheduler]\nport = 0\n\n[[workers]]\ncuont = 2\n",
    )
    .expect("write");
    let out = rdask(&dir.0, &["cluster", "up", "bad.toml", "--state", "s.json"]);
    assert!(!out.status.success());
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("bad.toml") && err.contains("line 5") && err.contains("cuont"),
        "{err}"
    );
    assert!(!dir.0.join("s.json").exists());
}

/// An sshd on a loopback port, killed when dropped.
struct Sshd(Child);

impl Drop for Sshd {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("free port")
}

fn keygen(path: &Path) -> bool {
    Command::new("ssh-keygen")
        .args(["-q", "-t", "ed25519", "-N", "", "-f"])
        .arg(path)
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

/// Starts sshd with throwaway keys; returns it and an ssh client config
/// file, or why it cannot run here.
fn start_sshd(dir: &Path) -> Result<(Sshd, PathBuf, u16), String> {
    let sshd = Path::new("/usr/sbin/sshd");
    if !sshd.exists() {
        return Err("/usr/sbin/sshd is not installed (Debian package openssh-server; .ci/run installs it)".into());
    }
    let (host_key, user_key) = (dir.join("host_key"), dir.join("user_key"));
    if !keygen(&host_key) || !keygen(&user_key) {
        return Err("ssh-keygen failed".into());
    }
    std::fs::copy(dir.join("user_key.pub"), dir.join("authorized_keys")).map_err(|e| e.to_string())?;
    // sshd insists on its privilege separation directory even with UsePrivilegeSeparation gone.
    let _ = std::fs::create_dir_all("/run/sshd");
    let port = free_port();
    let config = dir.join("sshd_config");
    std::fs::write(
        &config,
        format!(
            "Port {port}\nListenAddress 127.0.0.1\nHostKey {hk}\nAuthorizedKeysFile {ak}\nPidFile {pid}\n\
             StrictModes no\nUsePAM no\nPasswordAuthentication no\nKbdInteractiveAuthentication no\n\
             PermitRootLogin prohibit-password\nPubkeyAuthentication yes\n",
            hk = host_key.display(),
            ak = dir.join("authorized_keys").display(),
            pid = dir.join("sshd.pid").display(),
        ),
    )
    .map_err(|e| e.to_string())?;
    let child = Command::new(sshd)
        .arg("-D")
        .arg("-e")
        .arg("-f")
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(dir.join("sshd.log")).map_err(|e| e.to_string())?)
        .spawn()
        .map_err(|e| format!("cannot run sshd: {e}"))?;
    let mut sshd = Sshd(child);
    let deadline = Instant::now() + Duration::from_secs(10);
    while TcpStream::connect(("127.0.0.1", port)).is_err() {
        if Instant::now() > deadline || sshd.0.try_wait().ok().flatten().is_some() {
            let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
            return Err(format!("sshd did not start: {log}"));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let client_config = dir.join("ssh_config");
    std::fs::write(
        &client_config,
        format!(
            "Host *\n  Port {port}\n  IdentityFile {key}\n  IdentitiesOnly yes\n  StrictHostKeyChecking no\n  \
             UserKnownHostsFile /dev/null\n  BatchMode yes\n  LogLevel ERROR\n",
            key = user_key.display()
        ),
    )
    .map_err(|e| e.to_string())?;
    // Check a login works at all before blaming rdask.
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let probe = Command::new("ssh")
        .arg("-F")
        .arg(&client_config)
        .arg(format!("{user}@127.0.0.1"))
        .arg("true")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("cannot run ssh: {e}"))?;
    if !probe.status.success() {
        let log = std::fs::read_to_string(dir.join("sshd.log")).unwrap_or_default();
        return Err(format!(
            "ssh login to the test sshd failed: {}\nsshd log:\n{log}",
            String::from_utf8_lossy(&probe.stderr)
        ));
    }
    Ok((sshd, client_config, port))
}

#[test]
fn ssh_cluster_up_status_down() {
    let dir = TempDir::new("ssh");
    let (_sshd, client_config, _port) = match start_sshd(&dir.0) {
        Ok(x) => x,
        Err(why) => {
            cannot_run(&format!("ssh cluster test: {why}"));
            return;
        }
    };
    let user = std::env::var("USER").unwrap_or_else(|_| "root".into());
    let spec = format!(
        r#"
[scheduler]
host = "{user}@127.0.0.1"
port = 0

[[workers]]
name = "remote"
host = "{user}@127.0.0.1"
count = 2
binary = "{bin}"

[[workers]]
name = "here"
host = "local"

[ssh]
options = ["-F", "{cfg}"]
log_directory = "{logs}"
"#,
        bin = env!("CARGO_BIN_EXE_rdask"),
        cfg = client_config.display(),
        logs = dir.0.join("remote-logs").display(),
    );
    up_status_down(&dir.0, &spec, &["here-0", "remote-0", "remote-1"]);
    assert!(
        dir.0.join("remote-logs/remote-1.log").is_file(),
        "remote logs in [ssh] log_directory"
    );
}

#[test]
fn the_shipped_cluster_file_parses() {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("config/cluster.toml");
    let spec = rdask::launch::ClusterSpec::from_file(&path).expect("config/cluster.toml parses");
    assert!(!spec.workers.is_empty());
}
