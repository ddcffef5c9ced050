//! Helpers of the resilience tests (`tests/resilience.rs`, faults of
//! processes, and `tests/resilience_wire.rs`, faults on the wire): a
//! scheduler started with a config file, one-thread workers, the
//! scheduler settling back to no tasks, and a small seeded generator.

use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use rdask::Client;

use super::{rdask_bin, start, Proc};

/// Longest any polled condition may take before the test fails (the
/// shared bound of `tests/common`).
pub const DEADLINE: Duration = super::STARTUP;

/// A config file for the scheduler with these `[scheduler]` settings.
pub fn config(name: &str, scheduler_settings: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("rdask-resilience-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let path = dir.join("rdask.toml");
    std::fs::write(&path, format!("[scheduler]\n{scheduler_settings}\n")).expect("config written");
    path
}

/// `rdask --config FILE scheduler` on 127.0.0.1, any free port.
pub fn scheduler_with(config_file: &PathBuf) -> (Proc, String) {
    start(
        Command::new(rdask_bin()).arg("--config").arg(config_file).args([
            "scheduler",
            "--host",
            "127.0.0.1",
            "--port",
            "0",
        ]),
        "rdask scheduler listening on",
    )
}

/// A one-thread `rdask worker` named `name`.
pub fn worker(scheduler: &str, name: &str) -> (Proc, String) {
    super::worker_with(scheduler, name, &["--nthreads", "1"])
}

/// Workers the scheduler lists now.
pub fn nworkers(client: &Client) -> usize {
    client.scheduler_info().expect("info").workers.len()
}

/// The scheduler forgets every task once nothing is wanted.
pub fn assert_settles(client: &Client) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let info = client.scheduler_info().expect("info");
        if info.ntasks == 0 {
            return;
        }
        assert!(Instant::now() < deadline, "tasks left: {:?}", info.tasks_by_state);
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// A small deterministic generator, so each seed replays the same kills.
pub struct Rng(pub u64);

impl Rng {
    pub fn next(&mut self) -> u64 {
        // xorshift64*
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }
}
