//! `rdask-kube manifest`: prints the Kubernetes objects of an rdask
//! cluster as YAML (`rdask-kube manifest | kubectl apply -f -`).

use clap::{Parser, Subcommand};
use rdask_kube::{parse_bytes, ClusterManifest};

#[derive(Parser)]
#[command(name = "rdask-kube", about = "Kubernetes manifests for rdask clusters")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Print the scheduler Deployment + Service and the workers Deployment.
    Manifest {
        /// Cluster name (objects are NAME-scheduler, NAME-workers).
        #[arg(long, default_value = "rdask")]
        name: String,
        /// Namespace.
        #[arg(long, default_value = "default")]
        namespace: String,
        /// The rdask image (docker/Dockerfile).
        #[arg(long, default_value = "rdask:latest")]
        image: String,
        /// The workers' image (docker/Dockerfile.worker); default: --image.
        #[arg(long)]
        worker_image: Option<String>,
        /// Worker replicas.
        #[arg(long, default_value_t = 2)]
        workers: u32,
        /// Task threads (and CPUs) per worker.
        #[arg(long, default_value_t = 1)]
        nthreads: u32,
        /// Memory per worker, e.g. 4GB.
        #[arg(long, default_value = "1GiB")]
        memory: String,
    },
}

fn main() {
    let Cli { command } = Cli::parse();
    let Command::Manifest {
        name,
        namespace,
        image,
        worker_image,
        workers,
        nthreads,
        memory,
    } = command;
    let result = parse_bytes(&memory).and_then(|memory_bytes| {
        ClusterManifest {
            name,
            namespace,
            image,
            worker_image,
            workers,
            nthreads,
            memory_bytes,
        }
        .to_yaml()
    });
    match result {
        Ok(yaml) => print!("{yaml}"),
        Err(e) => {
            eprintln!("error: {e}");
            std::process::exit(2);
        }
    }
}
