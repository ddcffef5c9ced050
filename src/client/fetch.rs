//! Getting finished results: inline ones from the key table, the others
//! from the workers that hold them — and, when a holder fails (it died, was
//! stopped, retired), from wherever the scheduler says the key is now,
//! including a recomputed copy (docs/resilience.md).

use std::collections::HashSet;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use futures_util::future::{select, Either};
use tokio::time::Instant;
use tracing::warn;

use super::core::Core;
use super::{Error, MAX_FETCH_BYTES};
use crate::actors::client::KeyStatus;
use crate::util::FxMap as HashMap;
use crate::wire::messages::{FromClient, Key, ToClient};

/// How long a fetch whose holder failed waits for the scheduler to name
/// another holder (a replica, or the recomputed result once the scheduler
/// has removed the failed worker) before giving up. Longer than the
/// scheduler's default worker timeout, so a dead holder's results come back.
pub const REFETCH_TIMEOUT: Duration = Duration::from_secs(300);

/// How long a fetch keeps asking when live holders answer that they lack
/// the key (it moved by retirement or rebalance and the scheduler's answer
/// lags by a moment, or a scatter's reply overtook its data). Short: unlike
/// a dead holder, a live one will not be removed and recomputed around.
pub const MISSING_KEY_WAIT: Duration = Duration::from_secs(5);

/// How often a fetch waiting for another holder asks the scheduler, and how
/// often a running fetch looks whether the scheduler has declared its keys
/// lost meanwhile.
pub const REFETCH_POLL: Duration = Duration::from_millis(250);

/// What a finished key's bytes are, or where to get them.
#[derive(Clone)]
enum Located {
    Here(Bytes),
    At(Vec<String>, u64),
}

/// The bytes of finished `keys`, in order. Awaitable from any executor:
/// network work runs on the client's runtime thread.
pub(crate) async fn fetch(core: &Arc<Core>, keys: Vec<Key>) -> Result<Vec<Bytes>, Error> {
    let located = locate(core, &keys)?;
    if located.iter().all(|l| matches!(l, Located::Here(_))) {
        return Ok(located
            .into_iter()
            .map(|l| match l {
                Located::Here(b) => b,
                Located::At(..) => Bytes::new(),
            })
            .collect());
    }
    let c = core.clone();
    core.on_runtime(async move { fetch_resilient(&c, keys, located).await })
        .await?
}

fn locate(core: &Core, keys: &[Key]) -> Result<Vec<Located>, Error> {
    let st = core.shared.lock();
    keys.iter()
        .map(|k| match st.keys.get(k).map(|e| &e.status) {
            Some(KeyStatus::Finished { inline: Some(b), .. }) => Ok(Located::Here(b.clone())),
            Some(KeyStatus::Finished { who_has, nbytes, .. }) => Ok(Located::At(who_has.clone(), *nbytes)),
            Some(KeyStatus::Error(f)) => Err(Error::Task {
                key: k.clone(),
                failure: f.clone(),
            }),
            Some(KeyStatus::Cancelled) => Err(Error::Cancelled(k.clone())),
            Some(KeyStatus::Pending | KeyStatus::NoWorker(_)) => match &st.disconnected {
                Some(why) => Err(Error::Disconnected(why.clone())),
                // Finished when the caller's wait returned, lost since (its
                // holder died) and being recomputed: no holder yet, so the
                // resilient fetch waits for the new copy, within its bound.
                None => Ok(Located::At(Vec::new(), 0)),
            },
            None => Err(Error::Cancelled(k.clone())),
        })
        .collect()
}

/// Why one round of fetching did not get everything.
enum Failed {
    /// A holder could not be reached (`answered: false`) or answered that
    /// it no longer had a key.
    Holder {
        worker: String,
        message: String,
        answered: bool,
    },
    /// No holder left that has not failed already.
    NoHolder(Key),
    /// The scheduler declared a key lost while it was being fetched.
    Lost,
}

/// Fetches, and when a holder fails, stops asking it: waits for the
/// scheduler to name another (polling `WhoHas` and watching `KeyLost` /
/// `KeyInMemory`), then fetches from that one. Errs if the key erred or was
/// cancelled meanwhile, the connection is lost, or no other holder appears
/// within [`REFETCH_TIMEOUT`].
async fn fetch_resilient(core: &Core, keys: Vec<Key>, mut located: Vec<Located>) -> Result<Vec<Bytes>, Error> {
    let mut failed: HashSet<String> = HashSet::new();
    let mut first_miss: Option<Instant> = None;
    loop {
        let why = {
            let round = std::pin::pin!(fetch_located(core, &keys, &located, &failed));
            let lost = std::pin::pin!(any_lost(core, &keys, &located));
            match select(round, lost).await {
                Either::Left((Ok(out), _)) => return Ok(out),
                Either::Left((Err(why), _)) => why,
                Either::Right(((), _)) => Failed::Lost,
            }
        };
        let last_error = match why {
            // It answered, so it is alive: the key moved (retirement,
            // rebalance) or has not arrived yet (a scatter's reply can
            // overtake the data). Ask again shortly, not forever.
            Failed::Holder {
                worker,
                message,
                answered: true,
            } => {
                let since = *first_miss.get_or_insert_with(Instant::now);
                if since.elapsed() >= MISSING_KEY_WAIT {
                    return Err(Error::Wire(format!(
                        "cannot fetch a result: {worker} answered that {message} for {MISSING_KEY_WAIT:?}, \
                         and the scheduler names no other holder"
                    )));
                }
                tokio::time::sleep(REFETCH_POLL).await;
                format!("{worker} answered that {message}")
            }
            Failed::Holder { worker, message, .. } => {
                warn!(%worker, "fetching a result failed ({message}); asking the scheduler where it is now");
                failed.insert(worker.clone());
                format!("{worker} failed: {message}")
            }
            Failed::NoHolder(key) => format!("no holder of {key} left that has not failed"),
            Failed::Lost => "the scheduler declared the result lost".to_string(),
        };
        located = relocate(core, &keys, located, &failed, &last_error).await?;
    }
}

/// Completes when the scheduler has declared one of the keys being fetched
/// lost (its holder died): the fetch in flight may hang on that holder.
async fn any_lost(core: &Core, keys: &[Key], located: &[Located]) {
    loop {
        tokio::time::sleep(REFETCH_POLL).await;
        let st = core.shared.lock();
        // Lost: back to pending, or already recomputed elsewhere.
        let lost = keys.iter().zip(located).any(|(k, l)| {
            let Located::At(who, _) = l else { return false };
            // Erred or cancelled meanwhile counts too: relocating reports it.
            !matches!(st.keys.get(k).map(|e| &e.status),
                Some(KeyStatus::Finished { who_has, .. }) if who_has.iter().any(|w| who.contains(w)))
        });
        if lost {
            return;
        }
    }
}

/// New locations for the keys not here, with a holder that has not failed.
async fn relocate(
    core: &Core,
    keys: &[Key],
    mut located: Vec<Located>,
    failed: &HashSet<String>,
    last_error: &str,
) -> Result<Vec<Located>, Error> {
    let deadline = Instant::now() + REFETCH_TIMEOUT;
    let usable = |who: &[String]| who.iter().any(|w| !failed.contains(w));
    loop {
        // The key table first: KeyLost and the recomputed KeyInMemory land there.
        let mut missing = Vec::new();
        {
            let st = core.shared.lock();
            if let Some(why) = &st.disconnected {
                return Err(Error::Disconnected(why.clone()));
            }
            for (i, (k, l)) in keys.iter().zip(located.iter_mut()).enumerate() {
                let Located::At(who, nbytes) = l else { continue };
                match st.keys.get(k).map(|e| &e.status) {
                    Some(KeyStatus::Finished { who_has, nbytes: n, .. }) if usable(who_has) => {
                        *who = who_has.clone();
                        *nbytes = *n;
                    }
                    Some(KeyStatus::Finished { .. }) => missing.push(i),
                    Some(KeyStatus::Error(f)) => {
                        return Err(Error::Task {
                            key: k.clone(),
                            failure: f.clone(),
                        })
                    }
                    Some(KeyStatus::Cancelled) | None => return Err(Error::Cancelled(k.clone())),
                    // Lost and being recomputed: wait for its new KeyInMemory.
                    Some(KeyStatus::Pending | KeyStatus::NoWorker(_)) => {
                        who.clear();
                        missing.push(i);
                    }
                }
            }
        }
        if missing.is_empty() {
            return Ok(located);
        }
        let wanted: Vec<Key> = missing.iter().map(|&i| keys[i].clone()).collect();
        let reply = core
            .ask("who_has", |request_id| FromClient::WhoHas {
                request_id,
                keys: wanted,
            })
            .await?;
        if let ToClient::WhoHasReply { who_has, .. } = reply {
            for (i, w) in missing.iter().zip(who_has) {
                if usable(&w.workers) {
                    located[*i] = Located::At(w.workers, w.nbytes);
                }
            }
        }
        if located.iter().all(|l| match l {
            Located::Here(_) => true,
            Located::At(who, _) => usable(who),
        }) {
            return Ok(located);
        }
        if Instant::now() >= deadline {
            let key = &keys[missing[0]];
            return Err(Error::Wire(format!(
                "cannot fetch the result of {key}: {last_error}, and the scheduler named no other holder within {REFETCH_TIMEOUT:?}"
            )));
        }
        tokio::time::sleep(REFETCH_POLL).await;
    }
}

/// Fetches every key not already here, one request per worker (the first
/// holder of each key that has not failed), all workers at once.
async fn fetch_located(
    core: &Core,
    keys: &[Key],
    located: &[Located],
    failed: &HashSet<String>,
) -> Result<Vec<Bytes>, Failed> {
    let mut out: Vec<Option<Bytes>> = Vec::with_capacity(keys.len());
    // One request per worker and chunk of at most MAX_FETCH_BYTES, so no reply
    // frame outgrows the frame limit.
    let mut by_worker: HashMap<String, Vec<(Vec<usize>, u64)>> = HashMap::default();
    for (i, l) in located.iter().enumerate() {
        match l {
            Located::Here(b) => out.push(Some(b.clone())),
            Located::At(who, nbytes) => {
                out.push(None);
                let Some(w) = who.iter().find(|w| !failed.contains(*w)) else {
                    return Err(Failed::NoHolder(keys[i].clone()));
                };
                let chunks = by_worker.entry(w.clone()).or_default();
                match chunks.last_mut() {
                    Some((idx, bytes)) if *bytes + nbytes <= MAX_FETCH_BYTES => {
                        idx.push(i);
                        *bytes += nbytes;
                    }
                    _ => chunks.push((vec![i], *nbytes)),
                }
            }
        }
    }
    let requests = by_worker
        .into_iter()
        .flat_map(|(worker, chunks)| chunks.into_iter().map(move |(idx, _)| (worker.clone(), idx)));
    let requests = requests.map(|(worker, idx)| {
        let wanted: Vec<Key> = idx.iter().map(|&i| keys[i].clone()).collect();
        let peers = core.peers.clone();
        async move {
            let r = peers.get_data(&worker, wanted).await;
            (worker, idx, r)
        }
    });
    let results = futures_util::future::join_all(requests).await;
    for (worker, idx, r) in results {
        let data = r.map_err(|e| Failed::Holder {
            worker: worker.clone(),
            message: e.to_string(),
            answered: false,
        })?;
        for (i, (k, v)) in idx.into_iter().zip(data) {
            match v {
                Some(b) => out[i] = Some(b),
                None => {
                    return Err(Failed::Holder {
                        worker,
                        message: format!("it no longer holds {k}"),
                        answered: true,
                    })
                }
            }
        }
    }
    Ok(out.into_iter().map(Option::unwrap_or_default).collect())
}
