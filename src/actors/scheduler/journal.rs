//! The scheduler actor's side of the journal (`super::super::journal`):
//! loading it at start, appending each batch's records, compacting it, and
//! driving the recovery of a restarted scheduler
//! (`crate::scheduler::recovery`). See docs/resilience.md, "Scheduler
//! restart".

use std::time::Instant;

use tracing::{debug, error, info, warn};

use super::SchedulerActor;
use crate::actors::journal::{JournalContents, JournalFile};
use crate::scheduler::JournalImage;

/// The first id this scheduler gives a client or worker session: the start
/// time in seconds, shifted so that a restarted scheduler's ids never meet
/// its predecessor's (a reconnecting client names its previous session by
/// id) unless it started within the same second after a million sessions.
pub(super) fn first_session_id() -> u64 {
    let secs = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    (secs << 20).max(1)
}

impl SchedulerActor {
    /// A scheduler keeping `journal`, whose `contents` (read from it at
    /// start) it rebuilds its state from.
    pub(super) fn with_journal(mut self, journal: JournalFile, contents: JournalContents) -> Self {
        let image = JournalImage::from_records(contents.records);
        self.state.enable_journal();
        if !image.is_empty() {
            info!(
                journal = %journal.path().display(),
                "restarting from the journal: {} tasks, {} results in memory on {} workers, {} client sessions;                  waiting up to {} s for those workers to register again",
                image.tasks.len(),
                image.memory.len(),
                image.memory.values().map(|(w, _)| w).collect::<std::collections::BTreeSet<_>>().len(),
                image.wants.len(),
                self.state.config_journal_worker_wait_s()
            );
            self.next_id = self.next_id.max(image.max_session_id + 1);
            self.state.begin_recovery(image, Instant::now());
        }
        self.journal = Some(journal);
        self.compact_journal();
        self
    }

    /// Appends the journal records of the events handled since the last
    /// call. A journal that cannot be written is given up with an error
    /// line (the scheduler runs on without one).
    pub(super) fn write_journal(&mut self) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        let records = self.state.take_journal_records();
        let result = journal
            .append(&records)
            .and_then(|()| journal.sync_if_due(self.journal_fsync_interval));
        if let Err(e) = result {
            error!("{e}; the scheduler runs on WITHOUT a journal: a restart will lose all work");
            self.journal = None;
            self.state.disable_journal();
        }
    }

    /// Writes the live state as the journal's snapshot in place of its
    /// history.
    pub(super) fn compact_journal(&mut self) {
        let Some(journal) = self.journal.as_mut() else {
            return;
        };
        // The snapshot holds the effect of every record not written yet.
        self.state.take_journal_records();
        let snapshot = self.state.journal_snapshot();
        let started = Instant::now();
        match journal.compact(&snapshot) {
            Ok(()) => debug!(
                "journal compacted: {} records in {:.1} ms",
                snapshot.len(),
                started.elapsed().as_secs_f64() * 1e3
            ),
            Err(e) => {
                error!("{e}; the scheduler runs on WITHOUT a journal: a restart will lose all work");
                self.journal = None;
                self.state.disable_journal();
            }
        }
    }

    /// Loads the journal's state once its workers are back (or the wait
    /// is over), and drops journaled client sessions not resumed in time.
    pub(super) fn check_recovery(&mut self) {
        if let Some(report) = self.state.check_recovery(Instant::now(), &mut self.outbox) {
            info!(
                "restored {} tasks from the journal: {} results kept on the workers that came back, {} to                  recompute if still needed, {} keys workers held that it did not know (freed)",
                report.tasks, report.kept, report.missing, report.unknown_claims
            );
            if !report.absent_workers.is_empty() {
                warn!(
                    "workers that held journaled results did not come back in time: {}",
                    report.absent_workers.join(", ")
                );
            }
            self.compact_journal();
        }
        self.flush();
    }
}
