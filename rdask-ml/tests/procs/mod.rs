//! Shared by the rdask-ml tests: real `rdask-ml scheduler` / `rdask-ml
//! worker` processes (the `rdask` command line with this crate's kernels
//! linked in) reached over TCP, killed when the test ends; and seeded
//! Gaussian blobs.
#![allow(dead_code)]

use std::process::Stdio;

use rand_core::{Rng, SeedableRng};
use rand_xorshift::XorShiftRng;
use rdask_array::ndarray::Array2;

pub use rdask_devkit::{Proc, STARTUP};

/// Starts `rdask-ml ARGS` and returns it with the address it prints.
pub fn start(args: &[&str]) -> (Proc, String) {
    rdask_devkit::start(env!("CARGO_BIN_EXE_rdask-ml"), args, Stdio::null())
        .expect("rdask-ml starts and says where it listens")
}

/// A scheduler and two 1-thread workers; returns them and a client.
pub fn cluster() -> (Vec<Proc>, rdask::Client) {
    let (s, addr) = start(&["scheduler", "--host", "127.0.0.1", "--port", "0"]);
    let (w1, _) = start(&["worker", &addr, "--name", "w1", "--nthreads", "1"]);
    let (w2, _) = start(&["worker", &addr, "--name", "w2", "--nthreads", "1"]);
    let client = rdask::Client::connect(&addr).expect("client connects");
    client.wait_for_workers(2, STARTUP).expect("workers join");
    (vec![s, w1, w2], client)
}

/// A standard normal number (Box–Muller).
pub fn normal(rng: &mut XorShiftRng) -> f64 {
    const SCALE: f64 = 1.0 / (1u64 << 53) as f64;
    let u1 = ((rng.next_u64() >> 11) as f64 + 1.0) * SCALE;
    let u2 = (rng.next_u64() >> 11) as f64 * SCALE;
    (-2.0 * u1.ln()).sqrt() * (std::f64::consts::TAU * u2).cos()
}

/// `n` points of `d` features around `k` centres spread `spread` apart
/// (unit-variance blobs); returns the points and the true centres.
pub fn blobs(n: usize, d: usize, k: usize, spread: f64, seed: u64) -> (Array2<f64>, Array2<f64>) {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    let centres = Array2::from_shape_fn((k, d), |_| spread * normal(&mut rng));
    let x = Array2::from_shape_fn((n, d), |(i, j)| centres[[i % k, j]] + normal(&mut rng));
    (x, centres)
}

/// An ndarray 0.17 matrix as linfa's ndarray (0.16), through a Vec.
pub fn to16(a: &Array2<f64>) -> ndarray16::Array2<f64> {
    ndarray16::Array2::from_shape_vec(a.dim(), a.iter().copied().collect()).expect("same shape")
}

/// Back from linfa's ndarray.
pub fn from16(a: &ndarray16::Array2<f64>) -> Array2<f64> {
    Array2::from_shape_vec(a.dim(), a.iter().copied().collect()).expect("same shape")
}
