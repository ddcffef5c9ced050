//! Fresh element buffers for blocks. A block of 1,000 × 1,000 `f64`s is
//! 8 MB of new memory each time one is made or decoded, and faulting it in
//! 4 KiB pages (each zeroed by the kernel) costs more than making its
//! values; so, as NumPy does for arrays of 4 MiB and more, large buffers
//! ask the kernel for transparent huge pages (`madvise(MADV_HUGEPAGE)`,
//! which matters where THP is in `madvise` mode, the usual default): one
//! fault per 2 MiB. Elsewhere, or if the advice is refused, a plain `Vec`.

/// Buffers of at least this many bytes are advised to use huge pages
/// (NumPy's threshold).
pub const HUGE_PAGE_MIN_BYTES: usize = 4 << 20;

/// An empty vector with room for `n` elements, its memory advised to use
/// huge pages when large.
pub fn with_capacity(n: usize) -> Vec<f64> {
    let v: Vec<f64> = Vec::with_capacity(n);
    let bytes = v.capacity() * std::mem::size_of::<f64>();
    if bytes >= HUGE_PAGE_MIN_BYTES {
        advise_huge_pages(v.as_ptr() as usize, bytes);
    }
    v
}

/// Advice only: the kernel may ignore it, and a failure changes nothing
/// but speed, so its result is not checked.
#[cfg(target_os = "linux")]
fn advise_huge_pages(addr: usize, len: usize) {
    /// `madvise` takes page-aligned ranges: the whole pages inside the buffer.
    const PAGE: usize = 4096;
    let start = addr.next_multiple_of(PAGE);
    let end = (addr + len) / PAGE * PAGE;
    if end > start {
        // SAFETY: the range lies inside memory this process owns (the
        // vector's allocation); MADV_HUGEPAGE changes how it is backed, never
        // its contents or validity.
        unsafe {
            libc::madvise(start as *mut libc::c_void, end - start, libc::MADV_HUGEPAGE);
        }
    }
}

#[cfg(not(target_os = "linux"))]
fn advise_huge_pages(_addr: usize, _len: usize) {}
