//! Sources: arrays from memory, constants, seeded random numbers, ranges,
//! a registered block function, and `.npy` stacks (a file per block) both
//! ways.

use std::path::Path;

use ndarray::{ArrayBase, Data, Dimension, Slice};
use rdask::delayed::{delayed, Delayed};
use rdask::task::Task;
use serde::{Deserialize, Serialize};

use crate::{grid, kernels, Array, Chunk, ChunkLens, Error};

/// The `info.json` of an `.npy` stack: what `from_npy_stack` needs to
/// rebuild the grid without opening every file.
#[derive(Serialize, Deserialize)]
struct StackInfo {
    shape: Vec<usize>,
    chunks: ChunkLens,
    dtype: String,
}

/// Name of the stack's description file.
const STACK_INFO: &str = "info.json";

/// A grid over `shape` with blocks from `make(block index, offset, block shape)`.
fn generate(
    shape: &[usize],
    chunks: &[usize],
    mut make: impl FnMut(&[usize], Vec<usize>, Vec<usize>) -> Delayed<Chunk>,
) -> Result<Array, Error> {
    let lens = grid::regular(shape, chunks)?;
    let offs: Vec<Vec<usize>> = lens.iter().map(|l| grid::offsets(l)).collect();
    let blocks = grid::indices(&grid::nblocks(&lens))
        .iter()
        .map(|idx| {
            let offset: Vec<usize> = idx.iter().enumerate().map(|(k, &i)| offs[k][i]).collect();
            let bshape: Vec<usize> = idx.iter().enumerate().map(|(k, &i)| lens[k][i]).collect();
            make(idx, offset, bshape)
        })
        .collect();
    Array::from_delayed(shape, lens, blocks)
}

/// An array of the values of `a` in blocks of `chunks` (Dask's
/// `from_array`); the blocks travel inside the graph.
pub fn from_array<S: Data<Elem = f64>, D: Dimension>(a: &ArrayBase<S, D>, chunks: &[usize]) -> Result<Array, Error> {
    let a = a.view().into_dyn();
    generate(a.shape(), chunks, |_, offset, bshape| {
        let block = a
            .slice_each_axis(|ax| {
                let k = ax.axis.index();
                Slice::from(offset[k]..offset[k] + bshape[k])
            })
            .to_owned();
        delayed(kernels::from_chunk, (Chunk(block),))
    })
}

/// An array of `value` (Dask's `full`).
pub fn full(shape: &[usize], chunks: &[usize], value: f64) -> Result<Array, Error> {
    generate(shape, chunks, |_, _, bshape| delayed(kernels::full, (bshape, value)))
}

/// An array of zeros.
pub fn zeros(shape: &[usize], chunks: &[usize]) -> Result<Array, Error> {
    full(shape, chunks, 0.0)
}

/// An array of ones.
pub fn ones(shape: &[usize], chunks: &[usize]) -> Result<Array, Error> {
    full(shape, chunks, 1.0)
}

/// Uniform numbers in `[0, 1)` (Dask's `da.random.random`); each block
/// depends only on `seed` and its grid position, so the same call gives the
/// same array, and a block computes the same alone or with the rest.
pub fn random(shape: &[usize], chunks: &[usize], seed: u64) -> Result<Array, Error> {
    generate(shape, chunks, |idx, _, bshape| {
        delayed(kernels::random, (bshape, seed, idx.to_vec()))
    })
}

/// `start, start + step, …` below `stop` (or above it for a negative step),
/// in blocks of `chunk` (NumPy's `arange`).
pub fn arange(start: f64, stop: f64, step: f64, chunk: usize) -> Result<Array, Error> {
    if step == 0.0 || !step.is_finite() {
        return Err(Error::Shape(format!("arange step {step}")));
    }
    let n = ((stop - start) / step).ceil().max(0.0) as usize;
    generate(&[n], &[chunk], |_, offset, bshape| {
        delayed(kernels::arange, (start + step * offset[0] as f64, step, bshape[0]))
    })
}

/// An array whose blocks are made by the registered function `f(offset,
/// shape)`: the position of the block's first element and the block's
/// shape (Dask's `fromfunction`, one call per block rather than per
/// element). The block it returns must have that shape.
pub fn from_fn<F>(f: F, shape: &[usize], chunks: &[usize]) -> Result<Array, Error>
where
    F: Task<Args = (Vec<usize>, Vec<usize>), Output = Chunk> + Copy,
{
    generate(shape, chunks, |_, offset, bshape| delayed(f, (offset, bshape)))
}

fn block_file(dir: &Path, idx: &[usize]) -> String {
    let name: Vec<String> = idx.iter().map(usize::to_string).collect();
    let name = if name.is_empty() {
        "0".to_string()
    } else {
        name.join(".")
    };
    dir.join(format!("{name}.npy")).to_string_lossy().into_owned()
}

fn file_error(path: &Path, e: impl std::fmt::Display) -> Error {
    Error::File {
        path: path.display().to_string(),
        message: e.to_string(),
    }
}

/// An array from a directory written by [`Array::to_npy_stack`]: a `.npy`
/// file per block (`<i>.<j>.npy`) and `info.json` with the shape and
/// chunks. The files are read by the workers, so `dir` must be where they
/// can see it.
pub fn from_npy_stack(dir: impl AsRef<Path>) -> Result<Array, Error> {
    let dir = dir.as_ref();
    let info_path = dir.join(STACK_INFO);
    let text = std::fs::read_to_string(&info_path).map_err(|e| file_error(&info_path, e))?;
    let info: StackInfo = serde_json::from_str(&text).map_err(|e| file_error(&info_path, e))?;
    if info.dtype != "<f8" {
        return Err(file_error(
            &info_path,
            format!("dtype {} (only <f8 is read)", info.dtype),
        ));
    }
    grid::check(&info.shape, &info.chunks)?;
    let blocks = grid::indices(&grid::nblocks(&info.chunks))
        .iter()
        .map(|idx| {
            let bshape: Vec<usize> = idx.iter().enumerate().map(|(k, &i)| info.chunks[k][i]).collect();
            delayed(kernels::read_npy, (block_file(dir, idx), bshape))
        })
        .collect();
    Array::from_delayed(&info.shape, info.chunks, blocks)
}

impl Array {
    /// Writes `info.json` into `dir` (created if missing) now, and returns
    /// the lazy writing of one `.npy` file per block, whose value is the
    /// list of files written (Dask's `to_npy_stack`, which splits along one
    /// axis only; here any grid). The workers write the files, so `dir`
    /// must be where they can see it.
    pub fn to_npy_stack(&self, dir: impl AsRef<Path>) -> Result<Delayed<Vec<String>>, Error> {
        let dir = dir.as_ref();
        std::fs::create_dir_all(dir).map_err(|e| file_error(dir, e))?;
        let info = StackInfo {
            shape: self.shape.clone(),
            chunks: self.chunks.clone(),
            dtype: "<f8".to_string(),
        };
        let info_path = dir.join(STACK_INFO);
        let text = serde_json::to_string(&info).map_err(|e| file_error(&info_path, e))?;
        std::fs::write(&info_path, text).map_err(|e| file_error(&info_path, e))?;
        let written: Vec<Delayed<String>> = grid::indices(&self.numblocks())
            .iter()
            .zip(&self.blocks)
            .map(|(idx, b)| delayed(kernels::write_npy, (b, block_file(dir, idx))))
            .collect();
        Ok(delayed(kernels::paths, written))
    }
}
