//! Hand-scheduled AVX2 + FMA block of the product kernel for the shape whose generic form the
//! compiler does not keep in the 16 `ymm` registers: 3 rows × 32 columns (the LSTM's tile: 8
//! units × 4 gates), 12 accumulators, with the tile's row loaded once per `k` for the three
//! rows; each output element is the same running sum, in the same order, as the generic
//! kernel's (`acc = fma(a[r][k], w[k][c], acc)`, `k` ascending): the same bits.
//!
//! Measured alone on an AVX2-only Zen 3 core (a 64-row × 384-`k` product per tile, the
//! `batch` shape's step): the generic 2 × 32 block 55–72 GFLOP/s, the generic 3 × 32 block
//! 39–43 (its accumulators spill), this 3 × 32 block 69–96, of a measured 101 GFLOP/s peak.

use std::arch::x86_64::{
    __m256, _mm256_broadcast_ss, _mm256_fmadd_ps, _mm256_loadu_ps, _mm256_storeu_ps,
};

/// Whether [`dot`] has a block of `mr` rows × `nc` columns.
#[inline(always)]
pub(super) const fn has_block(mr: usize, nc: usize) -> bool {
    matches!((mr, nc), (3, 32))
}

/// `acc[r][c] += Σ_k a[r][k] · w[k·32 + c]` for the block [`has_block`] has (3 rows, `acc`
/// 3 × 32 floats), `k` ascending over `a[0].len()` (every row at least that long, `w` at least
/// `k · 32` floats).
///
/// # Safety
/// The processor must have AVX2 and FMA.
#[inline]
#[target_feature(enable = "avx2,fma")]
pub(super) unsafe fn dot(acc: &mut [f32], a: &[&[f32]], w: &[f32]) {
    let &[a0, a1, a2] = a else {
        unreachable!("the AVX2 block has 3 rows, not {}", a.len())
    };
    let k = a0.len();
    assert!(acc.len() == 3 * 32 && a1.len() >= k && a2.len() >= k && w.len() >= k * 32);
    dot_3x32(acc, [a0, a1, a2], w, k)
}

/// Loads `N` vectors of 8 floats from `src`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn load<const N: usize>(src: &[f32]) -> [__m256; N] {
    assert!(src.len() >= N * 8);
    // SAFETY: `N · 8` floats are in bounds (checked above).
    std::array::from_fn(|v| unsafe { _mm256_loadu_ps(src.as_ptr().add(v * 8)) })
}

/// Stores `N` vectors of 8 floats to `dst`.
#[inline]
#[target_feature(enable = "avx2,fma")]
unsafe fn store<const N: usize>(dst: &mut [f32], v: [__m256; N]) {
    assert!(dst.len() >= N * 8);
    for (i, v) in v.into_iter().enumerate() {
        // SAFETY: `N · 8` floats are in bounds (checked above).
        unsafe { _mm256_storeu_ps(dst.as_mut_ptr().add(i * 8), v) };
    }
}

/// 3 rows × 32 columns: per `k` the three rows' values broadcast, then each of the tile's four
/// vectors loaded once and multiplied into the three rows (12 accumulators + 3 + 1 registers).
#[inline]
#[target_feature(enable = "avx2,fma")]
#[allow(clippy::needless_range_loop)] // the indices spell out the register schedule
unsafe fn dot_3x32(acc: &mut [f32], a: [&[f32]; 3], w: &[f32], k: usize) {
    let mut c: [[__m256; 4]; 3] = std::array::from_fn(|r| unsafe { load(&acc[r * 32..]) });
    let p = a.map(|row| row.as_ptr());
    let mut wp = w.as_ptr();
    for kk in 0..k {
        // SAFETY: `kk < k`, every row holds `k` floats and `w` `k · 32` (checked by `dot`).
        unsafe {
            let x = p.map(|row| _mm256_broadcast_ss(&*row.add(kk)));
            for g in 0..4 {
                let wv = _mm256_loadu_ps(wp.add(8 * g));
                for r in 0..3 {
                    c[r][g] = _mm256_fmadd_ps(x[r], wv, c[r][g]);
                }
            }
            wp = wp.add(32);
        }
    }
    for (r, c) in c.into_iter().enumerate() {
        unsafe { store(&mut acc[r * 32..], c) };
    }
}
