//! The product kernel: `MR` rows of `A` times one packed weight tile, accumulators in
//! registers, handed to an epilogue.
//!
//! It is written once, in plain Rust over fixed-size arrays that the compiler turns into
//! vector registers, and compiled several times: with AVX-512, or AVX2 and FMA, enabled
//! (chosen at run time from what the processor has) and portably. Every output element is one
//! running sum over `k` in ascending order (two, over the halves of `k`, for a product of a
//! single row: ascending, or descending on the odd steps of a batch of one), whatever the row
//! block, tile or thread that computes it, so results do not depend on the number of threads
//! (they do depend on the instruction set: FMA rounds once per step, the portable build
//! twice).

use std::ops::Range;

/// The instruction set the fast engine runs with, detected once per model.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Isa {
    /// x86-64 with AVX-512F (and FMA): 16-float vectors, 32 registers.
    Avx512,
    /// x86-64 with AVX2 and FMA: 8-float vectors, 16 registers.
    Avx2Fma,
    /// Fused multiply-add without any target feature to enable (AArch64).
    NativeFma,
    /// Separate multiply and add, nothing assumed of the processor.
    Portable,
}

impl Isa {
    /// The instruction set of the fast engine: the best this processor supports, or a lesser
    /// one named by the `WGPU_LSTM_CPU_ISA` environment variable (`avx2`, `portable`; `avx512`
    /// and `native` mean the best; `avxvnni`, a core with AVX-VNNI but no AVX-512, is `avx2`
    /// here and chooses the integer product's instructions) to measure a slower path on a
    /// faster core. A name this processor cannot run, or does not know, leaves the best.
    pub(crate) fn detect() -> Self {
        let best = Self::best();
        match std::env::var("WGPU_LSTM_CPU_ISA").as_deref() {
            Ok("avx2" | "avxvnni") if matches!(best, Isa::Avx512) => Isa::Avx2Fma,
            Ok("portable") => Isa::Portable,
            _ => best,
        }
    }

    /// The best instruction set this processor supports.
    fn best() -> Self {
        #[cfg(target_arch = "x86_64")]
        if std::is_x86_feature_detected!("avx2") && std::is_x86_feature_detected!("fma") {
            if std::is_x86_feature_detected!("avx512f") {
                return Isa::Avx512;
            }
            return Isa::Avx2Fma;
        }
        if cfg!(target_arch = "aarch64") {
            return Isa::NativeFma;
        }
        Isa::Portable
    }

    /// Floats per vector register, the width of the packed weights' column vectors.
    pub(crate) fn lanes(self) -> usize {
        match self {
            Isa::Avx512 => 16,
            _ => 8,
        }
    }

    /// Its name in reports.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Isa::Avx512 => "avx512",
            Isa::Avx2Fma => "avx2+fma",
            Isa::NativeFma => "neon",
            Isa::Portable => "portable",
        }
    }
}

/// `a · b + c`, fused (one rounding) when `FMA`.
#[inline(always)]
pub(crate) fn madd<const FMA: bool>(a: f32, b: f32, c: f32) -> f32 {
    if FMA {
        a.mul_add(b, c)
    } else {
        a * b + c
    }
}

/// `acc[r][c] += Σ_k a[r][k] · w[k·NC + c]` for `MR` rows of length `K` and one tile `w`
/// (`[K][NC]`), `k` ascending.
#[inline(always)]
fn dot<const FMA: bool, const MR: usize, const NC: usize>(
    mut acc: [[f32; NC]; MR],
    a: [&[f32]; MR],
    w: &[f32],
) -> [[f32; NC]; MR] {
    #[cfg(target_arch = "x86_64")]
    if FMA && super::avx2::has_block(MR, NC) {
        // SAFETY: fused multiply-adds on x86-64 run only with `Isa::Avx512` or `Isa::Avx2Fma`,
        // both chosen only on processors with AVX2 and FMA.
        unsafe { super::avx2::dot(acc.as_flattened_mut(), &a, w) };
        return acc;
    }
    let k = a[0].len();
    // Every row cut to `k` and the tile to `k` rows of `NC` up front, so that the loop below
    // has no bounds checks.
    let a: [&[f32]; MR] = std::array::from_fn(|r| &a[r][..k]);
    let (w, _) = w[..k * NC].as_chunks::<NC>();
    for (kk, wk) in w.iter().enumerate() {
        // The tile's row loaded once for all `MR` rows.
        let wk: [f32; NC] = *wk;
        let x: [f32; MR] = std::array::from_fn(|r| a[r][kk]);
        for r in 0..MR {
            for c in 0..NC {
                acc[r][c] = madd::<FMA>(x[r], wk[c], acc[r][c]);
            }
        }
    }
    acc
}

/// The products of `MR` rows made of two segments (`a[r] = [a₀, a₁]`) with a tile made of two
/// parts `w = [w₀, w₁]`: one running sum over `a₀·w₀`, then on over `a₁·w₁`; except the last
/// `ASIDE` columns, whose sums over `a₀·w₀` are set aside (returned second) and which start
/// again from zero for `a₁·w₁`.
#[inline(always)]
fn dot2<const FMA: bool, const MR: usize, const NC: usize, const ASIDE: usize>(
    a: [[&[f32]; 2]; MR],
    w: [&[f32]; 2],
) -> ([[f32; NC]; MR], [[f32; ASIDE]; MR]) {
    let first = dot::<FMA, MR, NC>([[0.0; NC]; MR], a.map(|s| s[0]), w[0]);
    let (start, aside) = set_aside(first);
    (dot::<FMA, MR, NC>(start, a.map(|s| s[1]), w[1]), aside)
}

/// Splits the sums of a first segment into the running sums that go on (the last `ASIDE`
/// columns zeroed) and those last columns.
#[inline(always)]
fn set_aside<const MR: usize, const NC: usize, const ASIDE: usize>(
    mut acc: [[f32; NC]; MR],
) -> ([[f32; NC]; MR], [[f32; ASIDE]; MR]) {
    let aside = std::array::from_fn(|r| std::array::from_fn(|c| acc[r][NC - ASIDE + c]));
    for row in &mut acc {
        row[NC - ASIDE..].fill(0.0);
    }
    (acc, aside)
}

/// `init + Σ_k a[k] · w[k·NC + c]` for one row, as two running sums over the two halves of
/// `k` in one loop, added at the end: twice the independent chains and two streams of the
/// tile for a product that waits on the cache rather than on the multiply-adds. `backwards`:
/// both halves summed from their last `k` down (the part of the tile read last is the part
/// still in the nearest cache, for a next product that begins where this one ended).
#[inline(always)]
fn dot_halves<const FMA: bool, const NC: usize>(
    a: &[f32],
    w: &[f32],
    init: [f32; NC],
    backwards: bool,
) -> [f32; NC] {
    let k = a.len();
    let half = k / 2;
    let (a0, a1) = a.split_at(half);
    let (w0, _) = w[..half * NC].as_chunks::<NC>();
    let (w1, _) = w[half * NC..k * NC].as_chunks::<NC>();
    let mut s0 = init;
    let mut s1 = [0.0f32; NC];
    let add = |s: &mut [f32; NC], x: f32, v: &[f32; NC]| {
        for c in 0..NC {
            s[c] = madd::<FMA>(x, v[c], s[c]);
        }
    };
    let pairs = a0.iter().zip(a1).zip(w0.iter().zip(w1));
    // With an odd `k` the second half is one longer: its last element.
    let odd = (k % 2 == 1).then(|| (a1[half], &w1[half]));
    if backwards {
        if let Some((x, v)) = odd {
            add(&mut s1, x, v);
        }
        for ((&x0, &x1), (v0, v1)) in pairs.rev() {
            add(&mut s0, x0, v0);
            add(&mut s1, x1, v1);
        }
    } else {
        for ((&x0, &x1), (v0, v1)) in pairs {
            add(&mut s0, x0, v0);
            add(&mut s1, x1, v1);
        }
        if let Some((x, v)) = odd {
            add(&mut s1, x, v);
        }
    }
    std::array::from_fn(|c| s0[c] + s1[c])
}

/// For each row `r` in `rows`: the product of row `a(r)` (`K` floats, in two segments, either
/// possibly empty) with the tile `w` (`[K][NC]`, in the two matching parts), handed to
/// `epilogue(r, &acc, &aside)`, where the last `ASIDE` columns of `acc` are the sums over the
/// second segment only and `aside` their sums over the first (see [`dot2`]; the GRU's n gate,
/// whose input and recurrent parts stay apart). Rows go `MR` at a time (the tile's weights are
/// loaded once for `MR` rows); a last block of one or two rows goes as such (a block that
/// short waits on its accumulators' latency, not on the multiply-adds, and takes no longer
/// than a full block), a longer one is padded to `MR` with copies of its last row (whose
/// results are dropped); the sums are the same either way. A product of one row in all
/// (batch 1) sums the two halves of its second segment apart ([`dot_halves`]), from its last `k` down when `backwards`: other bits
/// than at a larger batch, and than forwards, the same at any thread count.
#[inline(always)]
pub(crate) fn product<'a, const FMA: bool, const MR: usize, const NC: usize, const ASIDE: usize>(
    rows: Range<usize>,
    a: impl Fn(usize) -> [&'a [f32]; 2],
    w: [&[f32]; 2],
    backwards: bool,
    mut epilogue: impl FnMut(usize, &[f32; NC], &[f32; ASIDE]),
) {
    let mut r = rows.start;
    while r < rows.end {
        let n = (rows.end - r).min(MR);
        if rows.len() == 1 {
            let [a0, a1] = a(r);
            let (start, [aside]) =
                set_aside::<1, NC, ASIDE>(dot::<FMA, 1, NC>([[0.0; NC]], [a0], w[0]));
            let acc = dot_halves::<FMA, NC>(a1, w[1], start[0], backwards);
            epilogue(r, &acc, &aside);
        } else if n == 1 {
            let ([acc], [aside]) = dot2::<FMA, 1, NC, ASIDE>([a(r)], w);
            epilogue(r, &acc, &aside);
        } else if n == 2 && MR > 2 {
            let (acc, aside) = dot2::<FMA, 2, NC, ASIDE>([a(r), a(r + 1)], w);
            for (i, (row, aside)) in acc.into_iter().zip(aside).enumerate() {
                epilogue(r + i, &row, &aside);
            }
        } else {
            let last = rows.end - 1;
            let (acc, aside) =
                dot2::<FMA, MR, NC, ASIDE>(std::array::from_fn(|i| a((r + i).min(last))), w);
            for (i, (row, aside)) in acc.into_iter().zip(aside).take(n).enumerate() {
                // A copy per row: taking the address of the whole accumulator array would keep
                // it in memory inside the kernel's loop.
                epilogue(r + i, &row, &aside);
            }
        }
        r += n;
    }
}
