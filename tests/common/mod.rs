//! Helpers shared by the integration tests that start real `rdask`
//! processes: a child that is killed when the test ends, starting a process
//! and reading the address it prints, a scheduler and workers on 127.0.0.1
//! port 0. Each test file uses a different subset.
#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use rdask::Client;

/// Longest a process may take to print its address, or a polled condition
/// to hold, before the test fails.
pub const STARTUP: Duration = Duration::from_secs(30);

/// A child process killed when the test ends, pass or fail.
pub struct Proc(pub Child);

impl Proc {
    /// Its pid.
    pub fn pid(&self) -> u32 {
        self.0.id()
    }

    /// Sends a signal by name (`KILL`, `STOP`, `TERM`, ...).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args([format!("-{sig}"), self.pid().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -{sig} {}", self.pid());
    }

    /// Waits for the process to exit; its exit code (None: killed by a signal).
    pub fn wait_exit(&mut self) -> Option<i32> {
        let deadline = Instant::now() + STARTUP;
        loop {
            if let Some(status) = self.0.try_wait().expect("try_wait") {
                return status.code();
            }
            assert!(Instant::now() < deadline, "process {} did not exit", self.pid());
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The `rdask` binary under test.
pub fn rdask_bin() -> &'static str {
    env!("CARGO_BIN_EXE_rdask")
}

/// Starts a command and waits for the stdout line that starts with
/// `prefix`; returns the process and the line's last word (an address).
/// The process's log goes to the test's stderr when `RDASK_TEST_LOGS` is
/// set, and nowhere otherwise.
pub fn start(cmd: &mut Command, prefix: &str) -> (Proc, String) {
    let stderr = if std::env::var_os("RDASK_TEST_LOGS").is_some() {
        Stdio::inherit()
    } else {
        Stdio::null()
    };
    start_with_stderr(cmd, prefix, stderr)
}

/// As [`start`], with the process's log (stderr) written to the file `log`,
/// for tests that check what a process logs.
pub fn start_logging_to(cmd: &mut Command, prefix: &str, log: &std::path::Path) -> (Proc, String) {
    let file = std::fs::File::create(log).expect("create log file");
    start_with_stderr(cmd, prefix, Stdio::from(file))
}

fn start_with_stderr(cmd: &mut Command, prefix: &str, stderr: Stdio) -> (Proc, String) {
    cmd.stdout(Stdio::piped()).stderr(stderr);
    let mut child = cmd.spawn().expect("process starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let prefix = prefix.to_string();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if line.starts_with(&prefix) {
                let _ = tx.send(line.rsplit(' ').next().unwrap_or_default().to_string());
            }
        }
    });
    let addr = rx.recv_timeout(STARTUP).expect("process printed its address");
    (Proc(child), addr)
}

/// `rdask scheduler` on 127.0.0.1, any free port.
pub fn scheduler() -> (Proc, String) {
    start(
        Command::new(rdask_bin()).args(["scheduler", "--host", "127.0.0.1", "--port", "0"]),
        "rdask scheduler listening on",
    )
}

/// `rdask worker SCHEDULER --name NAME EXTRA...`.
pub fn worker_with(scheduler: &str, name: &str, extra: &[&str]) -> (Proc, String) {
    start(
        Command::new(rdask_bin())
            .args(["worker", scheduler, "--name", name])
            .args(extra),
        "rdask worker",
    )
}

/// Waits until the text of file `path` satisfies `ok`; returns that text.
pub fn wait_for_file(path: &std::path::Path, what: &str, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + STARTUP;
    loop {
        let text = std::fs::read_to_string(path).unwrap_or_default();
        if ok(&text) {
            return text;
        }
        assert!(Instant::now() < deadline, "{what}; {path:?} has:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits until at least `n` workers are registered.
pub fn wait_for_workers(client: &Client, n: usize) {
    let deadline = Instant::now() + STARTUP;
    while client.scheduler_info().expect("scheduler info").workers.len() < n {
        assert!(Instant::now() < deadline, "workers did not register");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A fresh directory under the system temp dir (`tempfile`), named after
/// the test file and `name` for whoever finds one left behind by a killed
/// run, removed when dropped. `.0` is its path.
pub struct TempDir(pub std::path::PathBuf, tempfile::TempDir);

impl TempDir {
    /// `<tmp>/rdask-<test file>-<name>-<random>`.
    pub fn new(name: &str) -> TempDir {
        let dir = tempfile::Builder::new()
            .prefix(&format!("rdask-{}-{name}-", env!("CARGO_CRATE_NAME")))
            .tempdir()
            .expect("create temp dir");
        TempDir(dir.path().to_path_buf(), dir)
    }
}

/// Starts a command like [`start`], with its log (stderr) written to `log`
/// so the test can read it, and waits for a stdout line starting with each
/// of `prefixes`; returns the process and each line's last word, in order.
pub fn start_logged(cmd: &mut Command, prefixes: &[&str], log: &std::path::Path) -> (Proc, Vec<String>) {
    let file = std::fs::File::create(log).expect("log file");
    cmd.stdout(Stdio::piped()).stderr(Stdio::from(file));
    let mut child = cmd.spawn().expect("process starts");
    let stdout = child.stdout.take().expect("stdout");
    let (tx, rx) = std::sync::mpsc::channel();
    let prefixes: Vec<String> = prefixes.iter().map(|p| p.to_string()).collect();
    let n = prefixes.len();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(i) = prefixes.iter().position(|p| line.starts_with(p.as_str())) {
                let _ = tx.send((i, line.rsplit(' ').next().unwrap_or_default().to_string()));
            }
        }
    });
    let mut found = vec![String::new(); n];
    for _ in 0..n {
        let (i, addr) = rx.recv_timeout(STARTUP).expect("process printed its address");
        found[i] = addr;
    }
    (Proc(child), found)
}

/// Waits until `cond` holds, failing the test after [`STARTUP`].
pub fn wait_until(what: &str, mut cond: impl FnMut() -> bool) {
    let deadline = Instant::now() + STARTUP;
    while !cond() {
        assert!(Instant::now() < deadline, "timed out waiting until {what}");
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The resident memory of process `pid` in bytes (`VmRSS`), or of its
/// address space (`VmSize`) with `field = "VmSize"`.
pub fn proc_memory(pid: u32, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("/proc status");
    let line = status
        .lines()
        .find(|l| l.starts_with(&format!("{field}:")))
        .expect("field present");
    let kb: u64 = line
        .split_whitespace()
        .nth(1)
        .and_then(|v| v.parse().ok())
        .expect("a number");
    kb * 1024
}

/// A TCP port nothing listens on right now (bound, then released).
pub fn free_port() -> u16 {
    let l = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    l.local_addr().expect("address").port()
}

/// Hand-made protocol traffic, for tests that misbehave on purpose.
pub mod resilience;

pub mod raw {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use rdask::wire::messages::{Handshake, Role, PROTOCOL_VERSION};

    /// A frame of `header` without payloads.
    pub fn frame(header: &[u8]) -> Vec<u8> {
        let mut f = Vec::new();
        f.extend_from_slice(&(header.len() as u32).to_be_bytes());
        f.extend_from_slice(&0u32.to_be_bytes());
        f.extend_from_slice(header);
        f
    }

    /// msgpack of `v` as rdask encodes it.
    pub fn encode<T: serde::Serialize>(v: &T) -> Vec<u8> {
        rdask::wire::codec::encode(v).expect("encodes").0
    }

    /// A handshake frame for `role`.
    pub fn handshake(role: Role) -> Vec<u8> {
        frame(&encode(&Handshake {
            magic: "rdask".into(),
            protocol_version: PROTOCOL_VERSION,
            role,
            name: "raw".into(),
            token: None,
        }))
    }

    /// A connection to `addr` with a read timeout.
    pub fn connect(addr: &str) -> TcpStream {
        let s = TcpStream::connect(addr.trim_start_matches("tcp://")).expect("connects");
        s.set_read_timeout(Some(super::STARTUP)).expect("timeout set");
        s
    }

    /// Reads one frame; returns its msgpack header (payloads skipped).
    pub fn read_frame(s: &mut TcpStream) -> std::io::Result<Vec<u8>> {
        let mut head = [0u8; 8];
        s.read_exact(&mut head)?;
        let len = u32::from_be_bytes([head[0], head[1], head[2], head[3]]) as usize;
        let npayloads = u32::from_be_bytes([head[4], head[5], head[6], head[7]]) as usize;
        let mut payload_bytes = 0u64;
        for _ in 0..npayloads {
            let mut n = [0u8; 8];
            s.read_exact(&mut n)?;
            payload_bytes += u64::from_be_bytes(n);
        }
        let mut body = vec![0u8; len];
        s.read_exact(&mut body)?;
        std::io::copy(&mut s.take(payload_bytes), &mut std::io::sink())?;
        Ok(body)
    }

    /// A client connection past its handshake and `Welcome`.
    pub fn client(addr: &str) -> TcpStream {
        let mut s = connect(addr);
        s.write_all(&handshake(Role::Client)).expect("handshake");
        read_frame(&mut s).expect("handshake reply");
        read_frame(&mut s).expect("welcome");
        s
    }

    /// Sends a batch of messages (a client's, or on purpose another kind).
    pub fn send<M: serde::Serialize>(s: &mut TcpStream, msgs: &[M]) -> std::io::Result<()> {
        s.write_all(&frame(&encode(&msgs)))
    }

    /// Reads until the peer closes (or resets); true if it did within the
    /// read timeout.
    pub fn closed_by_peer(s: &mut TcpStream, timeout: Duration) -> bool {
        s.set_read_timeout(Some(timeout)).expect("timeout set");
        let mut buf = [0u8; 64 * 1024];
        loop {
            match s.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if matches!(e.kind(), std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut) => {
                    return false
                }
                Err(_) => return true,
            }
        }
    }
}

/// Whether this run is CI's (`CI` set and not `false`, as in .ci/run's
/// environment).
pub fn in_ci() -> bool {
    std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0")
}

/// A test that cannot run here (a tool or a kernel feature is missing):
/// outside CI it says so on stderr and the caller returns; under CI it
/// fails, because .ci/run installs every tool the tests use and a missing
/// one means a test silently stopped testing.
pub fn cannot_run(why: &str) {
    assert!(!in_ci(), "cannot run under CI: {why}");
    eprintln!("SKIPPED: {why}");
}

/// The example program `name`, built next to the test's `rdask` binary
/// (`cargo test` builds examples); `None`, after [`cannot_run`], when it
/// is not there.
pub fn example_bin(name: &str) -> Option<String> {
    let found = std::path::Path::new(rdask_bin())
        .parent()
        .map(|d| d.join("examples").join(name))
        .filter(|p| p.exists())
        .map(|p| p.to_string_lossy().into_owned());
    if found.is_none() {
        cannot_run(&format!("the {name} example is not built (cargo test builds it)"));
    }
    found
}

/// `BIN worker SCHEDULER --name NAME --nthreads N`: a worker from an
/// example binary that serves the example's own tasks.
pub fn example_worker(bin: &str, scheduler: &str, name: &str, nthreads: u32) -> (Proc, String) {
    start(
        Command::new(bin).args(["worker", scheduler, "--name", name, "--nthreads", &nthreads.to_string()]),
        "rdask worker",
    )
}
