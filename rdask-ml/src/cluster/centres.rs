//! [`Centres`]: the nearest-centre search every k-means pass runs on every
//! point, written so the compiler vectorises it. The centres are stored
//! transposed (feature-major), so a row's distances to all centres grow
//! together, feature by feature, in SIMD lanes (the row-wise
//! `kernels::nearest` is one scalar chain per centre); their number is
//! padded to a fixed width (4, 8, 16 or 32, with NaN centres that never
//! win a comparison), so the distances live in registers and the loops
//! unroll; and on a CPU with AVX2 the same code is compiled a second time
//! for it (4 lanes instead of SSE2's 2), chosen once per kernel call.
//!
//! Each distance still adds its features' squares in the same order, from
//! the same zero, with no fused multiply-add (Rust never contracts), so the
//! result is bit for bit `kernels::nearest`'s: ties go to the first centre.

/// Fixed widths the centres are padded to; more centres than the last
/// take the loop over a run-time count.
const WIDTHS: [usize; 4] = [4, 8, 16, 32];

/// Centres ready for the nearest-centre search (see the module doc).
pub(crate) struct Centres {
    /// `d × width`: feature `t` of centre `j` at `t * width + j`.
    by_feature: Vec<f64>,
    k: usize,
    d: usize,
    /// `k` padded to one of [`WIDTHS`], or `k` itself past them.
    width: usize,
    /// Whether to run the AVX2 build of the search.
    avx2: bool,
}

impl Centres {
    /// From row-major centres of width `d ≥ 1`.
    pub(crate) fn new(flat: &[f64], d: usize) -> Centres {
        Self::build(flat, d, avx2_detected())
    }

    /// As [`Centres::new`], the portable build forced (or not).
    fn build(flat: &[f64], d: usize, avx2: bool) -> Centres {
        let k = flat.len() / d.max(1);
        let width = WIDTHS.iter().copied().find(|&w| w >= k).unwrap_or(k);
        let mut by_feature = vec![f64::NAN; d * width];
        for (j, c) in flat.chunks_exact(d.max(1)).enumerate() {
            for (t, &v) in c.iter().enumerate() {
                by_feature[t * width + j] = v;
            }
        }
        Centres {
            by_feature,
            k,
            d,
            width,
            avx2,
        }
    }

    /// Number of centres.
    pub(crate) fn len(&self) -> usize {
        self.k
    }

    /// Calls `f(row, nearest centre, squared distance)` on each row of
    /// `run` (row-major, `d` per row) in order.
    pub(crate) fn for_each_nearest(&self, run: &[f64], mut f: impl FnMut(&[f64], usize, f64)) {
        #[cfg(target_arch = "x86_64")]
        if self.avx2 {
            // SAFETY: `avx2` is set only where the CPU was detected to have
            // AVX2 (`avx2_detected`).
            unsafe { scan_avx2(self, run, &mut f) };
            return;
        }
        scan(self, run, &mut f);
    }
}

#[cfg(target_arch = "x86_64")]
fn avx2_detected() -> bool {
    std::arch::is_x86_feature_detected!("avx2")
}

#[cfg(not(target_arch = "x86_64"))]
fn avx2_detected() -> bool {
    false
}

/// [`scan`] compiled for AVX2.
#[cfg(target_arch = "x86_64")]
#[target_feature(enable = "avx2")]
fn scan_avx2(c: &Centres, run: &[f64], f: &mut impl FnMut(&[f64], usize, f64)) {
    scan(c, run, f)
}

/// The search at the centres' width.
#[inline(always)]
fn scan(c: &Centres, run: &[f64], f: &mut impl FnMut(&[f64], usize, f64)) {
    match c.width {
        4 => scan_fixed::<4>(c, run, f),
        8 => scan_fixed::<8>(c, run, f),
        16 => scan_fixed::<16>(c, run, f),
        32 => scan_fixed::<32>(c, run, f),
        _ => scan_any(c, run, f),
    }
}

#[inline(always)]
fn scan_fixed<const W: usize>(c: &Centres, run: &[f64], f: &mut impl FnMut(&[f64], usize, f64)) {
    let (cols, _) = c.by_feature.as_chunks::<W>();
    for row in run.chunks_exact(c.d.max(1)) {
        let mut dist = [0.0f64; W];
        for (&x, col) in row.iter().zip(cols) {
            for (a, &v) in dist.iter_mut().zip(col) {
                let diff = x - v;
                *a += diff * diff;
            }
        }
        let (j, best) = argmin(&dist);
        f(row, j, best);
    }
}

#[inline(always)]
fn scan_any(c: &Centres, run: &[f64], f: &mut impl FnMut(&[f64], usize, f64)) {
    let mut dist = vec![0.0f64; c.width];
    for row in run.chunks_exact(c.d.max(1)) {
        dist.fill(0.0);
        for (&x, col) in row.iter().zip(c.by_feature.chunks_exact(c.width.max(1))) {
            for (a, &v) in dist.iter_mut().zip(col) {
                let diff = x - v;
                *a += diff * diff;
            }
        }
        let (j, best) = argmin(&dist);
        f(row, j, best);
    }
}

/// The first smallest distance (a NaN, a padding centre's, never wins).
#[inline(always)]
fn argmin(dist: &[f64]) -> (usize, f64) {
    let mut best = (0, f64::INFINITY);
    for (j, &v) in dist.iter().enumerate() {
        if v < best.1 {
            best = (j, v);
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::kernels::nearest;

    fn points(n: usize, d: usize, seed: u64) -> Vec<f64> {
        // A small LCG: these tests need varied numbers, not good ones.
        let mut s = seed.wrapping_mul(6_364_136_223_846_793_005).wrapping_add(1);
        (0..n * d)
            .map(|_| {
                s = s
                    .wrapping_mul(6_364_136_223_846_793_005)
                    .wrapping_add(1_442_695_040_888_963_407);
                (s >> 11) as f64 / (1u64 << 53) as f64 * 10.0 - 5.0
            })
            .collect()
    }

    #[test]
    fn every_width_and_build_finds_the_row_wise_nearest_centre_bit_for_bit() {
        for (k, d) in [(1, 1), (3, 7), (8, 10), (12, 2), (20, 3), (32, 4), (40, 2)] {
            let mut flat = points(k, d, k as u64);
            // A repeated centre: ties go to the first.
            if k > 1 {
                let first: Vec<f64> = flat[..d].to_vec();
                flat[(k - 1) * d..].copy_from_slice(&first);
            }
            let rows = points(300, d, 99);
            for avx2 in [false, avx2_detected()] {
                let centres = Centres::build(&flat, d, avx2);
                assert_eq!(centres.len(), k);
                let mut seen = 0;
                centres.for_each_nearest(&rows, |row, j, dist| {
                    let (want_j, want) = nearest(row, &flat, d);
                    assert_eq!(
                        (j, dist.to_bits()),
                        (want_j, want.to_bits()),
                        "k {k}, d {d}, avx2 {avx2}"
                    );
                    seen += 1;
                });
                assert_eq!(seen, 300);
            }
        }
    }
}
