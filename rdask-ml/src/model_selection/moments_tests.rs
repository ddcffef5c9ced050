//! Tests of the moments: R² from them equals R² over the rows, and a
//! block's per-fold moments, read in place at any alignment and merged
//! over blocks, equal those of each fold's rows (unshuffled and shuffled).

use super::*;
use rdask_array::ndarray::{Array1, Array2};

/// R² from the moments equals R² over the rows, for a poor, a good and
/// a near-perfect model, and for constant targets.
#[test]
fn r2_from_the_test_moments_is_r2_over_the_rows() {
    let n = 5_000;
    let x = Array2::from_shape_fn((n, 3), |(i, j)| {
        ((i * 7 + j * 13) % 101) as f64 / 10.0 + 50.0 * j as f64
    });
    let truth = [0.7, -1.3, 0.25];
    let noise = |i: usize| ((i * 2_654_435_761) % 1_000) as f64 / 1e6;
    let y = Array1::from_shape_fn(n, |i| {
        4.0 + (0..3).map(|j| truth[j] * x[[i, j]]).sum::<f64>() + noise(i)
    });
    let data = Dataset::new(x.clone(), y.clone()).unwrap();
    let rows: Vec<usize> = (0..n).filter(|i| i % 3 != 0).collect();
    let m = TestMoments::of_rows(&data, &rows);
    let direct = |w: &[f64], b: f64, y: &Array1<f64>| {
        let ys: Vec<f64> = rows.iter().map(|&i| y[i]).collect();
        let mean = ys.iter().sum::<f64>() / ys.len() as f64;
        let tot: f64 = ys.iter().map(|v| (v - mean) * (v - mean)).sum();
        let res: f64 = rows
            .iter()
            .map(|&i| {
                let p = b + (0..3).map(|j| w[j] * x[[i, j]]).sum::<f64>();
                (y[i] - p) * (y[i] - p)
            })
            .sum();
        1.0 - res / tot
    };
    for (w, b) in [
        (vec![0.1, 0.2, -0.3], 1.0),
        (vec![0.69, -1.31, 0.26], 3.9),
        (truth.to_vec(), 4.0),
    ] {
        let (got, want) = (m.r2(&w, b), direct(&w, b, &y));
        assert!(
            (got - want).abs() < 1e-10,
            "w {w:?}: {got} from moments, {want} over the rows"
        );
    }
    let flat = Dataset::new(x, Array1::from_elem(n, 2.0)).unwrap();
    let m = TestMoments::of_rows(&flat, &rows);
    assert_eq!(m.r2(&[0.0, 0.0, 0.0], 2.0), 1.0);
    assert_eq!(m.r2(&[0.0, 0.0, 0.0], 2.5), 0.0);
}

fn table(n: usize, p: usize) -> Dataset {
    let x = Array2::from_shape_fn((n, p), |(i, j)| {
        ((i * 37 + j * 11) % 97) as f64 / 7.0 + 100.0 * j as f64
    });
    let y = Array1::from_shape_fn(n, |i| 2.0 * x[[i, 0]] - x[[i, p - 1]] + ((i * 13) % 17) as f64);
    Dataset::new(x, y).unwrap()
}

fn assert_close(got: &TestMoments, want: &TestMoments, what: &str) {
    assert_eq!(got.n_samples, want.n_samples, "{what}: rows");
    let pairs = got
        .x_mean
        .iter()
        .zip(&want.x_mean)
        .chain(got.sxx.iter().zip(&want.sxx))
        .chain(got.sxy.iter().zip(&want.sxy))
        .chain([(&got.y_mean, &want.y_mean), (&got.syy, &want.syy)]);
    for (a, b) in pairs {
        assert!((a - b).abs() <= 1e-9 * (1.0 + b.abs()), "{what}: {got:?} vs {want:?}");
    }
}

/// Blocks cut anywhere (across fold boundaries, one row, the whole
/// table), encoded as `DatasetView::rows_of` and read back as views at every byte
/// offset: each fold's moments merged over the blocks are the fold's.
#[test]
fn per_fold_moments_of_blocks_merge_to_each_folds_moments() {
    let n = 1_003;
    let data = table(n, 3);
    for cv in [
        KFold::new(5),
        KFold {
            n_splits: 4,
            shuffle_seed: Some(9),
        },
    ] {
        let want: Vec<TestMoments> = (0..cv.n_splits)
            .map(|k| TestMoments::of_rows(&data, &cv.split(n, k).unwrap().1))
            .collect();
        for cuts in [vec![0, n], vec![0, 150, 151, 600, n], vec![0, 1, 2, 1000, n]] {
            let blocks: Vec<Vec<TestMoments>> = cuts
                .windows(2)
                .enumerate()
                .map(|(b, w)| {
                    let bytes = rdask::task::encode_value(&DatasetView::rows_of(&data, w[0]..w[1]).unwrap()).unwrap();
                    // Shift the bytes so both the aligned and copied reads run.
                    let mut buf = vec![0u8; b % 8];
                    buf.extend_from_slice(&bytes);
                    let view: DatasetView<'_> = rdask::task::decode_value(&buf[b % 8..]).unwrap();
                    block_moments(&view, &cv, n, w[0]).unwrap()
                })
                .collect();
            let got = fold_moments(&blocks).unwrap();
            for (k, (g, w)) in got.iter().zip(&want).enumerate() {
                assert_close(g, w, &format!("{cv:?} cuts {cuts:?} fold {k}"));
            }
        }
    }
}

#[test]
fn blocks_that_do_not_fit_the_table_are_refused() {
    let data = table(100, 2);
    let bytes = rdask::task::encode_value(&DatasetView::rows_of(&data, 0..60).unwrap()).unwrap();
    let view: DatasetView<'_> = rdask::task::decode_value(&bytes).unwrap();
    let cv = KFold::new(5);
    let err = block_moments(&view, &cv, 100, 50).unwrap_err().to_string();
    assert!(err.contains("60 rows at row 50 of a 100-row table"), "{err}");
    assert!(block_moments(&view, &KFold::new(1), 100, 0).is_err());
    let uneven = vec![block_moments(&view, &cv, 100, 0).unwrap(), vec![]];
    assert!(fold_moments(&uneven)
        .unwrap_err()
        .to_string()
        .contains("differing fold counts"));
}
