//! The 256-bit blocks of the integer product (see [`super::block`]), 8 columns per vector:
//!
//! - AVX2: `vpmaddubsw` (pairs of `u8·i8` summed to 16 bits: never saturated, activations
//!   having seven bits) then `vpmaddwd` by ones (to 32 bits) added to the sums.
//! - AVX-VNNI: `vpdpbusd`, the four products of a lane summed into the 32-bit sum in one
//!   instruction. The same exact sums (the same seven-bit activations), a third of the
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

/// Whether the blocks compute tiles `nc` columns wide (whole vectors, at most 4).
#[inline(always)]
pub(super) const fn has_width(nc: usize) -> bool {
    nc.is_multiple_of(8) && nc <= 32
}

block!(
    /// The AVX2 block.
    dot,
    "avx2",
    8,
    __m256i,
    _mm256_setzero_si256(),
    _mm256_set1_epi32,
    _mm256_loadu_si256,
    _mm256_storeu_si256,
    |c, x, w| _mm256_add_epi32(c, _mm256_madd_epi16(_mm256_maddubs_epi16(x, w), _mm256_set1_epi16(1)))
);

block!(
    /// The AVX-VNNI block.
    dot_avx_vnni,
    "avx2,avxvnni",
    8,
    __m256i,
    _mm256_setzero_si256(),
    _mm256_set1_epi32,
    _mm256_loadu_si256,
    _mm256_storeu_si256,
    |c, x, w| _mm256_dpbusd_avx_epi32(c, x, w)
);
