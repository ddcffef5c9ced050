//! Integration tests with real processes: `rdask scheduler` and
//! `rdask worker` started by the test on 127.0.0.1 port 0, and a user's own
//! binary (the `count_letters` example) serving its `#[task]` as a worker.

use std::process::Command;
use std::time::{Duration, Instant};

use rdask::builtins::{add, blob_len, fail, inc, make_blob, panic, shell};
use rdask::{Client, ScatterOptions, SubmitOptions};

mod common;
use common::*;

fn worker(bin: &str, scheduler: &str, name: &str) -> (Proc, String) {
    start(
        Command::new(bin).args(["worker", scheduler, "--nthreads", "1", "--name", name]),
        "rdask worker",
    )
}

#[test]
fn separate_scheduler_and_worker_processes_compute_and_move_data_peer_to_peer() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (_w1, w1_addr) = worker(rdask_bin(), &addr, "w1");
    let (_w2, w2_addr) = worker(rdask_bin(), &addr, "w2");
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);

    let xs = client.map(inc, 0..1000i64)?;
    let total: i64 = client.gather(&xs)?.iter().sum();
    assert_eq!(total, (1..=1000).sum::<i64>());
    let pair = client.submit(add, (&xs[0], &xs[999]))?;
    assert_eq!(pair.result()?, 1 + 1000);

    const N: u64 = 10_000_000;
    let blob = client.submit_with(make_blob, (N, 1u64), &SubmitOptions::default().workers(["w1"]))?;
    let len = client.submit_with(blob_len, (&blob,), &SubmitOptions::default().workers(["w2"]))?;
    assert_eq!(len.result()?, N);
    let w1 = client.worker_info(&w1_addr)?;
    let w2 = client.worker_info(&w2_addr)?;
    assert!(
        w2.bytes_fetched_from_peers >= N,
        "w2 fetched {}",
        w2.bytes_fetched_from_peers
    );
    assert!(w1.bytes_served_to_peers >= N, "w1 served {}", w1.bytes_served_to_peers);
    // The client gathers the large result from a worker directly too.
    let data: rdask::Blob = blob.result()?;
    assert_eq!(data.len() as u64, N);

    let out = client
        .submit_with(shell, ("echo out; echo err >&2; exit 3",), &SubmitOptions::impure())?
        .result()?;
    assert_eq!(
        (out.status, out.stdout.as_str(), out.stderr.as_str()),
        (3, "out\n", "err\n")
    );

    drop((xs, pair, blob, len));
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let info = client.scheduler_info()?;
        let empty = client.worker_info(&w1_addr)?.nkeys == 0 && client.worker_info(&w2_addr)?.nkeys == 0;
        if info.ntasks == 0 && empty {
            break;
        }
        assert!(Instant::now() < deadline, "not released: {:?}", info.tasks_by_state);
        std::thread::sleep(Duration::from_millis(20));
    }
    Ok(())
}

#[test]
fn a_broadcast_scatter_puts_a_copy_on_every_worker_and_unhashed_keys_are_fresh() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (_w1, w1_addr) = worker(rdask_bin(), &addr, "w1");
    let (_w2, w2_addr) = worker(rdask_bin(), &addr, "w2");
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let big = rdask::Blob(vec![7u8; 1 << 20]);
    let opts = ScatterOptions::default().broadcast(true).hash(false);
    let a = client.scatter_with(vec![big.clone()], &opts)?.remove(0);
    let b = client.scatter_with(vec![big.clone()], &opts)?.remove(0);
    // Unhashed: the same value twice is two keys, each `<type>-<32 hex>`.
    assert_ne!(a.key(), b.key());
    let suffix = a.key().strip_prefix("Blob-").unwrap_or_else(|| panic!("{}", a.key()));
    assert!(
        suffix.len() == 32 && suffix.bytes().all(|c| c.is_ascii_hexdigit()),
        "{}",
        a.key()
    );
    // Each copy is on both workers as soon as the scatter returns.
    let mut holders = client.who_has(&[a.key()])?.remove(0).workers;
    holders.sort();
    let mut want = vec![w1_addr.clone(), w2_addr.clone()];
    want.sort();
    assert_eq!(holders, want);
    // Tasks pinned to either worker read their own copy: nothing moves.
    for w in ["w1", "w2"] {
        let len = client.submit_with(blob_len, (&a,), &SubmitOptions::default().workers([w]))?;
        assert_eq!(len.result()?, 1 << 20);
    }
    for w in [&w1_addr, &w2_addr] {
        assert_eq!(client.worker_info(w)?.bytes_fetched_from_peers, 0, "{w} fetched");
    }
    // Hashed (the default) without broadcast: one copy, the content's key.
    let c = client.scatter(vec![big.clone()])?.remove(0);
    let d = client.scatter(vec![big.clone()])?.remove(0);
    assert_eq!(c.key(), d.key());
    assert_eq!(client.who_has(&[c.key()])?.remove(0).workers.len(), 1);
    // Broadcasting a value already scattered adds the missing copy.
    let e = client
        .scatter_with(vec![big], &ScatterOptions::default().broadcast(true))?
        .remove(0);
    assert_eq!(e.key(), c.key());
    assert_eq!(client.who_has(&[c.key()])?.remove(0).workers.len(), 2);
    Ok(())
}

#[test]
fn a_users_own_binary_serves_its_tasks_and_plain_workers_do_not() -> anyhow::Result<()> {
    let Some(example) = count_letters_example() else {
        cannot_run("the count_letters example is not built (cargo test builds it)");
        return Ok(());
    };
    let (_s, addr) = scheduler();
    let (_plain, _) = worker(rdask_bin(), &addr, "plain");
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);

    let dir = TempDir::new("example");
    let path = dir.0.join("f.txt");
    std::fs::write(&path, "hello")?;
    let function = "count_letters::count_letters";
    let arg = rdask::task::encode_value(&path.to_string_lossy().into_owned())?;
    let f = client.submit_raw::<usize>(
        function,
        vec![rdask::wire::messages::Arg::Value(arg)],
        &SubmitOptions::default(),
    )?;
    // Only the plain rdask worker is there: it has no such function.
    assert!(f.result_timeout(Some(Duration::from_millis(500))).is_err());
    assert_eq!(f.status(), "no-worker");
    assert!(f.no_worker_reason().is_some_and(|r| r.contains("count_letters")));
    // The user's binary joins as a worker and the waiting task runs there.
    let (_user, _) = worker(example.to_str().unwrap(), &addr, "user");
    assert_eq!(f.result_timeout(Some(Duration::from_secs(20)))?, 5);
    Ok(())
}

fn count_letters_example() -> Option<std::path::PathBuf> {
    // The example binary sits next to the test's `rdask` binary's folder.
    std::path::Path::new(rdask_bin())
        .parent()
        .map(|d| d.join("examples").join("count_letters"))
        .filter(|p| p.exists())
}

#[test]
fn a_program_whose_task_no_worker_serves_exits_with_the_reason_within_15_s() -> anyhow::Result<()> {
    // `count_letters --scheduler ADDR` against plain `rdask worker`s (which do
    // not link the example's task): it must fail, not hang, and say why.
    let Some(example) = count_letters_example() else {
        cannot_run("the count_letters example is not built (cargo test builds it)");
        return Ok(());
    };
    let (_s, addr) = scheduler();
    let (_plain, _) = worker(rdask_bin(), &addr, "plain");
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let dir = TempDir::new("letters");
    let started = Instant::now();
    let mut child = Command::new(&example)
        .args(["--scheduler", &addr, "--files", "2", "--size", "1000", "--dir"])
        .arg(&dir.0)
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()?;
    let status = loop {
        if let Some(status) = child.try_wait()? {
            break status;
        }
        if started.elapsed() > Duration::from_secs(15) {
            let _ = child.kill();
            let out = child.wait_with_output()?;
            panic!(
                "still running after 15 s; stderr: {}",
                String::from_utf8_lossy(&out.stderr)
            );
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    let out = child.wait_with_output()?;
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(!status.success(), "exited with success; stderr: {stderr}");
    assert!(
        stderr.contains("count_letters::count_letters") && stderr.contains("has the function"),
        "stderr does not say which function no worker has: {stderr}"
    );
    assert!(
        stderr.contains("no_worker_timeout_s"),
        "stderr does not name the setting: {stderr}"
    );
    Ok(())
}

#[test]
fn a_worker_that_dies_is_replaced_and_its_results_recomputed() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let (w1, _) = worker(rdask_bin(), &addr, "w1");
    let (_w2, _) = worker(rdask_bin(), &addr, "w2");
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 2);
    let on_w1 = client.submit_with(inc, (1i64,), &SubmitOptions::default().workers(["w1"]).pure(false))?;
    assert_eq!(on_w1.result()?, 2);
    let mut w1 = w1;
    w1.0.kill()?;
    let _ = w1.0.wait();
    // Restrictions no longer hold with w1 gone; a dependent on w2 needs the
    // lost key, which is recomputed there once allowed.
    let next = client.submit(inc, (&on_w1,))?;
    let (_w1b, _) = worker(rdask_bin(), &addr, "w1");
    assert_eq!(next.result_timeout(Some(Duration::from_secs(30)))?, 3);
    Ok(())
}

#[test]
fn logs_written_to_a_pipe_carry_no_colour_codes() -> anyhow::Result<()> {
    use std::io::{BufRead, BufReader, Read};
    use std::process::Stdio;
    let mut child = Command::new(rdask_bin())
        .args(["scheduler", "--host", "127.0.0.1", "--port", "0"])
        .env("RUST_LOG", "info")
        .env_remove("NO_COLOR")
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()?;
    let mut proc_stderr = child.stderr.take().expect("stderr");
    let stdout = child.stdout.take().expect("stdout");
    let mut first = String::new();
    BufReader::new(stdout).read_line(&mut first)?;
    assert!(first.starts_with("rdask scheduler listening on"), "{first}");
    let mut scheduler = Proc(child);
    // SIGTERM: the scheduler logs why it exits, then exits 0.
    scheduler.signal("TERM");
    assert_eq!(scheduler.wait_exit(), Some(0));
    let mut log = String::new();
    proc_stderr.read_to_string(&mut log)?;
    assert!(log.contains("scheduler exiting"), "the scheduler logged:\n{log}");
    assert!(!log.contains("\x1b["), "ANSI escape codes in a piped log:\n{log:?}");
    Ok(())
}

#[test]
fn a_worker_logs_each_failed_or_panicked_task_at_warn_with_its_key_and_backtrace() -> anyhow::Result<()> {
    let (_s, addr) = scheduler();
    let dir = TempDir::new("failure-log");
    let log = dir.0.join("worker.log");
    let (_w, _) = start_logging_to(
        Command::new(rdask_bin())
            .args(["worker", &addr, "--nthreads", "1", "--name", "w"])
            .env("RUST_BACKTRACE", "1")
            .env_remove("RUST_LOG"),
        "rdask worker",
        &log,
    );
    let client = Client::connect(&addr)?;
    wait_for_workers(&client, 1);
    let panicked = client.submit(panic, ("kaboom-in-a-task".to_string(),))?;
    let failed = client.submit(fail, ("refused-by-the-task".to_string(),))?;
    assert!(panicked.result().is_err());
    assert!(failed.result().is_err());
    let line_with = |text: &str, key: &str, message: &str| {
        text.lines()
            .find(|l| l.contains(" WARN ") && l.contains(key) && l.contains(message))
            .map(str::to_string)
    };
    // Whether or not the log is coloured, escapes are not part of the text.
    let plain = |t: &str| {
        let mut out = String::with_capacity(t.len());
        let mut chars = t.chars();
        while let Some(c) = chars.next() {
            if c == '\x1b' {
                chars.by_ref().find(|c| c.is_ascii_alphabetic());
            } else {
                out.push(c);
            }
        }
        out
    };
    let text = wait_for_file(&log, "the worker logs both failures", |t| {
        let t = plain(t);
        line_with(&t, panicked.key(), "kaboom-in-a-task").is_some()
            && line_with(&t, failed.key(), "refused-by-the-task").is_some()
    });
    let text = plain(&text);
    let panic_line = line_with(&text, panicked.key(), "kaboom-in-a-task").unwrap_or_default();
    assert!(panic_line.contains("(rdask::builtins::panic)"), "{panic_line}");
    let fail_line = line_with(&text, failed.key(), "refused-by-the-task").unwrap_or_default();
    assert!(fail_line.contains("(rdask::builtins::fail)"), "{fail_line}");
    // RUST_BACKTRACE=1: the panic's backtrace follows its line, and reaches
    // the task's own function.
    let after = &text[text.find(&panic_line).unwrap_or_default()..];
    assert!(after.contains("backtrace:") && after.contains("builtins"), "{after}");
    Ok(())
}
