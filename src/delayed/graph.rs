//! The lazy graph: nodes shared through `Arc`, their deterministic keys, and
//! the walk that turns the part of the graph reachable from the requested
//! outputs into task specs (unreached tasks are never visited: that is
//! Dask's `cull`).

use std::sync::Arc;

use serde_bytes::ByteBuf;

use crate::util::{FxMap, FxSet};
use crate::wire::messages::{Arg, Key};

/// One call in a lazy graph.
#[doc(hidden)]
pub struct Node {
    /// Deterministic: the function and the arguments' hashes (values' bytes,
    /// dependencies' keys), so the same call built twice is one task.
    pub(crate) key: Key,
    /// The registered function's name.
    pub(crate) function: &'static str,
    /// Its arguments.
    pub(crate) args: Vec<DArg>,
    /// Why an argument could not be encoded (then `args` is empty): computing
    /// a graph that holds this node fails with it.
    pub(crate) error: Option<String>,
}

/// An argument of a lazy call.
#[doc(hidden)]
pub enum DArg {
    /// An encoded value, or a key the cluster already knows (a future's),
    /// exactly as sent.
    Wire(Arg),
    /// Another lazy call's result.
    Node(Arc<Node>),
    /// A list of lazy results, passed as one list.
    Nodes(Vec<Arc<Node>>),
    /// A map of lazy results (each map key encoded on its own).
    NodeMap(Vec<(ByteBuf, Arc<Node>)>),
    /// A future's key, with the future kept alive until the graph is gone.
    Future(Key, Arc<dyn crate::client::HeldFuture>),
}

impl DArg {
    /// The lazy nodes this argument depends on.
    pub(crate) fn nodes(&self) -> impl Iterator<Item = &Arc<Node>> {
        type Parts<'a> = (Option<&'a Arc<Node>>, &'a [Arc<Node>], &'a [(ByteBuf, Arc<Node>)]);
        let (one, many, map): Parts<'_> = match self {
            DArg::Node(n) => (Some(n), &[], &[]),
            DArg::Nodes(ns) => (None, ns, &[]),
            DArg::NodeMap(m) => (None, &[], m),
            DArg::Wire(_) | DArg::Future(..) => (None, &[], &[]),
        };
        one.into_iter().chain(many.iter()).chain(map.iter().map(|(_, n)| n))
    }

    /// The wire form, dependencies by key.
    pub(crate) fn to_wire(&self) -> Arg {
        match self {
            DArg::Wire(a) => a.clone(),
            DArg::Node(n) => Arg::Key(n.key.clone()),
            DArg::Nodes(ns) => Arg::Keys(ns.iter().map(|n| n.key.clone()).collect()),
            DArg::NodeMap(m) => Arg::KeyMap(m.iter().map(|(k, n)| (k.clone(), n.key.clone())).collect()),
            DArg::Future(k, _) => Arg::Key(k.clone()),
        }
    }

    /// Bytes that identify this argument in its call's key; a tag first,
    /// so a value and a key with the same bytes differ.
    fn hash_part(&self) -> Vec<u8> {
        match self {
            DArg::Wire(Arg::Value(v)) => [&b"v"[..], v].concat(),
            other => [&b"k"[..], &other.to_wire().hash_part()].concat(),
        }
    }
}

/// `<function's short name>-<16 hex digits>`: Dask's `tokenize` in spirit.
pub(crate) fn node_key(function: &str, args: &[DArg]) -> Key {
    let parts: Vec<Vec<u8>> = args.iter().map(DArg::hash_part).collect();
    let mut all: Vec<&[u8]> = vec![function.as_bytes()];
    all.extend(parts.iter().map(|p| &p[..]));
    let short = function.rsplit("::").next().unwrap_or(function);
    format!("{short}-{:016x}", crate::util::fnv1a64(&all))
}

/// The graph reachable from some outputs, each node once, dependencies
/// before dependents. Iterative, so a chain of a million calls does not
/// overflow the stack.
pub(crate) struct Graph {
    /// Nodes in dependency order.
    pub(crate) nodes: Vec<Arc<Node>>,
    /// Position of each key in `nodes`. Fx-hashed (see [`FxMap`]): SipHash
    /// stood out in profiles of planning a large graph.
    pub(crate) index: FxMap<Key, usize>,
}

impl Graph {
    /// Collects what `outputs` need.
    pub(crate) fn collect<'a>(outputs: impl IntoIterator<Item = &'a Arc<Node>>) -> Graph {
        let mut nodes: Vec<Arc<Node>> = Vec::new();
        let mut index: FxMap<Key, usize> = FxMap::default();
        // (node, whether its dependencies were pushed already)
        let mut stack: Vec<(Arc<Node>, bool)> = outputs.into_iter().map(|n| (n.clone(), false)).collect();
        stack.reverse();
        let mut seen: FxSet<Key> = FxSet::default();
        while let Some((n, expanded)) = stack.pop() {
            if expanded {
                if !index.contains_key(&n.key) {
                    index.insert(n.key.clone(), nodes.len());
                    nodes.push(n);
                }
                continue;
            }
            if !seen.insert(n.key.clone()) {
                continue;
            }
            stack.push((n.clone(), true));
            for a in n.args.iter().rev() {
                for d in a.nodes() {
                    if !seen.contains(&d.key) {
                        stack.push((d.clone(), false));
                    }
                }
            }
        }
        Graph { nodes, index }
    }

    /// How many calls in the graph use each node's result (a list counts
    /// each time it names the node).
    pub(crate) fn dependents(&self) -> Vec<u32> {
        let mut count = vec![0u32; self.nodes.len()];
        for n in &self.nodes {
            for a in &n.args {
                for d in a.nodes() {
                    if let Some(&i) = self.index.get(&d.key) {
                        count[i] += 1;
                    }
                }
            }
        }
        count
    }
}
