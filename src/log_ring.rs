//! The last lines of this process's log, kept in memory so a worker can
//! send them to the scheduler in its heartbeat (the dashboard's logs page
//! shows them): a `tracing` layer that formats each event as one line into
//! a bounded ring. [`init_logging`](crate::init_logging) installs it beside
//! the stderr output, with the same filter; a process that installs its own
//! subscriber has an empty ring.

use std::collections::VecDeque;
use std::fmt::Write as _;
use std::sync::{Mutex, MutexGuard};
use std::time::{SystemTime, UNIX_EPOCH};

use tracing::field::{Field, Visit};
use tracing::{Event, Subscriber};
use tracing_subscriber::layer::{Context, Layer};

/// Lines the process keeps (the oldest go first).
pub const LOG_RING_CAPACITY: usize = 1_000;
/// Longest line kept, in bytes; a longer one is cut and ends with `…`.
pub const MAX_LOG_LINE_BYTES: usize = 2_000;

/// The ring: lines with consecutive sequence numbers.
struct Ring {
    lines: VecDeque<String>,
    /// Sequence number the next line gets.
    next: u64,
}

static RING: Mutex<Ring> = Mutex::new(Ring {
    lines: VecDeque::new(),
    next: 0,
});

fn ring() -> MutexGuard<'static, Ring> {
    // A panic while holding the lock leaves whole lines only: still usable.
    RING.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// Adds a line (cut to [`MAX_LOG_LINE_BYTES`]).
pub fn push(mut line: String) {
    if line.len() > MAX_LOG_LINE_BYTES {
        let mut cut = MAX_LOG_LINE_BYTES;
        while !line.is_char_boundary(cut) {
            cut -= 1;
        }
        line.truncate(cut);
        line.push('…');
    }
    let mut r = ring();
    if r.lines.len() == LOG_RING_CAPACITY {
        r.lines.pop_front();
    }
    r.lines.push_back(line);
    r.next += 1;
}

/// The lines from sequence number `since` on, at most the `max` newest, and
/// the sequence number to ask from next time. Lines that fell off the ring
/// (or were skipped past `max`) are counted in one first line saying so.
pub fn since(since: u64, max: usize) -> (Vec<String>, u64) {
    let r = ring();
    let first = r.next - r.lines.len() as u64;
    let from = since.max(first).max(r.next.saturating_sub(max as u64)).min(r.next);
    let missed = from.saturating_sub(since);
    let mut out = Vec::with_capacity((r.next - from) as usize + 1);
    if missed > 0 && max > 0 {
        out.push(format!("… {missed} earlier lines not sent"));
    }
    out.extend(r.lines.iter().skip((from - first) as usize).take(max).cloned());
    (out, r.next)
}

/// The `tracing` layer that fills the ring.
#[derive(Debug, Default, Clone, Copy)]
pub struct RingLayer;

impl<S: Subscriber> Layer<S> for RingLayer {
    fn on_event(&self, event: &Event<'_>, _: Context<'_, S>) {
        let meta = event.metadata();
        let secs = SystemTime::now().duration_since(UNIX_EPOCH).unwrap_or_default();
        let day = secs.as_secs() % 86_400;
        let mut line = format!(
            "{:02}:{:02}:{:02}.{:03} {:>5} {}:",
            day / 3600,
            day / 60 % 60,
            day % 60,
            secs.subsec_millis(),
            meta.level(),
            meta.target()
        );
        event.record(&mut LineVisitor(&mut line));
        push(line);
    }
}

/// Writes an event's message and fields (` key=value`) after the prefix.
struct LineVisitor<'a>(&'a mut String);

impl Visit for LineVisitor<'_> {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value}");
        } else {
            let _ = write!(self.0, " {}={value}", field.name());
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            let _ = write!(self.0, " {value:?}");
        } else {
            let _ = write!(self.0, " {}={value:?}", field.name());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_ring_keeps_the_newest_lines_and_says_what_it_skipped() {
        // The ring is global: read only from where this test starts.
        let (_, start) = since(u64::MAX, 0);
        for i in 0..5 {
            push(format!("line {i}"));
        }
        let (lines, next) = since(start, 10);
        let mine: Vec<&String> = lines.iter().filter(|l| l.starts_with("line ")).collect();
        assert_eq!(mine.len(), 5, "{lines:?}");
        assert!(next >= start + 5);
        let (lines, _) = since(start, 2);
        assert_eq!(lines.len(), 3, "a skipped-lines note and the 2 newest: {lines:?}");
        assert!(lines[0].contains("earlier lines not sent"), "{lines:?}");
        push("x".repeat(MAX_LOG_LINE_BYTES + 10));
        let (lines, _) = since(next, 10);
        assert!(lines
            .iter()
            .any(|l| l.ends_with('…') && l.len() <= MAX_LOG_LINE_BYTES + 3));
    }
}
