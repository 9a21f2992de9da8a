//! The x86-64 blocks of the integer product, on 256-bit vectors: per group of four `k`, the
//! activations of each row (four unsigned bytes) broadcast, each of the tile's vectors
//! (8 columns × 4 `k`) loaded once and multiplied with every row's.
//!
//! - AVX2: `vpmaddubsw` (pairs of `u8·i8` summed to 16 bits: never saturated, activations
//!   having seven bits) then `vpmaddwd` by ones (to 32 bits) added to the accumulators.
//! - AVX-VNNI: `vpdpbusd`, the four products of a lane summed into the 32-bit accumulator in
//!   one instruction. The same exact sums (the same seven-bit activations), a third of the
//!   instructions. (Cores with AVX-512 VNNI use the 512-bit block of [`super::avx512`].)
//!
//! Measured alone on an AVX2-only Zen 3 core (63 rows × 384 `k` × 2048 columns): 94–98 G
//! multiply-adds per second, against 44–48 for the float32 3 × 32 block of FMAs (and 49–55 for
//! 16-bit products through `vpmaddwd` alone, which is why the activations have seven bits).

use std::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_dpbusd_avx_epi32, _mm256_loadu_si256, _mm256_madd_epi16,
    _mm256_maddubs_epi16, _mm256_set1_epi16, _mm256_set1_epi32, _mm256_setzero_si256,
    _mm256_storeu_si256,
};

use super::K_GROUP;

/// Whether the blocks compute tiles `nc` columns wide (whole vectors, at most 4).
#[inline(always)]
pub(super) const fn has_width(nc: usize) -> bool {
    nc.is_multiple_of(8) && nc <= 32
}

/// One block: `acc[r][c] = Σ_k a[r][k] · w[k][c]` for the first `MR` rows of `acc`, `k` over
/// `a[0].len()` (a multiple of [`K_GROUP`]; every row as long, `w` at least `k · NC` bytes),
/// `$madd(acc, x, w)` adding the products of one group of four `k` to a vector of sums.
macro_rules! block {
    ($(#[$doc:meta])* $name:ident, $features:literal, |$c:ident, $x:ident, $w:ident| $madd:expr) => {
        $(#[$doc])*
        ///
        /// # Safety
        #[doc = concat!("The processor must have ", $features, ".")]
        #[inline]
        #[target_feature(enable = $features)]
        #[allow(clippy::needless_range_loop)] // the indices spell out the register schedule
        pub(super) unsafe fn $name<const MR: usize, const NC: usize>(
            acc: &mut [[i32; NC]; 4],
            a: [&[u8]; MR],
            w: &[i8],
        ) {
            let k = a[0].len();
            assert!(has_width(NC) && k.is_multiple_of(K_GROUP) && w.len() >= k * NC);
            assert!(a.iter().all(|row| row.len() >= k));
            let nv = NC / 8;
            let mut c = [[_mm256_setzero_si256(); 4]; MR];
            let p = a.map(|row| row.as_ptr());
            let mut wp = w.as_ptr();
            for g in 0..k / K_GROUP {
                // SAFETY: `g · 4 + 3 < k` bytes of every row and `(g + 1) · NC · 4 ≤ k · NC`
                // of `w` (checked above).
                unsafe {
                    let x: [__m256i; MR] = std::array::from_fn(|r| {
                        _mm256_set1_epi32(p[r].add(g * K_GROUP).cast::<i32>().read_unaligned())
                    });
                    for v in 0..nv {
                        let $w = _mm256_loadu_si256(wp.add(v * 32).cast());
                        for r in 0..MR {
                            let ($c, $x) = (c[r][v], x[r]);
                            c[r][v] = $madd;
                        }
                    }
                    wp = wp.add(NC * K_GROUP);
                }
            }
            for (row, c) in acc.iter_mut().zip(c) {
                for (v, c) in c.into_iter().take(nv).enumerate() {
                    // SAFETY: `v · 8 + 8 ≤ NC` (`v < NC / 8`).
                    unsafe { _mm256_storeu_si256(row.as_mut_ptr().add(v * 8).cast(), c) };
                }
            }
        }
    };
}

block!(
    /// The AVX2 block.
    dot,
    "avx2",
    |c, x, w| _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), _mm256_set1_epi16(1)))
);

block!(
    /// The AVX-VNNI block.
    dot_avx_vnni,
    "avx2,avxvnni",
    |c, x, w| _mm256_dpbusd_avx_epi32(c, x, w)
);
