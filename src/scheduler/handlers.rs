//! The events: client and worker messages, dispatched to the concern that
//! handles each.

use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing, SchedulerError, TaskState, WorkerId};
use super::worker_load::HeartbeatLoad;
use crate::wire::messages::{FromClient, FromWorker, ToClient, WhoHas};

/// Keys of a `ReleaseKeys` looked up before the tasks they free are
/// forgotten: few enough that the key index's lines the lookups touched
/// are still in cache when the forgetting removes them (issue 15).
pub const RELEASE_CHUNK: usize = 1024;

/// Weight of a new transfer in the running bandwidth average: transfers
/// vary more than durations of one function, so each moves it less.
pub(super) const BANDWIDTH_SAMPLE_WEIGHT: f64 = 0.25;

impl SchedulerState {
    /// A client connected: pushes `Welcome`.
    pub fn add_client(&mut self, id: ClientId, out: &mut Outbox) {
        self.begin();
        self.clients.entry(id).or_default();
        out.messages
            .push(Outgoing::Client(id, ToClient::Welcome { client_id: id.0 }));
    }

    /// A client left: everything only it wanted is released.
    pub fn remove_client(&mut self, id: ClientId, out: &mut Outbox) {
        self.begin();
        self.drop_client(id);
        self.scatter_client_gone(id);
        let effects = self.coord.client_gone(id, std::time::Instant::now());
        self.apply_effects(effects, out);
        self.finish(out);
    }

    /// A message from a client.
    pub fn handle_client_message(
        &mut self,
        id: ClientId,
        msg: FromClient,
        out: &mut Outbox,
    ) -> Result<(), SchedulerError> {
        if !self.clients.contains_key(&id) {
            return Err(SchedulerError::UnknownClient(id));
        }
        self.begin();
        match msg {
            FromClient::UpdateGraph { tasks, wanted } => self.update_graph(id, tasks, wanted, out),
            FromClient::ReleaseKeys { keys } => {
                for chunk in keys.chunks(RELEASE_CHUNK) {
                    for key in chunk {
                        if let Some(t) = self.task_id(key) {
                            self.unwant(id, t);
                        }
                    }
                    // Released now, not at the end of the event: nothing
                    // else happens in this event, and the index lines the
                    // lookups above brought into cache are still there for
                    // the forgetting (a batch is up to 65,536 keys).
                    self.release_candidates(out);
                }
            }
            FromClient::Scatter {
                request_id,
                data,
                workers,
                broadcast,
            } => self.scatter(id, request_id, data, (&workers, broadcast), out),
            FromClient::ScatterDirect {
                request_id,
                done_id,
                keys,
                workers,
                broadcast,
            } => self.scatter_direct(id, (request_id, done_id), keys, (&workers, broadcast), out),
            FromClient::WhoHas { request_id, keys } => {
                let who_has = keys
                    .into_iter()
                    .map(|key| match self.task_id(&key) {
                        Some(t) if self.slot(t).state == TaskState::Memory => {
                            let s = self.slot(t);
                            WhoHas {
                                workers: self.addresses(&s.who_has),
                                nbytes: s.nbytes,
                                key,
                            }
                        }
                        _ => WhoHas {
                            key,
                            workers: Vec::new(),
                            nbytes: 0,
                        },
                    })
                    .collect();
                out.messages
                    .push(Outgoing::Client(id, ToClient::WhoHasReply { request_id, who_has }));
            }
            FromClient::Info { request_id } => {
                let info = self.info();
                out.messages
                    .push(Outgoing::Client(id, ToClient::InfoReply { request_id, info }));
            }
            FromClient::Retry { keys } => {
                for key in &keys {
                    if let Some(t) = self.task_id(key) {
                        if self.slot(t).state == TaskState::Erred {
                            self.retry(t, out);
                        }
                    }
                }
            }
            FromClient::CloseClient => {
                self.drop_client(id);
                let effects = self.coord.client_gone(id, std::time::Instant::now());
                self.apply_effects(effects, out);
            }
            FromClient::RetireWorkers { request_id, workers } => {
                self.retire_workers(Some(id), request_id, &workers, out)
            }
            FromClient::Replicate { request_id, keys, n } => {
                let moves = self.replicate(&keys, n, out);
                out.messages
                    .push(Outgoing::Client(id, ToClient::DataMoves { request_id, moves }));
            }
            FromClient::Rebalance { request_id, keys } => {
                let moves = self.rebalance(&keys, out);
                out.messages
                    .push(Outgoing::Client(id, ToClient::DataMoves { request_id, moves }));
            }
            FromClient::Coordinate { request_id, op } => self.coordinate(id, request_id, op, out),
            FromClient::FireAndForget { keys } => self.fire_and_forget(keys, out),
            FromClient::RestartCluster { request_id, timeout_ms } => self.restart_cluster(
                id,
                request_id,
                std::time::Duration::from_millis(timeout_ms),
                std::time::Instant::now(),
                out,
            ),
            FromClient::ReconnectClient {
                previous_client_id,
                keys,
            } => self.reconnect_client(id, ClientId(previous_client_id), keys, out),
            FromClient::AdaptiveTarget {
                request_id,
                target_duration_s,
                minimum,
                maximum,
            } => {
                let a = self.adaptive_target(target_duration_s, minimum, maximum);
                out.messages.push(Outgoing::Client(
                    id,
                    ToClient::AdaptiveTargetReply {
                        request_id,
                        target: a.target,
                        to_close: a.to_close,
                        workers: a.workers,
                    },
                ));
            }
            FromClient::StreamTasks { request_id, since } => {
                let records = self.task_stream(since);
                let next = self.task_stream_next();
                out.messages.push(Outgoing::Client(
                    id,
                    ToClient::StreamTasksReply {
                        request_id,
                        records,
                        next,
                    },
                ));
            }
        }
        self.finish(out);
        Ok(())
    }

    /// A message from a worker.
    pub fn handle_worker_message(
        &mut self,
        id: WorkerId,
        msg: FromWorker,
        out: &mut Outbox,
    ) -> Result<(), SchedulerError> {
        let Some(&w) = self.worker_ids.get(&id) else {
            return Err(SchedulerError::UnknownWorker(id));
        };
        self.begin();
        match msg {
            FromWorker::TaskFinished {
                key,
                nbytes,
                inline,
                duration_us,
                thread,
                run_id,
            } => self.task_finished(w, (key, run_id), nbytes, inline, (duration_us, thread), out),
            FromWorker::TaskErred { key, failure, run_id } => self.task_erred(w, &key, run_id, failure, out),
            FromWorker::AddKeys { keys } => {
                for (key, nbytes) in keys {
                    let t = self.task_id(&key);
                    if !t.is_some_and(|t| self.direct_store(w, t, nbytes, out)) {
                        self.add_key(w, key, out);
                    }
                    if let Some(t) = t {
                        self.scatter_stored(w, t, out);
                    }
                }
            }
            FromWorker::MissingData { key, errant_worker } => self.missing_data(w, &key, &errant_worker, out),
            FromWorker::Heartbeat {
                nkeys,
                nbytes,
                spilled_bytes,
                rss_bytes,
                cpu_percent,
                bytes_fetched,
                bytes_served,
                spills,
                log,
                ..
            } => {
                self.worker_mut(w).heartbeat = Some((nkeys, nbytes));
                let load = HeartbeatLoad {
                    spilled_bytes,
                    rss_bytes,
                    cpu_percent,
                    bytes_moved: bytes_fetched.saturating_add(bytes_served),
                    log,
                };
                self.heartbeat_load(w, load, &spills);
            }
            FromWorker::TasksStarted { keys, run_ids } => {
                self.worker_mut(w).reports_started = true;
                let by_run = run_ids.into_iter().map(|r| self.task_of_run_id(r));
                let by_key = keys.iter().map(|k| self.task_id(k));
                let started: Vec<_> = by_run.chain(by_key).flatten().collect();
                for t in started {
                    let s = self.slot(t);
                    if s.state == TaskState::Processing && s.processing_on == Some(w) {
                        self.worker_mut(w).executing.insert(t);
                    }
                }
            }
            FromWorker::LongRunning { key } => {
                if let Some(t) = self.task_id(&key) {
                    let s = self.slot(t);
                    if s.state == TaskState::Processing && s.processing_on == Some(w) {
                        let ws = self.worker_mut(w);
                        if let Some(e) = ws.processing.get_mut(&t).map(std::mem::take) {
                            ws.unload(e);
                        }
                        ws.long_running.insert(t);
                        self.update_rank(w);
                        self.dirty_workers.push(w);
                    }
                }
            }
            FromWorker::RetireMe => {
                let name = self.worker(w).name.clone();
                self.retire_workers(None, 0, &[name], out);
            }
            FromWorker::StealResponse { key, stolen } => self.steal_response(w, &key, stolen, out),
            FromWorker::WorkerStatus { status, reason } => self.worker_status(w, status, reason, out),
            FromWorker::TransferStats { bytes, duration_us } => {
                self.diag.transfer(w, duration_us);
                if bytes > 0 && duration_us > 0 {
                    let sample = bytes as f64 / (duration_us as f64 / 1e6);
                    self.bandwidth += BANDWIDTH_SAMPLE_WEIGHT * (sample - self.bandwidth);
                }
            }
            // Only a worker's first frame may register it (the session
            // reads that one); the state is unchanged.
            FromWorker::RegisterWorker { .. } => return Err(SchedulerError::RegisteredAgain),
        }
        self.finish(out);
        Ok(())
    }
}
