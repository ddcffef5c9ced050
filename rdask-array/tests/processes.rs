//! Arrays on real processes: a scheduler and two 1-thread workers, each the
//! `rdask-array` binary (the `rdask` command line with this crate's kernels
//! linked in), reached over TCP.

use std::process::Stdio;

use ndarray::{ArrayD, IxDyn, Slice};
use rdask::Client;
use rdask_array as da;

use rdask_devkit::{Proc, STARTUP};

/// Starts `rdask-array ARGS` and returns it with the address it prints.
fn start(args: &[&str]) -> (Proc, String) {
    rdask_devkit::start(env!("CARGO_BIN_EXE_rdask-array"), args, Stdio::null())
        .expect("rdask-array starts and says where it listens")
}

#[test]
fn arrays_compute_on_real_scheduler_and_worker_processes() -> Result<(), Box<dyn std::error::Error>> {
    let (_s, addr) = start(&["scheduler", "--host", "127.0.0.1", "--port", "0"]);
    let (_w1, _) = start(&["worker", &addr, "--name", "w1", "--nthreads", "1"]);
    let (_w2, _) = start(&["worker", &addr, "--name", "w2", "--nthreads", "1"]);
    let client = Client::connect(&addr)?;
    client.wait_for_workers(2, STARTUP)?;

    // The seed: x - x.mean(axis=1, keepdims=True), on uneven blocks.
    let x = da::random(&[70, 50], &[30, 20], 11)?;
    let xv = x.compute_local()?;
    let centered = (&x - &x.mean_axes(&[1], true)?)?;
    let want = &xv
        - &xv
            .mean_axis(ndarray::Axis(1))
            .ok_or("empty")?
            .insert_axis(ndarray::Axis(1));
    let got = centered.compute(&client)?;
    assert!(got.iter().zip(want.iter()).all(|(a, b)| (a - b).abs() < 1e-12));
    let std = centered.std(0.0).compute(&client)?.sum();
    assert!((std - want.std(0.0)).abs() < 1e-12, "{std} vs {}", want.std(0.0));

    // A matrix product, a slice, a transpose and an argmax, on the workers.
    let y = da::random(&[50, 40], &[15, 25], 12)?;
    let yv = y.compute(&client)?;
    let x2 = xv.view().into_dimensionality::<ndarray::Ix2>()?;
    let y2 = yv.view().into_dimensionality::<ndarray::Ix2>()?;
    let prod = x.matmul(&y)?.compute(&client)?;
    assert!(prod.iter().zip(x2.dot(&y2).iter()).all(|(a, b)| (a - b).abs() < 1e-9));
    let part = x
        .slice(&[Slice::new(3, Some(65), 4), Slice::new(-10, None, 1)])?
        .t()
        .compute(&client)?;
    assert_eq!(part, xv.slice(ndarray::s![3..65;4, 40..]).t().to_owned().into_dyn());
    let best = x.argmax().compute(&client)?.sum() as usize;
    assert_eq!(xv.iter().nth(best), xv.iter().copied().reduce(f64::max).as_ref());

    // Persisted blocks stay on the workers and feed the next graph.
    let kept = (&x * 3.0).persist(&client)?;
    assert_eq!(kept.sum_axes(&[0], false)?.compute(&client)?.shape(), &[50]);
    let zeros = ArrayD::<f64>::zeros(IxDyn(&[0]));
    assert_eq!(da::zeros(&[0], &[4])?.compute(&client)?, zeros);
    Ok(())
}
