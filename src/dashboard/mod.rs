//! The scheduler's web dashboard (Dask's, on the scheduler's HTTP port):
//! a status page (task stream, progress per function, memory and tasks
//! per worker, the scheduler's own load), a workers page, a task graph
//! page and an event log with the workers' logs, updated live over
//! Server-sent events. The pages' HTML, script and
//! style are embedded in the binary (no build step, no files to install),
//! drawn with plain canvas and HTML, no charting library.
//!
//! The data comes from the scheduler's diagnostics
//! (`scheduler::diagnostics`: bounded rings filled off the per-task path)
//! in one actor message per open page per [`live::UPDATE_INTERVAL`]. With
//! a cluster token, the pages and data need it ([`auth`]).
//! `docs/dashboard.md` shows the pages and says what each chart means.
//!
//! Files: `auth` (the token), `snapshot` (the actor message and what one
//! update carries), `live` (the event stream), `cpu` (the scheduler's CPU
//! use), `assets` (the embedded pages), `report` (the standalone
//! performance report).

pub mod assets;
pub mod auth;
pub mod cpu;
pub mod live;
pub mod report;
pub mod snapshot;

use actix_web::web;

use crate::actors::scheduler::SchedulerHandle;
pub use auth::DashboardAccess;

/// What the dashboard's handlers share.
pub struct DashboardState {
    /// The scheduler whose figures are shown.
    pub scheduler: SchedulerHandle,
    /// Who may look.
    pub access: DashboardAccess,
    /// Pages receiving live updates now.
    pub live: live::LivePages,
}

/// Adds the dashboard's routes to the scheduler's HTTP app.
pub fn configure(cfg: &mut web::ServiceConfig, state: web::Data<DashboardState>) {
    cfg.app_data(state)
        .service(crate::http::endpoint("/", assets::root))
        .service(crate::http::endpoint("/status", assets::page))
        .service(crate::http::endpoint("/workers", assets::page))
        .service(crate::http::endpoint("/graph", assets::page))
        .service(crate::http::endpoint("/events", assets::page))
        .service(crate::http::endpoint("/static/dashboard.js", assets::script))
        .service(crate::http::endpoint("/static/dashboard.css", assets::style))
        .service(crate::http::endpoint("/favicon.ico", assets::no_icon))
        .service(crate::http::endpoint("/api/v1/dashboard", assets::one_snapshot))
        .service(crate::http::endpoint("/api/v1/dashboard/live", live::live))
        .service(crate::http::endpoint("/api/v1/dashboard/logs", assets::worker_logs))
        .service(crate::http::endpoint("/api/v1/dashboard/graph", assets::task_graph));
}
