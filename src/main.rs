//! The `rdask` binary: parses flags and hands over to the library.

/// mimalloc in a scheduler process, the system allocator elsewhere
/// (see `rdask::util::allocator`).
#[global_allocator]
static ALLOCATOR: rdask::util::allocator::RoleAllocator = rdask::util::allocator::RoleAllocator;

fn main() {
    std::process::exit(rdask::cli::main());
}
