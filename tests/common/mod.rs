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
