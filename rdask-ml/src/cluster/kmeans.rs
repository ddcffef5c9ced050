//! [`KMeans`]: dask-ml's `KMeans` on the cluster. `fit` persists the
//! data's row blocks, initialises by k-means|| (`init`) or from given
//! centres, then runs Lloyd iterations: each one sends the centres once
//! (one graph node the tasks name by key), computes per block the sums and counts of the points nearest
//! to each centre plus the inertia (`kernels::lloyd_partial`), adds the
//! partials as a tree, and moves each centre to its points' mean, until
//! the centres move less than the tolerance or `max_iter`.

use rdask::delayed::{delayed, Delayed};
use rdask::Client;
use rdask_array::ndarray::{Array2, ArrayD, IxDyn};
use rdask_array::{kernels::from_chunk, Array, Chunk};

use super::dist::{broadcast, shape2, sum_on, Rows, DEFAULT_SPLIT_EVERY};
use super::init::{init_scalable, InitParams};
use super::kernels::{assign_labels, lloyd_partial};
use super::Error;

/// How the starting centres are chosen (dask-ml's `init`).
#[derive(Clone, Debug, PartialEq)]
pub enum Init {
    /// k-means|| (dask-ml's default `"k-means||"`).
    KMeansParallel,
    /// These centres (`n_clusters × n_features`), as dask-ml's `init=array`.
    Centers(Array2<f64>),
}

/// Distributed k-means (dask-ml's `dask_ml.cluster.KMeans`): the fields
/// are dask-ml's parameters, with its defaults from [`KMeans::new`].
///
/// ```no_run
/// use rdask_ml::cluster::KMeans;
/// # fn main() -> Result<(), Box<dyn std::error::Error>> {
/// let cluster = rdask::LocalCluster::new(2)?;
/// let client = cluster.client()?;
/// let x = rdask_array::random(&[100_000, 4], &[10_000, 4], 1)?;
/// let mut km = KMeans::new(3);
/// km.random_state = 7;
/// km.fit(&client, &x)?;
/// println!("{:?} inertia {}", km.cluster_centers_()?, km.inertia_()?);
/// let labels = km.predict(&x)?.compute(&client)?;
/// # Ok(()) }
/// ```
#[derive(Clone, Debug)]
pub struct KMeans {
    /// Number of clusters (dask-ml's default 8).
    pub n_clusters: usize,
    /// How to start.
    pub init: Init,
    /// At most this many k-means|| rounds (`None`: `round(ln φ)`, dask-ml's).
    pub init_max_iter: Option<usize>,
    /// k-means||'s `l`: about this many candidates are drawn per round
    /// (dask-ml's default 2).
    pub oversampling_factor: f64,
    /// At most this many Lloyd iterations (dask-ml's default 300).
    pub max_iter: usize,
    /// Relative tolerance: iterations stop when the centres' squared
    /// movement is below `tol` × the mean variance of the features
    /// (scikit-learn's and dask-ml's rule; default `1e-4`; 0 runs all
    /// `max_iter`).
    pub tol: f64,
    /// Seed of every random choice (dask-ml's `random_state`).
    pub random_state: u64,
    /// Partials added per task of the sums' trees (Dask's `split_every`).
    pub split_every: usize,
    fitted: Option<Fitted>,
}

/// What `fit` learnt.
#[derive(Clone, Debug)]
struct Fitted {
    centers: Array2<f64>,
    inertia: f64,
    n_iter: usize,
    labels: Array,
}

impl KMeans {
    /// `n_clusters` clusters with dask-ml's defaults.
    pub fn new(n_clusters: usize) -> KMeans {
        KMeans {
            n_clusters,
            init: Init::KMeansParallel,
            init_max_iter: None,
            oversampling_factor: 2.0,
            max_iter: 300,
            tol: 1e-4,
            random_state: 0,
            split_every: DEFAULT_SPLIT_EVERY,
            fitted: None,
        }
    }

    fn check_params(&self) -> Result<(), Error> {
        if self.n_clusters == 0 {
            return Err(Error::Param("n_clusters must be at least 1".into()));
        }
        if !(self.oversampling_factor > 0.0 && self.oversampling_factor.is_finite()) {
            return Err(Error::Param(format!(
                "oversampling_factor must be positive, not {}",
                self.oversampling_factor
            )));
        }
        if !(self.tol >= 0.0 && self.tol.is_finite()) {
            return Err(Error::Param(format!("tol must be 0 or more, not {}", self.tol)));
        }
        if self.max_iter == 0 {
            return Err(Error::Param("max_iter must be at least 1".into()));
        }
        Ok(())
    }

    /// Clusters the rows of `x` (samples × features): the data's blocks
    /// are computed once and kept on the workers for the whole fit.
    pub fn fit(&mut self, client: &Client, x: &Array) -> Result<&mut Self, Error> {
        self.check_params()?;
        let (n, d) = shape2(x, "X")?;
        if self.n_clusters > n {
            return Err(Error::Input(format!(
                "n_samples={n} should be >= n_clusters={}",
                self.n_clusters
            )));
        }
        if let Init::Centers(c) = &self.init {
            if c.dim() != (self.n_clusters, d) {
                return Err(Error::Param(format!(
                    "init centres of shape {:?}, expected ({}, {d})",
                    c.dim(),
                    self.n_clusters
                )));
            }
        }
        let rows = Rows::persist(client, x, "X")?;
        let tol = if self.tol > 0.0 {
            self.tol * mean_variance(client, &rows, x, self.split_every)?
        } else {
            0.0
        };
        let mut centers: Vec<f64> = match &self.init {
            Init::Centers(c) => c.iter().copied().collect(),
            Init::KMeansParallel => init_scalable(
                client,
                &rows,
                &InitParams {
                    n_clusters: self.n_clusters,
                    init_max_iter: self.init_max_iter,
                    oversampling_factor: self.oversampling_factor,
                    random_state: self.random_state,
                    split_every: self.split_every,
                },
            )?,
        };
        let k = self.n_clusters;
        let mut n_iter = 0;
        while n_iter < self.max_iter {
            let (sums, _) = self.lloyd_pass(client, &rows, &centers)?;
            n_iter += 1;
            let mut shift = 0.0;
            for j in 0..k {
                let count = sums[k * d + j];
                // An empty cluster keeps its centre (dask-ml would move
                // it to the origin).
                if count > 0.0 {
                    for t in 0..d {
                        let new = sums[j * d + t] / count;
                        shift += (new - centers[j * d + t]).powi(2);
                        centers[j * d + t] = new;
                    }
                }
            }
            if shift <= tol {
                break;
            }
        }
        // The inertia and labels of the final centres (one more pass, as
        // dask-ml's final `pairwise_distances_argmin_min`).
        let (_, inertia) = self.lloyd_pass(client, &rows, &centers)?;
        let centers = Array2::from_shape_vec((k, d), centers).map_err(|e| Error::Result(e.to_string()))?;
        let held = broadcast(Chunk(centers.clone().into_dyn()));
        let blocks = rows.blocks.iter().map(|b| delayed(assign_labels, (b, &held))).collect();
        let labels = Array::from_delayed(&[rows.n_samples], vec![rows.lens.clone()], blocks)?;
        self.fitted = Some(Fitted {
            centers,
            inertia,
            n_iter,
            labels,
        });
        Ok(self)
    }

    /// One pass over the data with `centers` broadcast: the summed
    /// partial (sums, counts, inertia) and the inertia.
    fn lloyd_pass(&self, client: &Client, rows: &Rows, centers: &[f64]) -> Result<(Vec<f64>, f64), Error> {
        let (k, d) = (self.n_clusters, rows.n_features);
        let c =
            Chunk(ArrayD::from_shape_vec(IxDyn(&[k, d]), centers.to_vec()).map_err(|e| Error::Result(e.to_string()))?);
        let c = broadcast(c);
        let parts = rows.blocks.iter().map(|b| delayed(lloyd_partial, (b, &c))).collect();
        let sums = sum_on(client, parts, self.split_every, k * d + k + 1)?;
        let inertia = sums[k * d + k];
        Ok((sums, inertia))
    }

    fn fitted(&self) -> Result<&Fitted, Error> {
        self.fitted.as_ref().ok_or(Error::NotFitted("KMeans"))
    }

    /// The centres (`n_clusters × n_features`).
    pub fn cluster_centers_(&self) -> Result<&Array2<f64>, Error> {
        Ok(&self.fitted()?.centers)
    }

    /// Sum of squared distances of the samples to their nearest centre
    /// (scikit-learn's; linfa reports it divided by the number of samples).
    pub fn inertia_(&self) -> Result<f64, Error> {
        Ok(self.fitted()?.inertia)
    }

    /// Lloyd iterations run.
    pub fn n_iter_(&self) -> Result<usize, Error> {
        Ok(self.fitted()?.n_iter)
    }

    /// The training samples' cluster indices, a lazy 1-d array (as
    /// dask-ml's `labels_`, a dask array), chunked like the samples.
    pub fn labels_(&self) -> Result<&Array, Error> {
        Ok(&self.fitted()?.labels)
    }

    /// The nearest centre of each row of `x`, lazily, a task per block
    /// (the centres sent once, one graph node named by key).
    pub fn predict(&self, x: &Array) -> Result<Array, Error> {
        let f = self.fitted()?;
        let (n, d) = shape2(x, "X")?;
        if d != f.centers.ncols() {
            return Err(Error::Input(format!(
                "X has {d} features, the model was fitted on {}",
                f.centers.ncols()
            )));
        }
        let x = if x.numblocks()[1] == 1 {
            x.clone()
        } else {
            x.rechunk_to(vec![x.chunks()[0].clone(), vec![d]])?
        };
        let c = broadcast(Chunk(f.centers.clone().into_dyn()));
        let blocks = x.to_delayed().iter().map(|b| delayed(assign_labels, (b, &c))).collect();
        Ok(Array::from_delayed(&[n], vec![x.chunks()[0].clone()], blocks)?)
    }
}

/// The mean over features of their variance (scikit-learn's `_tolerance`
/// scale), one pass over the persisted rows.
fn mean_variance(client: &Client, rows: &Rows, x: &Array, split_every: usize) -> Result<f64, Error> {
    let blocks: Vec<Delayed<Chunk>> = rows.blocks.iter().map(|b| delayed(from_chunk, (b,))).collect();
    let held = Array::from_delayed(x.shape(), vec![rows.lens.clone(), vec![rows.n_features]], blocks)?;
    let var = held
        .split_every(split_every)
        .var_axes(&[0], false, 0.0)?
        .compute(client)?;
    Ok(var.mean().unwrap_or(0.0))
}
