//! Settings shared by the criterion benchmarks: short enough that the whole
//! suite runs in about a minute on the 2-core machine.

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
