//! The server side of a worker's peer port: data requests from other
//! workers and clients answered from the store, values pushed by clients
//! (direct scatter), shuffle shards, actor calls and `Client::run`.
//! The client side (the connection pool) is [`super::peer`].

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tokio::net::TcpListener;
use tracing::{debug, warn};

use super::pushed::{PushSink, Pushed};
use super::store::{DataStore, Get, Report, WorkerCounters};
use crate::actor_api::{catch_panic, ActorTable};
use crate::wire::codec::{FrameLimits, ReadTimeouts, WireError};
use crate::wire::listener::{self, ListenerOptions};
use crate::wire::messages::*;
use crate::wire::security::Security;
use crate::wire::transport;
use bytes::Bytes;

/// What a worker's peer port serves from: its store and counters (data,
/// figures) and its actors.
#[derive(Clone)]
pub struct PeerService {
    /// The worker's name.
    pub name: String,
    /// Its data store.
    pub store: Addr<DataStore>,
    /// Its counters.
    pub counters: Arc<WorkerCounters>,
    /// Its actors.
    pub actors: ActorTable,
    /// Shards of p2p shuffles it receives.
    pub shuffles: crate::shuffle::ShuffleReceiver,
    /// Its host id ([`crate::shm::host_id`]; empty if unknown), told to
    /// fetchers with its shared-memory socket.
    pub host: String,
    /// Path of its shared-memory socket, if it serves one.
    pub shm_socket: Option<String>,
    /// Where values pushed by clients go (the worker actor).
    pub sink: PushSink,
}

/// Serves the peer port of a worker: data requests from other workers and
/// clients, answered from the store, actor calls and `run` requests. A
/// request frame that stalls for `stall` closes its connection.
pub async fn serve_peers(
    listener: TcpListener,
    service: PeerService,
    limits: FrameLimits,
    security: Security,
    stall: Option<Duration>,
) {
    let options = ListenerOptions {
        label: "peer port",
        max_connections: listener::effective_max_connections(listener::DEFAULT_MAX_CONNECTIONS),
        plain_refusal: !security.is_tls(),
    };
    listener::serve(listener, options, move |stream, peer, permit| {
        let (service, security) = (service.clone(), security.clone());
        let timeouts = ReadTimeouts { idle: None, stall };
        async move {
            if let Err(e) = serve_peer(stream, service, limits, &security, &timeouts).await {
                warn!(%peer, "peer connection closed: {e}");
            }
            drop(permit);
        }
    })
    .await
}

async fn serve_peer(
    stream: tokio::net::TcpStream,
    service: PeerService,
    limits: FrameLimits,
    security: &Security,
    timeouts: &ReadTimeouts,
) -> Result<(), WireError> {
    let (hello, mut reader, write) = transport::accept(stream, &[Role::Peer], security).await?;
    debug!(peer = %hello.name, "peer connected");
    let sender = transport::spawn_writer::<FromPeer>(write, hello.name.clone());
    let PeerService {
        name,
        store,
        counters,
        actors,
        shuffles,
        host,
        shm_socket,
        sink,
    } = service;
    while let Some(requests) = transport::read_batch_within::<ToPeer>(&mut reader, &limits, timeouts).await? {
        for req in requests {
            let reply = match req {
                ToPeer::GetData { request_id, keys } => {
                    let data = store
                        .send(Get { keys, for_peer: true })
                        .await
                        .map_err(|_| WireError::Closed)?;
                    FromPeer::Data {
                        request_id,
                        data: data.into_iter().map(|(k, v)| (k, v.map(Payload))).collect(),
                    }
                }
                ToPeer::Info { request_id } => {
                    let report = store.send(Report).await.map_err(|_| WireError::Closed)?;
                    FromPeer::Info {
                        request_id,
                        info: WorkerStoreInfo {
                            name: name.clone(),
                            nkeys: report.figures.nkeys,
                            nbytes: report.figures.memory_bytes,
                            bytes_fetched_from_peers: counters.bytes_fetched.load(Ordering::Relaxed),
                            bytes_served_to_peers: counters.bytes_served.load(Ordering::Relaxed),
                            tasks_executed: counters.tasks_executed.load(Ordering::Relaxed),
                            spilled_keys: report.figures.spilled_keys,
                            spilled_bytes: report.figures.spilled_bytes,
                            rss_bytes: report.rss_bytes,
                            memory_limit: report.memory_limit,
                            paused: report.figures.paused,
                            spill_directory: report.spill_directory.to_string_lossy().into_owned(),
                            spill_error: report.spill_error,
                            actors: actors.len(),
                            bytes_fetched_shared_memory: counters.bytes_fetched_shared_memory.load(Ordering::Relaxed),
                            bytes_served_shared_memory: counters.bytes_served_shared_memory.load(Ordering::Relaxed),
                            bytes_pushed: counters.bytes_pushed.load(Ordering::Relaxed),
                            bytes_pushed_shared_memory: counters.bytes_pushed_shared_memory.load(Ordering::Relaxed),
                        },
                    }
                }
                ToPeer::ShmLocate { request_id } => FromPeer::ShmLocation {
                    request_id,
                    host: host.clone(),
                    socket: shm_socket.clone(),
                },
                ToPeer::ShmGetData { .. } | ToPeer::ShmPutData { .. } => {
                    return Err(WireError::Malformed(
                        "ShmGetData and ShmPutData are served only on a worker's shared-memory socket, not its TCP \
                         peer port"
                            .into(),
                    ))
                }
                ToPeer::PutData { request_id, data } => {
                    let values: Vec<(Key, Bytes)> = data.into_iter().map(|(k, p)| (k, p.0)).collect();
                    let pushed: u64 = values.iter().map(|(_, b)| b.len() as u64).sum();
                    counters.bytes_pushed.fetch_add(pushed, Ordering::Relaxed);
                    let error = match sink.send(Pushed(values)).await {
                        Ok(()) => None,
                        Err(_) => Some(format!("worker {name} is closing")),
                    };
                    FromPeer::PutAck { request_id, error }
                }
                ToPeer::ActorCall {
                    request_id,
                    actor,
                    method,
                    args,
                } => {
                    let args = args.into_iter().map(|a| a.into_vec()).collect();
                    let (value, failure) = split(actors.call(&name, &actor, method, args).await);
                    FromPeer::ActorReply {
                        request_id,
                        value,
                        failure,
                    }
                }
                ToPeer::RunFunction {
                    request_id,
                    function,
                    args,
                } => {
                    let args = args.into_iter().map(|a| a.into_vec()).collect();
                    let (value, failure) = split(run_function(&name, function, args).await);
                    FromPeer::RunResult {
                        request_id,
                        value,
                        failure,
                    }
                }
                ToPeer::ShuffleSend {
                    request_id,
                    shuffle_id,
                    run_id,
                    input,
                    shards,
                } => {
                    let shards = shards.into_iter().map(|(j, p)| (j, Vec::from(p.0))).collect();
                    let shuffles = shuffles.clone();
                    // Off the async thread: the buffer may write to disk.
                    let stored = tokio::task::spawn_blocking(move || {
                        shuffles.with(|b| b.receive(&shuffle_id, run_id, input, shards))
                    })
                    .await;
                    let error = match stored {
                        Ok(Ok(())) => None,
                        Ok(Err(e)) => Some(e.to_string()),
                        Err(e) => Some(format!("storing the shards failed: {e}")),
                    };
                    FromPeer::ShuffleAck { request_id, error }
                }
            };
            sender.send(reply)?;
        }
    }
    Ok(())
}

fn split(r: Result<Vec<u8>, TaskFailure>) -> (Option<Payload>, Option<TaskFailure>) {
    match r {
        Ok(v) => (Some(Payload::new(v)), None),
        Err(f) => (None, Some(f)),
    }
}

/// `Client::run` on this worker: the registered function, on a blocking
/// thread (not the task pool: it runs even while every task thread is
/// busy, as Dask's `run` does).
async fn run_function(worker: &str, function: String, args: Vec<Vec<u8>>) -> Result<Vec<u8>, TaskFailure> {
    let Some(call) = crate::registry::Registry::global().get(&function) else {
        return Err(TaskFailure {
            kind: ErrorKind::UnknownFunction,
            message: format!("worker {worker} has no function named {function:?}"),
        });
    };
    let what = format!("function {function}");
    let run = move || {
        let slices: Vec<&[u8]> = args.iter().map(|a| &a[..]).collect();
        catch_panic(&what, || call(&slices))
    };
    tokio::task::spawn_blocking(run).await.unwrap_or_else(|e| {
        Err(TaskFailure {
            kind: ErrorKind::Panicked,
            message: format!("the run's thread failed: {e}"),
        })
    })
}
