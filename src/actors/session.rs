//! The scheduler's side of one connection: the handshake and a worker's
//! registration, then one session actor (the same for clients and workers)
//! that reads the peer's frames and hands each batch to the
//! [`SchedulerActor`], waiting for it to be handled before reading on: that
//! wait is the back-pressure on a fast peer.
//!
//! A session ends when the peer closes, breaks the protocol, stalls in the
//! middle of a frame, or stops reading what the scheduler sends it (its
//! writer's byte budget is exhausted); each ends the whole connection, with
//! a log line saying which.

use std::future::Future;
use std::net::SocketAddr;
use std::pin::Pin;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix::prelude::*;
use tracing::{info, warn};

use super::scheduler::{ClientBatch, ClientJoined, ClientLeft, SchedulerActor, WorkerBatch, WorkerJoined, WorkerLeft};
use crate::scheduler::state::{ClientId, WorkerId, WorkerRegistration};
use crate::wire::listener::ConnectionPermit;
use crate::wire::messages::*;
use crate::wire::transport::{self, Reader, Sender, WireMessage, WriteHalf, WriterOptions};
use crate::wire::{FrameLimits, ReadTimeouts, Security, WireError};

/// What every connection of one scheduler is served with.
#[derive(Clone)]
pub(super) struct ConnectionSettings {
    pub(super) scheduler: Addr<SchedulerActor>,
    pub(super) limits: FrameLimits,
    pub(super) handshake_timeout: Duration,
    pub(super) security: Security,
    /// Reading clients and workers: a frame in progress must advance.
    pub(super) timeouts: ReadTimeouts,
    /// Longest silence tolerated from a client (it sends a keep-alive when
    /// idle), after which its connection is closed as lost; `None`: no limit.
    pub(super) client_silence: Option<Duration>,
    /// Writing to them: the budget and the keep-alive.
    pub(super) writer: WriterOptions,
    /// Most connections in their handshake at once.
    pub(super) max_pending_handshakes: usize,
    /// Connections in their handshake now.
    pub(super) handshaking: Arc<AtomicUsize>,
}

/// Who is at the other end of a session.
enum PeerKind {
    Client(ClientId),
    Worker { id: WorkerId },
}

/// Resolves when the session's writer cut the connection.
type WriterFailed = Pin<Box<dyn Future<Output = WireError>>>;

fn writer_failed<M: WireMessage>(sender: &Sender<M>) -> WriterFailed {
    let sender = sender.clone();
    Box::pin(async move { sender.failed().await })
}

/// The session actor of one client or worker connection.
struct Session {
    peer: PeerKind,
    address: SocketAddr,
    scheduler: Addr<SchedulerActor>,
    reader: Option<Reader>,
    limits: FrameLimits,
    timeouts: ReadTimeouts,
    writer_failed: Option<WriterFailed>,
    /// Its place under the scheduler's connection cap, freed with the actor.
    _permit: ConnectionPermit,
}

impl Actor for Session {
    type Context = Context<Self>;

    fn started(&mut self, ctx: &mut Self::Context) {
        let (Some(mut reader), Some(writer_failed)) = (self.reader.take(), self.writer_failed.take()) else {
            ctx.stop();
            return;
        };
        // No span around the read loop: entering one at every frame cost a
        // fifth of the task throughput (docs/benchmarks.md); the lines
        // logged when a session ends name the client or worker instead.
        let target = match &self.peer {
            PeerKind::Client(id) => Target::Client(*id),
            PeerKind::Worker { id, .. } => Target::Worker(*id),
        };
        let (scheduler, limits, timeouts) = (self.scheduler.clone(), self.limits, self.timeouts);
        let read = async move {
            tokio::select! {
                r = read_loop(&mut reader, target, &scheduler, &limits, &timeouts) => r,
                e = writer_failed => Err(e),
            }
        };
        ctx.spawn(read.into_actor(self).map(|result, act, ctx| {
            act.ended(result);
            ctx.stop();
        }));
    }
}

impl Session {
    fn ended(&mut self, result: Result<(), WireError>) {
        match &self.peer {
            PeerKind::Client(id) => {
                match &result {
                    Ok(()) => info!(client = id.0, "client disconnected"),
                    Err(e) => warn!(client = id.0, peer = %self.address, "client connection closed: {e}"),
                }
                // A client that broke the protocol will not resume: its
                // keys are released at once. One that went away (or was
                // cut for not reading, or stalled) gets the grace period.
                let release_now = result.as_ref().is_err_and(WireError::is_protocol_error);
                self.scheduler.do_send(ClientLeft { id: *id, release_now });
            }
            PeerKind::Worker { id, .. } => {
                let reason = match result {
                    Ok(()) => "connection closed".to_string(),
                    Err(e) => format!("connection lost: {e}"),
                };
                self.scheduler.do_send(WorkerLeft { id: *id, reason });
            }
        }
    }
}

#[derive(Clone, Copy)]
enum Target {
    Client(ClientId),
    Worker(WorkerId),
}

async fn read_loop(
    reader: &mut Reader,
    target: Target,
    scheduler: &Addr<SchedulerActor>,
    limits: &FrameLimits,
    timeouts: &ReadTimeouts,
) -> Result<(), WireError> {
    loop {
        // Each kind of peer is read as its own message type: a message of
        // the other kind fails to decode and ends the connection.
        let (result, closing) = match target {
            Target::Client(id) => {
                let Some(messages) = transport::read_inbound_within::<FromClient>(reader, limits, timeouts).await?
                else {
                    break;
                };
                let closing = messages.iter().any(|m| matches!(m, FromClient::CloseClient));
                (scheduler.send(ClientBatch { id, messages }).await, closing)
            }
            Target::Worker(id) => {
                let Some(messages) = transport::read_inbound_within::<FromWorker>(reader, limits, timeouts).await?
                else {
                    break;
                };
                (scheduler.send(WorkerBatch { id, messages }).await, false)
            }
        };
        match result {
            Ok(Ok(())) => {}
            Ok(Err(e)) => return Err(WireError::Malformed(e)),
            Err(_) => return Err(WireError::Closed),
        }
        if closing {
            break;
        }
    }
    Ok(())
}

/// Serves one accepted connection: the handshake, a worker's registration,
/// then its session actor. Errors are the connection's end before a session
/// started; the caller logs them.
pub(super) async fn serve_connection(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    settings: &ConnectionSettings,
    permit: ConnectionPermit,
) -> Result<(), WireError> {
    let handshaking = settings.handshaking.fetch_add(1, Ordering::Relaxed) + 1;
    if handshaking > settings.max_pending_handshakes {
        settings.handshaking.fetch_sub(1, Ordering::Relaxed);
        warn!(%peer, "refusing connection: {} connections already handshaking", settings.max_pending_handshakes);
        return Ok(());
    }
    let result = handshake(stream, peer, settings).await;
    settings.handshaking.fetch_sub(1, Ordering::Relaxed);
    let (peer_kind, reader, writer_failed) = result?;
    Session {
        timeouts: match peer_kind {
            // Workers are judged by the scheduler's heartbeat check instead.
            PeerKind::Client(_) => ReadTimeouts {
                idle: settings.client_silence,
                ..settings.timeouts
            },
            PeerKind::Worker { .. } => settings.timeouts,
        },
        peer: peer_kind,
        address: peer,
        scheduler: settings.scheduler.clone(),
        reader: Some(reader),
        limits: settings.limits,
        writer_failed: Some(writer_failed),
        _permit: permit,
    }
    .start();
    Ok(())
}

async fn handshake(
    stream: tokio::net::TcpStream,
    peer: SocketAddr,
    settings: &ConnectionSettings,
) -> Result<(PeerKind, Reader, WriterFailed), WireError> {
    let (hello, mut reader, write) = tokio::time::timeout(
        settings.handshake_timeout,
        transport::accept(stream, &[Role::Client, Role::Worker], &settings.security),
    )
    .await
    .map_err(|_| WireError::Timeout("peer sent no handshake".into()))??;
    match hello.role {
        Role::Client => {
            let sender = spawn_writer::<ToClient>(write, format!("client {peer}"), settings);
            let id = settings
                .scheduler
                .send(ClientJoined { sender: sender.clone() })
                .await
                .map_err(|_| WireError::Closed)?;
            info!(client = id.0, name = %hello.name, "client connected");
            Ok((PeerKind::Client(id), reader, writer_failed(&sender)))
        }
        Role::Worker => {
            let registration = read_registration(&mut reader, settings).await?;
            let name = registration.name.clone();
            let sender = spawn_writer::<ToWorker>(write, format!("worker {name}"), settings);
            let joined = settings
                .scheduler
                .send(WorkerJoined {
                    sender: sender.clone(),
                    registration,
                })
                .await
                .map_err(|_| WireError::Closed)?;
            match joined {
                Ok(id) => Ok((PeerKind::Worker { id }, reader, writer_failed(&sender))),
                Err(why) => {
                    warn!(worker = %name, "refusing worker: {why}");
                    let _ = sender.send(ToWorker::Close { reason: why.clone() });
                    // Give the writer a moment to deliver the reason.
                    tokio::time::sleep(REFUSAL_DELIVERY).await;
                    Err(WireError::Handshake(why))
                }
            }
        }
        Role::Peer => Err(WireError::Handshake("peer role on the scheduler port".into())),
    }
}

/// How long a refused worker's connection stays open for the refusal to
/// reach it.
const REFUSAL_DELIVERY: Duration = Duration::from_millis(100);

fn spawn_writer<M: WireMessage>(write: WriteHalf, label: String, settings: &ConnectionSettings) -> Sender<M> {
    transport::spawn_writer_with(write, label, settings.writer)
}

/// A worker's first frame: exactly one `RegisterWorker`.
async fn read_registration(
    reader: &mut Reader,
    settings: &ConnectionSettings,
) -> Result<WorkerRegistration, WireError> {
    let first = tokio::time::timeout(
        settings.handshake_timeout,
        transport::read_inbound_within::<FromWorker>(reader, &settings.limits, &settings.timeouts),
    )
    .await
    .map_err(|_| WireError::Timeout("worker sent no registration".into()))??;
    match first {
        Some(mut msgs) if msgs.len() == 1 => match msgs.pop() {
            Some(FromWorker::RegisterWorker {
                name,
                address,
                nthreads,
                memory_limit,
                functions,
                resources,
                restarted,
                nanny,
                keys,
            }) => Ok(WorkerRegistration {
                name,
                address,
                nthreads,
                memory_limit,
                functions,
                resources,
                restarted,
                nanny,
                keys,
            }),
            _ => Err(WireError::Malformed(
                "a worker's first message must be RegisterWorker".into(),
            )),
        },
        Some(_) => Err(WireError::Malformed(
            "a worker's first frame must hold one RegisterWorker".into(),
        )),
        None => Err(WireError::Closed),
    }
}
