//! The `rdask` command line with this crate's tasks (and rdask-array's
//! kernels) linked in: run `rdask-ml worker tcp://SCHEDULER:8786` for
//! workers that can run searches and post-fit predictions (every other
//! subcommand of `rdask` works too).

use rdask_array as _;
use rdask_ml as _;

fn main() {
    std::process::exit(rdask::cli::main())
}
