//! The 512-bit block of the integer product (see [`super::block`]), 16 columns per vector:
//! AVX-512 VNNI's `vpdpbusd` (the four `u8·i8` products of a lane summed into its 32-bit sum),
//! on the tiles of 16 units that the AVX-512 float32 epilogue works in. The same exact sums
//! as the 256-bit blocks.

use std::arch::x86_64::{
    __m512i, _mm512_dpbusd_epi32, _mm512_loadu_si512, _mm512_set1_epi32, _mm512_setzero_si512,
    _mm512_storeu_si512,
};

/// Whether [`dot`] computes tiles `nc` columns wide (whole vectors, at most 4).
#[inline(always)]
pub(super) const fn has_width(nc: usize) -> bool {
    nc.is_multiple_of(16) && nc <= 64
}

block!(
    /// The AVX-512 VNNI block.
    dot,
    "avx512f,avx512vnni",
    16,
    __m512i,
    _mm512_setzero_si512(),
    _mm512_set1_epi32,
    _mm512_loadu_si512,
    _mm512_storeu_si512,
    |c, x, w| _mm512_dpbusd_epi32(c, x, w)
);
