//! The cluster's child processes (`--processes`): finding the `rdask`
//! binary, starting a child and reading its address, killing them all on
//! exit, panic or signal.

use super::*;

/// The cluster's child processes; killed by [`kill_children`].
pub(super) static CHILDREN: Mutex<Vec<Proc>> = Mutex::new(Vec::new());

pub(super) fn kill_children() {
    let mut kids = CHILDREN.lock().unwrap_or_else(|e| e.into_inner());
    // All signalled first, then reaped, so they stop together.
    for c in kids.iter_mut() {
        let _ = c.0.kill();
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

/// Starts a child and returns its pid and the address it says it listens
/// on (the devkit's bounded wait); it is killed with the others.
pub(super) fn spawn_listening(bin: &Path, args: &[&str]) -> Result<(u32, String)> {
    let (child, addr) = rdask_devkit::start(bin, args, Stdio::inherit())?;
    let pid = child.0.id();
    CHILDREN.lock().unwrap_or_else(|e| e.into_inner()).push(child);
    Ok((pid, addr))
}
