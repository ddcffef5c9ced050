//! The HTTP endpoint of the scheduler and of each worker: `/health`,
//! `/metrics` (Prometheus text format 0.0.4) and `/api/v1/info` (JSON).
//!
//! Served by actix-web (the runtime is actix already, and the live
//! dashboard will grow on the same server) with one server thread, GET and
//! HEAD only, one request per connection (`Connection: close`: monitoring
//! scrapes need no keep-alive), bounded in request-head size and time and
//! in connections served at once. The metrics text is written by
//! `prometheus-client`, fresh at every scrape from what the actors report,
//! so the actors keep plain counters and no registry lives between scrapes.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use actix::prelude::*;
use actix_web::http::header::ContentType;
use actix_web::http::KeepAlive;
use actix_web::{guard, web, App, HttpResponse, HttpServer, Resource};
use prometheus_client::encoding::prometheus_text;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;
use serde::Serialize;
use tokio::net::TcpListener;
use tracing::info;

use crate::actors::scheduler::{GetInfo, SchedulerActor, SchedulerHandle};
use crate::actors::store::{DataStore, Report, StoreReport};
use crate::actors::worker::{WorkerActor, WorkerHandle};

/// Largest request head (request line and headers) accepted, bytes; a
/// larger one is answered 431. This is actix-http's own fixed limit (it
/// offers no setting), named here so that it is documented and tested.
pub const MAX_REQUEST_HEAD_BYTES: usize = 128 * 1024;
/// A client must send its request head within this time (else 408).
pub const REQUEST_TIMEOUT: Duration = Duration::from_secs(5);
/// Most connections served at once; more wait in the listen backlog.
pub const MAX_OPEN_CONNECTIONS: usize = 64;
/// How long a handler waits for an actor's answer before reporting 503.
pub const ACTOR_TIMEOUT: Duration = Duration::from_secs(5);
/// Seconds the server waits for requests in progress when it stops.
const SHUTDOWN_TIMEOUT_S: u64 = 1;

/// `Content-Type` of plain-text answers.
const TEXT: &str = "text/plain; charset=utf-8";
/// Paths the endpoint serves, for the 404 text.
const NOT_FOUND: &str = "not found; try /health, /metrics or /api/v1/info (and /status on a scheduler)\n";

fn text(status: actix_web::http::StatusCode, body: impl Into<String>) -> HttpResponse {
    HttpResponse::build(status).content_type(TEXT).body(body.into())
}

fn json<T: Serialize>(value: &T) -> HttpResponse {
    match serde_json::to_string_pretty(value) {
        Ok(body) => HttpResponse::Ok().insert_header(ContentType::json()).body(body),
        Err(e) => HttpResponse::InternalServerError()
            .content_type(TEXT)
            .body(format!("cannot encode JSON: {e}\n")),
    }
}

fn unavailable(what: &str) -> HttpResponse {
    text(
        actix_web::http::StatusCode::SERVICE_UNAVAILABLE,
        format!("{what} did not answer\n"),
    )
}

/// The resource at `path`: GET and HEAD go to `handler` (actix-http sends
/// no body for HEAD), any other method is answered 405.
pub(crate) fn endpoint<F, Args>(path: &str, handler: F) -> Resource
where
    F: actix_web::Handler<Args>,
    Args: actix_web::FromRequest + 'static,
    F::Output: actix_web::Responder + 'static,
{
    web::resource(path)
        .route(
            web::route()
                .guard(guard::Any(guard::Get()).or(guard::Head()))
                .to(handler),
        )
        .default_service(web::to(|| async {
            text(
                actix_web::http::StatusCode::METHOD_NOT_ALLOWED,
                "only GET and HEAD are served\n",
            )
        }))
}

async fn health() -> HttpResponse {
    text(actix_web::http::StatusCode::OK, "ok\n")
}

async fn not_found() -> HttpResponse {
    text(actix_web::http::StatusCode::NOT_FOUND, NOT_FOUND)
}

/// Starts an actix-web server for `app` on `listener`, on its own server
/// thread of the current actix system, speaking HTTPS with `tls` (the
/// cluster's certificate) or plain HTTP without; returns its
/// `https://host:port` or `http://host:port`.
fn serve<F, A>(listener: TcpListener, tls: Option<rustls::ServerConfig>, app: F) -> std::io::Result<String>
where
    F: Fn() -> App<A> + Send + Clone + 'static,
    A: actix_web::dev::ServiceFactory<
            actix_web::dev::ServiceRequest,
            Config = (),
            Response = actix_web::dev::ServiceResponse,
            Error = actix_web::Error,
            InitError = (),
        > + 'static,
{
    let listener = listener.into_std()?;
    let scheme = if tls.is_some() { "https" } else { "http" };
    let address = format!("{scheme}://{}", listener.local_addr()?);
    let server = HttpServer::new(app)
        .workers(1)
        .max_connections(MAX_OPEN_CONNECTIONS)
        .client_request_timeout(REQUEST_TIMEOUT)
        .keep_alive(KeepAlive::Disabled)
        .shutdown_timeout(SHUTDOWN_TIMEOUT_S)
        // The process's own signal handling decides how it stops.
        .disable_signals();
    let server = match tls {
        Some(config) => server.listen_rustls_0_23(listener, config)?,
        None => server.listen(listener)?,
    }
    .run();
    actix_rt::spawn(server);
    Ok(address)
}

/// The metrics of one scrape, encoded by `prometheus-client`. Help texts
/// are written without a final period: the encoder adds one.
struct Metrics(Registry);

impl Metrics {
    fn new() -> Self {
        Metrics(Registry::default())
    }

    /// A gauge with one value.
    fn gauge(&mut self, name: &str, help: &str, value: u64) {
        let g = Gauge::<u64, AtomicU64>::default();
        g.set(value);
        self.0.register(name, help, g);
    }

    /// A gauge with a value per value of `label`.
    fn gauges(&mut self, name: &str, help: &str, label: &str, values: impl IntoIterator<Item = (String, u64)>) {
        let family = Family::<Vec<(String, String)>, Gauge<u64, AtomicU64>>::default();
        for (l, v) in values {
            family.get_or_create(&vec![(label.to_string(), l)]).set(v);
        }
        self.0.register(name, help, family);
    }

    /// A counter; `name` without the `_total` the encoder appends.
    fn counter(&mut self, name: &str, help: &str, value: u64) {
        let c = Counter::<u64>::default();
        c.inc_by(value);
        self.0.register(name, help, c);
    }

    /// The round trip of a no-op message through `who`'s mailbox; NaN when
    /// the actor did not answer, so a scrape still succeeds.
    fn latency(&mut self, name: &str, who: &str, latency: Option<Duration>) {
        let g = Gauge::<f64, AtomicU64>::default();
        g.set(latency.map_or(f64::NAN, |d| d.as_secs_f64()));
        let help = format!("Round trip of a no-op message through the {who} actor's mailbox, measured at this scrape");
        self.0.register(name, help, g);
    }

    fn response(self) -> HttpResponse {
        let mut body = String::new();
        match prometheus_text::encode(&mut body, &self.0) {
            Ok(()) => HttpResponse::Ok()
                .content_type(prometheus_text::CONTENT_TYPE)
                .body(body),
            Err(_) => text(
                actix_web::http::StatusCode::INTERNAL_SERVER_ERROR,
                "cannot encode the metrics\n",
            ),
        }
    }
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
pub(crate) async fn mailbox_latency<A>(actor: &Addr<A>) -> Option<Duration>
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

/// What one scheduler request reports: mailbox latency, the actor's info
/// and counters; Err is the 503 answer when the actor did not answer.
async fn scheduler_snapshot(
    handle: &SchedulerHandle,
) -> Result<
    (
        Option<Duration>,
        crate::wire::messages::SchedulerInfo,
        SchedulerCounters,
    ),
    HttpResponse,
> {
    let latency = mailbox_latency(&handle.actor).await;
    let Ok(Ok(info)) = tokio::time::timeout(ACTOR_TIMEOUT, handle.actor.send(GetInfo)).await else {
        return Err(unavailable("the scheduler actor"));
    };
    let Ok(Ok(counters)) = tokio::time::timeout(ACTOR_TIMEOUT, handle.actor.send(GetCounters)).await else {
        return Err(unavailable("the scheduler actor"));
    };
    Ok((latency, info, counters))
}

async fn scheduler_info(handle: web::Data<SchedulerHandle>) -> HttpResponse {
    let (latency, info, counters) = match scheduler_snapshot(&handle).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    json(&SchedulerJson {
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
    })
}

async fn scheduler_metrics(handle: web::Data<SchedulerHandle>) -> HttpResponse {
    let (latency, info, counters) = match scheduler_snapshot(&handle).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let mut m = Metrics::new();
    m.gauges(
        "rdask_tasks",
        "Tasks known to the scheduler, by state",
        "state",
        info.tasks_by_state.iter().map(|(s, n)| (s.clone(), *n)),
    );
    m.counter(
        "rdask_tasks_finished",
        "Tasks workers reported finished (rate() of it is tasks per second)",
        counters.tasks_finished,
    );
    m.counter(
        "rdask_tasks_erred",
        "Tasks workers reported erred",
        counters.tasks_erred,
    );
    m.gauge("rdask_workers", "Connected workers", info.workers.len() as u64);
    m.gauge("rdask_clients", "Connected clients", info.nclients);
    let threads: u64 = info.workers.iter().map(|w| u64::from(w.nthreads)).sum();
    m.gauge("rdask_threads", "Task threads over all workers", threads);
    let per_worker = |f: fn(&crate::wire::messages::WorkerSummary) -> u64| {
        info.workers
            .iter()
            .map(move |w| (w.name.clone(), f(w)))
            .collect::<Vec<_>>()
    };
    m.gauges(
        "rdask_worker_memory_bytes",
        "Bytes of results each worker holds, as the scheduler knows",
        "worker",
        per_worker(|w| w.nbytes),
    );
    m.gauges(
        "rdask_worker_keys",
        "Results each worker holds",
        "worker",
        per_worker(|w| w.nkeys),
    );
    m.gauges(
        "rdask_worker_processing",
        "Tasks assigned to each worker and not finished",
        "worker",
        per_worker(|w| w.processing),
    );
    m.gauge(
        "rdask_scheduler_rss_bytes",
        "Resident memory of the scheduler process",
        info.rss_bytes,
    );
    m.latency("rdask_scheduler_mailbox_latency_seconds", "scheduler", latency);
    m.response()
}

/// Starts the scheduler's HTTP endpoint and dashboard on `listener` (a
/// server thread of the current actix system); returns its
/// `http://host:port` address (`https://` with `tls`: see
/// [`Security::http_server_config`](crate::Security::http_server_config)).
/// `access` guards the dashboard.
pub fn start_scheduler_http(
    listener: TcpListener,
    handle: SchedulerHandle,
    access: crate::dashboard::DashboardAccess,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<String> {
    let dashboard = web::Data::new(crate::dashboard::DashboardState {
        scheduler: handle.clone(),
        access,
        live: Default::default(),
    });
    let handle = web::Data::new(handle);
    let address = serve(listener, tls, move || {
        let dashboard = dashboard.clone();
        App::new()
            .app_data(handle.clone())
            .service(endpoint("/health", health))
            .service(endpoint("/metrics", scheduler_metrics))
            .service(endpoint("/api/v1/info", scheduler_info))
            .configure(move |cfg| crate::dashboard::configure(cfg, dashboard))
            .default_service(web::to(not_found))
    })?;
    info!("scheduler HTTP endpoint on {address}");
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
    bytes_fetched_shared_memory: u64,
    bytes_served_shared_memory: u64,
    bytes_pushed: u64,
    bytes_pushed_shared_memory: u64,
    rss_bytes: u64,
    spilled_keys: u64,
    spilled_bytes: u64,
    memory_limit: u64,
    paused: bool,
    mailbox_latency_seconds: Option<f64>,
}

/// What one worker request reports: mailbox latency and the store's
/// report; Err is the 503 answer when the store did not answer.
async fn worker_snapshot(handle: &WorkerHandle) -> Result<(Option<Duration>, StoreReport), HttpResponse> {
    let latency = mailbox_latency(&handle.actor).await;
    match store_report(&handle.store).await {
        Some(report) => Ok((latency, report)),
        None => Err(unavailable("the worker's data store")),
    }
}

async fn store_report(store: &Addr<DataStore>) -> Option<StoreReport> {
    tokio::time::timeout(ACTOR_TIMEOUT, store.send(Report)).await.ok()?.ok()
}

async fn worker_info(handle: web::Data<WorkerHandle>) -> HttpResponse {
    let (latency, report) = match worker_snapshot(&handle).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let memory = &report.figures;
    let c = &handle.counters;
    json(&WorkerInfoJson {
        kind: "worker",
        name: &handle.name,
        address: &handle.address,
        version: env!("CARGO_PKG_VERSION"),
        nkeys: memory.nkeys,
        nbytes: memory.memory_bytes,
        tasks_executed: c.tasks_executed.load(Ordering::Relaxed),
        bytes_fetched: c.bytes_fetched.load(Ordering::Relaxed),
        bytes_served: c.bytes_served.load(Ordering::Relaxed),
        bytes_fetched_shared_memory: c.bytes_fetched_shared_memory.load(Ordering::Relaxed),
        bytes_served_shared_memory: c.bytes_served_shared_memory.load(Ordering::Relaxed),
        bytes_pushed: c.bytes_pushed.load(Ordering::Relaxed),
        bytes_pushed_shared_memory: c.bytes_pushed_shared_memory.load(Ordering::Relaxed),
        rss_bytes: report.rss_bytes,
        spilled_keys: memory.spilled_keys,
        spilled_bytes: memory.spilled_bytes,
        memory_limit: report.memory_limit,
        paused: memory.paused,
        mailbox_latency_seconds: latency.map(|d| d.as_secs_f64()),
    })
}

async fn worker_metrics(handle: web::Data<WorkerHandle>) -> HttpResponse {
    let (latency, report) = match worker_snapshot(&handle).await {
        Ok(x) => x,
        Err(response) => return response,
    };
    let memory = &report.figures;
    let c = &handle.counters;
    let mut m = Metrics::new();
    m.gauge(
        "rdask_worker_store_keys",
        "Results held in the worker's store",
        memory.nkeys,
    );
    m.gauge(
        "rdask_worker_store_bytes",
        "Bytes of results held in memory by the worker's store",
        memory.memory_bytes,
    );
    m.counter(
        "rdask_worker_tasks_executed",
        "Tasks run on the worker's threads",
        c.tasks_executed.load(Ordering::Relaxed),
    );
    m.counter(
        "rdask_worker_fetched_bytes",
        "Bytes received from peers",
        c.bytes_fetched.load(Ordering::Relaxed),
    );
    m.counter(
        "rdask_worker_served_bytes",
        "Bytes served to peers and clients",
        c.bytes_served.load(Ordering::Relaxed),
    );
    m.counter(
        "rdask_worker_fetched_shared_memory_bytes",
        "Of the bytes received from peers, those that came through shared memory (peers on this host)",
        c.bytes_fetched_shared_memory.load(Ordering::Relaxed),
    );
    m.counter(
        "rdask_worker_served_shared_memory_bytes",
        "Of the bytes served to peers, those served through shared memory",
        c.bytes_served_shared_memory.load(Ordering::Relaxed),
    );
    m.counter(
        "rdask_worker_pushed_bytes",
        "Bytes clients pushed to the worker (direct scatters)",
        c.bytes_pushed.load(Ordering::Relaxed),
    );
    m.counter(
        "rdask_worker_pushed_shared_memory_bytes",
        "Of the bytes clients pushed, those that came through shared memory",
        c.bytes_pushed_shared_memory.load(Ordering::Relaxed),
    );
    m.gauge(
        "rdask_worker_rss_bytes",
        "Resident memory of the worker process",
        report.rss_bytes,
    );
    m.gauge(
        "rdask_worker_spilled_keys",
        "Results the worker's store has spilled to disk",
        memory.spilled_keys,
    );
    m.gauge(
        "rdask_worker_spilled_bytes",
        "Bytes of results spilled to disk",
        memory.spilled_bytes,
    );
    m.gauge(
        "rdask_worker_memory_limit_bytes",
        "The worker's memory limit (0: none)",
        report.memory_limit,
    );
    m.gauge(
        "rdask_worker_paused",
        "1 while the worker starts no tasks because its memory is past the pause threshold",
        u64::from(memory.paused),
    );
    m.latency("rdask_worker_mailbox_latency_seconds", "worker", latency);
    m.response()
}

/// Starts a worker's HTTP endpoint on `listener` (a server thread of the
/// current actix system); returns its `http://host:port` address
/// (`https://` with `tls`).
pub fn start_worker_http(
    listener: TcpListener,
    handle: WorkerHandle,
    tls: Option<rustls::ServerConfig>,
) -> std::io::Result<String> {
    let name = handle.name.clone();
    let handle = web::Data::new(handle);
    let address = serve(listener, tls, move || {
        App::new()
            .app_data(handle.clone())
            .service(endpoint("/health", health))
            .service(endpoint("/metrics", worker_metrics))
            .service(endpoint("/api/v1/info", worker_info))
            .default_service(web::to(not_found))
    })?;
    info!(worker = %name, "worker HTTP endpoint on {address}");
    Ok(address)
}
