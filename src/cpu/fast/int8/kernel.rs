//! The integer product: blocks of up to `MR` quantized rows against one tile of integer
//! weights, exact int32 sums, dequantized to float32 for the epilogue.

use std::ops::Range;

use super::{QuantTile, K_GROUP};
use crate::cpu::fast::kernel::Isa;
use crate::quant::RowScale;

/// The integer product's instructions, detected once per model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum IntIsa {
    /// `vpdpbusd` on 512-bit vectors (AVX-512 VNNI), with the AVX-512 float32 epilogue on
    /// tiles of 16 units.
    Avx512Vnni,
    /// `vpdpbusd` on 256-bit vectors (AVX-VNNI), tiles of 8 units.
    AvxVnni,
    /// `vpmaddubsw` and `vpmaddwd` (AVX2), tiles of 8 units.
    Avx2,
    /// Integer loops, nothing assumed of the processor.
    Portable,
}

impl IntIsa {
    /// The best this processor has for a model whose float32 parts would run with `isa`
    /// ([`Isa::detect`]), or a lesser one named by the `WGPU_LSTM_CPU_ISA` environment
    /// variable: `avxvnni` (256-bit `vpdpbusd`, where the core has AVX-VNNI), `avx2` (no
    /// VNNI), `portable` (already in `isa`).
    pub(crate) fn detect(isa: Isa) -> Self {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            match isa {
                Isa::Avx512 if has!("avx512vnni") => return IntIsa::Avx512Vnni,
                Isa::Avx512 | Isa::Avx2Fma => {
                    let no_vnni = std::env::var("WGPU_LSTM_CPU_ISA").is_ok_and(|v| v == "avx2");
                    return if has!("avxvnni") && !no_vnni {
                        IntIsa::AvxVnni
                    } else {
                        IntIsa::Avx2
                    };
                }
                _ => {}
            }
        }
        let _ = isa;
        IntIsa::Portable
    }

    /// The float32 instruction set its model runs the rest with: AVX-512's for the 512-bit
    /// block, AVX2's for the 256-bit ones (on AVX-512 cores too: their tiles are of 8 units),
    /// else `isa`.
    pub(crate) fn float_isa(self, isa: Isa) -> Isa {
        match self {
            IntIsa::Avx512Vnni => Isa::Avx512,
            IntIsa::AvxVnni | IntIsa::Avx2 => Isa::Avx2Fma,
            IntIsa::Portable => isa,
        }
    }

    /// Its name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            IntIsa::Avx512Vnni => "avx512-vnni int8",
            IntIsa::AvxVnni => "avx-vnni int8",
            IntIsa::Avx2 => "avx2 int8",
            IntIsa::Portable => "portable int8",
        }
    }

    /// Rows per block for a tile `nc` columns wide: the block's accumulators, one broadcast
    /// activation per row, the weight vectors (and for AVX2 the ones and the 16-bit pairs)
    /// fit the vector registers (16 of 256 bits: 3 rows of a 32-wide tile, 18 registers,
    /// spilled accumulators to the stack; 32 of 512 bits).
    fn rows_per_block(self, nc: usize) -> usize {
        match (self, nc) {
            (IntIsa::Avx512Vnni, _) => 4,
            (_, 32) => 2,
            (_, 24) => 3,
            _ => 4,
        }
    }
}

/// For each row `r` in `rows`: the product of row `a(r)` (its bytes, `K` padded, and scale)
/// with the tile `w`, dequantized (`(Σ − zp·Σq_w) · scale_a · s_w`) and handed to
/// `epilogue(r, &acc)`.
#[inline(always)]
pub(crate) fn product_i8<'a, const NC: usize>(
    isa: IntIsa,
    rows: Range<usize>,
    a: impl Fn(usize) -> (&'a [u8], RowScale),
    w: QuantTile<'_>,
    mut epilogue: impl FnMut(usize, &[f32; NC]),
) {
    let mr = isa.rows_per_block(NC);
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
    isa: IntIsa,
    acc: &mut [[i32; NC]; 4],
    a: [&[u8]; MR],
    w: &[i8],
) {
    // SAFETY (each block): chosen only on processors with its features (`IntIsa::detect`).
    #[cfg(target_arch = "x86_64")]
    match isa {
        IntIsa::Avx512Vnni if super::avx512::has_width(NC) => {
            return unsafe { super::avx512::dot(acc, a, w) };
        }
        IntIsa::AvxVnni if super::avx2::has_width(NC) => {
            return unsafe { super::avx2::dot_avx_vnni(acc, a, w) };
        }
        IntIsa::Avx2 if super::avx2::has_width(NC) => {
            return unsafe { super::avx2::dot(acc, a, w) };
        }
        _ => {}
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

    /// Every kernel this processor can run.
    fn kernels() -> Vec<IntIsa> {
        #[allow(unused_mut)]
        let mut all = vec![IntIsa::Portable];
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::is_x86_feature_detected as has;
            if has!("avx2") {
                all.push(IntIsa::Avx2);
                if has!("avxvnni") {
                    all.push(IntIsa::AvxVnni);
                }
                if has!("avx512f") && has!("avx512vnni") {
                    all.push(IntIsa::Avx512Vnni);
                }
            }
        }
        all
    }

    /// Every block (AVX2, VNNI where the core has it) and the portable loop give the same
    /// integers (exact sums), for every block shape the product uses.
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
            for isa in kernels() {
                let mut acc = [[0i32; NC]; 4];
                dot::<MR, NC>(isa, &mut acc, rows, &w);
                assert_eq!(acc[..MR], want, "{isa:?} {MR}×{NC} k {k}");
            }
        }
        println!("kernels: {:?}", kernels());
        for k in [4, 8, 132] {
            case::<1, 32>(k);
            case::<3, 32>(k);
            case::<4, 24>(k);
            case::<2, 16>(k);
            case::<4, 16>(k);
            // The 512-bit block's tiles.
            case::<4, 64>(k);
            case::<3, 48>(k);
            case::<1, 64>(k);
        }
    }
}
