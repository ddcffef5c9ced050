//! `read_csv_blocks` (Dask's `read_csv(…, blocksize=…)`): a partition per
//! block of each CSV file, with line-aligned boundaries, as the bags'
//! `read_text_blocks`. A block holds the rows whose line *starts* inside
//! it: a reader starting at byte `s` past the header skips to just after
//! the first `\n` at or after `s - 1`, and stops after the line that
//! crosses its end, so every row is read by exactly one block. The header
//! line (the file's first) is given to every block's parser.
//!
//! Column types are inferred once, on the client, from the first
//! [`SCHEMA_INFER_ROWS`] rows of the first file, and every block is parsed
//! with them (a block inferring its own could disagree with its
//! neighbours, e.g. a column null throughout one block). As in Dask, a
//! later value that does not fit (a float in a column inferred as
//! integers) fails that block's task with Polars' message.

use std::io::{BufRead, BufReader, Cursor, Read, Seek, SeekFrom};
use std::sync::Arc;

use polars::prelude::{CsvParseOptions, CsvReadOptions, SerReader};
use rdask::delayed::delayed;

use crate::io::expand;
use crate::{DataFrame, Error, Partition};

/// Rows the client reads to infer the column types.
pub const SCHEMA_INFER_ROWS: usize = 1000;

/// Bytes `[start, end)` of a file: which rows one partition reads.
fn blocks(size: u64, blocksize: u64) -> Vec<(u64, u64)> {
    if size == 0 {
        return vec![(0, 0)];
    }
    (0..size.div_ceil(blocksize))
        .map(|k| (k * blocksize, ((k + 1) * blocksize).min(size)))
        .collect()
}

/// CSV files with a header row, a partition per `blocksize` bytes of each
/// file (at least one per file). The client reads the first file's head
/// to infer column types; the workers read the blocks, so the paths must
/// be valid where they run.
pub fn read_csv_blocks(pattern: &str, blocksize: u64) -> Result<DataFrame, Error> {
    if blocksize == 0 {
        return Err(Error::Invalid("read_csv_blocks with a block size of 0".into()));
    }
    let files = expand(pattern)?;
    let first = &files[0];
    let schema = CsvReadOptions::default()
        .with_has_header(true)
        .with_n_rows(Some(SCHEMA_INFER_ROWS))
        .try_into_reader_with_file_path(Some(first.clone().into()))
        .and_then(|r| r.finish())
        .map_err(|e| Error::File {
            path: first.clone(),
            message: e.to_string(),
        })?
        .clear();
    let mut parts = Vec::new();
    for path in files {
        let size = std::fs::metadata(&path)
            .map_err(|e| Error::File {
                path: path.clone(),
                message: e.to_string(),
            })?
            .len();
        for (start, end) in blocks(size, blocksize) {
            parts.push(delayed(
                read_csv_block,
                (path.clone(), start, end, Partition(schema.clone())),
            ));
        }
    }
    DataFrame::from_delayed(parts)
}

/// The header line of a file (with its `\n`) and where the rows begin.
fn header(r: &mut BufReader<std::fs::File>) -> std::io::Result<Vec<u8>> {
    let mut h = Vec::new();
    r.read_until(b'\n', &mut h)?;
    Ok(h)
}

/// The rows of `path` whose lines start in `[start, end)`, parsed with the
/// header line and the column types of `schema` (an empty frame).
#[rdask::task]
pub fn read_csv_block(path: String, start: u64, end: u64, schema: Partition) -> Result<Partition, String> {
    let io = |e: std::io::Error| format!("{path}: {e}");
    let mut r = BufReader::new(std::fs::File::open(&path).map_err(io)?);
    let mut text = header(&mut r).map_err(io)?;
    let body_start = text.len() as u64;
    let from = if start <= body_start {
        body_start
    } else {
        // Skip the line that began before `start` (a line ending exactly
        // at `start - 1` is skipped as a whole, leaving us at a line start).
        r.seek(SeekFrom::Start(start - 1)).map_err(io)?;
        let mut skipped = Vec::new();
        r.read_until(b'\n', &mut skipped).map_err(io)?;
        start - 1 + skipped.len() as u64
    };
    if from < end {
        r.seek(SeekFrom::Start(from)).map_err(io)?;
        // Whole bytes up to `end`, then the rest of the line crossing it.
        let mut chunk = Vec::new();
        (&mut r).take(end - from).read_to_end(&mut chunk).map_err(io)?;
        if chunk.last().is_some_and(|&b| b != b'\n') {
            r.read_until(b'\n', &mut chunk).map_err(io)?;
        }
        text.extend_from_slice(&chunk);
    }
    let schema = Arc::new(schema.0.schema().as_ref().clone());
    CsvReadOptions::default()
        .with_has_header(true)
        .with_schema(Some(schema))
        .with_parse_options(CsvParseOptions::default())
        .into_reader_with_file_handle(Cursor::new(text))
        .finish()
        .map(Partition)
        .map_err(|e| format!("{path} bytes {start}..{end}: {e}"))
}

#[cfg(test)]
mod tests {
    use super::blocks;

    #[test]
    fn blocks_cover_the_file() {
        assert_eq!(blocks(0, 10), vec![(0, 0)]);
        assert_eq!(blocks(25, 10), vec![(0, 10), (10, 20), (20, 25)]);
        assert_eq!(blocks(20, 10), vec![(0, 10), (10, 20)]);
    }
}
