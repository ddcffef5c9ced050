//! The graph of the tasks the scheduler knows, coloured by state, for the
//! dashboard's graph page: built only when a page asks (every few seconds,
//! never per task), and only up to [`MAX_GRAPH_TASKS`]; a larger graph is
//! answered with its size alone and the page shows the per-function
//! summary instead.

use serde::Serialize;

use super::ids::TaskId;
use crate::util::FxMap;

/// Largest graph the page is sent node by node (a few thousand tasks draw
/// in a fraction of a second; more would cost the scheduler a large copy
/// at each refresh and show nothing a person could read).
pub const MAX_GRAPH_TASKS: usize = 5_000;

/// One task of the graph.
#[derive(Clone, Debug, Serialize)]
pub struct GraphNode {
    /// Its key.
    pub key: String,
    /// Its function.
    pub function: String,
    /// Its scheduler state (`waiting`, `processing`, `memory`, ...).
    pub state: &'static str,
}

/// The graph, or only its size when it is past the bound.
#[derive(Clone, Debug, Serialize)]
pub struct TaskGraphView {
    /// Tasks the scheduler knows.
    pub ntasks: u64,
    /// The bound the graph was checked against.
    pub max_tasks: u64,
    /// Whether `ntasks` is past it (then `nodes` and `edges` are empty).
    pub too_large: bool,
    /// The tasks.
    pub nodes: Vec<GraphNode>,
    /// Dependencies as (dependency, dependent), indices into `nodes`.
    pub edges: Vec<(u32, u32)>,
}

impl super::SchedulerState {
    /// The graph of the tasks it knows, if there are at most `max` of them.
    pub fn task_graph(&self, max: usize) -> TaskGraphView {
        let ntasks = self.keys.len();
        let mut view = TaskGraphView {
            ntasks: ntasks as u64,
            max_tasks: max as u64,
            too_large: ntasks > max,
            nodes: Vec::new(),
            edges: Vec::new(),
        };
        if view.too_large {
            return view;
        }
        let mut index: FxMap<TaskId, u32> = FxMap::default();
        let mut ids: Vec<TaskId> = self.keys.ids().map(TaskId).collect();
        ids.sort_by_key(|t| t.0);
        for &t in &ids {
            let s = self.slot(t);
            index.insert(t, view.nodes.len() as u32);
            view.nodes.push(GraphNode {
                key: s.key.to_string(),
                function: self.fns[s.func as usize].name.clone(),
                state: s.state.name(),
            });
        }
        for &t in &ids {
            let to = index[&t];
            for d in &self.slot(t).dependencies {
                if let Some(&from) = index.get(d) {
                    view.edges.push((from, to));
                }
            }
        }
        view
    }
}
