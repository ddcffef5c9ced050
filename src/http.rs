//! The HTTP endpoint of the scheduler and of each worker: `/health`,
//! `/metrics` (Prometheus text format 0.0.4) and `/api/v1/info` (JSON).
//!
//! A minimal HTTP/1.1 responder over a tokio listener — GET (and HEAD) only,
//! one request per connection (`Connection: close`) — because monitoring
//! scrapes need nothing more and a web framework would double the dependency
//! tree. It runs on the actix arbiter of the process it reports on, so the
//! handlers can ask the actors directly; every request head is bounded in
//! size and time, and so is the number of connections served at once.

use std::fmt::Write as _;
use std::future::Future;
use std::pin::Pin;
use std::rc::Rc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use actix::prelude::*;
use serde::Serialize;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tracing::{debug, info, warn};

use crate::actors::scheduler::{GetInfo, SchedulerActor, SchedulerHandle};
use crate::actors::store::{DataStore, Report, StoreReport};
use crate::actors::worker::{WorkerActor, WorkerHandle};

/// Largest request head (request line and headers) read, bytes.
pub const MAX_REQUEST_HEAD_BYTES: usize = 8 * 1024;
/// A client must send its request head within this time.
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; more are closed at accept.
pub const MAX_OPEN_CONNECTIONS: usize = 64;
/// How long a handler waits for an actor's answer before reporting 503.
pub const ACTOR_TIMEOUT: Duration = Duration::from_secs(5);

/// Errors of the HTTP layer.
#[derive(Debug, thiserror::Error)]
pub enum HttpError {
    /// The socket failed.
    #[error("i/o error: {0}")]
    Io(#[from] std::io::Error),
    /// The request is not one this server answers.
    #[error("bad request: {0}")]
    BadRequest(&'static str),
    /// The request head did not arrive in time.
    #[error("request timed out")]
    Timeout,
}

/// An HTTP response.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Response {
    /// Status code.
    pub status: u16,
    /// `Content-Type` header.
    pub content_type: &'static str,
    /// Body.
    pub body: String,
}

impl Response {
    fn text(status: u16, body: impl Into<String>) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: body.into(),
        }
    }

    fn json<T: Serialize>(value: &T) -> Self {
        match serde_json::to_string_pretty(value) {
            Ok(body) => Response {
                status: 200,
                content_type: "application/json",
                body,
            },
            Err(e) => Response::text(500, format!("cannot encode JSON: {e}\n")),
        }
    }

    fn metrics(body: String) -> Self {
        Response {
            status: 200,
            // The Prometheus text exposition format, version 0.0.4.
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body,
        }
    }

    fn unavailable(what: &str) -> Self {
        Response::text(503, format!("{what} did not answer\n"))
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        400 => "Bad Request",
        404 => "Not Found",
        405 => "Method Not Allowed",
        503 => "Service Unavailable",
        _ => "Internal Server Error",
    }
}

/// A request handler: the path (without query) to a response.
pub type RequestHandler = Rc<dyn Fn(String) -> Pin<Box<dyn Future<Output = Response>>>>;

/// Serves `handler` on `listener` until the arbiter stops. Must run on an
/// actix (or tokio local) runtime: handlers are not `Send`.
pub async fn serve(listener: TcpListener, handler: RequestHandler) {
    let open = Arc::new(AtomicUsize::new(0));
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(x) => x,
            Err(e) => {
                warn!("http accept failed: {e}");
                // Out of file descriptors and the like: back off instead of spinning.
                tokio::time::sleep(Duration::from_millis(50)).await;
                continue;
            }
        };
        if open.fetch_add(1, Ordering::Relaxed) >= MAX_OPEN_CONNECTIONS {
            open.fetch_sub(1, Ordering::Relaxed);
            debug!(%peer, "http: too many open connections; closing");
            continue;
        }
        let handler = handler.clone();
        let open = open.clone();
        actix_rt::spawn(async move {
            if let Err(e) = serve_one(stream, handler).await {
                debug!(%peer, "http: {e}");
            }
            open.fetch_sub(1, Ordering::Relaxed);
        });
    }
}

/// Reads the request head; returns (method, path).
async fn read_request(stream: &mut TcpStream) -> Result<(String, String), HttpError> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_REQUEST_HEAD_BYTES {
            return Err(HttpError::BadRequest("request head too large"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            return Err(HttpError::BadRequest("connection closed before the request head ended"));
        }
        buf.extend_from_slice(&chunk[..n]);
        // A request line starts with a method (upper-case letters); anything
        // else (an rdask client on the wrong port) is answered at once
        // instead of after REQUEST_TIMEOUT, so it can say what it reached.
        if !buf[0].is_ascii_uppercase() {
            return Err(HttpError::BadRequest("not an HTTP request"));
        }
    }
    let head = std::str::from_utf8(&buf).map_err(|_| HttpError::BadRequest("request head is not UTF-8"))?;
    let line = head.lines().next().unwrap_or_default();
    let mut parts = line.split(' ');
    let (Some(method), Some(target), Some(version)) = (parts.next(), parts.next(), parts.next()) else {
        return Err(HttpError::BadRequest("malformed request line"));
    };
    if !version.starts_with("HTTP/1.") {
        return Err(HttpError::BadRequest("only HTTP/1.x is served"));
    }
    let path = target.split(['?', '#']).next().unwrap_or_default();
    Ok((method.to_string(), path.to_string()))
}

async fn serve_one(mut stream: TcpStream, handler: RequestHandler) -> Result<(), HttpError> {
    let request = tokio::time::timeout(REQUEST_TIMEOUT, read_request(&mut stream))
        .await
        .map_err(|_| HttpError::Timeout)?;
    let (head_only, response) = match request {
        Ok((method, path)) => match method.as_str() {
            "GET" => (false, handler(path).await),
            "HEAD" => (true, handler(path).await),
            _ => (false, Response::text(405, "only GET and HEAD are served\n")),
        },
        Err(HttpError::BadRequest(why)) => (false, Response::text(400, format!("{why}\n"))),
        Err(e) => return Err(e),
    };
    let mut out = format!(
        "HTTP/1.1 {} {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        response.status,
        reason(response.status),
        response.content_type,
        response.body.len()
    );
    if !head_only {
        out.push_str(&response.body);
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await?;
    Ok(())
}

/// Escapes a Prometheus label value.
fn label(value: &str) -> String {
    value.replace('\\', "\\\\").replace('"', "\\\"").replace('\n', "\\n")
}

/// Writes a metric family's HELP and TYPE lines.
fn family(out: &mut String, name: &str, kind: &str, help: &str) {
    let _ = writeln!(out, "# HELP {name} {help}");
    let _ = writeln!(out, "# TYPE {name} {kind}");
}

/// A no-op message: its round trip through an actor's mailbox is the
/// latency a real message would see queued behind the actor's backlog.
#[derive(Message)]
#[rtype(result = "()")]
pub struct Ping;

impl Handler<Ping> for SchedulerActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

impl Handler<Ping> for WorkerActor {
    type Result = ();
    fn handle(&mut self, _: Ping, _: &mut Self::Context) {}
}

/// Times a [`Ping`] round trip; None if the actor is gone or too slow.
async fn mailbox_latency<A>(actor: &Addr<A>) -> Option<Duration>
where
    A: Actor<Context = Context<A>> + Handler<Ping>,
{
    let start = Instant::now();
    match tokio::time::timeout(ACTOR_TIMEOUT, actor.send(Ping)).await {
        Ok(Ok(())) => Some(start.elapsed()),
        _ => None,
    }
}

/// Counters the scheduler actor keeps for `/metrics`.
#[derive(Message)]
#[rtype(result = "SchedulerCounters")]
pub struct GetCounters;

/// Cumulative scheduler counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Serialize)]
pub struct SchedulerCounters {
    /// Tasks reported finished by workers.
    pub tasks_finished: u64,
    /// Tasks reported erred by workers.
    pub tasks_erred: u64,
}

impl Handler<GetCounters> for SchedulerActor {
    type Result = MessageResult<GetCounters>;
    fn handle(&mut self, _: GetCounters, _: &mut Self::Context) -> Self::Result {
        MessageResult(SchedulerCounters {
            tasks_finished: self.tasks_finished,
            tasks_erred: self.tasks_erred,
        })
    }
}

/// Per-worker part of the scheduler's `/api/v1/info`.
#[derive(Serialize)]
struct WorkerJson<'a> {
    name: &'a str,
    address: &'a str,
    nthreads: u32,
    memory_limit: u64,
    nkeys: u64,
    nbytes: u64,
    processing: u64,
}

/// The scheduler's `/api/v1/info`.
#[derive(Serialize)]
struct SchedulerJson<'a> {
    kind: &'static str,
    address: &'a str,
    version: &'static str,
    ntasks: u64,
    tasks_by_state: std::collections::BTreeMap<&'a str, u64>,
    nclients: u64,
    rss_bytes: u64,
    counters: SchedulerCounters,
    mailbox_latency_seconds: Option<f64>,
    workers: Vec<WorkerJson<'a>>,
}

async fn scheduler_response(path: &str, handle: &SchedulerHandle) -> Response {
    match path {
        "/health" => return Response::text(200, "ok\n"),
        "/metrics" | "/api/v1/info" => {}
        _ => return Response::text(404, "not found; try /health, /metrics or /api/v1/info\n"),
    }
    let latency = mailbox_latency(&handle.actor).await;
    let Ok(Ok(info)) = tokio::time::timeout(ACTOR_TIMEOUT, handle.actor.send(GetInfo)).await else {
        return Response::unavailable("the scheduler actor");
    };
    let Ok(Ok(counters)) = tokio::time::timeout(ACTOR_TIMEOUT, handle.actor.send(GetCounters)).await else {
        return Response::unavailable("the scheduler actor");
    };
    if path == "/api/v1/info" {
        return Response::json(&SchedulerJson {
            kind: "scheduler",
            address: &handle.address,
            version: env!("CARGO_PKG_VERSION"),
            ntasks: info.ntasks,
            tasks_by_state: info.tasks_by_state.iter().map(|(s, n)| (s.as_str(), *n)).collect(),
            nclients: info.nclients,
            rss_bytes: info.rss_bytes,
            counters,
            mailbox_latency_seconds: latency.map(|d| d.as_secs_f64()),
            workers: info
                .workers
                .iter()
                .map(|w| WorkerJson {
                    name: &w.name,
                    address: &w.address,
                    nthreads: w.nthreads,
                    memory_limit: w.memory_limit,
                    nkeys: w.nkeys,
                    nbytes: w.nbytes,
                    processing: w.processing,
                })
                .collect(),
        });
    }
    let mut m = String::new();
    family(
        &mut m,
        "rdask_tasks",
        "gauge",
        "Tasks known to the scheduler, by state.",
    );
    for (state, n) in &info.tasks_by_state {
        let _ = writeln!(m, "rdask_tasks{{state=\"{}\"}} {n}", label(state));
    }
    family(
        &mut m,
        "rdask_tasks_finished_total",
        "counter",
        "Tasks workers reported finished (rate() of it is tasks per second).",
    );
    let _ = writeln!(m, "rdask_tasks_finished_total {}", counters.tasks_finished);
    family(
        &mut m,
        "rdask_tasks_erred_total",
        "counter",
        "Tasks workers reported erred.",
    );
    let _ = writeln!(m, "rdask_tasks_erred_total {}", counters.tasks_erred);
    family(&mut m, "rdask_workers", "gauge", "Connected workers.");
    let _ = writeln!(m, "rdask_workers {}", info.workers.len());
    family(&mut m, "rdask_clients", "gauge", "Connected clients.");
    let _ = writeln!(m, "rdask_clients {}", info.nclients);
    family(&mut m, "rdask_threads", "gauge", "Task threads over all workers.");
    let threads: u64 = info.workers.iter().map(|w| w.nthreads as u64).sum();
    let _ = writeln!(m, "rdask_threads {threads}");
    family(
        &mut m,
        "rdask_worker_memory_bytes",
        "gauge",
        "Bytes of results each worker holds, as the scheduler knows.",
    );
    for w in &info.workers {
        let _ = writeln!(
            m,
            "rdask_worker_memory_bytes{{worker=\"{}\"}} {}",
            label(&w.name),
            w.nbytes
        );
    }
    family(&mut m, "rdask_worker_keys", "gauge", "Results each worker holds.");
    for w in &info.workers {
        let _ = writeln!(m, "rdask_worker_keys{{worker=\"{}\"}} {}", label(&w.name), w.nkeys);
    }
    family(
        &mut m,
        "rdask_worker_processing",
        "gauge",
        "Tasks assigned to each worker and not finished.",
    );
    for w in &info.workers {
        let _ = writeln!(
            m,
            "rdask_worker_processing{{worker=\"{}\"}} {}",
            label(&w.name),
            w.processing
        );
    }
    family(
        &mut m,
        "rdask_scheduler_rss_bytes",
        "gauge",
        "Resident memory of the scheduler process.",
    );
    let _ = writeln!(m, "rdask_scheduler_rss_bytes {}", info.rss_bytes);
    write_latency(&mut m, "rdask_scheduler_mailbox_latency_seconds", "scheduler", latency);
    Response::metrics(m)
}

fn write_latency(m: &mut String, name: &str, who: &str, latency: Option<Duration>) {
    family(
        m,
        name,
        "gauge",
        &format!("Round trip of a no-op message through the {who} actor's mailbox, measured at this scrape."),
    );
    // NaN when the actor did not answer, so a scrape still succeeds.
    let value = latency.map_or("NaN".to_string(), |d| format!("{:.9}", d.as_secs_f64()));
    let _ = writeln!(m, "{name} {value}");
}

/// Starts the scheduler's HTTP endpoint on `listener` (on the current actix
/// arbiter); returns its `http://host:port` address.
pub fn start_scheduler_http(listener: TcpListener, handle: SchedulerHandle) -> std::io::Result<String> {
    let address = format!("http://{}", listener.local_addr()?);
    let handle = Rc::new(handle);
    let handler: RequestHandler = Rc::new(move |path: String| {
        let handle = handle.clone();
        Box::pin(async move { scheduler_response(&path, &handle).await })
    });
    info!("scheduler HTTP endpoint on {address}");
    actix_rt::spawn(serve(listener, handler));
    Ok(address)
}

/// The worker's `/api/v1/info`.
#[derive(Serialize)]
struct WorkerInfoJson<'a> {
    kind: &'static str,
    name: &'a str,
    address: &'a str,
    version: &'static str,
    nkeys: u64,
    nbytes: u64,
    tasks_executed: u64,
    bytes_fetched: u64,
    bytes_served: u64,
    rss_bytes: u64,
    spilled_keys: u64,
    spilled_bytes: u64,
    memory_limit: u64,
    paused: bool,
    mailbox_latency_seconds: Option<f64>,
}

async fn store_report(store: &Addr<DataStore>) -> Option<StoreReport> {
    tokio::time::timeout(ACTOR_TIMEOUT, store.send(Report)).await.ok()?.ok()
}

async fn worker_response(path: &str, handle: &WorkerHandle) -> Response {
    match path {
        "/health" => return Response::text(200, "ok\n"),
        "/metrics" | "/api/v1/info" => {}
        _ => return Response::text(404, "not found; try /health, /metrics or /api/v1/info\n"),
    }
    let latency = mailbox_latency(&handle.actor).await;
    let Some(report) = store_report(&handle.store).await else {
        return Response::unavailable("the worker's data store");
    };
    let memory = &report.figures;
    let (nkeys, nbytes) = (memory.nkeys, memory.memory_bytes);
    let c = &handle.counters;
    let (executed, fetched, served) = (
        c.tasks_executed.load(Ordering::Relaxed),
        c.bytes_fetched.load(Ordering::Relaxed),
        c.bytes_served.load(Ordering::Relaxed),
    );
    let rss = report.rss_bytes;
    if path == "/api/v1/info" {
        return Response::json(&WorkerInfoJson {
            kind: "worker",
            name: &handle.name,
            address: &handle.address,
            version: env!("CARGO_PKG_VERSION"),
            nkeys,
            nbytes,
            tasks_executed: executed,
            bytes_fetched: fetched,
            bytes_served: served,
            rss_bytes: rss,
            spilled_keys: memory.spilled_keys,
            spilled_bytes: memory.spilled_bytes,
            memory_limit: report.memory_limit,
            paused: memory.paused,
            mailbox_latency_seconds: latency.map(|d| d.as_secs_f64()),
        });
    }
    let mut m = String::new();
    family(
        &mut m,
        "rdask_worker_store_keys",
        "gauge",
        "Results held in the worker's store.",
    );
    let _ = writeln!(m, "rdask_worker_store_keys {nkeys}");
    family(
        &mut m,
        "rdask_worker_store_bytes",
        "gauge",
        "Bytes of results held in memory by the worker's store.",
    );
    let _ = writeln!(m, "rdask_worker_store_bytes {nbytes}");
    family(
        &mut m,
        "rdask_worker_tasks_executed_total",
        "counter",
        "Tasks run on the worker's threads.",
    );
    let _ = writeln!(m, "rdask_worker_tasks_executed_total {executed}");
    family(
        &mut m,
        "rdask_worker_fetched_bytes_total",
        "counter",
        "Bytes received from peers.",
    );
    let _ = writeln!(m, "rdask_worker_fetched_bytes_total {fetched}");
    family(
        &mut m,
        "rdask_worker_served_bytes_total",
        "counter",
        "Bytes served to peers and clients.",
    );
    let _ = writeln!(m, "rdask_worker_served_bytes_total {served}");
    family(
        &mut m,
        "rdask_worker_rss_bytes",
        "gauge",
        "Resident memory of the worker process.",
    );
    let _ = writeln!(m, "rdask_worker_rss_bytes {rss}");
    family(
        &mut m,
        "rdask_worker_spilled_keys",
        "gauge",
        "Results the worker's store has spilled to disk.",
    );
    let _ = writeln!(m, "rdask_worker_spilled_keys {}", memory.spilled_keys);
    family(
        &mut m,
        "rdask_worker_spilled_bytes",
        "gauge",
        "Bytes of results spilled to disk.",
    );
    let _ = writeln!(m, "rdask_worker_spilled_bytes {}", memory.spilled_bytes);
    family(
        &mut m,
        "rdask_worker_memory_limit_bytes",
        "gauge",
        "The worker's memory limit (0: none).",
    );
    let _ = writeln!(m, "rdask_worker_memory_limit_bytes {}", report.memory_limit);
    family(
        &mut m,
        "rdask_worker_paused",
        "gauge",
        "1 while the worker starts no tasks because its memory is past the pause threshold.",
    );
    let _ = writeln!(m, "rdask_worker_paused {}", u8::from(memory.paused));
    write_latency(&mut m, "rdask_worker_mailbox_latency_seconds", "worker", latency);
    Response::metrics(m)
}

/// Starts a worker's HTTP endpoint on `listener` (on the current actix
/// arbiter); returns its `http://host:port` address.
pub fn start_worker_http(listener: TcpListener, handle: WorkerHandle) -> std::io::Result<String> {
    let address = format!("http://{}", listener.local_addr()?);
    info!(worker = %handle.name, "worker HTTP endpoint on {address}");
    let handle = Rc::new(handle);
    let handler: RequestHandler = Rc::new(move |path: String| {
        let handle = handle.clone();
        Box::pin(async move { worker_response(&path, &handle).await })
    });
    actix_rt::spawn(serve(listener, handler));
    Ok(address)
}
