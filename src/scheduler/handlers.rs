//! The events: client and worker messages, dispatched to the concern that
//! handles each.

use super::state::SchedulerState;
use super::types::{ClientId, Outbox, Outgoing, SchedulerError, TaskState, WorkerId};
use crate::wire::messages::{ToClient, ToScheduler, WhoHas};

/// Weight of a new transfer in the running bandwidth average: transfers
/// vary more than durations of one function, so each moves it less.
pub(super) const BANDWIDTH_SAMPLE_WEIGHT: f64 = 0.25;

fn variant_name(msg: &ToScheduler) -> &'static str {
    match msg {
        ToScheduler::UpdateGraph { .. } => "UpdateGraph",
        ToScheduler::ReleaseKeys { .. } => "ReleaseKeys",
        ToScheduler::Scatter { .. } => "Scatter",
        ToScheduler::WhoHas { .. } => "WhoHas",
        ToScheduler::Info { .. } => "Info",
        ToScheduler::Retry { .. } => "Retry",
        ToScheduler::CloseClient => "CloseClient",
        ToScheduler::RegisterWorker { .. } => "RegisterWorker",
        ToScheduler::TaskFinished { .. } => "TaskFinished",
        ToScheduler::TaskErred { .. } => "TaskErred",
        ToScheduler::AddKeys { .. } => "AddKeys",
        ToScheduler::MissingData { .. } => "MissingData",
        ToScheduler::Heartbeat { .. } => "Heartbeat",
        ToScheduler::WorkerStatus { .. } => "WorkerStatus",
        ToScheduler::RetireWorkers { .. } => "RetireWorkers",
        ToScheduler::TasksStarted { .. } => "TasksStarted",
        ToScheduler::LongRunning { .. } => "LongRunning",
        ToScheduler::RetireMe => "RetireMe",
        ToScheduler::StealResponse { .. } => "StealResponse",
        ToScheduler::TransferStats { .. } => "TransferStats",
        ToScheduler::Replicate { .. } => "Replicate",
        ToScheduler::Rebalance { .. } => "Rebalance",
    }
}

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
        self.finish(out);
    }

    /// A message from a client.
    pub fn handle_client_message(
        &mut self,
        id: ClientId,
        msg: ToScheduler,
        out: &mut Outbox,
    ) -> Result<(), SchedulerError> {
        if !self.clients.contains_key(&id) {
            return Err(SchedulerError::UnknownClient(id));
        }
        self.begin();
        match msg {
            ToScheduler::UpdateGraph { tasks, wanted } => self.update_graph(id, tasks, wanted, out),
            ToScheduler::ReleaseKeys { keys } => {
                for key in &keys {
                    if let Some(&t) = self.keys.get(key) {
                        self.unwant(id, t);
                    }
                }
            }
            ToScheduler::Scatter {
                request_id,
                data,
                workers,
            } => self.scatter(id, request_id, data, &workers, out),
            ToScheduler::WhoHas { request_id, keys } => {
                let who_has = keys
                    .into_iter()
                    .map(|key| match self.keys.get(&key) {
                        Some(&t) if self.slot(t).state == TaskState::Memory => {
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
            ToScheduler::Info { request_id } => {
                let info = self.info();
                out.messages
                    .push(Outgoing::Client(id, ToClient::InfoReply { request_id, info }));
            }
            ToScheduler::Retry { keys } => {
                for key in &keys {
                    if let Some(&t) = self.keys.get(key) {
                        if self.slot(t).state == TaskState::Erred {
                            self.retry(t, out);
                        }
                    }
                }
            }
            ToScheduler::CloseClient => self.drop_client(id),
            ToScheduler::RetireWorkers { request_id, workers } => {
                self.retire_workers(Some(id), request_id, &workers, out)
            }
            ToScheduler::Replicate { request_id, keys, n } => {
                let moves = self.replicate(&keys, n, out);
                out.messages
                    .push(Outgoing::Client(id, ToClient::DataMoves { request_id, moves }));
            }
            ToScheduler::Rebalance { request_id, keys } => {
                let moves = self.rebalance(&keys, out);
                out.messages
                    .push(Outgoing::Client(id, ToClient::DataMoves { request_id, moves }));
            }
            other => return Err(SchedulerError::WrongDirection(variant_name(&other), "client")),
        }
        self.finish(out);
        Ok(())
    }

    /// A message from a worker.
    pub fn handle_worker_message(
        &mut self,
        id: WorkerId,
        msg: ToScheduler,
        out: &mut Outbox,
    ) -> Result<(), SchedulerError> {
        let Some(&w) = self.worker_ids.get(&id) else {
            return Err(SchedulerError::UnknownWorker(id));
        };
        self.begin();
        match msg {
            ToScheduler::TaskFinished {
                key,
                nbytes,
                inline,
                duration_us,
            } => self.task_finished(w, key, nbytes, inline, duration_us, out),
            ToScheduler::TaskErred { key, failure } => self.task_erred(w, &key, failure, out),
            ToScheduler::AddKeys { keys } => {
                for (key, _nbytes) in keys {
                    self.add_key(w, key, out);
                }
            }
            ToScheduler::MissingData { key, errant_worker } => self.missing_data(w, &key, &errant_worker, out),
            ToScheduler::Heartbeat { nkeys, nbytes, .. } => {
                self.worker_mut(w).heartbeat = Some((nkeys, nbytes));
            }
            ToScheduler::TasksStarted { keys } => {
                self.worker_mut(w).reports_started = true;
                for key in keys {
                    if let Some(&t) = self.keys.get(&key) {
                        let s = self.slot(t);
                        if s.state == TaskState::Processing && s.processing_on == Some(w) {
                            self.worker_mut(w).executing.insert(t);
                        }
                    }
                }
            }
            ToScheduler::LongRunning { key } => {
                if let Some(&t) = self.keys.get(&key) {
                    let s = self.slot(t);
                    if s.state == TaskState::Processing && s.processing_on == Some(w) {
                        let ws = self.worker_mut(w);
                        if let Some(exp) = ws.processing.get_mut(&t) {
                            ws.occupancy_ns -= std::mem::take(exp);
                        }
                        ws.long_running.insert(t);
                        self.update_rank(w);
                        self.dirty_workers.push(w);
                    }
                }
            }
            ToScheduler::RetireMe => {
                let name = self.worker(w).name.clone();
                self.retire_workers(None, 0, &[name], out);
            }
            ToScheduler::StealResponse { key, stolen } => self.steal_response(w, &key, stolen, out),
            ToScheduler::WorkerStatus { status } => self.worker_status(w, status, out),
            ToScheduler::TransferStats { bytes, duration_us } => {
                if bytes > 0 && duration_us > 0 {
                    let sample = bytes as f64 / (duration_us as f64 / 1e6);
                    self.bandwidth += BANDWIDTH_SAMPLE_WEIGHT * (sample - self.bandwidth);
                }
            }
            other => return Err(SchedulerError::WrongDirection(variant_name(&other), "worker")),
        }
        self.finish(out);
        Ok(())
    }
}
