//! Small helpers with no better home: the process's resident memory (and
//! giving freed memory back), the open-files limit, a stable hash for
//! deterministic keys, the fast hash maps of the state machines, and the
//! slab-keyed index of string keys (`key_index`), and the `rdask` binary's
//! allocator (`allocator`).

/// Resident set size of this process in bytes (0 where the platform does
/// not report it). On Linux this is `/proc/self/statm` times the kernel's
/// real page size (`sysconf(_SC_PAGESIZE)`, 16 or 64 KiB on some arm64 and
/// ppc64 kernels), read by the `memory-stats` crate; macOS, FreeBSD and
/// Windows are covered by the same call.
pub fn rss_bytes() -> u64 {
    memory_stats::memory_stats().map_or(0, |m| m.physical_mem as u64)
}

/// Asks the allocator to hand memory it holds but no longer uses back to the
/// OS, so that process memory (RSS) reflects what is in use. After a large
/// release glibc keeps freed pages in its arenas, and a worker judged by its
/// RSS would stay past its pause threshold with nothing left to free. Costs
/// a walk of the allocator's free lists (milliseconds for a large heap), so
/// call it after large releases, not per allocation. Returns whether
/// memory was released; a no-op (false) outside linux-gnu. In a process
/// that allocates with mimalloc (the `rdask` binary's scheduler, see
/// [`allocator`]) it is mimalloc's `mi_collect` instead.
pub fn release_free_memory() -> bool {
    if allocator::uses_mimalloc() {
        allocator::collect_mimalloc();
        return true;
    }
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: malloc_trim only walks and madvises the allocator's own
        // free chunks; it takes the arena locks itself and has no
        // preconditions on the caller.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Allocations of at least this many bytes get pages of their own from the
/// OS (glibc `M_MMAP_THRESHOLD`) once
/// [`return_large_blocks_to_os`] is called, and go back to it when freed.
pub const LARGE_BLOCK_BYTES: usize = 1024 * 1024;

/// Has the allocator map every block of [`LARGE_BLOCK_BYTES`] or more on
/// its own and unmap it when freed, so that process memory (RSS) falls as
/// soon as a large value (a task result, a payload read from the network)
/// is dropped. glibc does this by default only up to a threshold that it
/// raises, up to 32 MiB, each time such a block is freed: after that, the
/// multi-megabyte values a worker handles live in its heaps, and what they
/// leave behind when freed stays in RSS, fragmented, where even
/// [`release_free_memory`] cannot always return it. A worker judges its
/// pause on RSS, so it must see memory in use, not memory once used.
/// Costs a page-fault pass per large allocation, small beside filling it.
/// Returns whether the setting took; a no-op (false) outside linux-gnu.
pub fn return_large_blocks_to_os() -> bool {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    {
        // SAFETY: mallopt only changes a tunable of the allocator, under
        // its own lock; setting the threshold explicitly also turns off
        // glibc's raising of it.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, LARGE_BLOCK_BYTES as libc::c_int) == 1 }
    }
    #[cfg(not(all(target_os = "linux", target_env = "gnu")))]
    {
        false
    }
}

/// Raises this process's soft limit on open files to its hard limit, as
/// Dask does, so a scheduler with many clients and workers does not run out
/// of file descriptors at the usual soft limit of 1,024. Returns the soft
/// limit in force afterwards (`None` where it cannot be read).
pub fn raise_open_files_limit() -> Option<u64> {
    #[cfg(unix)]
    {
        let mut limit = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: getrlimit/setrlimit write only into the struct passed.
        unsafe {
            if libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) != 0 {
                return None;
            }
            // An unlimited hard limit is refused as a soft one (Linux caps
            // it at fs.nr_open), so a million is tried after it.
            for target in [limit.rlim_max, limit.rlim_max.min(1 << 20)] {
                if limit.rlim_cur >= target {
                    break;
                }
                let raised = libc::rlimit {
                    rlim_cur: target,
                    rlim_max: limit.rlim_max,
                };
                if libc::setrlimit(libc::RLIMIT_NOFILE, &raised) == 0 {
                    limit = raised;
                }
            }
        }
        #[allow(clippy::unnecessary_cast)] // rlim_t is u64 on Linux, not everywhere
        Some(limit.rlim_cur as u64)
    }
    #[cfg(not(unix))]
    None
}

/// 64-bit FNV-1a (the `fnv` crate): a stable hash, the same on every
/// machine and Rust version, for deterministic `pure` keys. Each part is
/// followed by a 0xff byte so ("ab","c") and ("a","bc") differ.
pub fn fnv1a64(parts: &[&[u8]]) -> u64 {
    use std::hash::Hasher as _;
    let mut h = fnv::FnvHasher::default();
    for part in parts {
        h.write(part);
        h.write(&[0xff]);
    }
    h.finish()
}

/// A `HashMap` with rustc's Fx hash (`rustc-hash`): several times cheaper
/// than SipHash for the integer ids and short string keys of the internal
/// maps (SipHash was ~15% of the cost per task). It is not DoS-resistant
/// against crafted colliding keys, but a client able to submit tasks can
/// load the scheduler anyway: clients are trusted users of the cluster.
pub type FxMap<K, V> = rustc_hash::FxHashMap<K, V>;
/// A `HashSet` with rustc's Fx hash; see [`FxMap`].
pub type FxSet<K> = rustc_hash::FxHashSet<K>;

pub mod allocator;
pub mod key_index;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rss_is_reported_and_grows_with_touched_memory() {
        let before = rss_bytes();
        assert!(before > 0, "this platform reports resident memory");
        // 64 MiB written, so every page is resident whatever the page size.
        let block = std::hint::black_box(vec![1u8; 64 << 20]);
        let after = rss_bytes();
        assert!(after >= before + (32 << 20), "{before} -> {after}");
        drop(block);
    }

    #[test]
    fn fnv_is_stable_and_separates_parts() {
        // Keys made by earlier versions must stay the same (values from
        // the hand-written FNV-1a this replaced).
        assert_eq!(fnv1a64(&[]), 0xcbf2_9ce4_8422_2325);
        assert_eq!(fnv1a64(&[b"inc", b"\x01"]), 0x3233_280d_2a27_cdfc);
        assert_ne!(fnv1a64(&[b"ab", b"c"]), fnv1a64(&[b"a", b"bc"]));
    }
}
