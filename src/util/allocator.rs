//! The `rdask` binary's memory allocator: mimalloc in a scheduler process,
//! the system's (glibc) in every other.
//!
//! A scheduler makes and frees a few small blocks per task (keys, messages,
//! index entries) and nothing else: mimalloc's thread-local free lists do
//! that with less work than glibc's arenas (measured in
//! docs/benchmarks.md: releasing 1M futures 2.76 → 1.80 s, scheduler CPU
//! −8 %). A worker is different: it holds large task results, is judged by
//! its resident memory (pause, spill) and gives freed memory back through
//! glibc's `malloc_trim` and its mmap threshold
//! ([`super::return_large_blocks_to_os`]), behaviour its memory tests rely
//! on; it keeps the system allocator.
//!
//! The choice is made once, at the process's first allocation (before
//! `main`, before any thread), from its command line
//! (`/proc/self/cmdline`, read with plain system calls into a stack
//! buffer, as nothing may allocate yet): mimalloc when the subcommand is
//! `scheduler`. `RDASK_ALLOCATOR=system` or `=mimalloc` overrides it, for
//! comparisons. Every block is freed by the allocator that made it, since
//! the choice never changes. No crate dispatches between two allocators by
//! role; this is the smallest form of it.

use std::alloc::{GlobalAlloc, Layout, System};
use std::sync::atomic::{AtomicU8, Ordering};

use mimalloc::MiMalloc;

/// Not chosen yet (no allocation through [`RoleAllocator`] so far, or it
/// is not the process's global allocator).
const UNDECIDED: u8 = 0;
/// The system allocator.
const SYSTEM: u8 = 1;
/// mimalloc.
const MIMALLOC: u8 = 2;

/// Environment variable overriding the choice: `system` or `mimalloc`.
pub const ALLOCATOR_ENV: &std::ffi::CStr = c"RDASK_ALLOCATOR";

/// Bytes of `/proc/self/cmdline` read to find the subcommand: the
/// program's path, an optional `--config FILE`, then the subcommand.
const CMDLINE_BYTES: usize = 4096;

static CHOICE: AtomicU8 = AtomicU8::new(UNDECIDED);

/// The global allocator of the `rdask` binary (see the module
/// documentation): `#[global_allocator] static A: RoleAllocator = RoleAllocator;`.
pub struct RoleAllocator;

impl RoleAllocator {
    #[inline]
    fn mimalloc(&self) -> bool {
        match CHOICE.load(Ordering::Relaxed) {
            UNDECIDED => decide() == MIMALLOC,
            c => c == MIMALLOC,
        }
    }
}

// SAFETY: every call goes to one allocator, the same for the whole life of
// the process (`CHOICE` is set once, before any block exists, and two
// threads deciding at once reach the same answer), so each block is freed
// or resized by the allocator that made it; both delegates uphold
// `GlobalAlloc`'s contract themselves.
unsafe impl GlobalAlloc for RoleAllocator {
    #[inline]
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if self.mimalloc() {
            MiMalloc.alloc(layout)
        } else {
            System.alloc(layout)
        }
    }

    #[inline]
    unsafe fn alloc_zeroed(&self, layout: Layout) -> *mut u8 {
        if self.mimalloc() {
            MiMalloc.alloc_zeroed(layout)
        } else {
            System.alloc_zeroed(layout)
        }
    }

    #[inline]
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        if self.mimalloc() {
            MiMalloc.dealloc(ptr, layout)
        } else {
            System.dealloc(ptr, layout)
        }
    }

    #[inline]
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if self.mimalloc() {
            MiMalloc.realloc(ptr, layout, new_size)
        } else {
            System.realloc(ptr, layout, new_size)
        }
    }
}

/// Whether this process allocates with mimalloc (only ever true in a
/// process whose global allocator is [`RoleAllocator`]).
pub fn uses_mimalloc() -> bool {
    CHOICE.load(Ordering::Relaxed) == MIMALLOC
}

/// Logs the allocator in use, and warns when `RDASK_ALLOCATOR` holds a
/// value it ignored (it cannot say so when it decides: nothing may
/// allocate then).
pub fn log_choice() {
    tracing::info!(allocator = %name(), "memory allocator");
    if let Some(v) = std::env::var_os("RDASK_ALLOCATOR") {
        if v != "system" && v != "mimalloc" {
            tracing::warn!(value = ?v, "RDASK_ALLOCATOR is neither `system` nor `mimalloc`; ignored");
        }
    }
}

/// The allocator in use, for logs: `mimalloc` or `system`.
pub fn name() -> &'static str {
    if uses_mimalloc() {
        "mimalloc"
    } else {
        "system"
    }
}

/// Hands mimalloc's unused pages back to the OS (its `mi_collect`), the
/// counterpart of glibc's `malloc_trim`.
pub(crate) fn collect_mimalloc() {
    // SAFETY: mi_collect takes no pointers and may be called from any
    // thread at any time.
    unsafe { libmimalloc_sys::mi_collect(true) }
}

#[cold]
fn decide() -> u8 {
    let choice = match env_choice() {
        Some(c) => c,
        None if subcommand_is_scheduler() => MIMALLOC,
        None => SYSTEM,
    };
    CHOICE.store(choice, Ordering::Relaxed);
    choice
}

/// `RDASK_ALLOCATOR`, read without allocating.
fn env_choice() -> Option<u8> {
    // SAFETY: the name is a NUL-terminated literal; getenv returns null or
    // a NUL-terminated string owned by the environment, read at once
    // (nothing sets variables this early).
    let value = unsafe { libc::getenv(ALLOCATOR_ENV.as_ptr()) };
    if value.is_null() {
        return None;
    }
    // SAFETY: non-null, NUL-terminated (above).
    match unsafe { std::ffi::CStr::from_ptr(value) }.to_bytes() {
        b"system" => Some(SYSTEM),
        b"mimalloc" => Some(MIMALLOC),
        _ => None,
    }
}

/// Whether the process's subcommand is `scheduler`: the first argument
/// after the program that is neither a flag nor `--config`'s value.
fn subcommand_is_scheduler() -> bool {
    let mut buf = [0u8; CMDLINE_BYTES];
    let Some(n) = read_cmdline(&mut buf) else {
        return false;
    };
    first_positional(&buf[..n]) == Some(b"scheduler".as_slice())
}

/// The subcommand in a NUL-separated command line (program first; the
/// empty piece after the last NUL is no argument).
fn first_positional(cmdline: &[u8]) -> Option<&[u8]> {
    let mut args = cmdline.split(|&b| b == 0).skip(1);
    while let Some(a) = args.next() {
        if a == b"--config" {
            args.next();
        } else if !a.is_empty() && !a.starts_with(b"-") {
            return Some(a);
        }
    }
    None
}

/// Reads `/proc/self/cmdline` into `buf` with plain system calls.
fn read_cmdline(buf: &mut [u8]) -> Option<usize> {
    // SAFETY: a NUL-terminated literal path; the descriptor is closed
    // below on every path.
    let fd = unsafe { libc::open(c"/proc/self/cmdline".as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return None;
    }
    let mut n = 0;
    while n < buf.len() {
        // SAFETY: writes at most `buf.len() - n` bytes inside `buf`.
        let r = unsafe { libc::read(fd, buf[n..].as_mut_ptr().cast(), buf.len() - n) };
        if r <= 0 {
            break;
        }
        n += r as usize;
    }
    // SAFETY: `fd` is ours and open.
    unsafe { libc::close(fd) };
    Some(n)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_subcommand_is_the_first_positional_argument() {
        let sub = |s: &str| first_positional(s.as_bytes()).map(|a| String::from_utf8_lossy(a).into_owned());
        assert_eq!(sub("rdask\0scheduler\0--port\0\x30\0").as_deref(), Some("scheduler"));
        assert_eq!(
            sub("/x/rdask\0--config\0scheduler\0worker\0tcp://scheduler:1\0").as_deref(),
            Some("worker")
        );
        assert_eq!(sub("rdask\0--config=a.toml\0scheduler\0").as_deref(), Some("scheduler"));
        assert_eq!(sub("rdask\0worker\0--name\0scheduler\0").as_deref(), Some("worker"));
        assert_eq!(sub("rdask\0").as_deref(), None);
        assert_eq!(sub("").as_deref(), None);
    }

    #[test]
    fn a_test_process_reads_its_own_command_line() {
        let mut buf = [0u8; CMDLINE_BYTES];
        let n = read_cmdline(&mut buf).expect("/proc/self/cmdline");
        let program = buf[..n].split(|&b| b == 0).next().unwrap_or_default();
        assert!(!program.is_empty(), "the program comes first");
        assert!(n < CMDLINE_BYTES || buf.contains(&0));
    }
}
