//! Tests of the borrowed wire forms: a block encodes as the `Dataset` of
//! its rows, and a view reads any `Dataset` back.

use super::*;
use rdask_array::ndarray::{array, Array1, Array2};

#[test]
fn row_blocks_encode_as_the_dataset_of_their_rows_and_views_read_them() {
    let x = Array2::from_shape_fn((7, 3), |(i, j)| i as f64 * 10.0 + j as f64);
    let y = Array1::from_shape_fn(7, |i| i as f64 - 0.5);
    let data = Dataset::new(x, y).unwrap();
    for (a, b) in [(0, 7), (2, 5), (3, 3), (6, 7)] {
        let rows: Vec<usize> = (a..b).collect();
        let block = DatasetView::rows_of(&data, a..b).unwrap();
        let bytes = rdask::task::encode_value(&block).unwrap();
        assert_eq!(
            bytes,
            rdask::task::encode_value(&data.take(&rows)).unwrap(),
            "rows {a}..{b}"
        );
        let view: DatasetView<'_> = rdask::task::decode_value(&bytes).unwrap();
        assert_eq!(view.shape().unwrap(), (b - a, 3));
        assert_eq!(view.to_dataset().unwrap(), data.take(&rows));
        assert_eq!(&*view.y().unwrap(), data.take(&rows).y().as_slice().unwrap());
    }
    assert!(DatasetView::rows_of(&data, 5..9).is_none(), "past the end");
    // Stored column-major: no blocks in place, but a row-major copy has.
    let c = data.to_column_major();
    assert!(DatasetView::rows_of(&c, 0..2).is_none());
    assert_eq!(c.to_row_major(), data);
    let bytes = rdask::task::encode_value(&c).unwrap();
    let view: DatasetView<'_> = rdask::task::decode_value(&bytes).unwrap();
    assert_eq!(view.shape().unwrap(), (7, 3));
    assert!(view.for_each_rows_in(0..7, |_, _| ()).is_err());
    assert_eq!(view.to_dataset().unwrap(), c);
}

#[test]
fn a_view_of_something_else_is_an_error() {
    let bad = rdask::task::encode_value(&std::collections::BTreeMap::from([("x", 1)])).unwrap();
    assert!(rdask::task::decode_value::<DatasetView<'_>>(&bad).is_err());
    let d = Dataset::new(array![[1.0, 2.0]], array![3.0]).unwrap();
    let bytes = rdask::task::encode_value(&d).unwrap();
    let mut view: DatasetView<'_> = rdask::task::decode_value(&bytes).unwrap();
    std::mem::swap(&mut view.x, &mut view.y);
    assert!(view.shape().unwrap_err().to_string().contains("not a dataset"));
}
