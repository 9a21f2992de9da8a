//! The integer product: blocks of up to `MR` quantized rows against one tile of integer
//! weights, exact int32 sums, dequantized to float32 for the epilogue.

use std::ops::Range;

use super::{QuantTile, K_GROUP};
use crate::cpu::fast::kernel::Isa;
use crate::quant::RowScale;

/// Rows per block for a tile `nc` columns wide: the block's accumulators, one broadcast
/// activation per row, the weight vector, the ones and the 16-bit pairs fit the 16 vector
/// registers (3 rows of a 32-wide tile, 18 registers, spilled accumulators to the stack).
const fn rows_per_block(nc: usize) -> usize {
    match nc {
        32 => 2,
        24 => 3,
        _ => 4,
    }
}

/// For each row `r` in `rows`: the product of row `a(r)` (its bytes, `K` padded, and scale)
/// with the tile `w`, dequantized (`(Σ − zp·Σq_w) · scale_a · s_w`) and handed to
/// `epilogue(r, &acc)`.
#[inline(always)]
pub(crate) fn product_i8<'a, const NC: usize>(
    isa: Isa,
    rows: Range<usize>,
    a: impl Fn(usize) -> (&'a [u8], RowScale),
    w: QuantTile<'_>,
    mut epilogue: impl FnMut(usize, &[f32; NC]),
) {
    let mr = rows_per_block(NC);
    let mut r = rows.start;
    while r < rows.end {
        let n = (rows.end - r).min(mr);
        let mut bytes: [&[u8]; 4] = [&[]; 4];
        let mut scales = [RowScale {
            scale: 0.0,
            zero_point: 0,
        }; 4];
        for i in 0..n {
            (bytes[i], scales[i]) = a(r + i);
        }
        let mut acc = [[0i32; NC]; 4];
        match n {
            1 => dot::<1, NC>(isa, &mut acc, [bytes[0]], w.q),
            2 => dot::<2, NC>(isa, &mut acc, [bytes[0], bytes[1]], w.q),
            3 => dot::<3, NC>(isa, &mut acc, [bytes[0], bytes[1], bytes[2]], w.q),
            _ => dot::<4, NC>(isa, &mut acc, bytes, w.q),
        }
        // One call of the epilogue (a large function once inlined) for every block shape.
        // Fixed-size columns, so that the dequantization runs in vectors.
        let colsum: &[i32; NC] = w.colsum[..NC].try_into().expect("NC columns");
        let w_scale: &[f32; NC] = w.scale[..NC].try_into().expect("NC columns");
        for i in 0..n {
            let s = scales[i];
            let mut out = [0.0f32; NC];
            for c in 0..NC {
                let sum = acc[i][c] - s.zero_point * colsum[c];
                out[c] = sum as f32 * (s.scale * w_scale[c]);
            }
            epilogue(r + i, &out);
        }
        r += n;
    }
}

/// `acc[r][c] = Σ_k a[r][k] · w[k][c]` for the first `MR` rows of `acc`, over `a[0].len()`
/// (a multiple of [`K_GROUP`]).
#[inline(always)]
fn dot<const MR: usize, const NC: usize>(
    isa: Isa,
    acc: &mut [[i32; NC]; 4],
    a: [&[u8]; MR],
    w: &[i8],
) {
    #[cfg(target_arch = "x86_64")]
    if matches!(isa, Isa::Avx2Fma | Isa::Avx512) && super::avx2::has_width(NC) {
        // SAFETY: both instruction sets are chosen only on processors with AVX2.
        unsafe { super::avx2::dot::<MR, NC>(acc, a, w) };
        return;
    }
    let _ = isa;
    let k = a[0].len();
    let (w, _) = w[..k * NC].as_chunks::<K_GROUP>();
    for (g, cols) in w.chunks_exact(NC).enumerate() {
        for r in 0..MR {
            let x = &a[r][g * K_GROUP..][..K_GROUP];
            for (c, wc) in cols.iter().enumerate() {
                let mut s = 0i32;
                for j in 0..K_GROUP {
                    s += i32::from(x[j]) * i32::from(wc[j]);
                }
                acc[r][c] += s;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The AVX2 block and the portable loop give the same integers (exact sums), for every
    /// block shape the product uses.
    #[test]
    fn kernels_agree() {
        fn case<const MR: usize, const NC: usize>(k: usize) {
            let a: Vec<Vec<u8>> = (0..MR)
                .map(|r| (0..k).map(|i| ((i * 31 + r * 7) % 128) as u8).collect())
                .collect();
            let w: Vec<i8> = (0..k * NC)
                .map(|i| ((i * 53 % 255) as i32 - 127) as i8)
                .collect();
            let rows: [&[u8]; MR] = std::array::from_fn(|r| &a[r][..]);
            let mut want = [[0i32; NC]; MR];
            for r in 0..MR {
                for c in 0..NC {
                    for kk in 0..k {
                        let wv = w[((kk / K_GROUP) * NC + c) * K_GROUP + kk % K_GROUP];
                        want[r][c] += i32::from(a[r][kk]) * i32::from(wv);
                    }
                }
            }
            for isa in [Isa::Portable, Isa::detect()] {
                let mut acc = [[0i32; NC]; 4];
                dot::<MR, NC>(isa, &mut acc, rows, &w);
                assert_eq!(acc[..MR], want, "{isa:?} {MR}×{NC} k {k}");
            }
        }
        for k in [4, 8, 132] {
            case::<1, 32>(k);
            case::<3, 32>(k);
            case::<4, 24>(k);
            case::<2, 16>(k);
            case::<4, 16>(k);
        }
    }
}
