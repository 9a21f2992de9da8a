//! The AVX-512 VNNI block of the integer product, on 512-bit vectors: per group of four `k`,
//! the activations of each row (four unsigned bytes) broadcast, each of the tile's vectors
//! (16 columns × 4 `k`) loaded once, and `vpdpbusd` (the four `u8·i8` products of a lane
//! summed into its 32-bit accumulator) for every row. The same exact sums as the 256-bit
//! blocks, on the tiles of 16 units that the AVX-512 float32 epilogue works in.

use std::arch::x86_64::{
    __m512i, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_si512,
    _mm512_storeu_si512,
};

use super::K_GROUP;

/// Whether [`dot`] computes tiles `nc` columns wide (whole vectors, at most 4).
#[inline(always)]
pub(super) const fn has_width(nc: usize) -> bool {
    nc.is_multiple_of(16) && nc <= 64
}

/// `acc[r][c] = Σ_k a[r][k] · w[k][c]` for the first `MR` rows of `acc`, `k` over
/// `a[0].len()` (a multiple of [`K_GROUP`]; every row as long, `w` at least `k · NC` bytes).
///
/// # Safety
/// The processor must have AVX-512F and AVX-512 VNNI.
#[inline]
#[target_feature(enable = "avx512f,avx512vnni")]
#[allow(clippy::needless_range_loop)] // the indices spell out the register schedule
pub(super) unsafe fn dot<const MR: usize, const NC: usize>(
    acc: &mut [[i32; NC]; 4],
    a: [&[u8]; MR],
    w: &[i8],
) {
    let k = a[0].len();
    assert!(has_width(NC) && k.is_multiple_of(K_GROUP) && w.len() >= k * NC);
    assert!(a.iter().all(|row| row.len() >= k));
    let nv = NC / 16;
    let mut c = [[_mm512_setzero_si512(); 4]; MR];
    let p = a.map(|row| row.as_ptr());
    let mut wp = w.as_ptr();
    for g in 0..k / K_GROUP {
        // SAFETY: `g · 4 + 3 < k` bytes of every row and `(g + 1) · NC · 4 ≤ k · NC` of `w`
        // (checked above).
        unsafe {
            let x: [__m512i; MR] = std::array::from_fn(|r| {
                _mm512_set1_epi32(p[r].add(g * K_GROUP).cast::<i32>().read_unaligned())
            });
            for v in 0..nv {
                let wv = _mm512_loadu_si512(wp.add(v * 64).cast());
                for r in 0..MR {
                    c[r][v] = _mm512_dpbusd_epi32(c[r][v], x[r], wv);
                }
            }
            wp = wp.add(NC * K_GROUP);
        }
    }
    for (row, c) in acc.iter_mut().zip(c) {
        for (v, c) in c.into_iter().take(nv).enumerate() {
            // SAFETY: `v · 16 + 16 ≤ NC` (`v < NC / 16`).
            unsafe { _mm512_storeu_si512(row.as_mut_ptr().add(v * 16).cast(), c) };
        }
    }
}
