//! Settings shared by the criterion benchmarks: short enough that the whole
//! suite runs in about a minute on the 2-core machine, and the fixtures
//! several benchmarks build. Each bench file uses a subset.
#![allow(dead_code)]

use std::time::Duration;

use criterion::Criterion;

/// Samples per benchmark.
pub const SAMPLE_SIZE: usize = 20;
/// Warm-up time per benchmark.
pub const WARM_UP: Duration = Duration::from_secs(1);
/// Measurement time per benchmark.
pub const MEASUREMENT: Duration = Duration::from_secs(3);

/// The criterion configuration every benchmark uses.
pub fn config() -> Criterion {
    Criterion::default()
        .sample_size(SAMPLE_SIZE)
        .warm_up_time(WARM_UP)
        .measurement_time(MEASUREMENT)
}

/// The function every benchmarked task calls.
pub const FUNCTION: &str = "rdask::builtins::inc";

/// Registers `nworkers` one-thread workers (ids 1..=nworkers) that have
/// [`FUNCTION`].
pub fn add_workers(s: &mut rdask::scheduler::state::SchedulerState, nworkers: usize) {
    use rdask::scheduler::state::{Outbox, WorkerId, WorkerRegistration};
    let mut out = Outbox::default();
    for w in 0..nworkers {
        s.add_worker(
            WorkerId(w as u64 + 1),
            WorkerRegistration {
                name: format!("w{w}"),
                address: format!("tcp://10.0.{}.{}:40000", w / 250, w % 250),
                nthreads: 1,
                memory_limit: 0,
                functions: vec![FUNCTION.to_string()],
                resources: Vec::new(),
                restarted: None,
                nanny: false,
                keys: Vec::new(),
            },
            &mut out,
        )
        .expect("register worker");
    }
}

/// The key of the benchmark's `i`-th task.
pub fn task_key(i: usize) -> String {
    format!("inc-{:016x}", i as u64 * 0x9e37_79b9)
}

/// A `ComputeTask` of `inc(i)` under `key`, with no dependencies.
pub fn compute_task(key: String, i: usize) -> rdask::wire::messages::ToWorker {
    rdask::wire::messages::ToWorker::ComputeTask {
        key,
        function: FUNCTION.to_string(),
        args: vec![rdask::wire::messages::Arg::Value(
            rmp_serde::to_vec(&(i as i64)).expect("encode an int"),
        )],
        dependencies: Vec::new(),
        priority: 0,
        sequence: i as u64,
        resources: Vec::new(),
        run_id: i as u64 + 1,
    }
}

/// The scheduler settings of the benchmarks: unmeasured tasks assumed short
/// (0.5 ms) and no `worker_saturation` cap, so a batch of root tasks is
/// placed on workers rather than queued at the scheduler, which is the
/// decision being measured.
pub fn scheduler_config() -> rdask::scheduler::state::SchedulerConfig {
    rdask::scheduler::state::SchedulerConfig {
        default_task_duration_s: 0.0005,
        worker_saturation: f64::INFINITY,
        ..Default::default()
    }
}
