//! What the workspace's collection crates (`rdask-array`, `rdask-dataframe`,
//! `rdask-ml`) share in their examples and tests, and the core's benchmark
//! examples (`bench --processes`, `bench_hosts`), to run a cluster of real
//! processes: start a binary with the `rdask` command line (`scheduler`,
//! `worker`) as a child, read the address it says it listens on, and kill it
//! when the handle is dropped; plus the small command-line, `/proc` and disk
//! readers their benchmarks print with. A dev-dependency only, never
//! published: the runtime's own tests have `tests/common`, and users start
//! processes with `rdask scheduler` / `rdask worker` or `LocalCluster`.

use std::ffi::OsStr;
use std::io::{BufRead, BufReader};
use std::process::{Child, Command, Stdio};
use std::time::Duration;

/// Longest a child may take to say where it listens (also used by the
/// callers as the bound on workers joining).
pub const STARTUP: Duration = Duration::from_secs(30);

/// What the line a scheduler or worker prints once it listens contains;
/// its address is the line's last word.
const LISTENING: &str = "listening on ";

/// Why a child could not be started.
#[derive(Debug, thiserror::Error)]
pub enum StartError {
    /// The program could not be run.
    #[error("cannot start {program} {args}: {source}")]
    Spawn {
        /// The program.
        program: String,
        /// Its arguments, space-separated.
        args: String,
        /// The OS error.
        source: std::io::Error,
    },
    /// It ran but did not print where it listens within [`STARTUP`] (it
    /// exited, or is stuck); it has been killed.
    #[error("{program} {args} did not say where it listens within {timeout:?}")]
    Silent {
        /// The program.
        program: String,
        /// Its arguments, space-separated.
        args: String,
        /// The bound that passed.
        timeout: Duration,
    },
}

/// A child process, killed (and reaped) when dropped.
#[derive(Debug)]
pub struct Proc(pub Child);

impl Drop for Proc {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// Starts `program ARGS` (with `RUST_LOG=warn` unless set), its standard
/// error going to `stderr`, and waits at most [`STARTUP`] for it to print
/// the line saying where it listens; returns it with that address. Later
/// output is read and dropped, so the child never blocks on a full pipe.
pub fn start(program: impl AsRef<OsStr>, args: &[&str], stderr: Stdio) -> Result<(Proc, String), StartError> {
    start_command(Command::new(program).args(args), stderr)
}

/// [`start`] for a command built by the caller (a program run inside a
/// network namespace, say, or with more environment).
pub fn start_command(cmd: &mut Command, stderr: Stdio) -> Result<(Proc, String), StartError> {
    if std::env::var_os("RUST_LOG").is_none() {
        cmd.env("RUST_LOG", "warn");
    }
    let spawned = cmd.stdin(Stdio::null()).stdout(Stdio::piped()).stderr(stderr).spawn();
    let mut child = spawned.map_err(|source| {
        let (program, args) = describe(cmd);
        StartError::Spawn { program, args, source }
    })?;
    let stdout = child.stdout.take();
    let child = Proc(child);
    let (tx, rx) = std::sync::mpsc::channel();
    if let Some(stdout) = stdout {
        std::thread::spawn(move || {
            let mut tx = Some(tx);
            for line in BufReader::new(stdout).lines().map_while(Result::ok) {
                if line.contains(LISTENING) {
                    if let Some(tx) = tx.take() {
                        let _ = tx.send(line.split_whitespace().last().unwrap_or_default().to_string());
                    }
                }
            }
        });
    }
    match rx.recv_timeout(STARTUP) {
        Ok(address) => Ok((child, address)),
        Err(_) => {
            let (program, args) = describe(cmd);
            Err(StartError::Silent {
                program,
                args,
                timeout: STARTUP,
            })
        }
    }
}

/// A command's program and its arguments, space-separated, for errors.
fn describe(cmd: &Command) -> (String, String) {
    let args: Vec<String> = cmd.get_args().map(|a| a.to_string_lossy().into_owned()).collect();
    (cmd.get_program().to_string_lossy().into_owned(), args.join(" "))
}

/// The children of a benchmark, killed when it ends (normally or not).
#[derive(Debug, Default)]
pub struct Children(pub Vec<Proc>);

impl Children {
    /// Starts this very binary with `args` (a benchmark example re-run as
    /// `scheduler` or `worker`, so the workers link its kernels), its
    /// standard error shown; returns the address it listens on.
    pub fn spawn(&mut self, args: &[&str]) -> Result<String, Box<dyn std::error::Error>> {
        let (child, address) = start(std::env::current_exe()?, args, Stdio::inherit())?;
        self.0.push(child);
        Ok(address)
    }

    /// Starts a scheduler on a free local port and one 1-thread worker per
    /// name (Dask's `LocalCluster(n_workers=…, threads_per_worker=1)` as
    /// processes); returns the scheduler's address.
    pub fn spawn_cluster<S: AsRef<str>>(&mut self, worker_names: &[S]) -> Result<String, Box<dyn std::error::Error>> {
        let addr = self.spawn(&["scheduler", "--host", "127.0.0.1", "--port", "0"])?;
        for name in worker_names {
            self.spawn(&["worker", &addr, "--name", name.as_ref(), "--nthreads", "1"])?;
        }
        Ok(addr)
    }
}

/// The number after `--name` on the command line, or `default`.
pub fn arg(args: &[String], name: &str, default: usize) -> usize {
    args.iter()
        .position(|a| a == name)
        .and_then(|i| args.get(i + 1))
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

/// Bytes of the files under `dir`, recursively (0 if it is gone): how
/// much a worker's spill or shuffle directory holds.
pub fn du(dir: &std::path::Path) -> u64 {
    let Ok(entries) = std::fs::read_dir(dir) else { return 0 };
    entries
        .flatten()
        .map(|e| match e.metadata() {
            Ok(m) if m.is_dir() => du(&e.path()),
            Ok(m) => m.len(),
            Err(_) => 0,
        })
        .sum()
}

/// The 1-minute load average (NaN where unknown), printed beside every
/// figure because the machines these run on are shared.
pub fn loadavg1() -> f64 {
    std::fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|s| s.split_whitespace().next().and_then(|v| v.parse().ok()))
        .unwrap_or(f64::NAN)
}
