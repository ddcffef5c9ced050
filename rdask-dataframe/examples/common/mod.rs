//! Shared by the data frame benchmark examples: the process helpers of
//! `rdask-devkit`, and rounding for their JSON lines.
#![allow(dead_code)]

pub use rdask_devkit::{arg, loadavg1, Children, STARTUP};

/// Seconds rounded to milliseconds.
pub fn round(x: f64) -> f64 {
    (x * 1000.0).round() / 1000.0
}
