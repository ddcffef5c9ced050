//! Zarr stores both ways (Dask's `from_zarr` / `to_zarr`), through the
//! `zarrs` crate: a Zarr v3 array on the file system, uncompressed, `f64`
//! elements, a regular chunk grid. The client reads and writes only the
//! metadata; each block is read or written by a task on a worker, which
//! opens the store itself, so the path must be one the workers see.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;

use ndarray::ArrayD;
use rdask::delayed::{delayed, Delayed};
use zarrs::array::{data_type, Array as ZArray, ArrayBuilder};
use zarrs::filesystem::FilesystemStore;

use crate::{grid, kernels, Array, Chunk, Error};

/// Where the array sits inside the store: the store's root.
const ARRAY_PATH: &str = "/";

fn zarr_error(path: &str, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.to_string(),
        message: e.to_string(),
    }
}

fn open(path: &str) -> Result<ZArray<FilesystemStore>, String> {
    let store = Arc::new(FilesystemStore::new(path).map_err(|e| format!("{path}: {e}"))?);
    ZArray::open(store, ARRAY_PATH).map_err(|e| format!("{path}: {e}"))
}

fn ranges(r: &[(u64, u64)]) -> Vec<Range<u64>> {
    r.iter().map(|&(a, b)| a..b).collect()
}

/// Reads the block `ranges` (per axis, start and stop) of the Zarr array
/// at `path`.
#[rdask::task]
pub fn read_zarr(path: String, block: Vec<(u64, u64)>) -> Result<Chunk, String> {
    let z = open(&path)?;
    let a: ArrayD<f64> = z
        .retrieve_array_subset(&ranges(&block))
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(Chunk(a))
}

/// Writes a block at `ranges` into the Zarr array at `path`; returns the
/// path and the block's start, for the list of writes.
#[rdask::task]
pub fn write_zarr(c: Chunk, path: String, block: Vec<(u64, u64)>) -> Result<String, String> {
    let z = open(&path)?;
    let expect: Vec<usize> = block.iter().map(|&(a, b)| (b - a) as usize).collect();
    if c.shape() != expect.as_slice() {
        return Err(format!("a block of shape {:?} for {block:?}", c.shape()));
    }
    if c.is_empty() {
        return Ok(format!("{path} (empty block)"));
    }
    z.store_array_subset(&ranges(&block), c.0)
        .map_err(|e| format!("{path}: {e}"))?;
    Ok(format!("{path} at {:?}", block.iter().map(|r| r.0).collect::<Vec<_>>()))
}

/// Per block of a grid, its `(start, stop)` per axis, in C order.
fn block_ranges(chunks: &grid::ChunkLens) -> Vec<Vec<(u64, u64)>> {
    let offs: Vec<Vec<usize>> = chunks.iter().map(|l| grid::offsets(l)).collect();
    grid::indices(&grid::nblocks(chunks))
        .iter()
        .map(|idx| {
            idx.iter()
                .enumerate()
                .map(|(k, &i)| (offs[k][i] as u64, offs[k][i + 1] as u64))
                .collect()
        })
        .collect()
}

/// An array of the Zarr array at `path` (a store directory), in blocks of
/// its own chunks (Dask's `from_zarr`). Only `float64` arrays are read.
pub fn from_zarr(path: impl AsRef<Path>) -> Result<Array, Error> {
    let path = path.as_ref().to_string_lossy().into_owned();
    let z = open(&path).map_err(|e| zarr_error(&path, e))?;
    if *z.data_type() != data_type::float64() {
        return Err(zarr_error(&path, "only float64 arrays are read"));
    }
    let shape: Vec<usize> = z.shape().iter().map(|&d| d as usize).collect();
    let first = vec![0u64; shape.len()];
    let chunk: Vec<usize> = z
        .chunk_shape(&first)
        .map_err(|e| zarr_error(&path, e))?
        .iter()
        .map(|d| d.get() as usize)
        .collect();
    let chunks = grid::regular(&shape, &chunk)?;
    let blocks = block_ranges(&chunks)
        .into_iter()
        .map(|r| delayed(read_zarr, (path.clone(), r)))
        .collect();
    Array::from_delayed(&shape, chunks, blocks)
}

impl Array {
    /// Creates a Zarr v3 array at `path` now (its metadata; an existing one
    /// is replaced) and returns the lazy writing of its blocks, whose value
    /// lists the blocks written (Dask's `to_zarr`). Zarr needs a regular
    /// grid: blocks of uneven lengths (other than the last) are first
    /// rechunked to the first block's length, as Dask asks users to do.
    pub fn to_zarr(&self, path: impl AsRef<Path>) -> Result<Delayed<Vec<String>>, Error> {
        let path = path.as_ref().to_string_lossy().into_owned();
        let sizes: Vec<usize> = self.chunks.iter().map(|c| c[0].max(1)).collect();
        let regular = grid::regular(&self.shape, &sizes)?;
        let x = if regular == self.chunks {
            self.clone()
        } else {
            self.rechunk_to(regular)?
        };
        std::fs::create_dir_all(&path).map_err(|e| zarr_error(&path, e))?;
        let store = Arc::new(FilesystemStore::new(&path).map_err(|e| zarr_error(&path, e))?);
        let shape: Vec<u64> = self.shape.iter().map(|&d| d as u64).collect();
        let chunk: Vec<u64> = sizes.iter().map(|&d| d as u64).collect();
        let z = ArrayBuilder::new(shape, chunk, data_type::float64(), 0.0f64)
            .bytes_to_bytes_codecs(vec![])
            .build(store, ARRAY_PATH)
            .map_err(|e| zarr_error(&path, e))?;
        z.store_metadata().map_err(|e| zarr_error(&path, e))?;
        let written: Vec<Delayed<String>> = block_ranges(&x.chunks)
            .into_iter()
            .zip(&x.blocks)
            .map(|(r, b)| delayed(write_zarr, (b, path.clone(), r)))
            .collect();
        Ok(delayed(kernels::paths, written))
    }
}
