//! The worker side of every data frame operation but group-by
//! aggregations (`agg`): the `#[rdask::task]` functions each graph node
//! calls, one partition at a time. Registered as
//! `rdask_dataframe::kernels::<name>`, so a worker runs them once its binary
//! links this crate.

use polars::prelude::{
    CsvReadOptions, CsvWriter, DataFrame as PlFrame, ParquetReader, ParquetWriter, SerReader, SerWriter,
    UniqueKeepStrategy,
};

use crate::plan::{apply_ops, Dsl, Op};
use crate::Partition;

/// A partition given as a value in the graph (`from_polars`), or a
/// persisted one read where it is.
#[rdask::task]
pub fn from_partition(p: Partition) -> Partition {
    p
}

/// One CSV file (with a header row) as a partition.
#[rdask::task]
pub fn read_csv_file(path: String) -> Result<Partition, String> {
    CsvReadOptions::default()
        .with_has_header(true)
        .try_into_reader_with_file_path(Some(path.clone().into()))
        .and_then(|r| r.finish())
        .map(Partition)
        .map_err(|e| format!("{path}: {e}"))
}

/// The `columns` of one CSV file (with a header row) as a partition, the
/// others skipped by the parser (a step that reads only these: the sample
/// of `set_index`, a group-by's partials). Column types are inferred as
/// [`read_csv_file`] infers them.
#[rdask::task]
pub fn read_csv_columns(path: String, columns: Vec<String>) -> Result<Partition, String> {
    let columns: std::sync::Arc<[polars::prelude::PlSmallStr]> = columns.iter().map(|c| c.as_str().into()).collect();
    CsvReadOptions::default()
        .with_has_header(true)
        .with_columns(Some(columns))
        .try_into_reader_with_file_path(Some(path.clone().into()))
        .and_then(|r| r.finish())
        .map(Partition)
        .map_err(|e| format!("{path}: {e}"))
}

/// Rows `offset .. offset + len` of a Parquet file (one row group's rows:
/// Polars reads only the row groups the slice touches).
#[rdask::task]
pub fn read_parquet_rows(path: String, offset: usize, len: usize) -> Result<Partition, String> {
    let file = std::fs::File::open(&path).map_err(|e| format!("{path}: {e}"))?;
    ParquetReader::new(file)
        .with_slice(Some((offset, len)))
        .finish()
        .map(Partition)
        .map_err(|e| format!("{path}: {e}"))
}

/// Writes a partition to a Parquet file; returns the path.
#[rdask::task]
pub fn write_parquet(p: Partition, path: String) -> Result<String, String> {
    let file = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut df = p.0;
    ParquetWriter::new(file)
        .finish(&mut df)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(path)
}

/// Writes a partition to a CSV file with a header row; returns the path.
#[rdask::task]
pub fn write_csv(p: Partition, path: String) -> Result<String, String> {
    let mut file = std::fs::File::create(&path).map_err(|e| format!("{path}: {e}"))?;
    let mut df = p.0;
    CsvWriter::new(&mut file)
        .include_header(true)
        .finish(&mut df)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(path)
}

/// The paths of written files, as one list (the sinks' result).
#[rdask::task]
pub fn paths(written: Vec<String>) -> Vec<String> {
    written
}

/// `select` / `with_columns` / `filter` steps with shipped expressions.
#[rdask::task]
pub fn apply(p: Partition, ops: Dsl<Vec<Op>>) -> Result<Partition, String> {
    apply_ops(p.0, &ops.0).map(Partition)
}

/// Number of rows of a partition.
#[rdask::task]
pub fn length(p: Partition) -> u64 {
    p.height() as u64
}

/// The sum of partition lengths.
#[rdask::task]
pub fn total(lens: Vec<u64>) -> u64 {
    lens.iter().sum()
}

/// The first `n` rows of a partition.
#[rdask::task]
pub fn head(p: Partition, n: usize) -> Partition {
    Partition(p.0.head(Some(n)))
}

/// The partitions one after the other (`repartition` to fewer).
#[rdask::task]
pub fn concat(parts: Vec<Partition>) -> Result<Partition, String> {
    concat_frames(parts.into_iter().map(Partition::into_inner).collect()).map(Partition)
}

/// Part `i` of `k` nearly equal row ranges of a partition (`repartition`
/// to more).
#[rdask::task]
pub fn split(p: Partition, i: usize, k: usize) -> Result<Partition, String> {
    if k == 0 || i >= k {
        return Err(format!("piece {i} of {k}"));
    }
    let n = p.height();
    let (start, end) = (n * i / k, n * (i + 1) / k);
    Ok(Partition(p.0.slice(start as i64, end - start)))
}

/// Distinct rows (on `subset` columns when given, keeping the first row of
/// each), in no particular order.
#[rdask::task]
pub fn unique(parts: Vec<Partition>, subset: Option<Vec<String>>) -> Result<Partition, String> {
    let df = concat_frames(parts.into_iter().map(Partition::into_inner).collect())?;
    df.unique_stable(subset.as_deref(), UniqueKeepStrategy::First, None)
        .map(Partition)
        .map_err(|e| e.to_string())
}

/// Stacks frames vertically; no frames give an empty frame. Frames must
/// have the same columns (names and types, in order).
pub(crate) fn concat_frames(frames: Vec<PlFrame>) -> Result<PlFrame, String> {
    let mut it = frames.into_iter();
    let Some(mut out) = it.next() else {
        return Ok(PlFrame::empty());
    };
    for f in it {
        out.vstack_mut(&f).map_err(|e| format!("stacking partitions: {e}"))?;
    }
    Ok(out)
}
