//! The dashboard's live updates: Server-sent events, one [`Snapshot`] as
//! JSON every [`UPDATE_INTERVAL`] per open page, each carrying only the
//! task-stream records and events that page has not seen. One scheduler
//! message per page per interval, whatever the task rate, and at most
//! [`MAX_LIVE_PAGES`] pages at once: the dashboard costs the scheduler
//! little however busy it is (docs/benchmarks.md measures it).

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::Duration;

use actix_web::http::StatusCode;
use actix_web::{web, HttpRequest, HttpResponse};
use bytes::Bytes;
use futures_util::stream;

use super::cpu::CpuMeter;
use super::snapshot::{GetSnapshot, Snapshot};
use super::DashboardState;
use crate::actors::scheduler::SchedulerHandle;
use crate::http::{mailbox_latency, ACTOR_TIMEOUT};

/// How often an open page is sent an update.
pub const UPDATE_INTERVAL: Duration = Duration::from_millis(500);
/// Most pages receiving live updates at once; more are answered 503.
pub const MAX_LIVE_PAGES: usize = 16;

/// Counts the open live pages; one is taken for each stream's life.
#[derive(Default)]
pub struct LivePages(AtomicUsize);

struct PageSlot(Arc<DashboardState>);

impl Drop for PageSlot {
    fn drop(&mut self) {
        self.0.live.0.fetch_sub(1, Ordering::Relaxed);
    }
}

/// What one live stream remembers between updates.
struct Cursor {
    slot: PageSlot,
    stream_since: u64,
    events_since: u64,
    cpu: CpuMeter,
    first: bool,
}

/// One snapshot, with the figures measured outside the actor; None if the
/// scheduler did not answer within [`ACTOR_TIMEOUT`].
pub async fn snapshot(handle: &SchedulerHandle, ask: GetSnapshot, cpu: &mut CpuMeter) -> Option<Snapshot> {
    let latency = mailbox_latency(&handle.actor).await;
    let mut s = tokio::time::timeout(ACTOR_TIMEOUT, handle.actor.send(ask))
        .await
        .ok()?
        .ok()?;
    s.mailbox_latency_seconds = latency.map(|d| d.as_secs_f64());
    s.rss_bytes = crate::util::rss_bytes();
    s.cpu_percent = cpu.sample();
    Some(s)
}

/// `GET /api/v1/dashboard/live`: the update stream (`text/event-stream`).
pub async fn live(req: HttpRequest, state: web::Data<DashboardState>) -> HttpResponse {
    if let Some(denied) = state.access.check(&req) {
        return denied;
    }
    let state = state.into_inner();
    if state.live.0.fetch_add(1, Ordering::Relaxed) >= MAX_LIVE_PAGES {
        state.live.0.fetch_sub(1, Ordering::Relaxed);
        return HttpResponse::build(StatusCode::SERVICE_UNAVAILABLE)
            .content_type("text/plain; charset=utf-8")
            .body(format!(
                "at most {MAX_LIVE_PAGES} dashboard pages may be open at once\n"
            ));
    }
    let cursor = Cursor {
        slot: PageSlot(state),
        stream_since: 0,
        events_since: 0,
        cpu: CpuMeter::default(),
        first: true,
    };
    let updates = stream::unfold(cursor, |mut c| async move {
        if !std::mem::take(&mut c.first) {
            tokio::time::sleep(UPDATE_INTERVAL).await;
        } else {
            // A first CPU sample, so the first update has a figure.
            c.cpu.sample();
        }
        let ask = GetSnapshot {
            stream_since: c.stream_since,
            events_since: c.events_since,
        };
        let handle = c.slot.0.scheduler.clone();
        let event = match snapshot(&handle, ask, &mut c.cpu).await {
            Some(s) => {
                if let Some(r) = s.stream.last() {
                    c.stream_since = r.seq + 1;
                }
                if let Some(e) = s.events.last() {
                    c.events_since = e.seq + 1;
                }
                match serde_json::to_string(&s) {
                    Ok(json) => format!("data: {json}\n\n"),
                    Err(e) => format!("event: trouble\ndata: cannot encode the update: {e}\n\n"),
                }
            }
            None => "event: trouble\ndata: the scheduler did not answer\n\n".to_string(),
        };
        Some((Ok::<Bytes, actix_web::Error>(Bytes::from(event)), c))
    });
    HttpResponse::Ok()
        .content_type("text/event-stream")
        .insert_header(("Cache-Control", "no-cache"))
        .streaming(updates)
}
