//! Graph intake: `UpdateGraph` (new tasks, dependencies, cycles, graph
//! order); scatters are in `scatter.rs`.

use std::collections::VecDeque;
use std::sync::Arc;

use super::ids::{FnId, TaskId, TaskRef};
use super::state::SchedulerState;
use super::tasks::{Extra, TaskSlot};
use super::types::{ClientId, Outbox, Outgoing, TaskState};
use crate::util::FxMap;
use crate::wire::messages::{Arg, ErrorKind, Key, TaskFailure, TaskSpec, ToClient};

impl SchedulerState {
    pub(super) fn update_graph(&mut self, c: ClientId, tasks: Vec<TaskSpec>, wanted: Vec<Key>, out: &mut Outbox) {
        if let Some(j) = self.journal.as_mut() {
            j.push(super::journal::JournalRecord::Submit { tasks: tasks.clone() });
        }
        let (created, order) = self.intake(tasks, out);
        // 6. Schedule, dependencies first.
        for &t in &order {
            self.wake(t, out);
        }
        // 7. Wanted keys.
        for key in wanted {
            match self.task_id(&key) {
                Some(t) => self.want(c, t, out),
                None => out.messages.push(Outgoing::Client(
                    c,
                    ToClient::TaskErred {
                        failure: TaskFailure {
                            kind: ErrorKind::DataLost,
                            message: format!("key {key:?} is not known to the scheduler"),
                        },
                        key,
                    },
                )),
            }
        }
        // 8. New tasks nobody needs go away at `finish`.
        self.candidates.extend(created);
    }

    /// Steps 1 to 5 of `update_graph`: creates the tasks of keys not known
    /// yet, linked to their dependencies, in `released`; errs those whose
    /// dependencies are unknown or cyclic. Returns the tasks created and
    /// those of them in topological order (the cyclic ones left out).
    pub(super) fn intake(&mut self, tasks: Vec<TaskSpec>, out: &mut Outbox) -> (Vec<TaskId>, Vec<TaskId>) {
        // 1. Create the new tasks (an existing key is kept as is).
        let mut created: Vec<TaskId> = Vec::new();
        for spec in tasks {
            if self.task_id(&spec.key).is_some() {
                continue;
            }
            let f = self.intern_fn(&spec.function);
            created.push(self.alloc_task(spec, false, f));
        }
        // 2. Link dependencies (they may come later in the batch).
        let mut missing: Vec<(TaskId, Key)> = Vec::new();
        let mut self_dep: Vec<TaskId> = Vec::new();
        for &t in &created {
            let mut deps: Vec<TaskId> = Vec::new();
            let mut missing_key = None;
            for k in self.slot(t).args.iter().flat_map(Arg::keys) {
                match self.task_id(k) {
                    Some(d) if d == t => self_dep.push(t),
                    Some(d) => deps.push(d),
                    None => {
                        if missing_key.is_none() {
                            missing_key = Some(k.clone());
                        }
                    }
                }
            }
            deps.sort_unstable();
            deps.dedup();
            let gen = self.slot(t).gen;
            for &d in &deps {
                let ds = self.slot_mut(d);
                ds.dependents.push(TaskRef { id: t, gen });
                ds.live_dependents += 1;
            }
            self.slot_mut(t).dependencies = deps;
            if let Some(k) = missing_key {
                missing.push((t, k));
            }
        }
        // 3. Topological order of the batch (Kahn); what is left is in or
        //    behind a cycle.
        let pos: FxMap<TaskId, usize> = created.iter().enumerate().map(|(i, &t)| (t, i)).collect();
        let mut indeg: Vec<u32> = created
            .iter()
            .map(|&t| self.slot(t).dependencies.iter().filter(|d| pos.contains_key(d)).count() as u32)
            .collect();
        for &t in &self_dep {
            indeg[pos[&t]] += 1;
        }
        let mut ready: VecDeque<TaskId> = created.iter().copied().filter(|t| indeg[pos[t]] == 0).collect();
        let mut order = Vec::with_capacity(created.len());
        while let Some(t) = ready.pop_front() {
            order.push(t);
            // All dependents of a new task are new, and live.
            for r in 0..self.slot(t).dependents.len() {
                let d = self.slot(t).dependents[r].id;
                if let Some(&i) = pos.get(&d) {
                    indeg[i] -= 1;
                    if indeg[i] == 0 {
                        ready.push_back(d);
                    }
                }
            }
        }
        // 4. Errors found at submission.
        for (t, k) in missing {
            let message = format!(
                "dependency {:?} of {:?} is not known to the scheduler",
                k,
                self.slot(t).key
            );
            self.mark_data_lost(t, message, out);
        }
        if order.len() < created.len() {
            let cyclic: Vec<TaskId> = created.iter().copied().filter(|t| indeg[pos[t]] > 0).collect();
            // Unlink them so that they can be forgotten later.
            for &t in &cyclic {
                let deps = std::mem::take(&mut self.slot_mut(t).dependencies);
                for d in deps {
                    let ds = self.slot_mut(d);
                    ds.dependents.retain(|r| r.id != t);
                    ds.live_dependents -= 1;
                    self.candidates.push(d);
                }
            }
            for &t in &cyclic {
                if self.slot(t).state != TaskState::Erred {
                    let message = format!(
                        "task {:?} is part of, or depends on, a dependency cycle",
                        self.slot(t).key
                    );
                    self.mark_erred(
                        t,
                        Arc::new(TaskFailure {
                            kind: ErrorKind::Failed,
                            message,
                        }),
                        out,
                    );
                }
            }
        }
        // 5. Graph order: a task takes the latest sequence among its
        //    dependencies of this batch, so that it sorts right after the
        //    last of them instead of after every task of the batch. When it
        //    becomes ready it runs ahead of the leaves submitted later:
        //    reductions finish branch by branch (depth-first), freeing their
        //    inputs, as Dask's `order` intends. `order` is topological, so
        //    dependencies are renumbered first.
        for &t in &order {
            let inherited = self
                .slot(t)
                .dependencies
                .iter()
                .filter(|d| pos.contains_key(d))
                .map(|&d| self.slot(d).sequence)
                .max();
            if let Some(seq) = inherited {
                self.slot_mut(t).sequence = seq;
            }
        }
        (created, order)
    }

    pub(super) fn alloc_task(&mut self, spec: TaskSpec, scattered: bool, func: FnId) -> TaskId {
        let sequence = self.next_sequence;
        self.next_sequence += 1;
        let extra = if spec.workers.is_empty() && spec.resources.is_empty() {
            None
        } else {
            Some(Box::new(Extra {
                restrictions: spec.workers,
                allow_other_workers: spec.allow_other_workers,
                resources: spec.resources,
                ..Default::default()
            }))
        };
        let mut slot = TaskSlot {
            key: spec.key,
            gen: 0,
            state: TaskState::Released,
            scattered,
            func,
            priority: spec.priority,
            retries: spec.retries,
            sequence,
            waiting_on: 0,
            active_dependents: 0,
            live_dependents: 0,
            args: spec.args.into_iter().collect(),
            dependencies: Vec::new(),
            dependents: Vec::new(),
            wanted_by: Default::default(),
            processing_on: None,
            run: 0,
            who_has: Default::default(),
            nbytes: 0,
            inline: None,
            extra,
        };
        let t = if let Some(t) = self.free_tasks.pop() {
            slot.gen = self.slot(t).gen;
            self.tasks[t.0 as usize] = slot;
            t
        } else {
            self.tasks.push(slot);
            TaskId(self.tasks.len() as u32 - 1)
        };
        self.counts[TaskState::Released.index()] += 1;
        self.fns[func as usize].counts[TaskState::Released.index()] += 1;
        // The key lives once, in the slot; the index reads it from there.
        self.keys.insert(&self.tasks[t.0 as usize].key, t.0);
        t
    }
}
