//! `adaptive_target`: asks the scheduler how many workers the work in hand
//! needs (Dask's `Scheduler.adaptive_target`), for an adaptive scaling
//! loop (`crate::launch::Adaptive`).

use std::time::Duration;

use super::async_client::unexpected;
use super::{AsyncClient, Client, Error};
use crate::runtime::block_on;
use crate::wire::messages::{FromClient, ToClient};

/// The scheduler's answer to [`AsyncClient::adaptive_target`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct AdaptiveTarget {
    /// Workers wanted, within the asked `[minimum, maximum]`.
    pub target: u32,
    /// Idle workers that may leave when `target` is below the number
    /// connected (least data first).
    pub to_close: Vec<String>,
    /// Names of the workers connected now (retiring ones excluded).
    pub workers: Vec<String>,
}

impl AsyncClient {
    /// How many workers (between `minimum` and `maximum`) would finish the
    /// work in hand in `target_duration`, from the scheduler's measured
    /// task durations, queued work and memory (Dask's `adaptive_target`;
    /// `docs/protocol.md`, `AdaptiveTarget`).
    pub async fn adaptive_target(
        &self,
        target_duration: Duration,
        minimum: u32,
        maximum: u32,
    ) -> Result<AdaptiveTarget, Error> {
        let reply = self
            .core
            .ask("adaptive_target", |request_id| FromClient::AdaptiveTarget {
                request_id,
                target_duration_s: target_duration.as_secs_f64(),
                minimum,
                maximum,
            })
            .await?;
        match reply {
            ToClient::AdaptiveTargetReply {
                target,
                to_close,
                workers,
                ..
            } => Ok(AdaptiveTarget {
                target,
                to_close,
                workers,
            }),
            other => Err(unexpected("adaptive_target", &other)),
        }
    }
}

impl Client {
    /// See [`AsyncClient::adaptive_target`].
    pub fn adaptive_target(
        &self,
        target_duration: Duration,
        minimum: u32,
        maximum: u32,
    ) -> Result<AdaptiveTarget, Error> {
        block_on(self.inner.adaptive_target(target_duration, minimum, maximum))
    }
}
