//! Eight-bit weights in the fast engine ([`WeightsDtype::I8`](crate::WeightsDtype::I8)): the
//! weights packed as integers in the tiles of the float32 ones, the activations of a product
//! quantized row by row on the fly, and the integer product kernel whose epilogue hands the
//! float32 sums to the same cell updates as float32 weights (the scheme:
//! [`crate::quant`]).
//!
//! Integer sums are exact, so the order of a sum does not matter: every instruction set
//! computes the same integers, every thread count gives the same bits, and the product
//! ignores the float32 kernels' tricks of order (two halves, backwards steps).
//!
//! ```text
//! mod.rs     the packed integer weights (QuantMatrix) and one batch of quantized rows
//! kernel.rs  the product: blocks of rows against a tile, dequantized for the epilogue
//! block.rs   the x86-64 block, written once (a macro) for every instruction set
//! avx2.rs    the 256-bit blocks: AVX2 (vpmaddubsw, vpmaddwd), AVX-VNNI (vpdpbusd)
//! avx512.rs  the 512-bit block: AVX-512 VNNI (vpdpbusd); each chosen at run time
//! ```

#[cfg(target_arch = "x86_64")]
#[macro_use]
mod block;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
mod kernel;

pub(super) use kernel::{product_i8, IntIsa};

use ndarray::ArrayView2;

use crate::quant::{quantize_activations, quantize_rows, RowScale};

/// Bytes of an activation row and of a weight column per step of the kernel: four
/// consecutive `k` (one 32-bit lane of `vpmaddubsw`).
pub(crate) const K_GROUP: usize = 4;

/// One product's weights as integers, in the tiles of the float32 layout (see
/// [`super::pack`]): `[tiles][K/4][width][4]` bytes (four consecutive `k` of a column side by
/// side), a scale and the sum of the integers of every column, `[tiles][width]` (zero for the
/// columns past the last unit).
#[derive(Debug, Clone)]
pub(crate) struct QuantMatrix {
    /// `K` rounded up to a multiple of [`K_GROUP`].
    pub(crate) k_padded: usize,
    width: usize,
    q: Vec<i8>,
    scale: Vec<f32>,
    colsum: Vec<i32>,
}

/// One tile of a [`QuantMatrix`].
#[derive(Debug, Clone, Copy)]
pub(crate) struct QuantTile<'a> {
    pub(crate) q: &'a [i8],
    pub(crate) scale: &'a [f32],
    pub(crate) colsum: &'a [i32],
}

impl QuantMatrix {
    /// `w` (`[rows, K]`, PyTorch's layout) quantized row by row and packed into `tiles`
    /// tiles `width` columns wide, row `r` going to the tile and column `place(r)` (the float32
    /// layout's `Tiling::place`); `given`: a quantized model's row scales (see
    /// `quant::quantize_rows`).
    pub(crate) fn pack(
        tiles: usize,
        width: usize,
        w: ArrayView2<'_, f32>,
        given: Option<&[f32]>,
        place: impl Fn(usize) -> (usize, usize),
    ) -> Self {
        let (rows, k) = w.dim();
        let k_padded = k.div_ceil(K_GROUP) * K_GROUP;
        let quant = quantize_rows(w, given);
        let mut q = vec![0i8; tiles * k_padded * width];
        let mut scale = vec![0.0f32; tiles * width];
        let mut colsum = vec![0i32; tiles * width];
        for r in 0..rows {
            let (tile, col) = place(r);
            scale[tile * width + col] = quant.scales[r];
            let mut sum = 0i32;
            for (kk, &v) in quant.q.row(r).iter().enumerate() {
                let (group, j) = (kk / K_GROUP, kk % K_GROUP);
                q[((tile * k_padded / K_GROUP + group) * width + col) * K_GROUP + j] = v;
                sum += i32::from(v);
            }
            colsum[tile * width + col] = sum;
        }
        QuantMatrix {
            k_padded,
            width,
            q,
            scale,
            colsum,
        }
    }

    /// Tile `t`.
    #[inline(always)]
    pub(crate) fn tile(&self, t: usize) -> QuantTile<'_> {
        let w = self.width;
        QuantTile {
            q: &self.q[t * self.k_padded * w..][..self.k_padded * w],
            scale: &self.scale[t * w..][..w],
            colsum: &self.colsum[t * w..][..w],
        }
    }
}

/// Rows of activations quantized for a product: `[rows][K padded]` bytes and a scale per row.
#[derive(Debug, Default)]
pub(crate) struct QuantBatch {
    k_padded: usize,
    q: Vec<u8>,
    scales: Vec<RowScale>,
}

impl QuantBatch {
    /// Quantizes `rows` rows of `k` floats, row `r` being `row(r)`, replacing what it held; a
    /// row given as empty is left out (not to be read).
    #[inline(always)]
    pub(crate) fn quantize<'a>(&mut self, rows: usize, k: usize, row: impl Fn(usize) -> &'a [f32]) {
        let k_padded = k.div_ceil(K_GROUP) * K_GROUP;
        self.k_padded = k_padded;
        self.q.resize(rows * k_padded, 0);
        self.scales.clear();
        for r in 0..rows {
            let a = row(r);
            let s = if a.is_empty() {
                RowScale {
                    scale: f32::NAN,
                    zero_point: 0,
                }
            } else {
                quantize_activations(&a[..k], &mut self.q[r * k_padded..][..k_padded])
            };
            self.scales.push(s);
        }
    }

    /// Row `r`: its bytes and scale.
    #[inline(always)]
    pub(crate) fn row(&self, r: usize) -> (&[u8], RowScale) {
        (
            &self.q[r * self.k_padded..][..self.k_padded],
            self.scales[r],
        )
    }
}
