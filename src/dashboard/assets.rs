//! The dashboard's pages, script and style, embedded in the binary, and
//! the one-shot JSON snapshot (`/api/v1/dashboard`) for scripts.

use actix_web::http::header;
use actix_web::{web, HttpRequest, HttpResponse};
use serde::Deserialize;

use super::cpu::CpuMeter;
use super::live::snapshot;
use super::snapshot::{GetSnapshot, GetTaskGraph, GetWorkerLogs};
use super::DashboardState;

/// The page shell; the script fills it according to its path.
pub const PAGE_HTML: &str = include_str!("assets/page.html");
/// The pages' script: drawing, sorting, the live stream.
pub const SCRIPT_JS: &str = include_str!("assets/dashboard.js");
/// The pages' style.
pub const STYLE_CSS: &str = include_str!("assets/dashboard.css");

/// `/`: to the status page (keeping `?token=`).
pub async fn root(req: HttpRequest) -> HttpResponse {
    let q = req.query_string();
    let to = if q.is_empty() {
        "/status".to_string()
    } else {
        format!("/status?{q}")
    };
    HttpResponse::TemporaryRedirect()
        .insert_header((header::LOCATION, to))
        .finish()
}

/// `/status`, `/workers`, `/graph`, `/events`.
pub async fn page(req: HttpRequest, state: web::Data<DashboardState>) -> HttpResponse {
    if let Some(denied) = state.access.check(&req) {
        return denied;
    }
    HttpResponse::Ok()
        .content_type("text/html; charset=utf-8")
        .insert_header((header::CACHE_CONTROL, "no-cache"))
        .body(PAGE_HTML)
}

/// `/static/dashboard.js` (no data: served without the token).
pub async fn script() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/javascript; charset=utf-8")
        .body(SCRIPT_JS)
}

/// `/static/dashboard.css`.
pub async fn style() -> HttpResponse {
    HttpResponse::Ok()
        .content_type("text/css; charset=utf-8")
        .body(STYLE_CSS)
}

/// `/favicon.ico`: none (204), rather than a 404 in every browser console.
pub async fn no_icon() -> HttpResponse {
    HttpResponse::NoContent().finish()
}

/// Query of `/api/v1/dashboard`.
#[derive(Deserialize)]
pub struct SnapshotQuery {
    #[serde(default)]
    stream_since: u64,
    #[serde(default)]
    events_since: u64,
}

/// `/api/v1/dashboard?stream_since=N&events_since=M`: one update as JSON.
pub async fn one_snapshot(req: HttpRequest, state: web::Data<DashboardState>) -> HttpResponse {
    if let Some(denied) = state.access.check(&req) {
        return denied;
    }
    let Ok(q) = web::Query::<SnapshotQuery>::from_query(req.query_string()) else {
        return HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body("stream_since and events_since must be whole numbers\n");
    };
    let ask = GetSnapshot {
        stream_since: q.stream_since,
        events_since: q.events_since,
    };
    match snapshot(&state.scheduler, ask, &mut CpuMeter::default()).await {
        Some(s) => HttpResponse::Ok().json(s),
        None => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("the scheduler actor did not answer\n"),
    }
}

/// Query of `/api/v1/dashboard/logs`.
#[derive(Deserialize)]
pub struct LogsQuery {
    #[serde(default)]
    worker: Option<String>,
}

/// `/api/v1/dashboard/logs[?worker=NAME]`: workers' last log lines as JSON
/// (`WorkerLogs`: the first `LOG_PAGE_MAX_WORKERS` by name, or the one
/// named), for the events page.
pub async fn worker_logs(req: HttpRequest, state: web::Data<DashboardState>) -> HttpResponse {
    if let Some(denied) = state.access.check(&req) {
        return denied;
    }
    let Ok(q) = web::Query::<LogsQuery>::from_query(req.query_string()) else {
        return HttpResponse::BadRequest()
            .content_type("text/plain; charset=utf-8")
            .body("worker must be a worker's name\n");
    };
    let ask = state.scheduler.actor.send(GetWorkerLogs {
        worker: q.into_inner().worker,
    });
    match tokio::time::timeout(crate::http::ACTOR_TIMEOUT, ask).await {
        Ok(Ok(logs)) => HttpResponse::Ok().json(logs),
        _ => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("the scheduler actor did not answer\n"),
    }
}

/// `/api/v1/dashboard/graph`: the task graph as JSON (nodes with their
/// state, edges), or only its size past `MAX_GRAPH_TASKS`.
pub async fn task_graph(req: HttpRequest, state: web::Data<DashboardState>) -> HttpResponse {
    if let Some(denied) = state.access.check(&req) {
        return denied;
    }
    let ask = state.scheduler.actor.send(GetTaskGraph);
    match tokio::time::timeout(crate::http::ACTOR_TIMEOUT, ask).await {
        Ok(Ok(graph)) => HttpResponse::Ok().json(graph),
        _ => HttpResponse::ServiceUnavailable()
            .content_type("text/plain; charset=utf-8")
            .body("the scheduler actor did not answer\n"),
    }
}
