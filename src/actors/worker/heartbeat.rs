//! The worker's heartbeat: the state machine's task counts, completed with
//! what the store (spilled bytes, spill events), the process (resident
//! memory, CPU use) and its log ring know, so the scheduler's dashboard
//! gets them without a round trip of its own.

use std::sync::atomic::Ordering;

use actix::prelude::*;

use super::WorkerActor;
use crate::actors::store::{ForHeartbeat, StoreReport, WorkerCounters};
use crate::dashboard::cpu::CpuMeter;
use crate::wire::messages::{FromWorker, SpillEvent};

/// Most log lines one heartbeat carries: the newest (a line says how many
/// were skipped).
pub const MAX_LOG_LINES_PER_HEARTBEAT: usize = 100;

/// What heartbeats remember from one to the next.
#[derive(Default)]
pub(super) struct HeartbeatCursor {
    cpu: CpuMeter,
    /// Sequence number of the next log line to send.
    log_seq: u64,
}

/// Sends one heartbeat: asks the store for its figures (waiting at most one
/// heartbeat interval; without them the counts go alone, so liveness never
/// waits on the store).
pub(super) fn beat(act: &mut WorkerActor, ctx: &mut Context<WorkerActor>) {
    let store = act.store.clone();
    let wait = act.heartbeat;
    ctx.spawn(
        async move { tokio::time::timeout(wait, store.send(ForHeartbeat)).await.ok()?.ok() }
            .into_actor(act)
            .map(|figures, act, _| {
                let hb = complete(act.state.heartbeat(), figures, &act.counters, &mut act.beat);
                let _ = act.scheduler.send(hb);
            }),
    );
}

/// Fills in the heartbeat's process and store fields.
fn complete(
    mut hb: FromWorker,
    figures: Option<(StoreReport, Vec<SpillEvent>)>,
    counters: &WorkerCounters,
    cursor: &mut HeartbeatCursor,
) -> FromWorker {
    if let FromWorker::Heartbeat {
        spilled_bytes,
        rss_bytes,
        cpu_percent,
        bytes_fetched,
        bytes_served,
        spills,
        log,
        ..
    } = &mut hb
    {
        match figures {
            Some((report, events)) => {
                *spilled_bytes = report.figures.spilled_bytes;
                *rss_bytes = report.rss_bytes;
                *spills = events;
            }
            None => *rss_bytes = crate::util::rss_bytes(),
        }
        *cpu_percent = cursor.cpu.sample().unwrap_or(0.0);
        *bytes_fetched = counters.bytes_fetched.load(Ordering::Relaxed);
        *bytes_served = counters.bytes_served.load(Ordering::Relaxed);
        let (lines, next) = crate::log_ring::since(cursor.log_seq, MAX_LOG_LINES_PER_HEARTBEAT);
        cursor.log_seq = next;
        *log = lines;
    }
    hb
}
