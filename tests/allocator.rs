//! The `rdask` binary's allocator by role (`rdask::util::allocator`): a
//! scheduler process allocates with mimalloc, a worker with the system's,
//! `RDASK_ALLOCATOR` overrides either, and a mimalloc scheduler serves a
//! client's tasks and releases (its `mi_collect` after a client leaves).

use std::path::Path;
use std::process::Command;

use rdask::builtins::inc;
use rdask::Client;

mod common;
use common::*;

/// Starts `rdask ARGS` logging at info to `log`; waits for `prefix`.
fn start_logged(args: &[&str], allocator: Option<&str>, prefix: &str, log: &Path) -> (Proc, String) {
    let mut cmd = Command::new(rdask_bin());
    cmd.args(args).env("RUST_LOG", "info").env("NO_COLOR", "1");
    match allocator {
        Some(a) => cmd.env("RDASK_ALLOCATOR", a),
        None => cmd.env_remove("RDASK_ALLOCATOR"),
    };
    start_logging_to(&mut cmd, prefix, log)
}

/// The allocator a process logged it uses.
fn logged_allocator(log: &Path) -> String {
    let text = wait_for_file(log, "the allocator's log line", |t| {
        t.lines().any(|l| l.contains("memory allocator"))
    });
    let line = text
        .lines()
        .find(|l| l.contains("memory allocator"))
        .unwrap_or_default();
    let value = line.split("allocator=").nth(1).unwrap_or_default();
    value
        .split_whitespace()
        .next()
        .unwrap_or_default()
        .trim_matches('"')
        .to_string()
}

#[test]
fn a_scheduler_allocates_with_mimalloc_and_a_worker_with_the_system_allocator() -> anyhow::Result<()> {
    let dir = TempDir::new("roles");
    let (slog, wlog) = (dir.0.join("scheduler.log"), dir.0.join("worker.log"));
    let sched_args = ["scheduler", "--host", "127.0.0.1", "--port", "0"];
    let (_s, addr) = start_logged(&sched_args, None, "rdask scheduler listening on", &slog);
    let (_w, _) = start_logged(&["worker", &addr, "--name", "w"], None, "rdask worker", &wlog);
    assert_eq!(logged_allocator(&slog), "mimalloc");
    assert_eq!(logged_allocator(&wlog), "system");
    // The mimalloc scheduler computes, releases, and outlives a client
    // whose leaving makes it collect its freed memory.
    for round in 0..2 {
        let client = Client::connect(&addr)?;
        wait_for_workers(&client, 1);
        let futs = client.map(inc, 0..2_000i64)?;
        let got: Vec<i64> = client.gather(&futs)?;
        assert_eq!(got, (1..=2_000).collect::<Vec<i64>>(), "round {round}");
        drop(futs);
        drop(client);
    }
    let client = Client::connect(&addr)?;
    assert_eq!(client.submit(inc, (41i64,))?.result()?, 42);
    Ok(())
}

#[test]
fn rdask_allocator_overrides_the_choice_by_role() {
    let dir = TempDir::new("override");
    let (slog, wlog) = (dir.0.join("scheduler.log"), dir.0.join("worker.log"));
    let sched_args = ["scheduler", "--host", "127.0.0.1", "--port", "0"];
    let (_s, addr) = start_logged(&sched_args, Some("system"), "rdask scheduler listening on", &slog);
    let (_w, _) = start_logged(
        &["worker", &addr, "--name", "w"],
        Some("mimalloc"),
        "rdask worker",
        &wlog,
    );
    assert_eq!(logged_allocator(&slog), "system");
    assert_eq!(logged_allocator(&wlog), "mimalloc");
}

#[test]
fn an_unknown_rdask_allocator_value_is_ignored_with_a_warning() {
    let dir = TempDir::new("unknown");
    let slog = dir.0.join("scheduler.log");
    let sched_args = ["scheduler", "--host", "127.0.0.1", "--port", "0"];
    let (_s, _) = start_logged(&sched_args, Some("jemalloc"), "rdask scheduler listening on", &slog);
    assert_eq!(logged_allocator(&slog), "mimalloc", "the choice by role stands");
    let text = wait_for_file(&slog, "the warning", |t| t.contains("RDASK_ALLOCATOR is neither"));
    assert!(text.contains("jemalloc"), "{text}");
}
