//! The [`Registry`] of functions a worker can run: the built-ins plus every
//! `#[task]` linked into the binary.
//!
//! It sits apart from `task.rs` because it needs the built-ins, and the
//! built-ins are themselves `#[task]`s: keeping it there made `task` and
//! `builtins` import each other.

use std::collections::HashMap;
use std::sync::OnceLock;

use crate::task::{Task, TaskEntry, TaskFn};

/// Functions a worker can run: the `#[task]`s linked into this binary plus the
/// built-ins.
#[derive(Clone, Debug, Default)]
pub struct Registry {
    functions: HashMap<&'static str, TaskEntry>,
}

impl Registry {
    /// An empty registry (for tests or workers with a hand-picked set).
    pub fn new() -> Registry {
        Registry::default()
    }

    /// The process-wide registry, built on first use: the built-ins plus
    /// every `#[task]` that `inventory` collected.
    pub fn global() -> &'static Registry {
        static GLOBAL: OnceLock<Registry> = OnceLock::new();
        GLOBAL.get_or_init(|| {
            let mut r = Registry::new();
            // Added explicitly: the linker may drop inventory entries of an
            // rlib whose statics nothing references.
            for e in crate::builtins::ENTRIES {
                r.register(*e);
            }
            r.register(crate::delayed::fuse::FUSED_ENTRY);
            for e in crate::bag::RUNNERS
                .iter()
                .chain(crate::bag::TASKS)
                .chain(crate::shuffle::RUNNERS)
            {
                r.register(*e);
            }
            // The same name registered twice is the same function (a
            // built-in seen both ways), so overwriting is harmless.
            for e in inventory::iter::<TaskEntry> {
                r.register(*e);
            }
            r
        })
    }

    /// Adds (or replaces) a function.
    pub fn register(&mut self, entry: TaskEntry) {
        self.functions.insert(entry.name, entry);
    }

    /// Adds (or replaces) a task type.
    pub fn register_task<T: Task>(&mut self) {
        self.register(TaskEntry::of::<T>());
    }

    /// The function registered under `name`.
    pub fn get(&self, name: &str) -> Option<TaskFn> {
        self.functions.get(name).map(|e| e.call)
    }

    /// The entry registered under `name` (with its shared-memory form).
    pub fn entry(&self, name: &str) -> Option<TaskEntry> {
        self.functions.get(name).copied()
    }

    /// Whether `name` is registered.
    pub fn contains(&self, name: &str) -> bool {
        self.functions.contains_key(name)
    }

    /// Registered names, sorted (announced by workers when they register).
    pub fn names(&self) -> Vec<String> {
        let mut names: Vec<String> = self.functions.keys().map(|s| s.to_string()).collect();
        names.sort_unstable();
        names
    }

    /// Number of functions.
    pub fn len(&self) -> usize {
        self.functions.len()
    }

    /// Whether there are none.
    pub fn is_empty(&self) -> bool {
        self.functions.is_empty()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::builtins::{add, ENTRIES};

    #[test]
    fn local_registry() {
        let mut r = Registry::new();
        assert!(r.is_empty());
        r.register_task::<add>();
        r.register_task::<add>();
        assert_eq!(r.len(), 1);
        assert!(r.contains(<add as Task>::NAME));
        assert!(r.get("nope").is_none());
    }

    /// Registered through `inventory` only (it is in no `ENTRIES` list).
    #[rdask_macros::task(crate = "crate")]
    fn only_in_inventory() -> u8 {
        1
    }

    #[test]
    fn inventory_collects_user_tasks() {
        assert!(Registry::global().contains(<only_in_inventory as Task>::NAME));
    }

    #[test]
    fn registry_has_builtins() {
        let names = Registry::global().names();
        for e in ENTRIES {
            assert!(names.iter().any(|n| n == e.name), "{} missing", e.name);
        }
        assert!(names.contains(&"rdask::builtins::shell".to_string()));
        assert!(names.windows(2).all(|w| w[0] < w[1]), "sorted");
        assert!(Registry::global().get("rdask::builtins::add").is_some());
        for bag in [
            "rdask::bag::pipeline",
            "rdask::bag::frequencies",
            "rdask::bag::json_loads",
        ] {
            assert!(names.iter().any(|n| n == bag), "{bag} missing");
        }
    }
}
