//! `rdask::progress(&futures)`: a progress bar per function in the
//! terminal (Dask's `progress`), drawn with `indicatif` on stdout, or plain
//! lines when stdout is not a terminal (a log, CI). Returns when every
//! future is done; while some wait for a worker that can run them, the
//! bar says so, so a wait that cannot end is never silent. It follows
//! futures, and lazy results and collections through the futures their
//! graphs hold ([`FuturesOf`], Dask's `futures_of`): a persisted bag, a
//! `Delayed` built on persisted parts.

use std::collections::BTreeMap;
use std::io::{IsTerminal, Write};
use std::sync::Arc;
use std::time::{Duration, Instant};

use indicatif::{MultiProgress, ProgressBar, ProgressDrawTarget, ProgressStyle};

use super::core::Core;
use super::{key_status, Error, Future};
use crate::wire::messages::Key;

/// How often the bars are brought up to date.
pub const PROGRESS_REFRESH: Duration = Duration::from_millis(100);
/// Without a terminal, how often a line per function is printed (when
/// anything changed), besides the final one.
pub const PLAIN_LINE_INTERVAL: Duration = Duration::from_secs(1);

/// How the futures of one function stand.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct FunctionCount {
    /// Futures of the function.
    pub total: u64,
    /// Finished (with a result).
    pub finished: u64,
    /// Failed or cancelled.
    pub erred: u64,
    /// Waiting for a worker that can run them (no-worker).
    pub no_worker: u64,
}

/// The function name of a key: rdask keys are `function-<hash or uuid>`
/// (Dask's `key_split`); a key without a `-` is its own name.
pub fn key_function(key: &str) -> &str {
    key.rsplit_once('-').map_or(key, |(f, _)| f)
}

/// One future [`progress`] follows, of any result type.
#[derive(Clone)]
pub struct Followed {
    key: Key,
    core: Arc<Core>,
}

impl Followed {
    pub(crate) fn new(key: Key, core: Arc<Core>) -> Self {
        Followed { key, core }
    }

    /// Its key.
    pub fn key(&self) -> &str {
        &self.key
    }

    /// Its status, as [`Future::status`] says.
    pub fn status(&self) -> &'static str {
        key_status(&self.core, &self.key)
    }
}

impl std::fmt::Debug for Followed {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "Followed({})", self.key)
    }
}

/// What [`progress`] can follow: futures, and lazy results or collections
/// through the futures their graphs hold (Dask's `futures_of`).
pub trait FuturesOf {
    /// The futures, each key once. Errs ([`Error::Input`]) for a lazy
    /// result or collection none of whose graph is on the cluster yet
    /// (persist it first), since there would be nothing to follow.
    fn futures_of(&self) -> Result<Vec<Followed>, Error>;
}

impl<T> FuturesOf for Future<T> {
    fn futures_of(&self) -> Result<Vec<Followed>, Error> {
        Ok(vec![Followed::new(self.key.clone(), self.core.clone())])
    }
}

impl<T> FuturesOf for [Future<T>] {
    fn futures_of(&self) -> Result<Vec<Followed>, Error> {
        let mut seen = std::collections::HashSet::new();
        Ok(self
            .iter()
            .filter(|f| seen.insert(f.key.as_str()))
            .map(|f| Followed::new(f.key.clone(), f.core.clone()))
            .collect())
    }
}

impl<T> FuturesOf for Vec<Future<T>> {
    fn futures_of(&self) -> Result<Vec<Followed>, Error> {
        self.as_slice().futures_of()
    }
}

/// The error of a lazy graph that holds no future.
pub(crate) fn nothing_to_follow(what: &str) -> Error {
    Error::Input(format!(
        "progress: nothing of this {what} is on the cluster yet, so there is nothing to follow; \
         persist it first (`persist(&client)`) and pass what that returns"
    ))
}

/// Counts by function, keyed by name.
fn count(futures: &[Followed]) -> BTreeMap<String, FunctionCount> {
    let mut by_fn: BTreeMap<String, FunctionCount> = BTreeMap::new();
    for f in futures {
        let c = by_fn.entry(key_function(f.key()).to_string()).or_default();
        c.total += 1;
        match f.status() {
            "finished" => c.finished += 1,
            "error" | "cancelled" => c.erred += 1,
            "no-worker" => c.no_worker += 1,
            _ => {}
        }
    }
    by_fn
}

fn line(name: &str, c: &FunctionCount) -> String {
    let mut s = format!("{name}: {}/{}", c.finished + c.erred, c.total);
    if c.erred > 0 {
        s += &format!(", {} erred", c.erred);
    }
    if c.no_worker > 0 {
        s += &format!(", {} waiting for a worker that can run them", c.no_worker);
    }
    s
}

/// Shows the progress of `what` (futures, a persisted collection, a lazy
/// result built on persisted parts: see [`FuturesOf`]) until every future
/// is done (finished, erred or cancelled); returns the final counts by
/// function. Errs if the connection to the scheduler is lost meanwhile, or
/// at once if `what` holds no future.
pub fn progress<P: FuturesOf + ?Sized>(what: &P) -> Result<BTreeMap<String, FunctionCount>, Error> {
    let futures = what.futures_of()?;
    if std::io::stdout().is_terminal() {
        show(&futures, Output::Bars)
    } else {
        show(&futures, Output::Lines(&mut std::io::stdout()))
    }
}

/// Where progress goes.
pub(crate) enum Output<'a> {
    /// `indicatif` bars on stdout.
    Bars,
    /// Plain lines to a writer.
    Lines(&'a mut dyn Write),
}

pub(crate) fn show(futures: &[Followed], mut output: Output<'_>) -> Result<BTreeMap<String, FunctionCount>, Error> {
    let bars = MultiProgress::with_draw_target(match output {
        Output::Bars => ProgressDrawTarget::stdout(),
        Output::Lines(_) => ProgressDrawTarget::hidden(),
    });
    let style = ProgressStyle::with_template("{prefix:>24} [{bar:40}] {pos}/{len} {msg}")
        .map_err(|e| Error::Output(format!("progress bar template: {e}")))?
        .progress_chars("=> ");
    let mut shown: BTreeMap<String, ProgressBar> = BTreeMap::new();
    let mut last_plain: Option<(Instant, BTreeMap<String, FunctionCount>)> = None;
    loop {
        let counts = count(futures);
        if futures.iter().any(|f| f.status() == "lost") {
            bars.clear().ok();
            return Err(Error::Disconnected(
                "the connection to the scheduler was lost while showing progress".into(),
            ));
        }
        let done = counts.values().all(|c| c.finished + c.erred == c.total);
        match &mut output {
            Output::Bars => {
                for (name, c) in &counts {
                    let bar = shown.entry(name.clone()).or_insert_with(|| {
                        let b = bars.add(ProgressBar::new(c.total).with_style(style.clone()));
                        b.set_prefix(name.clone());
                        b
                    });
                    bar.set_position(c.finished + c.erred);
                    bar.set_message(line(name, c).split_once(", ").map_or("", |(_, rest)| rest).to_string());
                    if done {
                        bar.finish();
                    }
                }
            }
            Output::Lines(out) => {
                let due = last_plain
                    .as_ref()
                    .is_none_or(|(at, before)| at.elapsed() >= PLAIN_LINE_INTERVAL && *before != counts);
                if due || done {
                    for (name, c) in &counts {
                        let _ = writeln!(out, "{}", line(name, c));
                    }
                    let _ = out.flush();
                    last_plain = Some((Instant::now(), counts.clone()));
                }
            }
        }
        if done {
            return Ok(counts);
        }
        std::thread::sleep(PROGRESS_REFRESH);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::{fail, sleep_ms};

    #[test]
    fn plain_lines_follow_the_futures_to_the_end() {
        let cluster = crate::LocalCluster::builder()
            .dashboard_address(None)
            .build()
            .expect("cluster");
        let client = cluster.client().expect("client");
        let sleeps = client.map(sleep_ms, 100..130u64).expect("submit");
        let failing = client.submit(fail, ("no".to_string(),)).expect("submit");
        let mut out = Vec::new();
        let counts = show(&sleeps.futures_of().expect("futures"), Output::Lines(&mut out)).expect("progress");
        let c = counts["sleep_ms"];
        assert_eq!((c.total, c.finished, c.erred), (30, 30, 0));
        let text = String::from_utf8(out).expect("utf-8");
        assert!(text.lines().count() >= 2, "a first and a final line: {text}");
        assert_eq!(text.lines().last(), Some("sleep_ms: 30/30"), "{text}");
        let counts = show(&failing.futures_of().expect("futures"), Output::Lines(&mut Vec::new())).expect("progress");
        assert_eq!(counts["fail"].erred, 1);
    }

    #[test]
    fn functions_are_read_from_keys() {
        assert_eq!(
            key_function("rdask::builtins::inc-5d41402abc4b2a76"),
            "rdask::builtins::inc"
        );
        assert_eq!(key_function("fib-1"), "fib");
        assert_eq!(key_function("plain"), "plain");
    }

    #[test]
    fn a_line_says_what_waits() {
        let c = FunctionCount {
            total: 10,
            finished: 6,
            erred: 1,
            no_worker: 3,
        };
        assert_eq!(
            line("inc", &c),
            "inc: 7/10, 1 erred, 3 waiting for a worker that can run them"
        );
    }
}
