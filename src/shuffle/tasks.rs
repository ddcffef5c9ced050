//! The worker side of a peer-to-peer shuffle: the transfer, barrier and
//! unpack runners (raw registry entries, like the bags' runners, so they
//! take any collection's partitions as encoded bytes and call the
//! collection's registered split and unpack functions by name).

use std::collections::BTreeMap;
use std::sync::OnceLock;
use std::time::Duration;

use serde::de::DeserializeOwned;
use serde_bytes::ByteBuf;

use super::ShuffleReceiver;
use crate::registry::Registry;
use crate::runtime::block_on;
use crate::task::{decode_value, encode_value, TaskEntry, TaskFn};
use crate::wire::messages::{CoordOp, CoordResult, ErrorKind, Payload, ShuffleRunSpec, TaskFailure};

/// Most shard bytes in one `ShuffleSend` message: a larger partition's
/// shards for one owner go in several messages, so no frame nears the
/// frame limit and the receiver stores one batch at a time.
pub const SHUFFLE_SEND_BATCH_BYTES: usize = 64 * 1024 * 1024;

/// Longest a transfer waits for the scheduler's answer about the run (it
/// answers at once; this bounds a stuck or cut-off scheduler).
pub const SHUFFLE_RUN_REQUEST_TIMEOUT: Duration = Duration::from_secs(60);

/// Longest a transfer whose send failed waits for the scheduler to
/// restart the shuffle before failing. An owner killed mid-send is seen
/// leaving within milliseconds (its scheduler connection closes); a send
/// that fails while its owner stays in the run fails after this wait.
pub const SHUFFLE_OWNER_LOSS_WAIT: Duration = Duration::from_secs(10);

/// How often a transfer waiting for a restart asks for the run.
const SHUFFLE_RESTART_POLL: Duration = Duration::from_millis(50);

/// The run id of shuffles on the local executor (no scheduler).
const LOCAL_RUN: u64 = 0;

/// The buffer of shuffles run by the local executor (`compute_local`) in
/// this process: memory up to the default bound, then a directory of its
/// own under the system's temporary directory.
fn local_receiver() -> ShuffleReceiver {
    static LOCAL: OnceLock<ShuffleReceiver> = OnceLock::new();
    LOCAL
        .get_or_init(|| {
            let dir = std::env::temp_dir().join(format!("rdask-local-shuffle-{}", uuid::Uuid::new_v4().simple()));
            ShuffleReceiver::new(dir, super::DEFAULT_SHUFFLE_BUFFER_BYTES)
        })
        .clone()
}

/// The shuffle's runners, registered under their names.
pub(crate) const RUNNERS: &[TaskEntry] = &[
    TaskEntry {
        name: super::TRANSFER,
        call: transfer as TaskFn,
        shared: None,
    },
    TaskEntry {
        name: super::BARRIER,
        call: barrier as TaskFn,
        shared: None,
    },
    TaskEntry {
        name: super::UNPACK,
        call: unpack as TaskFn,
        shared: None,
    },
];

fn failed(message: String) -> TaskFailure {
    TaskFailure {
        kind: ErrorKind::Failed,
        message,
    }
}

fn arg<'a>(args: &[&'a [u8]], i: usize, what: &str) -> Result<&'a [u8], TaskFailure> {
    args.get(i).copied().ok_or_else(|| TaskFailure {
        kind: ErrorKind::BadArguments,
        message: format!("{what}: argument {i} missing ({} given)", args.len()),
    })
}

fn decode<T: DeserializeOwned>(args: &[&[u8]], i: usize, what: &str) -> Result<T, TaskFailure> {
    decode_value(arg(args, i, what)?).map_err(|e| TaskFailure {
        kind: ErrorKind::BadArguments,
        message: format!("{what}: argument {i}: {e}"),
    })
}

fn encode<T: serde::Serialize>(v: &T) -> Result<Vec<u8>, TaskFailure> {
    encode_value(v).map_err(|e| failed(format!("encoding a shuffle result: {e}")))
}

/// Calls registered function `name` with encoded arguments.
fn call(name: &str, args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let f = Registry::global().get(name).ok_or_else(|| TaskFailure {
        kind: ErrorKind::UnknownFunction,
        message: format!("this worker has no function named {name:?} (a shuffle's split or unpack function)"),
    })?;
    f(args)
}

/// `(id, input, ninputs, npartitions, split function, split extra,
/// partition)`: splits the partition, sends each shard to its output's
/// owner, returns the run id once all are stored.
fn transfer(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    const WHAT: &str = "shuffle transfer";
    let id: String = decode(args, 0, WHAT)?;
    let input: u32 = decode(args, 1, WHAT)?;
    let ninputs: u32 = decode(args, 2, WHAT)?;
    let npartitions: u32 = decode(args, 3, WHAT)?;
    let split: String = decode(args, 4, WHAT)?;
    let extra = arg(args, 5, WHAT)?;
    let partition = arg(args, 6, WHAT)?;
    let n = encode(&npartitions)?;
    let shards: Vec<ByteBuf> = decode_value(&call(&split, &[partition, &n, extra])?)
        .map_err(|e| failed(format!("{split} did not return a list of byte shards: {e}")))?;
    if shards.len() != npartitions as usize {
        return Err(failed(format!(
            "{split} returned {} shards for {npartitions} output partitions",
            shards.len()
        )));
    }
    if crate::worker::pool::task_scheduler().is_none() {
        // The local executor (`compute_local`): one process holds every
        // output, so the shards go straight into its buffer.
        let shards = (0u32..).zip(shards.into_iter().map(ByteBuf::into_vec)).collect();
        local_receiver()
            .with(|b| b.receive(&id, LOCAL_RUN, input, shards))
            .map_err(|e| failed(e.to_string()))?;
        return encode(&LOCAL_RUN);
    }
    let client = crate::worker_client().map_err(|e| failed(format!("{WHAT}: {e}")))?;
    let run = current_run(&client, &id, ninputs, npartitions)?;
    // Each owner's shards, in batches of at most SHUFFLE_SEND_BATCH_BYTES.
    let mut by_owner: BTreeMap<&str, Vec<Vec<(u32, Payload)>>> = BTreeMap::new();
    for (j, shard) in (0u32..).zip(shards) {
        let batches = by_owner.entry(&run.owners[j as usize]).or_default();
        let size = |b: &Vec<(u32, Payload)>| b.iter().map(|(_, p)| p.len()).sum::<usize>();
        if batches
            .last()
            .is_none_or(|b| size(b) + shard.len() > SHUFFLE_SEND_BATCH_BYTES)
        {
            batches.push(Vec::new());
        }
        if let Some(b) = batches.last_mut() {
            b.push((j, Payload::new(shard.into_vec())));
        }
    }
    let core = client.inner.core.clone();
    let sends = by_owner.into_iter().map(|(owner, batches)| {
        let (peers, owner, id, run_id) = (core.peers.clone(), owner.to_string(), id.clone(), run.run_id);
        async move {
            for shards in batches {
                match peers.shuffle_send(&owner, id.clone(), run_id, input, shards).await {
                    Ok(None) => {}
                    Ok(Some(refused)) => return Err(format!("{owner} refused the shards: {refused}")),
                    Err(e) => return Err(format!("sending shards to {owner}: {e}")),
                }
            }
            Ok(())
        }
    });
    let all = futures_util::future::join_all(sends);
    let results = block_on(core.on_runtime(all)).map_err(|e| failed(format!("{WHAT}: {e}")))?;
    if let Some(e) = results.into_iter().find_map(Result::err) {
        // An owner that died mid-send resets the connection before the
        // scheduler has necessarily seen it leave. Failing at once would
        // err the whole shuffle; instead wait for the scheduler to restart
        // the run, which resets this task and makes this failure stale
        // (ignored), as Dask's transfers reschedule on a lost peer.
        let outcome = match wait_for_restart(&client, &id, ninputs, npartitions, run.run_id) {
            Some(next) => format!("the shuffle was restarted as run {next}"),
            None => format!(
                "the shuffle was not restarted within {} s",
                SHUFFLE_OWNER_LOSS_WAIT.as_secs()
            ),
        };
        return Err(failed(format!("shuffle {id} run {}: {e}; {outcome}", run.run_id)));
    }
    encode(&run.run_id)
}

/// Polls the shuffle's run until it differs from `run_id` (the scheduler
/// saw an owner leave and restarted it): the new run's id, or `None` after
/// [`SHUFFLE_OWNER_LOSS_WAIT`].
fn wait_for_restart(client: &crate::Client, id: &str, ninputs: u32, npartitions: u32, run_id: u64) -> Option<u64> {
    let deadline = std::time::Instant::now() + SHUFFLE_OWNER_LOSS_WAIT;
    while std::time::Instant::now() < deadline {
        if let Ok(spec) = current_run(client, id, ninputs, npartitions) {
            if spec.run_id != run_id {
                return Some(spec.run_id);
            }
        }
        std::thread::sleep(SHUFFLE_RESTART_POLL);
    }
    None
}

/// The shuffle's current run, from the scheduler.
fn current_run(
    client: &crate::Client,
    id: &str,
    ninputs: u32,
    npartitions: u32,
) -> Result<ShuffleRunSpec, TaskFailure> {
    let op = CoordOp::ShuffleGetOrCreate {
        shuffle_id: id.to_string(),
        ninputs,
        npartitions,
    };
    let what = format!("shuffle {id}: asking for its run");
    let answer = block_on(client.inner.core.coordinate(&what, op, SHUFFLE_RUN_REQUEST_TIMEOUT))
        .map_err(|e| failed(e.to_string()))?;
    match answer {
        CoordResult::ShuffleRun(spec) if spec.owners.len() == npartitions as usize => Ok(spec),
        other => Err(failed(format!("{what}: unexpected answer {other:?}"))),
    }
}

/// `(id, run ids of every transfer)`: the run, if they all agree.
fn barrier(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    let id: String = decode(args, 0, "shuffle barrier")?;
    let runs: Vec<u64> = decode(args, 1, "shuffle barrier")?;
    let Some(&first) = runs.first() else {
        return Err(failed(format!("shuffle {id}: a barrier of no transfers")));
    };
    if let Some(other) = runs.iter().find(|&&r| r != first) {
        return Err(failed(format!(
            "shuffle {id}: its transfers ran in different runs ({first} and {other}); the shuffle was restarted"
        )));
    }
    encode(&first)
}

/// `(id, output, ninputs, npartitions, unpack function, unpack extra,
/// run)`: this worker's shards of the output, through the unpack function.
fn unpack(args: &[&[u8]]) -> Result<Vec<u8>, TaskFailure> {
    const WHAT: &str = "shuffle unpack";
    let id: String = decode(args, 0, WHAT)?;
    let output: u32 = decode(args, 1, WHAT)?;
    let ninputs: u32 = decode(args, 2, WHAT)?;
    let name: String = decode(args, 4, WHAT)?;
    let extra = arg(args, 5, WHAT)?;
    let run_id: u64 = decode(args, 6, WHAT)?;
    let receiver = match crate::worker::pool::task_shuffle_receiver() {
        Some(r) => r,
        None if crate::worker::pool::task_scheduler().is_none() => local_receiver(),
        None => return Err(failed(format!("{WHAT}: this worker has no shuffle buffer"))),
    };
    let shards = receiver
        .with(|b| b.take(&id, run_id, output, ninputs))
        .map_err(|e| failed(e.to_string()))?;
    let shards: Vec<ByteBuf> = shards.into_iter().map(ByteBuf::from).collect();
    call(&name, &[&encode(&shards)?, extra])
}
