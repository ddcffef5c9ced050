//! The cluster's child processes (`--processes`): finding the `rdask`
//! binary, starting a child and reading its address, killing them all on
//! exit, panic or signal.

use super::*;

/// The cluster's child processes; killed by [`kill_children`].
pub(super) static CHILDREN: Mutex<Vec<Child>> = Mutex::new(Vec::new());

pub(super) fn kill_children() {
    let mut kids = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    for c in kids.iter_mut() {
        let _ = c.kill();
    }
    for c in kids.iter_mut() {
        let _ = c.wait();
    }
    kids.clear();
}

/// Kills the children when dropped (normal exit or panic).
pub(super) struct ChildGuard;

impl Drop for ChildGuard {
    fn drop(&mut self) {
        kill_children();
    }
}

/// Kills the children and exits on SIGINT / SIGTERM.
pub(super) fn install_signal_handler() {
    std::thread::spawn(|| {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread().enable_all().build() else {
            return;
        };
        rt.block_on(async {
            let term = async {
                match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
                    Ok(mut s) => {
                        s.recv().await;
                    }
                    Err(_) => std::future::pending::<()>().await,
                }
            };
            tokio::select! {
                _ = tokio::signal::ctrl_c() => {}
                _ = term => {}
            }
        });
        eprintln!("bench: interrupted, stopping the cluster");
        kill_children();
        std::process::exit(130);
    });
}

/// Finds (building it first) the `rdask` binary next to this example.
pub(super) fn rdask_binary() -> Result<PathBuf> {
    let exe = std::env::current_exe().context("current_exe")?;
    // target/<profile>/examples/bench -> target/<profile>/rdask
    let profile_dir = exe
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| anyhow!("cannot place {}", exe.display()))?
        .to_path_buf();
    let bin = profile_dir.join("rdask");
    let release = profile_dir.file_name().is_some_and(|n| n == "release");
    let mut cmd = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()));
    cmd.args(["build", "--bin", "rdask"])
        .current_dir(env!("CARGO_MANIFEST_DIR"));
    if release {
        cmd.arg("--release");
    }
    // Build output goes to stderr, stdout stays JSON only.
    cmd.stdout(Stdio::null());
    eprintln!(
        "bench: building the rdask binary ({})",
        if release { "release" } else { "debug" }
    );
    match cmd.status() {
        Ok(s) if s.success() => {}
        Ok(s) => eprintln!("bench: `cargo build --bin rdask` failed ({s}); trying the existing binary"),
        Err(e) => eprintln!("bench: cannot run cargo ({e}); trying the existing binary"),
    }
    ensure!(
        bin.exists(),
        "{} is missing: run `cargo build --release` first",
        bin.display()
    );
    Ok(bin)
}

/// Starts a child and returns it with the first stdout line containing
/// `listening on ` (its address is the last word); later stdout is drained.
pub(super) fn spawn_listening(bin: &Path, args: &[&str]) -> Result<(u32, String)> {
    let mut cmd = Command::new(bin);
    if std::env::var_os("RUST_LOG").is_none() {
        // keep the children's info logs out of the benchmark's stderr
        cmd.env("RUST_LOG", "warn");
    }
    let mut child = cmd
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .with_context(|| format!("cannot start {} {}", bin.display(), args.join(" ")))?;
    let pid = child.id();
    let stdout = child.stdout.take().expect("piped stdout");
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(child);
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let mut tx = Some(tx);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            if line.contains("listening on ") {
                if let Some(tx) = tx.take() {
                    let _ = tx.send(line);
                }
            }
        }
    });
    let line = rx
        .recv_timeout(Duration::from_secs(30))
        .map_err(|_| anyhow!("`rdask {}` did not say where it listens within 30 s", args.join(" ")))?;
    let addr = line.split_whitespace().last().unwrap_or("").to_string();
    Ok((pid, addr))
}
