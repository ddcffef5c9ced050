//! What a client can learn of how its work ran: the scheduler's task
//! stream (Dask's `get_task_stream`) and performance reports (Dask's
//! `performance_report`): a standalone HTML file of the task stream and
//! per-function statistics of what ran while the report was open.

use std::path::{Path, PathBuf};

use super::{AsyncClient, Client, Error};
use crate::runtime::block_on;
use crate::scheduler::diagnostics::{MAX_RECORDS_PER_READ, TASK_STREAM_CAPACITY};
use crate::wire::messages::{FromClient, TaskStreamRecord, ToClient};

/// Most requests one read of the task stream makes: enough for the whole
/// ring, plus the empty answer that ends the read.
const MAX_STREAM_READS: usize = TASK_STREAM_CAPACITY / MAX_RECORDS_PER_READ + 2;

impl AsyncClient {
    /// Every task-stream record the scheduler keeps (its last
    /// `TASK_STREAM_CAPACITY` = 100,000 task runs and transfers), oldest
    /// first: key, function, worker, thread, start and stop.
    pub async fn get_task_stream(&self) -> Result<Vec<TaskStreamRecord>, Error> {
        Ok(self.task_stream_since(0).await?.0)
    }

    /// The task-stream records from sequence number `since` on, and the
    /// sequence number the next record will get.
    pub async fn task_stream_since(&self, since: u64) -> Result<(Vec<TaskStreamRecord>, u64), Error> {
        let mut all = Vec::new();
        let mut since = since;
        for _ in 0..MAX_STREAM_READS {
            let (records, next) = match self
                .core
                .ask("the task stream", |request_id| FromClient::StreamTasks {
                    request_id,
                    since,
                })
                .await?
            {
                ToClient::StreamTasksReply { records, next, .. } => (records, next),
                other => return Err(super::async_client::unexpected("the task stream", &other)),
            };
            match records.last() {
                None => return Ok((all, next)),
                Some(last) => since = last.seq + 1,
            }
            all.extend(records);
        }
        // The scheduler recorded faster than this client read: what was
        // read is a consistent prefix.
        let next = all.last().map_or(since, |r| r.seq + 1);
        Ok((all, next))
    }

    /// Starts a performance report to be written to `path` (Dask's
    /// `performance_report(filename=...)`): run the work, then
    /// [`PerformanceReport::finish`] writes what ran in between.
    pub async fn performance_report(&self, path: impl AsRef<Path>) -> Result<PerformanceReport, Error> {
        let (_, next) = self.task_stream_since(u64::MAX).await?;
        Ok(PerformanceReport {
            client: self.clone(),
            path: path.as_ref().to_path_buf(),
            since: next,
        })
    }
}

impl Client {
    /// See [`AsyncClient::get_task_stream`].
    pub fn get_task_stream(&self) -> Result<Vec<TaskStreamRecord>, Error> {
        block_on(self.inner.get_task_stream())
    }

    /// See [`AsyncClient::performance_report`].
    ///
    /// ```no_run
    /// # let cluster = rdask::LocalCluster::new(2)?;
    /// # let client = cluster.client()?;
    /// let report = client.performance_report("report.html")?;
    /// let futures = client.map(rdask::builtins::inc, 0..100i64)?;
    /// client.gather(&futures)?;
    /// report.finish()?; // report.html: open it in a browser, offline
    /// # Ok::<(), rdask::Error>(())
    /// ```
    pub fn performance_report(&self, path: impl AsRef<Path>) -> Result<PerformanceReport, Error> {
        block_on(self.inner.performance_report(path))
    }
}

/// An open performance report; [`finish`](Self::finish) writes it.
pub struct PerformanceReport {
    client: AsyncClient,
    path: PathBuf,
    since: u64,
}

impl PerformanceReport {
    /// Writes the report of what ran since it was started; returns its path.
    pub async fn finish_async(self) -> Result<PathBuf, Error> {
        let (records, _) = self.client.task_stream_since(self.since).await?;
        let html = crate::dashboard::report::render(&records);
        std::fs::write(&self.path, html).map_err(|e| {
            Error::Output(format!(
                "cannot write the performance report {}: {e}",
                self.path.display()
            ))
        })?;
        Ok(self.path)
    }

    /// [`finish_async`](Self::finish_async), blocking.
    pub fn finish(self) -> Result<PathBuf, Error> {
        block_on(self.finish_async())
    }
}
