//! Scatters: the values sent through the scheduler (`Scatter`), or pushed
//! by the client to the workers the scheduler names (`ScatterDirect`,
//! Dask's `direct=True`: through shared memory to workers on this host).
//! Either way the futures are valid once the scheduler answers that every
//! holder confirmed its values.

use std::sync::Arc;

use bytes::Bytes;
use serde::Serialize;
use tokio::sync::oneshot;
use tracing::warn;

use super::core::Core;
use super::future::{add_refs, Future};
use super::submit::{mib, MESSAGE_OVERHEAD};
use super::{Error, ScatterOptions};
use crate::actors::peer::PushFiles;
use crate::task::encode_value;
use crate::util::FxMap;
use crate::wire::messages::*;

/// The keys and encoded values of a scatter (keyed by content hash, or at
/// random with `hash: false`). With `files` (a direct scatter on Linux), a
/// large value is encoded straight into a memory file, recorded there for
/// the pushes, and its bytes are a mapping of that file.
fn encode_values<T: Serialize>(
    values: &[T],
    options: &ScatterOptions,
    files: Option<&PushFiles>,
) -> Result<Vec<(Key, Bytes)>, Error> {
    let short = std::any::type_name::<T>().rsplit("::").next().unwrap_or("data");
    let encode_error = |e: rmp_serde::encode::Error| Error::Encode(e.to_string());
    values
        .iter()
        .map(|v| {
            let (bytes, file) = match files.map(|_| PushFiles::encode(v)).transpose().map_err(encode_error)? {
                Some(Some((bytes, file))) => (bytes, file),
                _ => (Bytes::from(encode_value(v).map_err(encode_error)?), None),
            };
            let key = if options.hash {
                format!("{short}-{:016x}", crate::util::fnv1a64(&[&bytes]))
            } else {
                format!("{short}-{}", uuid::Uuid::new_v4().simple())
            };
            if let (Some(files), Some(file)) = (files, file) {
                files.insert(key.clone(), file);
            }
            Ok((key, bytes))
        })
        .collect()
}

/// Refuses values too large for one message to the scheduler, before
/// anything is sent.
fn check_frame(core: &Core, data: &[(Key, Bytes)]) -> Result<(), Error> {
    let total: u64 = data.iter().map(|(k, b)| (b.len() + k.len() + 16) as u64).sum();
    let limit = core.limits.max_frame_bytes;
    if total + MESSAGE_OVERHEAD > limit {
        return Err(Error::TooLarge(format!(
            "scatter of {} values takes {} encoded, more than the {} the scheduler accepts in one frame \
             (its `[wire] max_frame_bytes`; set `ClientOptions::limits` to match a larger one); nothing \
             was sent. Scatter them in smaller batches, or with `direct`.",
            data.len(),
            mib(total),
            mib(limit),
        )));
    }
    Ok(())
}

fn futures_for<T>(core: &Arc<Core>, keys: Vec<Key>) -> Vec<Future<T>> {
    let slots = add_refs(core, &keys, "");
    keys.into_iter()
        .zip(slots)
        .map(|(k, s)| Future::counted(k, s, core.clone()))
        .collect()
}

/// Sends `data` to the scheduler for storing on workers.
fn send_scatter(
    core: &Core,
    data: Vec<(Key, Bytes)>,
    workers: Vec<String>,
    broadcast: bool,
) -> Result<oneshot::Receiver<ToClient>, Error> {
    core.request(|request_id| FromClient::Scatter {
        request_id,
        data: data.into_iter().map(|(k, b)| (k, Payload(b))).collect(),
        workers,
        broadcast,
    })
}

/// Stores the values on workers; the futures are valid once every holder
/// confirmed (the caller bounds the wait).
pub(crate) async fn scatter<T: Serialize>(
    core: &Arc<Core>,
    values: &[T],
    options: &ScatterOptions,
) -> Result<Vec<Future<T>>, Error> {
    if options.direct {
        let files = PushFiles::default();
        let data = encode_values(values, options, Some(&files))?;
        return scatter_direct(core, data, files, options).await;
    }
    let data = encode_values(values, options, None)?;
    check_frame(core, &data)?;
    let futures = futures_for(core, data.iter().map(|(k, _)| k.clone()).collect());
    let rx = send_scatter(core, data, options.workers.clone(), options.broadcast)?;
    scatter_done(rx.await.ok())?;
    Ok(futures)
}

/// The direct scatter: the scheduler places the values, the client pushes
/// each holder its share (all holders at once), and the scheduler answers
/// once they confirmed. A push that fails (logged) goes through the
/// scheduler instead, to the same worker.
async fn scatter_direct<T>(
    core: &Arc<Core>,
    data: Vec<(Key, Bytes)>,
    files: PushFiles,
    options: &ScatterOptions,
) -> Result<Vec<Future<T>>, Error> {
    let futures = futures_for(core, data.iter().map(|(k, _)| k.clone()).collect());
    let (done_id, done) = core.await_reply()?;
    let announced = data.iter().map(|(k, b)| (k.clone(), b.len() as u64)).collect();
    let targets = core.request(|request_id| FromClient::ScatterDirect {
        request_id,
        done_id,
        keys: announced,
        workers: options.workers.clone(),
        broadcast: options.broadcast,
    })?;
    let targets = match targets.await.ok() {
        Some(ToClient::ScatterTargets {
            error: None, targets, ..
        }) => targets,
        Some(ToClient::ScatterTargets { error: Some(e), .. }) => {
            core.shared.lock().requests.remove(&done_id);
            return Err(Error::Refused(format!("scatter failed: {e}")));
        }
        _ => return Err(Error::Disconnected("no answer to scatter".into())),
    };
    let values: FxMap<Key, Bytes> = data.into_iter().collect();
    let c = core.clone();
    let failed = core
        .on_runtime(async move { push_all(&c, targets, &values, &files).await })
        .await?;
    let mut fallbacks = Vec::new();
    for (address, data) in failed {
        check_frame(core, &data)?;
        let rx = send_scatter(core, data.clone(), vec![address], true)?;
        fallbacks.push((rx, data));
    }
    for (rx, data) in fallbacks {
        if scatter_done(rx.await.ok()).is_err() {
            // The worker left (its copies are no longer awaited). A
            // broadcast has its other copies; a value meant only for it
            // goes wherever the scheduler places it.
            if !options.broadcast {
                let rx = send_scatter(core, data, options.workers.clone(), false)?;
                scatter_done(rx.await.ok())?;
            }
        }
    }
    scatter_done(done.await.ok())?;
    Ok(futures)
}

/// Pushes each target its values, all at once; the targets whose push
/// failed, with their values.
async fn push_all(
    core: &Core,
    targets: Vec<ScatterTarget>,
    values: &FxMap<Key, Bytes>,
    files: &PushFiles,
) -> Vec<(String, Vec<(Key, Bytes)>)> {
    let pushes = targets.into_iter().map(|t| {
        let data: Vec<(Key, Bytes)> = t
            .keys
            .into_iter()
            .filter_map(|k| values.get(&k).map(|b| (k, b.clone())))
            .collect();
        async move {
            match core.peers.put_data(&t.address, data.clone(), files).await {
                Ok(()) => None,
                Err(e) => {
                    warn!(worker = %t.address, "direct scatter: pushing to the worker failed ({e}); sending the values through the scheduler");
                    Some((t.address, data))
                }
            }
        }
    });
    futures_util::future::join_all(pushes)
        .await
        .into_iter()
        .flatten()
        .collect()
}

/// The outcome of a scatter from the scheduler's reply.
fn scatter_done(reply: Option<ToClient>) -> Result<(), Error> {
    // On failure the caller's futures are dropped, which releases the keys.
    match reply {
        Some(ToClient::ScatterDone { error: None, .. }) => Ok(()),
        Some(ToClient::ScatterDone { error: Some(e), .. }) => Err(Error::Refused(format!("scatter failed: {e}"))),
        _ => Err(Error::Disconnected("no answer to scatter".into())),
    }
}
