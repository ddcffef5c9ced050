//! Sources and sinks: `from_polars` (partitions as values in the graph),
//! `read_csv` (a partition per file), `read_parquet` (a partition per row
//! group), `to_parquet` and `to_csv` (a file per partition).

use polars::prelude::{ParquetReader, SerReader};
use rdask::delayed::{compute_all, delayed, ComputeOptions, Delayed};
use rdask::Client;

use crate::{kernels, DataFrame, Error, Partition};

/// A data frame of `df` cut into `npartitions` nearly equal row ranges
/// (Dask's `from_pandas(df, npartitions=…)`): the partitions are values in
/// the graph (sent with the submission; a partition larger than the
/// scheduler's frame limit is refused then).
pub fn from_polars(df: &polars::prelude::DataFrame, npartitions: usize) -> Result<DataFrame, Error> {
    if npartitions == 0 {
        return Err(Error::Invalid("from_polars with 0 partitions".into()));
    }
    let n = df.height();
    let parts = (0..npartitions)
        .map(|i| {
            let (start, end) = (n * i / npartitions, n * (i + 1) / npartitions);
            delayed(
                kernels::from_partition,
                (Partition(df.slice(start as i64, end - start)),),
            )
        })
        .collect();
    DataFrame::from_delayed(parts)
}

/// The files `pattern` matches, sorted (glob syntax; a plain path matches
/// itself). None is an error.
pub(crate) fn expand(pattern: &str) -> Result<Vec<String>, Error> {
    let paths = glob::glob(pattern).map_err(|e| Error::Invalid(format!("pattern {pattern:?}: {e}")))?;
    let mut files = Vec::new();
    for p in paths {
        let p = p.map_err(|e| Error::File {
            path: e.path().display().to_string(),
            message: e.error().to_string(),
        })?;
        files.push(p.display().to_string());
    }
    files.sort();
    if files.is_empty() {
        return Err(Error::Invalid(format!("no file matches {pattern:?}")));
    }
    Ok(files)
}

/// CSV files with a header row, a partition per file (Dask's
/// `read_csv('2015-*-*.csv')`). The workers read the files, so the paths
/// must be valid where they run (a shared or local file system). Each
/// file's column types are inferred on its own; files whose types differ
/// fail when their partitions meet.
pub fn read_csv(pattern: &str) -> Result<DataFrame, Error> {
    let files = expand(pattern)?;
    let parts = files
        .iter()
        .map(|f| delayed(kernels::read_csv_file, (f.clone(),)))
        .collect();
    Ok(DataFrame::from_delayed(parts)?.with_source(crate::Source::Csv(files)))
}

/// Parquet files, a partition per row group (Dask's `read_parquet`,
/// `split_row_groups=True`). The client reads each file's footer to find
/// its row groups; the workers read the rows.
pub fn read_parquet(pattern: &str) -> Result<DataFrame, Error> {
    let mut parts: Vec<Delayed<Partition>> = Vec::new();
    for path in expand(pattern)? {
        let err = |e: String| Error::File {
            path: path.clone(),
            message: e,
        };
        let file = std::fs::File::open(&path).map_err(|e| err(e.to_string()))?;
        let mut reader = ParquetReader::new(file);
        let meta = reader.get_metadata().map_err(|e| err(e.to_string()))?;
        let mut offset = 0usize;
        for rg in &meta.row_groups {
            let len = rg.num_rows();
            parts.push(delayed(kernels::read_parquet_rows, (path.clone(), offset, len)));
            offset += len;
        }
        if meta.row_groups.is_empty() {
            // A file of no row groups still has a schema: one empty partition.
            parts.push(delayed(kernels::read_parquet_rows, (path.clone(), 0usize, 0usize)));
        }
    }
    DataFrame::from_delayed(parts)
}

impl DataFrame {
    fn write_all(&self, client: &Client, paths: Vec<String>, csv: bool) -> Result<Vec<String>, Error> {
        let written: Vec<Delayed<String>> = self
            .to_delayed()
            .iter()
            .zip(paths)
            .map(|(p, path)| {
                if csv {
                    delayed(kernels::write_csv, (p, path))
                } else {
                    delayed(kernels::write_parquet, (p, path))
                }
            })
            .collect();
        Ok(compute_all(
            client,
            &written.iter().collect::<Vec<_>>(),
            &ComputeOptions::default(),
        )?)
    }

    /// Writes each partition to `dir/part.N.parquet` (Dask's
    /// `to_parquet(dir)`), creating `dir`; returns the paths. The workers
    /// write, so `dir` must be where they can (a shared file system across
    /// machines).
    pub fn to_parquet(&self, client: &Client, dir: &str) -> Result<Vec<String>, Error> {
        std::fs::create_dir_all(dir).map_err(|e| Error::File {
            path: dir.to_string(),
            message: e.to_string(),
        })?;
        let paths = (0..self.npartitions())
            .map(|i| {
                std::path::Path::new(dir)
                    .join(format!("part.{i}.parquet"))
                    .display()
                    .to_string()
            })
            .collect();
        self.write_all(client, paths, false)
    }

    /// Writes each partition to a CSV file with a header row, named by
    /// `pattern` with its one `*` replaced by the partition number (Dask's
    /// `to_csv('out-*.csv')`); returns the paths.
    pub fn to_csv(&self, client: &Client, pattern: &str) -> Result<Vec<String>, Error> {
        if pattern.matches('*').count() != 1 {
            return Err(Error::Invalid(format!(
                "to_csv pattern {pattern:?} needs exactly one '*' (the partition number)"
            )));
        }
        let paths = (0..self.npartitions())
            .map(|i| pattern.replace('*', &i.to_string()))
            .collect();
        self.write_all(client, paths, true)
    }
}
