//! Machine learning on rdask (Dask-ML): estimators whose work runs as
//! tasks on the cluster, over `rdask-array` arrays.

pub mod cluster;
pub mod linear;
