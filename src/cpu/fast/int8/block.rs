//! The x86-64 blocks of the integer product, written once as a macro and instantiated for
//! each instruction set ([`super::avx2`], [`super::avx512`]): per group of four `k`, the
//! activations of each row (four unsigned bytes) broadcast to every 32-bit lane, each of the
//! tile's vectors (`LANES` columns × 4 `k`) loaded once and multiplied with every row's, the
//! products of a lane added to its 32-bit sum by the instruction set's `$madd`.

/// `block!(doc, name, "features", LANES, vector type, zero, broadcast, load, store,
/// |sum, x, w| madd)`: `unsafe fn name::<MR, NC>(acc, a, w)` with
/// `acc[r][c] = Σ_k a[r][k] · w[k][c]` for the first `MR` rows of `acc`, `k` over
/// `a[0].len()` (a multiple of [`K_GROUP`](super::K_GROUP); every row as long, `w` at least
/// `k · NC` bytes, `NC` a multiple of `LANES`, at most 4 vectors).
macro_rules! block {
    (
        $(#[$doc:meta])* $name:ident, $features:literal, $lanes:literal, $vec:ty,
        $zero:expr, $set1:path, $load:path, $store:path,
        |$c:ident, $x:ident, $w:ident| $madd:expr
    ) => {
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
            use super::K_GROUP;
            let k = a[0].len();
            assert!(has_width(NC) && k.is_multiple_of(K_GROUP) && w.len() >= k * NC);
            assert!(a.iter().all(|row| row.len() >= k));
            let nv = NC / $lanes;
            let mut c: [[$vec; 4]; MR] = [[$zero; 4]; MR];
            let p = a.map(|row| row.as_ptr());
            let mut wp = w.as_ptr();
            for g in 0..k / K_GROUP {
                // SAFETY: `g · 4 + 3 < k` bytes of every row and `(g + 1) · NC · 4 ≤ k · NC`
                // of `w` (checked above).
                unsafe {
                    let x: [$vec; MR] = std::array::from_fn(|r| {
                        $set1(p[r].add(g * K_GROUP).cast::<i32>().read_unaligned())
                    });
                    for v in 0..nv {
                        let $w = $load(wp.add(v * $lanes * K_GROUP).cast());
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
                    // SAFETY: `(v + 1) · LANES ≤ NC` (`v < NC / LANES`).
                    unsafe { $store(row.as_mut_ptr().add(v * $lanes).cast(), c) };
                }
            }
        }
    };
}
