//! Turning calls into tasks: keys, task specs, graph updates split to fit
//! the scheduler's frame limits (scatters are in `scatter.rs`).

use std::sync::Arc;

use super::core::Core;
use super::future::{add_refs, Future};
use super::{Error, SubmitOptions, MAP_CHUNK};
use crate::wire::messages::*;
use crate::wire::FrameLimits;

/// Bytes a message's header needs besides what [`task_bytes`] counts: the
/// msgpack framing of the message and its lists. Generous on purpose: the
/// check must refuse whatever the scheduler would.
pub(super) const MESSAGE_OVERHEAD: u64 = 4096;

/// Per-task bytes besides its strings and arguments (field tags, numbers).
const TASK_OVERHEAD: u64 = 128;

/// Bytes as MiB with one decimal, for messages.
pub(super) fn mib(bytes: u64) -> String {
    format!("{:.1} MiB", bytes as f64 / (1024.0 * 1024.0))
}

fn short_name(function: &str) -> &str {
    function.rsplit("::").next().unwrap_or(function)
}

pub(crate) fn make_key(function: &str, args: &[Arg], opts: &SubmitOptions, index: Option<usize>) -> Key {
    match (&opts.key, index) {
        (Some(k), None) => k.clone(),
        (Some(prefix), Some(i)) => format!("{prefix}-{i}"),
        (None, _) if opts.pure => {
            let arg_parts: Vec<_> = args.iter().map(Arg::hash_part).collect();
            let mut parts: Vec<&[u8]> = vec![function.as_bytes()];
            parts.extend(arg_parts.iter().map(|p| &p[..]));
            format!("{}-{:016x}", short_name(function), crate::util::fnv1a64(&parts))
        }
        (None, _) => format!("{}-{}", short_name(function), uuid::Uuid::new_v4().simple()),
    }
}

fn spec(key: Key, function: &str, args: Vec<Arg>, opts: &SubmitOptions) -> TaskSpec {
    TaskSpec {
        key,
        function: function.to_string(),
        args,
        priority: opts.priority,
        workers: opts.workers.clone(),
        allow_other_workers: opts.allow_other_workers,
        retries: opts.retries,
        resources: opts.resources.clone(),
    }
}

/// An upper bound of the bytes a task takes in a graph update's header.
fn task_bytes(t: &TaskSpec) -> u64 {
    let args: usize = t
        .args
        .iter()
        .map(|a| match a {
            Arg::Value(v) => v.len() + 8,
            Arg::Key(k) => k.len() + 8,
            Arg::Keys(ks) => ks.iter().map(|k| k.len() + 8).sum::<usize>() + 8,
            Arg::KeyMap(entries) => entries.iter().map(|(b, k)| b.len() + k.len() + 16).sum::<usize>() + 8,
        })
        .sum();
    let strings: usize = t.workers.iter().map(|w| w.len() + 8).sum::<usize>()
        + t.resources.iter().map(|(r, _)| r.len() + 16).sum::<usize>();
    (t.key.len() + t.function.len() + args + strings) as u64 + TASK_OVERHEAD
}

/// The most header bytes one message may take under `limits`.
fn header_budget(limits: &FrameLimits) -> u64 {
    u64::from(limits.max_header_bytes).min(limits.max_frame_bytes)
}

/// Refuses a message part of `bytes` that cannot fit in one frame: sending
/// it would make the scheduler drop the whole connection.
pub(crate) fn check_fits(bytes: u64, limits: &FrameLimits, what: impl FnOnce() -> String) -> Result<(), Error> {
    let budget = header_budget(limits);
    if bytes + MESSAGE_OVERHEAD <= budget {
        return Ok(());
    }
    Err(Error::TooLarge(format!(
        "{} takes {} encoded, more than the {} the scheduler accepts in one message; nothing was sent. \
         The limit is the scheduler's `[wire] max_header_bytes` (and `max_frame_bytes`); if the scheduler \
         runs with larger ones, give this client the same in `ClientOptions::limits`. Large data is better \
         loaded by a task on the workers than shipped as an argument.",
        what(),
        mib(bytes),
        mib(budget.saturating_sub(MESSAGE_OVERHEAD)),
    )))
}

pub(crate) fn submit<O>(
    core: &Arc<Core>,
    function: &str,
    args: Vec<Arg>,
    opts: &SubmitOptions,
) -> Result<Future<O>, Error> {
    core.check_connected()?;
    let key = make_key(function, &args, opts, None);
    let task = spec(key.clone(), function, args, opts);
    check_fits(task_bytes(&task), &core.limits, || {
        format!("the call of `{function}` (key {key})")
    })?;
    let slots = add_refs(core, std::slice::from_ref(&key), function);
    core.send(FromClient::UpdateGraph {
        tasks: vec![task],
        wanted: vec![key.clone()],
    })?;
    Ok(Future::counted(key, slots[0], core.clone()))
}

/// Submits one task per argument list, in graph updates of at most
/// [`MAP_CHUNK`] tasks and of at most the frame limit in bytes.
pub(crate) fn map<O>(
    core: &Arc<Core>,
    function: &str,
    all_args: Vec<Vec<Arg>>,
    opts: &SubmitOptions,
) -> Result<Vec<Future<O>>, Error> {
    core.check_connected()?;
    let budget = header_budget(&core.limits).saturating_sub(MESSAGE_OVERHEAD);
    // Checked before anything is sent, so that a refused map leaves no
    // half of it running.
    let specs = all_args
        .into_iter()
        .enumerate()
        .map(|(i, args)| {
            let key = make_key(function, &args, opts, Some(i));
            let task = spec(key, function, args, opts);
            let bytes = task_bytes(&task);
            check_fits(bytes, &core.limits, || {
                format!("the call of `{function}` (key {}, item {i})", task.key)
            })?;
            Ok((task, bytes))
        })
        .collect::<Result<Vec<_>, Error>>()?;
    let mut futures = Vec::with_capacity(specs.len());
    let mut tasks = Vec::with_capacity(MAP_CHUNK.min(specs.len()));
    let mut keys: Vec<Key> = Vec::with_capacity(MAP_CHUNK.min(specs.len()));
    let mut bytes = 0u64;
    let mut flush = |tasks: &mut Vec<TaskSpec>, keys: &mut Vec<Key>| -> Result<(), Error> {
        let slots = add_refs(core, keys, function);
        core.send(FromClient::UpdateGraph {
            tasks: std::mem::take(tasks),
            wanted: keys.clone(),
        })?;
        futures.extend(
            keys.drain(..)
                .zip(slots)
                .map(|(k, s)| Future::counted(k, s, core.clone())),
        );
        Ok(())
    };
    for (task, n) in specs {
        // The key is counted twice: in the task and in `wanted`.
        let n = n + task.key.len() as u64 + 8;
        if !tasks.is_empty() && bytes + n > budget {
            flush(&mut tasks, &mut keys)?;
            bytes = 0;
        }
        bytes += n;
        keys.push(task.key.clone());
        tasks.push(task);
        if tasks.len() == MAP_CHUNK {
            flush(&mut tasks, &mut keys)?;
            bytes = 0;
        }
    }
    if !tasks.is_empty() {
        flush(&mut tasks, &mut keys)?;
    }
    Ok(futures)
}

/// Submits a whole graph in one `UpdateGraph`, wanting `outputs`; returns
/// those keys, each counted once more (the caller makes the futures).
pub(crate) fn submit_graph(core: &Arc<Core>, tasks: Vec<TaskSpec>, outputs: Vec<Key>) -> Result<Vec<Key>, Error> {
    core.check_connected()?;
    let bytes: u64 =
        tasks.iter().map(task_bytes).sum::<u64>() + outputs.iter().map(|k| k.len() as u64 + 8).sum::<u64>();
    check_fits(bytes, &core.limits, || format!("a graph of {} tasks", tasks.len()))?;
    let function = tasks.last().map(|t| t.function.clone()).unwrap_or_default();
    add_refs(core, &outputs, &function);
    core.send(FromClient::UpdateGraph {
        tasks,
        wanted: outputs.clone(),
    })?;
    Ok(outputs)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_default_limits_refuse_what_the_default_scheduler_would() {
        let limits = FrameLimits::default();
        let mib = 1024 * 1024;
        let err = check_fits(300 * mib, &limits, || "x".into()).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("max_header_bytes"), "{msg}");
        assert!(msg.contains("256"), "{msg}");
        assert!(check_fits(200 * mib, &limits, || "x".into()).is_ok());
        assert_eq!(
            header_budget(&limits),
            u64::from(crate::wire::codec::DEFAULT_MAX_HEADER_BYTES)
        );
    }
}
