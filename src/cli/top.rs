//! `rdask top`: a compact live view of a cluster in the terminal (workers,
//! tasks per state, memory), redrawn in place every interval; plain
//! blocks one after another when stdout is not a terminal. One
//! `SchedulerInfo` round trip per refresh. Ends after `--count` refreshes,
//! on Ctrl-C (cleanly, exit code 0), or with an error when the scheduler
//! stops answering.

use std::io::{IsTerminal, Write};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use bytesize::ByteSize;

use crate::wire::messages::{SchedulerInfo, WorkerStatus};
use crate::Client;

/// Most worker lines one refresh shows (those holding the most memory);
/// a line counts the others, so the view fits a terminal at any size of
/// cluster.
pub const MAX_TOP_WORKERS: usize = 20;
/// Shortest refresh interval `--interval` accepts.
pub const MIN_TOP_INTERVAL: Duration = Duration::from_millis(100);
/// How often the wait between refreshes checks for Ctrl-C.
const CTRL_C_POLL: Duration = Duration::from_millis(50);

/// One refresh as text: a header line, tasks per state, and a line per
/// worker (the `MAX_TOP_WORKERS` using the most memory).
pub fn render(info: &SchedulerInfo, scheduler: &str) -> String {
    let threads: u64 = info.workers.iter().map(|w| u64::from(w.nthreads)).sum();
    let mut out = format!(
        "rdask top: {scheduler}: {} workers, {threads} threads, {} clients, {} tasks\n",
        info.workers.len(),
        info.nclients,
        info.ntasks
    );
    let states: Vec<String> = info
        .tasks_by_state
        .iter()
        .map(|(state, n)| format!("{state} {n}"))
        .collect();
    out += &format!("tasks: {}\n", states.join(", "));
    let held: u64 = info.workers.iter().map(|w| w.nbytes).sum();
    let spilled: u64 = info.workers.iter().map(|w| w.spilled_bytes).sum();
    let rss: u64 = info.workers.iter().map(|w| w.rss_bytes).sum();
    out += &format!(
        "memory: results {}, spilled {}, worker processes {}\n",
        ByteSize(held),
        ByteSize(spilled),
        ByteSize(rss)
    );
    out += &format!(
        "{:<20} {:>7} {:>5} {:>10} {:>10} {:>10} {:>10} {:>6} {:>8}\n",
        "worker", "threads", "cpu%", "process", "results", "spilled", "limit", "proc", "status"
    );
    let mut workers: Vec<_> = info.workers.iter().collect();
    workers.sort_by(|a, b| {
        b.rss_bytes
            .max(b.nbytes)
            .cmp(&a.rss_bytes.max(a.nbytes))
            .then(a.name.cmp(&b.name))
    });
    for w in workers.iter().take(MAX_TOP_WORKERS) {
        let limit = if w.memory_limit == 0 {
            "none".to_string()
        } else {
            ByteSize(w.memory_limit).to_string()
        };
        out += &format!(
            "{:<20} {:>7} {:>5} {:>10} {:>10} {:>10} {:>10} {:>6} {:>8}\n",
            w.name.chars().take(20).collect::<String>(),
            w.nthreads,
            w.cpu_percent,
            ByteSize(w.rss_bytes).to_string(),
            ByteSize(w.nbytes).to_string(),
            ByteSize(w.spilled_bytes).to_string(),
            limit,
            w.processing,
            match w.status {
                WorkerStatus::Running => "running",
                WorkerStatus::Paused => "paused",
            }
        );
    }
    if workers.len() > MAX_TOP_WORKERS {
        out += &format!("… and {} more workers\n", workers.len() - MAX_TOP_WORKERS);
    }
    out
}

/// Sets the returned flag on Ctrl-C (SIGINT), from a thread of its own
/// that waits for the signal.
fn ctrl_c_flag() -> Result<Arc<AtomicBool>, String> {
    let flag = Arc::new(AtomicBool::new(false));
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| format!("cannot start the Ctrl-C watcher: {e}"))?;
    // Register the handler before returning, so an early Ctrl-C counts.
    let mut sigint = rt
        .block_on(async { tokio::signal::unix::signal(tokio::signal::unix::SignalKind::interrupt()) })
        .map_err(|e| format!("cannot watch for Ctrl-C: {e}"))?;
    let set = flag.clone();
    std::thread::Builder::new()
        .name("rdask-top-ctrl-c".into())
        .spawn(move || {
            if rt.block_on(sigint.recv()).is_some() {
                set.store(true, Ordering::Relaxed);
            }
        })
        .map_err(|e| format!("cannot start the Ctrl-C watcher: {e}"))?;
    Ok(flag)
}

/// Runs the view: `count` refreshes (None: until Ctrl-C), one every
/// `interval`. Returns the exit code.
pub fn run(client: &Client, scheduler: &str, interval: Duration, count: Option<u64>) -> i32 {
    let interval = interval.max(MIN_TOP_INTERVAL);
    let stop = match ctrl_c_flag() {
        Ok(f) => f,
        Err(e) => {
            eprintln!("error: {e}");
            return 1;
        }
    };
    let terminal = std::io::stdout().is_terminal();
    let mut stdout = std::io::stdout();
    let mut shown = 0u64;
    loop {
        let info = match client.scheduler_info() {
            Ok(i) => i,
            Err(e) => {
                eprintln!("error: the scheduler at {scheduler} did not answer: {e}");
                return 1;
            }
        };
        let text = render(&info, scheduler);
        let written = if terminal {
            // Home, draw, clear what is left of the previous frame.
            write!(stdout, "\x1b[H\x1b[2J{text}").and_then(|_| stdout.flush())
        } else {
            writeln!(stdout, "{text}").and_then(|_| stdout.flush())
        };
        if written.is_err() {
            // stdout is gone (a closed pipe): nothing more to show.
            return 0;
        }
        shown += 1;
        if count.is_some_and(|c| shown >= c) {
            return 0;
        }
        let until = Instant::now() + interval;
        while Instant::now() < until {
            if stop.load(Ordering::Relaxed) {
                if terminal {
                    let _ = writeln!(stdout);
                }
                return 0;
            }
            std::thread::sleep(CTRL_C_POLL.min(until.saturating_duration_since(Instant::now())));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::wire::messages::WorkerSummary;

    fn worker(i: usize) -> WorkerSummary {
        WorkerSummary {
            name: format!("w{i:03}"),
            address: format!("tcp://10.0.0.{i}:4000"),
            nthreads: 2,
            memory_limit: if i == 0 { 0 } else { 1 << 30 },
            nkeys: 1,
            nbytes: i as u64 * 1_000_000,
            processing: 3,
            functions: Vec::new(),
            status: WorkerStatus::Running,
            spilled_bytes: 0,
            rss_bytes: 0,
            cpu_percent: 50,
        }
    }

    #[test]
    fn a_refresh_shows_counts_and_at_most_the_biggest_workers() {
        let info = SchedulerInfo {
            ntasks: 7,
            tasks_by_state: vec![("memory".into(), 4), ("processing".into(), 3)],
            nclients: 1,
            workers: (0..MAX_TOP_WORKERS + 5).map(worker).collect(),
            rss_bytes: 0,
        };
        let text = render(&info, "tcp://s:8786");
        assert!(
            text.starts_with("rdask top: tcp://s:8786: 25 workers, 50 threads, 1 clients, 7 tasks\n"),
            "{text}"
        );
        assert!(text.contains("tasks: memory 4, processing 3\n"), "{text}");
        assert!(text.contains("… and 5 more workers"), "{text}");
        // The biggest first; the smallest are left out.
        let first = text.lines().nth(4).unwrap_or("");
        assert!(first.starts_with("w024"), "{text}");
        assert!(!text.contains("w000"), "{text}");
        assert_eq!(text.lines().count(), 4 + MAX_TOP_WORKERS + 1, "{text}");
    }
}
