//! The `rdask` command line with this crate's kernels (and rdask-array's)
//! linked in: run `rdask-ml worker tcp://SCHEDULER:8786` for workers that
//! can fit this crate's estimators (every other subcommand of `rdask`
//! works too).

use rdask_ml as _;

fn main() {
    std::process::exit(rdask::cli::main())
}
