//! Distributed k-means on the embedded cluster: three Gaussian blobs in 2-d
//! as an rdask array of 8 row blocks, clustered by `KMeans` (k-means||
//! then Lloyd iterations as tasks per block), then each point labelled,
//! lazily, a task per block. Then a logistic regression on the labels.
//!
//! `cargo run -p rdask-ml --example kmeans`

use rdask_array as da;
use rdask_array::ndarray::Array2;
use rdask_ml::cluster::KMeans;
use rdask_ml::linear::LogisticRegression;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let cluster = rdask::LocalCluster::new(2)?;
    let client = cluster.client()?;

    // 40,000 points around (0, 0), (8, 0) and (4, 7): noise from the
    // array's own seeded random blocks.
    let n = 40_000;
    let noise = da::random(&[n, 2], &[5_000, 2], 1)?.compute(&client)?;
    let centres = [[0.0, 0.0], [8.0, 0.0], [4.0, 7.0]];
    let points = Array2::from_shape_fn((n, 2), |(i, j)| centres[i % 3][j] + 4.0 * (noise[[i, j]] - 0.5));
    let x = da::from_array(&points, &[5_000, 2])?;

    let mut km = KMeans::new(3);
    km.random_state = 42;
    km.fit(&client, &x)?;
    println!("centres:\n{:.3}", km.cluster_centers_()?);
    println!("inertia {:.1} after {} Lloyd iterations", km.inertia_()?, km.n_iter_()?);
    let labels = km.predict(&x)?.compute(&client)?;
    for j in 0..3 {
        let count = labels.iter().filter(|&&l| l == j as f64).count();
        println!("cluster {j}: {count} points");
    }

    // Is a point in the first cluster? A logistic regression, trained
    // data-parallel on the same row blocks.
    let is_first = da::from_array(&labels.mapv(|l| f64::from(u8::from(l == 0.0))), &[5_000])?;
    let mut lr = LogisticRegression::new();
    lr.fit(&client, &x, &is_first)?;
    println!(
        "logistic: coef {:.3}, intercept {:.3}, accuracy {:.4}",
        lr.coef_()?,
        lr.intercept_()?,
        lr.score(&client, &x, &is_first)?
    );
    Ok(())
}
