//! The `rdask` command line with this crate's kernels linked in: run
//! `rdask-dataframe worker tcp://SCHEDULER:8786` for workers that can
//! compute data frames (every other subcommand of `rdask` works too).

use rdask_dataframe as _;

fn main() {
    std::process::exit(rdask::cli::main())
}
