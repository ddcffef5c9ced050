//! Every array operation against the same computation in plain ndarray, on
//! random inputs with uneven chunks and size-0 axes (proptest), each
//! computed both on the local thread pool and on an in-process
//! `LocalCluster` of two workers.

mod common;

use std::sync::OnceLock;

use common::*;
use ndarray::{ArrayD, IxDyn, Slice};
use proptest::prelude::*;
use rdask::{Client, LocalCluster};
use rdask_array::{self as da, Array, BinOp, UnOp};

/// One cluster for the whole test binary (starting one per case would
/// dominate the run).
fn client() -> &'static Client {
    static CLUSTER: OnceLock<(LocalCluster, Client)> = OnceLock::new();
    let pair = CLUSTER.get_or_init(|| {
        let cluster = LocalCluster::new(2).expect("local cluster starts");
        let client = cluster.client().expect("client connects");
        (cluster, client)
    });
    &pair.1
}

/// Computes `a` both ways and checks both against `want`.
fn check(a: &Array, want: &ArrayD<f64>) -> Result<(), TestCaseError> {
    let local = a.compute_local().map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(close(&local, want), "local: got {local:?}, want {want:?}");
    let remote = a.compute(client()).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert!(close(&remote, want), "cluster: got {remote:?}, want {want:?}");
    Ok(())
}

/// A sorted subset of the axes of an `ndim`-array picked by `mask`.
fn pick_axes(mask: u8, ndim: usize) -> Vec<usize> {
    (0..ndim).filter(|k| mask & (1 << k) != 0).collect()
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 24, ..ProptestConfig::default() })]

    #[test]
    fn from_array_round_trips_and_rechunks((a, chunks) in array_and_chunks(), new in prop::collection::vec(1usize..6, 3)) {
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        prop_assert_eq!(x.shape(), a.shape());
        check(&x, &a)?;
        let y = x.rechunk(&new[..a.ndim()]).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check(&y, &a)?;
    }

    #[test]
    fn scalar_and_unary_operations((a, chunks) in array_and_chunks(), s in -5.0f64..5.0) {
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check(&(&(&x * s) + 1.5), &(&a * s + 1.5))?;
        check(&(s - &x), &a.mapv(|v| s - v))?;
        check(&(&x / 4.0), &(&a / 4.0))?;
        check(&(-&x).map(UnOp::Abs), &a.mapv(f64::abs))?;
        check(&x.map(UnOp::Square).map(UnOp::Sqrt), &a.mapv(|v| (v * v).sqrt()))?;
        check(&x.scalar_op(BinOp::Maximum, s, false), &a.mapv(|v| v.max(s)))?;
    }

    #[test]
    fn binary_operations_broadcast(
        (a, chunks) in array_and_chunks(),
        ones in 0u8..8,
        drop in 0usize..3,
        other_chunks in prop::collection::vec(1usize..5, 3),
        seed in any::<u64>(),
    ) {
        // b: a's shape with some axes set to 1 and some leading axes dropped.
        let drop = drop.min(a.ndim() - 1);
        let shape: Vec<usize> = a.shape().iter().enumerate().skip(drop)
            .map(|(k, &l)| if ones & (1 << k) != 0 { 1 } else { l }).collect();
        let b = da::random(&shape, &other_chunks[..shape.len()], seed)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bv = b.compute_local().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check(&(&x - &b).map_err(|e| TestCaseError::fail(e.to_string()))?, &(&a - &bv))?;
        check(&(&b * &x).map_err(|e| TestCaseError::fail(e.to_string()))?, &(&bv * &a))?;
    }

    #[test]
    fn reductions_over_any_axes(
        (a, chunks) in array_and_chunks(),
        mask in 0u8..8,
        keepdims in any::<bool>(),
        split_every in 2usize..5,
    ) {
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?.split_every(split_every);
        let axes = pick_axes(mask, a.ndim());
        let ok = |r: Result<Array, da::Error>| r.map_err(|e| TestCaseError::fail(e.to_string()));
        check(&ok(x.sum_axes(&axes, keepdims))?, &squeeze(sum(&a, &axes), &axes, keepdims))?;
        check(&ok(x.mean_axes(&axes, keepdims))?, &squeeze(mean(&a, &axes), &axes, keepdims))?;
        check(&ok(x.var_axes(&axes, keepdims, 0.0))?, &squeeze(var(&a, &axes, 0.0), &axes, keepdims))?;
        check(&ok(x.std_axes(&axes, keepdims, 1.0))?, &squeeze(var(&a, &axes, 1.0).mapv(f64::sqrt), &axes, keepdims))?;
        if axes.iter().all(|&k| a.shape()[k] > 0) {
            check(&ok(x.min_axes(&axes, keepdims))?, &squeeze(fold(&a, &axes, f64::INFINITY, f64::min), &axes, keepdims))?;
            check(&ok(x.max_axes(&axes, keepdims))?, &squeeze(fold(&a, &axes, f64::NEG_INFINITY, f64::max), &axes, keepdims))?;
        } else {
            // NumPy refuses min/max of nothing; so does computing it here.
            prop_assert!(ok(x.min_axes(&axes, keepdims))?.compute_local().is_err());
        }
        check(&x.sum(), &ArrayD::from_elem(IxDyn(&[]), a.sum()))?;
    }

    #[test]
    fn reductions_of_element_wise_results(
        (a, chunks) in array_and_chunks(),
        mask in 0u8..8,
        keepdims in any::<bool>(),
        ones in 0u8..8,
        seed in any::<u64>(),
    ) {
        // A reduction right after `x op y` reduces the operands in the same
        // task (blockwise fusion); the values must not change.
        let shape: Vec<usize> = a.shape().iter().enumerate()
            .map(|(k, &l)| if ones & (1 << k) != 0 { 1 } else { l }).collect();
        let b = da::random(&shape, &[3, 2, 4][..shape.len()], seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let bv = b.compute_local().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?.split_every(3);
        let y = (&x - &b).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let yv = &a - &bv;
        let axes = pick_axes(mask, a.ndim());
        let ok = |r: Result<Array, da::Error>| r.map_err(|e| TestCaseError::fail(e.to_string()));
        check(&ok(y.sum_axes(&axes, keepdims))?, &squeeze(sum(&yv, &axes), &axes, keepdims))?;
        check(&ok(y.var_axes(&axes, keepdims, 1.0))?, &squeeze(var(&yv, &axes, 1.0), &axes, keepdims))?;
        check(&y.std(0.0), &ArrayD::from_elem(IxDyn(&[]), var(&yv, &(0..a.ndim()).collect::<Vec<_>>(), 0.0).sum().sqrt()))?;
        if !yv.is_empty() {
            check(&y.max(), &ArrayD::from_elem(IxDyn(&[]), yv.fold(f64::NEG_INFINITY, |m, &v| m.max(v))))?;
            if let Some(i) = arg_flat(&yv, false) {
                check(&y.argmin(), &ArrayD::from_elem(IxDyn(&[]), i as f64))?;
            }
        }
    }

    #[test]
    fn arg_reductions((a, chunks) in array_and_chunks(), axis in 0usize..3, ties in any::<bool>()) {
        // Rounded values make ties common, to check the first one wins.
        let a = if ties { a.mapv(|v| (v / 25.0).round()) } else { a };
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?.split_every(2);
        match arg_flat(&a, true) {
            Some(i) => check(&x.argmax(), &ArrayD::from_elem(IxDyn(&[]), i as f64))?,
            None => prop_assert!(x.argmax().compute_local().is_err()),
        }
        if let Some(i) = arg_flat(&a, false) {
            check(&x.argmin(), &ArrayD::from_elem(IxDyn(&[]), i as f64))?;
        }
        let axis = axis % a.ndim();
        if a.shape()[axis] > 0 {
            let got = x.argmax_axis(axis).map_err(|e| TestCaseError::fail(e.to_string()))?;
            check(&got, &arg_axis(&a, axis, true))?;
        }
    }

    #[test]
    fn slicing_with_steps(
        (a, chunks) in array_and_chunks(),
        cuts in prop::collection::vec((-8isize..8, prop::option::of(-8isize..9), 1isize..4), 3),
    ) {
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let slices: Vec<Slice> = cuts[..a.ndim()].iter().map(|&(s, e, st)| Slice::new(s, e, st)).collect();
        // NumPy's clamping of out-of-range bounds, then ndarray's slicing.
        let clamp = |i: isize, len: usize| if i < 0 { (len as isize + i).max(0) } else { i.min(len as isize) };
        let want = a.slice_each_axis(|ax| {
            let (k, len) = (ax.axis.index(), ax.len);
            let s = slices[k];
            let start = clamp(s.start, len);
            let end = s.end.map_or(len as isize, |e| clamp(e, len)).max(start);
            Slice::new(start, Some(end), s.step)
        }).to_owned();
        check(&x.slice(&slices).map_err(|e| TestCaseError::fail(e.to_string()))?, &want)?;
    }

    #[test]
    fn transpose_and_matmul(
        (a, chunks) in array_and_chunks(),
        (m, k, n) in (0usize..7, 0usize..7, 0usize..7),
        (c1, c2, c3, c4) in (1usize..4, 1usize..4, 1usize..4, 1usize..4),
        seed in any::<u64>(),
    ) {
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        check(&x.t(), &a.t().to_owned())?;
        let p = da::random(&[m, k], &[c1, c2], seed).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let q = da::random(&[k, n], &[c3, c4], seed ^ 1).map_err(|e| TestCaseError::fail(e.to_string()))?.split_every(2);
        let (pv, qv) = (p.compute_local().map_err(|e| TestCaseError::fail(e.to_string()))?, q.compute_local().map_err(|e| TestCaseError::fail(e.to_string()))?);
        let pv2 = pv.view().into_dimensionality::<ndarray::Ix2>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        let qv2 = qv.view().into_dimensionality::<ndarray::Ix2>().map_err(|e| TestCaseError::fail(e.to_string()))?;
        check(&q.clone().split_every(3).t().matmul(&p.t()).map_err(|e| TestCaseError::fail(e.to_string()))?, &qv2.t().dot(&pv2.t()).into_dyn())?;
        check(&p.dot(&q).map_err(|e| TestCaseError::fail(e.to_string()))?, &pv2.dot(&qv2).into_dyn())?;
    }

    #[test]
    fn the_seed_centering((a, chunks) in array_and_chunks()) {
        // x - x.mean(axis=-1, keepdims=True), then its std.
        let last = a.ndim() - 1;
        let x = da::from_array(&a, &chunks).map_err(|e| TestCaseError::fail(e.to_string()))?;
        let centered = (&x - &x.mean_axes(&[last], true).map_err(|e| TestCaseError::fail(e.to_string()))?)
            .map_err(|e| TestCaseError::fail(e.to_string()))?;
        let want = &a - &mean(&a, &[last]);
        check(&centered, &want)?;
        check(&centered.std(0.0), &ArrayD::from_elem(IxDyn(&[]), var(&want, &(0..a.ndim()).collect::<Vec<_>>(), 0.0).sum().sqrt()))?;
    }
}

#[test]
fn creation_functions_match_ndarray() -> Result<(), da::Error> {
    let z = da::zeros(&[5, 3], &[2, 2])?;
    assert_eq!(z.chunks(), &vec![vec![2, 2, 1], vec![2, 1]]);
    assert_eq!(z.compute_local()?, ArrayD::<f64>::zeros(IxDyn(&[5, 3])));
    assert_eq!(
        da::ones(&[4], &[3])?.compute(client())?,
        ArrayD::<f64>::ones(IxDyn(&[4]))
    );
    let r = da::arange(1.0, 10.0, 2.0, 2)?;
    assert_eq!(
        r.compute_local()?.into_raw_vec_and_offset().0,
        vec![1.0, 3.0, 5.0, 7.0, 9.0]
    );
    assert_eq!(da::arange(0.0, 0.0, 1.0, 4)?.shape(), &[0]);
    assert!(da::zeros(&[3], &[0]).is_err());
    Ok(())
}

#[test]
fn random_blocks_are_reproducible_per_block() -> Result<(), da::Error> {
    let x = da::random(&[10, 7], &[4, 3], 7)?.compute_local()?;
    assert_eq!(x, da::random(&[10, 7], &[4, 3], 7)?.compute(client())?);
    assert_ne!(x, da::random(&[10, 7], &[4, 3], 8)?.compute_local()?);
    assert!(x.iter().all(|v| (0.0..1.0).contains(v)));
    // A block computed alone is the same block.
    let alone = da::random(&[10, 7], &[4, 3], 7)?
        .block(&[1, 2])
        .cloned()
        .expect("block (1, 2)");
    let alone = alone.compute_local()?.into_inner();
    assert_eq!(alone, x.slice(ndarray::s![4..8, 6..7]).to_owned().into_dyn());
    let mean = x.mean().unwrap_or(f64::NAN);
    assert!((mean - 0.5).abs() < 0.15, "mean {mean}");
    Ok(())
}

#[test]
fn from_fn_calls_a_registered_block_function() -> Result<(), da::Error> {
    let x = da::from_fn(index_sum, &[5, 4], &[2, 3])?;
    let want = ArrayD::from_shape_fn(IxDyn(&[5, 4]), |i| (i[0] * 10 + i[1]) as f64);
    assert_eq!(x.compute_local()?, want);
    assert_eq!(x.map_blocks(double).compute(client())?, want.mapv(|v| v * 2.0));
    Ok(())
}

/// Element `(i, j)` is `10 i + j`, made a block at a time.
#[rdask::task]
fn index_sum(offset: Vec<usize>, shape: Vec<usize>) -> da::Chunk {
    da::Chunk(ArrayD::from_shape_fn(IxDyn(&shape), |i| {
        ((offset[0] + i[0]) * 10 + offset[1] + i[1]) as f64
    }))
}

/// Doubles a block.
#[rdask::task]
fn double(c: da::Chunk) -> da::Chunk {
    da::Chunk(c.0 * 2.0)
}

#[test]
fn chunks_encode_as_raw_bytes() {
    let c = da::Chunk(ArrayD::from_shape_fn(IxDyn(&[100, 10]), |i| i[0] as f64 + 0.5));
    let bytes = rdask::task::encode_value(&c).expect("encodes");
    // 8 bytes per element plus a few of header and shape.
    assert!(bytes.len() < 8 * 1000 + 32, "{} bytes", bytes.len());
    let back: da::Chunk = rdask::task::decode_value(&bytes).expect("decodes");
    assert_eq!(back, c);
    // A transposed (non-standard layout) block encodes in logical order.
    let t = da::Chunk(c.0.clone().reversed_axes());
    let back: da::Chunk = rdask::task::decode_value(&rdask::task::encode_value(&t).expect("encodes")).expect("decodes");
    assert_eq!(back.0, c.0.t().to_owned());
    let empty = da::Chunk(ArrayD::zeros(IxDyn(&[0, 3])));
    let back: da::Chunk =
        rdask::task::decode_value(&rdask::task::encode_value(&empty).expect("encodes")).expect("decodes");
    assert_eq!(back, empty);
}

#[test]
fn errors_say_what_does_not_fit() -> Result<(), da::Error> {
    let x = da::ones(&[4, 3], &[2, 2])?;
    let y = da::ones(&[4, 2], &[2, 2])?;
    assert!((&x - &y).unwrap_err().to_string().contains("broadcast"));
    assert!(x.matmul(&x).is_err());
    assert!(x.sum_axes(&[2], false).is_err());
    assert!(x.slice(&[Slice::new(0, None, -1)]).is_err());
    assert!(x.permute(&[0, 0]).is_err());
    assert!(x.rechunk_to(vec![vec![3], vec![3]]).is_err());
    Ok(())
}

#[test]
fn npy_stacks_round_trip() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let a = ArrayD::from_shape_fn(IxDyn(&[7, 5]), |i| (i[0] * 5 + i[1]) as f64 / 3.0);
    let x = da::from_array(&a, &[3, 2])?;
    let written = x.to_npy_stack(dir.path())?.compute(client())?;
    assert_eq!(written.len(), 3 * 3);
    // Each file is a plain .npy a NumPy reader takes.
    let first: ArrayD<f64> = ndarray_npy_read(&dir.path().join("0.0.npy"))?;
    assert_eq!(first, a.slice(ndarray::s![0..3, 0..2]).to_owned().into_dyn());
    let back = da::from_npy_stack(dir.path())?;
    assert_eq!(back.chunks(), x.chunks());
    assert_eq!(back.compute_local()?, a);
    std::fs::remove_file(dir.path().join("1.1.npy"))?;
    assert!(back.compute_local().is_err());
    Ok(())
}

fn ndarray_npy_read(path: &std::path::Path) -> Result<ArrayD<f64>, Box<dyn std::error::Error>> {
    Ok(rdask_array::kernels::read_npy(path.to_string_lossy().into_owned(), vec![3, 2]).map(|c| c.0)?)
}

#[test]
fn persist_keeps_blocks_on_the_cluster() -> Result<(), da::Error> {
    let x = da::random(&[6, 6], &[4, 4], 3)?;
    let y = (&x * 2.0).persist(client())?;
    assert_eq!(y.compute(client())?, x.compute_local()? * 2.0);
    let (got, want) = (y.sum().compute(client())?.sum(), x.compute_local()?.sum() * 2.0);
    assert!((got - want).abs() < 1e-9, "{got} != {want}");
    Ok(())
}

#[test]
fn persisting_a_persisted_array_reuses_its_blocks() -> Result<(), da::Error> {
    let x = da::random(&[6, 6], &[4, 4], 5)?;
    assert!(x.persisted_blocks().is_none());
    let y = x.persist(client())?;
    let keys = |a: &Array| -> Vec<String> {
        a.persisted_blocks()
            .map(|b| b.iter().map(|f| f.key().to_string()).collect())
            .unwrap_or_default()
    };
    assert_eq!(keys(&y).len(), 4);
    // No copy of each block into a new result: the same keys.
    let z = y.persist(client())?;
    assert_eq!(keys(&z), keys(&y));
    assert_eq!(z.compute(client())?, x.compute_local()?);
    // An operation on it is lazy again, and persists to new blocks.
    let w = &z + 1.0;
    assert!(w.persisted_blocks().is_none());
    let w = w.persist(client())?;
    assert_eq!(keys(&w).len(), 4);
    assert!(keys(&w).iter().all(|k| !keys(&y).contains(k)));
    assert_eq!(w.compute(client())?, x.compute_local()? + 1.0);
    Ok(())
}

#[test]
fn chains_fuse_into_one_task_per_block() -> Result<(), da::Error> {
    let x = da::random(&[8, 8], &[4, 4], 1)?;
    let y = &(&x + 1.0) * 2.0;
    assert_eq!(y.task_count(&da::ComputeOptions::default())?, 4);
    assert_eq!(y.task_count(&da::ComputeOptions::default().fuse(false))?, 12);
    // Blocks of equal shape and value are one task (keys come from the call).
    assert_eq!(
        da::ones(&[8, 8], &[4, 4])?.task_count(&da::ComputeOptions::default())?,
        1
    );
    Ok(())
}

#[test]
fn a_reduction_takes_in_the_element_wise_operation_before_it() -> Result<(), da::Error> {
    // 2 × 2 blocks. The std over all axes adds 4 partials, 1 merge and
    // 1 final step; fused, its 4 partials take the place of the 4 `binary`
    // blocks of `x - m`, which are not computed at all.
    let x = da::random(&[8, 8], &[4, 4], 1)?.split_every(4);
    let m = x.mean_axes(&[1], true)?;
    let centered = (&x - &m)?;
    let opts = da::ComputeOptions::default().fuse(false);
    let before = m.task_count(&opts)?;
    assert_eq!(centered.task_count(&opts)?, before + 4);
    assert_eq!(centered.std(0.0).task_count(&opts)?, before + 4 + 1 + 1);
    // Any other operation in between keeps the element-wise blocks: 4
    // `binary`, 4 `scalar`, then the std's 4 + 1 + 1.
    assert_eq!(
        (&centered * 1.0).std(0.0).task_count(&opts)?,
        before + 4 + 4 + 4 + 1 + 1
    );
    let want = centered.compute_local()?;
    let n = want.len() as f64;
    let mean = want.sum() / n;
    let std = (want.mapv(|v| (v - mean) * (v - mean)).sum() / n).sqrt();
    let got = centered.std(0.0).compute(client())?.sum();
    assert!((got - std).abs() < 1e-12, "{got} != {std}");
    Ok(())
}

#[test]
fn zarr_stores_round_trip() -> Result<(), Box<dyn std::error::Error>> {
    let dir = tempfile::tempdir()?;
    let path = dir.path().join("x.zarr");
    let a = ArrayD::from_shape_fn(IxDyn(&[9, 7]), |i| (i[0] * 7 + i[1]) as f64 - 20.5);
    // Uneven blocks in the middle: rechunked to a regular grid on the way.
    let x = da::from_array(&a, &[4, 3])?.rechunk_to(vec![vec![4, 2, 3], vec![3, 3, 1]])?;
    let written = x.to_zarr(&path)?.compute(client())?;
    assert_eq!(written.len(), 3 * 3);
    assert!(path.join("zarr.json").exists());
    let back = da::from_zarr(&path)?;
    assert_eq!(back.chunks(), &vec![vec![4, 4, 1], vec![3, 3, 1]]);
    assert_eq!(back.compute_local()?, a);
    assert_eq!(
        back.slice(&[Slice::new(5, None, 2)])?.compute(client())?,
        a.slice(ndarray::s![5..;2, ..]).to_owned().into_dyn()
    );
    assert!(da::from_zarr(dir.path().join("missing.zarr")).is_err());
    Ok(())
}

#[test]
fn one_pass_variance_of_many_segments_matches_two_passes() -> Result<(), da::Error> {
    // More elements than one segment of the one-pass partial (2,048), and
    // a large offset, where a naive sum of squares would lose digits.
    let x = da::random(&[70, 100], &[70, 100], 5)?;
    let a = x.compute_local()? + 1e6;
    let flat: Vec<f64> = a.iter().copied().collect();
    let (mean, m2) = da::partial::mean_m2(&flat);
    let want_mean = flat.iter().sum::<f64>() / flat.len() as f64;
    let want_m2: f64 = flat.iter().map(|v| (v - want_mean) * (v - want_mean)).sum();
    assert!((mean - want_mean).abs() <= 1e-12 * want_mean, "{mean} != {want_mean}");
    assert!((m2 - want_m2).abs() <= 1e-9 * want_m2, "{m2} != {want_m2}");
    // The same through a block of the array, on the cluster.
    let std = (&x + 1e6).std(0.0).compute(client())?.sum();
    let want = (want_m2 / flat.len() as f64).sqrt();
    assert!((std - want).abs() <= 1e-9 * want, "{std} != {want}");
    Ok(())
}
