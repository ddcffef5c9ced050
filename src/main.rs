//! The `rdask` binary: parses flags and hands over to the library.

fn main() {
    std::process::exit(rdask::cli::main());
}
