//! The `rdask` command line with this crate's kernels linked in: run
//! `rdask-array worker tcp://SCHEDULER:8786` for workers that can compute
//! arrays (every other subcommand of `rdask` works too).

use rdask_array as _;

fn main() {
    std::process::exit(rdask::cli::main())
}
