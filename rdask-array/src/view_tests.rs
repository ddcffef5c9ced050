//! Tests of `ChunkView`: the same elements as the `Chunk` it was written
//! from, borrowed when the bytes allow, at any alignment.

use super::*;
use ndarray::{ArrayD, IxDyn};

fn block(rows: usize, cols: usize) -> Chunk {
    Chunk(ArrayD::from_shape_fn(IxDyn(&[rows, cols]), |i| {
        i[0] as f64 * 1000.0 + i[1] as f64 + 0.25
    }))
}

/// The elements a view hands out, with each run's first row checked
/// against the rows before it.
fn elements(v: &ChunkView<'_>) -> Vec<f64> {
    let mut out = Vec::new();
    v.for_each_rows(|first, run| {
        assert_eq!(first * v.row_len(), out.len(), "runs come in order");
        assert_eq!(run.len() % v.row_len(), 0, "runs hold whole rows");
        out.extend_from_slice(run);
    });
    out
}

#[test]
fn a_view_reads_the_chunk_it_was_written_from_at_every_offset() {
    // 3,000 rows of 10: many runs when copied.
    let c = block(3000, 10);
    let bytes = rdask::task::encode_value(&c).expect("encodes");
    let want: Vec<f64> = c.iter().copied().collect();
    // Shift the bytes through every offset in a word, so both the aligned
    // (borrowed as `&[f64]`) and the copied paths run.
    let mut aligned_seen = false;
    for shift in 0..8 {
        let mut buf = vec![0u8; shift];
        buf.extend_from_slice(&bytes);
        let v: ChunkView<'_> = rdask::task::decode_value(&buf[shift..]).expect("decodes");
        assert!(matches!(v.bytes, Cow::Borrowed(_)), "the elements are borrowed");
        aligned_seen |= v.as_slice().is_some();
        assert_eq!(
            (v.shape(), v.rows(), v.row_len(), v.len()),
            (&[3000, 10][..], 3000, 10, 30_000)
        );
        assert_eq!(elements(&v), want, "shift {shift}");
        // A range of rows: runs start at its first row and hold exactly it.
        let mut part = Vec::new();
        v.for_each_rows_in(1234..2900, |first, run| {
            assert_eq!(
                first,
                1234 + part.len() / 10,
                "runs come in order from the range's start"
            );
            part.extend_from_slice(run);
        });
        assert_eq!(part, want[12_340..29_000], "shift {shift}");
        let mut none = 0;
        v.for_each_rows_in(2990..9999, |_, run| none += run.len());
        assert_eq!(none, 100, "a range past the end is clipped");
        assert_eq!(v.to_chunk().expect("a chunk"), c);
    }
    assert!(aligned_seen, "one of eight offsets is aligned");
}

#[test]
fn a_one_dimensional_view_has_rows_of_one() {
    let c = Chunk(ArrayD::from_shape_vec(IxDyn(&[5]), vec![1.0, 2.0, 3.0, 4.0, 5.0]).expect("shape"));
    let bytes = rdask::task::encode_value(&c).expect("encodes");
    let v: ChunkView<'_> = rdask::task::decode_value(&bytes).expect("decodes");
    assert_eq!((v.rows(), v.row_len()), (5, 1));
    assert_eq!(elements(&v), vec![1.0, 2.0, 3.0, 4.0, 5.0]);
}

#[test]
fn a_view_whose_bytes_do_not_fit_its_shape_is_refused() {
    let bytes = rdask::task::encode_value(&(vec![2u64, 3], serde_bytes::Bytes::new(&[0u8; 40]))).expect("encodes");
    let err = rdask::task::decode_value::<ChunkView<'_>>(&bytes).expect_err("40 bytes for 6 elements");
    assert!(err.to_string().contains("40 bytes of elements, expected 48"), "{err}");
}

#[test]
fn a_borrowed_view_encodes_as_the_chunk_it_views() {
    let c = block(7, 3);
    let flat: Vec<f64> = c.iter().copied().collect();
    let v = ChunkView::borrowed(vec![7, 3], &flat).expect("fits");
    assert!(matches!(v.bytes, Cow::Borrowed(_)));
    assert_eq!(
        rdask::task::encode_value(&v).expect("encodes"),
        rdask::task::encode_value(&c).expect("encodes")
    );
    // Rows 2..5 alone: the chunk of those rows.
    let part = ChunkView::borrowed(vec![3, 3], &flat[6..15]).expect("fits");
    let back: Chunk = rdask::task::decode_value(&rdask::task::encode_value(&part).expect("encodes")).expect("decodes");
    assert_eq!(back.iter().copied().collect::<Vec<_>>(), flat[6..15]);
    assert!(
        ChunkView::borrowed(vec![4, 3], &flat[..9]).is_none(),
        "a shape the elements do not fill"
    );
}
