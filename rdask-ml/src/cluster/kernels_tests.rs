//! Tests of the k-means kernels: the transposed centres give the row-wise
//! distances bit for bit, and a kernel run the way a worker runs it (on
//! the argument's encoded bytes, at any alignment) reads the block right.

use super::*;
use rdask::task::Task;

fn points(n: usize, d: usize, seed: u64) -> Vec<f64> {
    let mut rng = XorShiftRng::seed_from_u64(seed);
    (0..n * d).map(|_| uniform(&mut rng) * 10.0 - 5.0).collect()
}

/// `task` called as a worker calls it, on encoded arguments, with the
/// block's bytes shifted by `shift` bytes in memory.
fn call_shifted<T: Task>(block: &Chunk, centres: &Chunk, shift: usize) -> Chunk {
    let mut x = vec![0u8; shift];
    x.extend_from_slice(&rdask::task::encode_value(block).expect("encodes"));
    let step = Step {
        id: 1,
        value: centres.clone(),
    };
    let c = rdask::task::encode_value(&step).expect("encodes");
    let out = T::call_encoded(&[&x[shift..], &c]).expect("runs");
    rdask::task::decode_value(&out).expect("decodes")
}

#[test]
fn kernels_read_a_block_in_place_at_any_alignment() {
    let (n, d, k) = (3001, 10, 8);
    let flat = points(n, d, 3);
    let centres_flat = points(k, d, 4);
    let block = Chunk(ArrayD::from_shape_vec(IxDyn(&[n, d]), flat.clone()).expect("shape"));
    let centres = Chunk(ArrayD::from_shape_vec(IxDyn(&[k, d]), centres_flat.clone()).expect("shape"));
    // What the partial must be, row by row.
    let mut want = vec![0.0; k * d + k + 1];
    let mut labels = Vec::new();
    for row in flat.chunks_exact(d) {
        let (j, dist) = nearest(row, &centres_flat, d);
        for t in 0..d {
            want[j * d + t] += row[t];
        }
        want[k * d + j] += 1.0;
        want[k * d + k] += dist;
        labels.push(j as f64);
    }
    for shift in 0..8 {
        let got = call_shifted::<lloyd_partial>(&block, &centres, shift);
        assert_eq!(got.iter().copied().collect::<Vec<_>>(), want, "shift {shift}");
        let got = call_shifted::<assign_labels>(&block, &centres, shift);
        assert_eq!(got.iter().copied().collect::<Vec<_>>(), labels, "shift {shift}");
    }
}

#[test]
fn a_block_of_the_wrong_width_is_refused_by_name() {
    let block = Chunk(ArrayD::zeros(IxDyn(&[4, 3])));
    let centres = Chunk(ArrayD::zeros(IxDyn(&[2, 5])));
    let step = rdask::task::encode_value(&Step { id: 1, value: centres }).expect("encodes");
    let x = rdask::task::encode_value(&block).expect("encodes");
    let err = lloyd_partial::call_encoded(&[&x, &step]).expect_err("3 features against 5");
    assert!(
        err.message.contains("blocks of 3 features, centres of 5"),
        "{}",
        err.message
    );
}

/// A kernel's result on encoded arguments, as a worker runs it.
fn run<T: Task>(args: &[Vec<u8>]) -> Chunk {
    let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
    rdask::task::decode_value(&T::call_encoded(&refs).expect("runs")).expect("decodes")
}

fn enc<V: serde::Serialize>(v: &V) -> Vec<u8> {
    rdask::task::encode_value(v).expect("encodes")
}

#[test]
fn candidates_measured_in_rounds_give_the_state_of_measuring_them_all_at_once() {
    let (n, d) = (1000, 3);
    let flat = points(n, d, 5);
    let block = Chunk(ArrayD::from_shape_vec(IxDyn(&[n, d]), flat.clone()).expect("shape"));
    let mut cands = points(12, d, 6);
    // Candidate 9 repeats candidate 2 (a tie the earlier one must win),
    // and candidate 7 is a data point (distance 0).
    let c2: Vec<f64> = cands[2 * d..3 * d].to_vec();
    cands[9 * d..10 * d].copy_from_slice(&c2);
    cands[7 * d..8 * d].copy_from_slice(&flat[..d]);
    let step = |c: &[f64], id: u64| Step {
        id,
        value: Chunk(ArrayD::from_shape_vec(IxDyn(&[c.len() / d, d]), c.to_vec()).expect("shape")),
    };
    let all = run::<nearest_candidates>(&[enc(&block), enc(&step(&cands, 1))]);
    // In three rounds: 1, then 5, then 6 candidates.
    let mut state = run::<nearest_candidates>(&[enc(&block), enc(&step(&cands[..d], 2))]);
    for (from, to) in [(1, 6), (6, 12)] {
        state = run::<nearest_candidates_update>(&[
            enc(&block),
            enc(&state),
            enc(&step(&cands[from * d..to * d], 3)),
            enc(&(from as u64)),
        ]);
    }
    let bits = |c: &Chunk| c.iter().map(|v| v.to_bits()).collect::<Vec<_>>();
    assert_eq!(bits(&state), bits(&all));
    // And both are the row-wise scan's.
    for (i, row) in flat.chunks_exact(d).enumerate() {
        let (j, dist) = nearest(row, &cands, d);
        assert_eq!(
            (all[[0, i]].to_bits(), all[[1, i]]),
            (dist.to_bits(), j as f64),
            "row {i}"
        );
    }
    assert_eq!(all[[1, 0]], 7.0, "row 0 is candidate 7");
    // The cost is the sum of the distances, the counts those of the labels.
    let cost = run::<nearest_cost>(&[enc(&all)]);
    let want: f64 = ndarray::ArrayView1::from(&all.as_slice().expect("in order")[..n]).sum();
    assert_eq!(cost.iter().next().copied(), Some(want));
    let counts = run::<label_counts>(&[enc(&all), enc(&12u64)]);
    assert_eq!(counts.iter().sum::<f64>(), n as f64);
    assert_eq!(counts[[9]], 0.0, "the repeated candidate wins no point");
    // A state of another block's length is refused.
    let err =
        nearest_candidates_update::call_encoded(&[&enc(&block), &enc(&counts), &enc(&step(&cands, 4)), &enc(&0u64)])
            .expect_err("a 12-element state");
    assert!(err.message.contains("k-means|| state of shape [12]"), "{}", err.message);
}
