//! Peer-to-peer shuffles (Dask's `distributed.shuffle`, `shuffle="p2p"`):
//! every row of every input partition moves to the output partition a
//! collection's split function chooses, with the scheduler seeing
//! O(partitions) tasks instead of the task shuffle's O(partitions²).
//!
//! ```text
//! input i ──► transfer i ──┐                   ┌──► unpack 0 (on owner 0)
//!   (split into shards,    ├──► barrier ───────┼──► unpack 1 (on owner 1)
//!    each sent to the      │                   └──► …
//!    owner of its output) ─┘
//! ```
//!
//! - **transfer** (one per input partition, anywhere): calls the
//!   collection's registered split function, which cuts the partition into
//!   one opaque byte shard per output partition; asks the scheduler for the
//!   shuffle's current run (`CoordOp::ShuffleGetOrCreate`: a run id and the
//!   owner worker of each output, chosen deterministically when the first
//!   transfer asks); sends each owner its shards straight to its peer port
//!   (`ToPeer::ShuffleSend`), and returns the run id once every owner has
//!   stored them.
//! - **barrier** (one): checks every transfer used the same run.
//! - **unpack** (one per output partition, restricted by the scheduler to
//!   its owner): takes the shards the worker received for it, one per
//!   input in input order, and passes them to the collection's registered
//!   unpack function.
//!
//! Receivers keep shards in memory up to their `shuffle_buffer_bytes` (at
//! most a quarter of their `memory_limit`, when they have one) and in their
//! spill directory beyond ([`buffer`]). If a worker owning an
//! output leaves mid-shuffle, the scheduler ends the run ([`runs`]) and
//! resets the shuffle's transfer, barrier and running unpack tasks; the
//! transfers run again under a new run id, and shards of the old run are
//! refused: the shuffle restarts, as Dask's does.
//!
//! The tasks have fixed keys (`shuffle-transfer-<id>-<i>`,
//! `shuffle-barrier-<id>`, `shuffle-unpack-<id>-<j>`, `id` a hash of the
//! inputs and the functions) by which the scheduler finds them, and are
//! never fused with their neighbours. Wire formats: `docs/protocol.md` §10, "Peer-to-peer shuffles".

pub mod buffer;
pub mod runs;
pub(crate) mod tasks;

use serde::Serialize;
use serde_bytes::ByteBuf;

pub use buffer::{
    effective_buffer_bytes, BufferError, ShuffleBuffer, ShuffleReceiver, DEFAULT_SHUFFLE_BUFFER_BYTES,
    SHUFFLE_BUFFER_SHARE_OF_LIMIT,
};
pub use runs::ShuffleRuns;
pub(crate) use tasks::RUNNERS;

use crate::delayed::graph::{node_key, DArg};
use crate::delayed::{keyed_call, Delayed};
use crate::task::{encode_value, Task};
use crate::wire::messages::Arg;

/// Most output partitions of one shuffle (the owner list travels in one
/// coordination answer; a transfer sends this many shards).
pub const MAX_P2P_PARTITIONS: u32 = 1 << 20;

/// Registered name of the transfer runner.
pub const TRANSFER: &str = "rdask::shuffle::transfer";
/// Registered name of the barrier runner.
pub const BARRIER: &str = "rdask::shuffle::barrier";
/// Registered name of the unpack runner.
pub const UNPACK: &str = "rdask::shuffle::unpack";

/// Key prefixes by which the scheduler finds a shuffle's tasks.
pub const TRANSFER_PREFIX: &str = "shuffle-transfer-";
/// See [`TRANSFER_PREFIX`].
pub const BARRIER_PREFIX: &str = "shuffle-barrier-";
/// See [`TRANSFER_PREFIX`].
pub const UNPACK_PREFIX: &str = "shuffle-unpack-";

/// Whether a registered function is one of the shuffle's (never fused).
pub fn is_shuffle_function(name: &str) -> bool {
    name == TRANSFER || name == BARRIER || name == UNPACK
}

/// The key of transfer `i` of shuffle `id`.
pub fn transfer_key(id: &str, i: u32) -> String {
    format!("{TRANSFER_PREFIX}{id}-{i}")
}

/// The key of shuffle `id`'s barrier.
pub fn barrier_key(id: &str) -> String {
    format!("{BARRIER_PREFIX}{id}")
}

/// The key of unpack `j` of shuffle `id`.
pub fn unpack_key(id: &str, j: u32) -> String {
    format!("{UNPACK_PREFIX}{id}-{j}")
}

/// Why a shuffle cannot be built.
#[derive(Debug, thiserror::Error)]
pub enum ShuffleError {
    /// No input, no output, or too many outputs.
    #[error("{0}")]
    Invalid(String),
    /// An extra argument could not be encoded.
    #[error("encoding a shuffle argument: {0}")]
    Encode(String),
}

/// A peer-to-peer shuffle of `inputs` into `npartitions` outputs.
///
/// `split` is a registered function `(partition, npartitions: u32,
/// split_extra) -> Vec<ByteBuf>` giving exactly one shard per output
/// partition (an empty one where no row goes); `unpack` a registered
/// function `(shards: Vec<ByteBuf>, unpack_extra) -> O` building an output
/// partition from its shards, one per input in input order. Both run on
/// the workers, which must link them.
pub fn p2p<T, E, S, F, U>(
    inputs: &[Delayed<T>],
    _split: S,
    split_extra: &E,
    _unpack: U,
    unpack_extra: &F,
    npartitions: u32,
) -> Result<Vec<Delayed<U::Output>>, ShuffleError>
where
    E: Serialize,
    F: Serialize,
    S: Task<Args = (T, u32, E), Output = Vec<ByteBuf>>,
    U: Task<Args = (Vec<ByteBuf>, F)>,
{
    if inputs.is_empty() || npartitions == 0 || npartitions > MAX_P2P_PARTITIONS {
        return Err(ShuffleError::Invalid(format!(
            "a p2p shuffle needs at least one input and 1..={MAX_P2P_PARTITIONS} outputs (got {} inputs, {npartitions} outputs)",
            inputs.len()
        )));
    }
    let ninputs = u32::try_from(inputs.len())
        .map_err(|_| ShuffleError::Invalid(format!("{} inputs are too many", inputs.len())))?;
    let value = |v: &dyn erased::Encode| -> Result<DArg, ShuffleError> { Ok(DArg::Wire(Arg::Value(v.encode()?))) };
    let split_extra = value(&erased::Val(split_extra))?;
    let unpack_extra = value(&erased::Val(unpack_extra))?;
    // The id: a hash of everything that decides the outputs (functions,
    // extra arguments, counts, inputs), so two different shuffles never
    // share one and the same one built twice is one.
    let id_args: Vec<DArg> = vec![
        value(&erased::Val(&S::NAME))?,
        clone_arg(&split_extra),
        value(&erased::Val(&U::NAME))?,
        clone_arg(&unpack_extra),
        value(&erased::Val(&npartitions))?,
        DArg::Nodes(inputs.iter().map(|d| d.node.clone()).collect()),
    ];
    let hashed = node_key("shuffle", &id_args);
    let id = hashed.rsplit('-').next().unwrap_or(&hashed).to_string();
    let common = |i: u32| -> Result<Vec<DArg>, ShuffleError> {
        Ok(vec![
            value(&erased::Val(&id))?,
            value(&erased::Val(&i))?,
            value(&erased::Val(&ninputs))?,
            value(&erased::Val(&npartitions))?,
        ])
    };
    let mut transfers = Vec::with_capacity(inputs.len());
    for (i, input) in (0u32..).zip(inputs) {
        let mut args = common(i)?;
        args.push(value(&erased::Val(&S::NAME))?);
        args.push(clone_arg(&split_extra));
        args.push(DArg::Node(input.node.clone()));
        transfers.push(keyed_call::<u64>(transfer_key(&id, i), TRANSFER, args).node);
    }
    let barrier = keyed_call::<u64>(
        barrier_key(&id),
        BARRIER,
        vec![value(&erased::Val(&id))?, DArg::Nodes(transfers)],
    );
    let mut outputs = Vec::with_capacity(npartitions as usize);
    for j in 0..npartitions {
        let mut args = common(j)?;
        args.push(value(&erased::Val(&U::NAME))?);
        args.push(clone_arg(&unpack_extra));
        args.push(DArg::Node(barrier.node.clone()));
        outputs.push(keyed_call::<U::Output>(unpack_key(&id, j), UNPACK, args));
    }
    Ok(outputs)
}

fn clone_arg(a: &DArg) -> DArg {
    match a {
        DArg::Wire(w) => DArg::Wire(w.clone()),
        DArg::Node(n) => DArg::Node(n.clone()),
        DArg::Nodes(ns) => DArg::Nodes(ns.clone()),
        DArg::NodeMap(m) => DArg::NodeMap(m.clone()),
        DArg::Future(k, keep) => DArg::Future(k.clone(), keep.clone()),
    }
}

/// Encoding of values of any type behind one closure.
mod erased {
    use super::*;
    pub(super) trait Encode {
        fn encode(&self) -> Result<Vec<u8>, ShuffleError>;
    }
    pub(super) struct Val<'a, V: ?Sized>(pub &'a V);
    impl<V: Serialize + ?Sized> Encode for Val<'_, V> {
        fn encode(&self) -> Result<Vec<u8>, ShuffleError> {
            encode_value(self.0).map_err(|e| ShuffleError::Encode(e.to_string()))
        }
    }
}
