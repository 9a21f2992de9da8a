//! `shaders/gemm/` on its own: integer-valued inputs, so every result is exact in float32
//! and must equal the host's product bit for bit; every m, k, n in 1..=12 plus awkward large
//! sizes; strides, offsets and the batched `z` dimension; NaN in every gap of the inputs (a
//! read outside the operands poisons a result) and of the output (a write outside the result
//! shows as a number where NaN must stay).

use std::num::NonZeroU64;

use super::{specialization, GemmParams, GemmVariant};
use crate::gpu::context::{ContextOptions, GpuContext};
use crate::gpu::device;

/// The test binary's context. Without an adapter the tests fail where `CI` is set and say
/// loudly that they did not run otherwise.
fn context() -> Option<&'static GpuContext> {
    static CTX: std::sync::OnceLock<Option<GpuContext>> = std::sync::OnceLock::new();
    CTX.get_or_init(|| match GpuContext::new(&ContextOptions::default()) {
        Ok(ctx) => {
            let i = ctx.adapter_info();
            eprintln!(
                "gemm kernel tests run on `{}` ({:?} backend)",
                i.name, i.backend
            );
            Some(ctx)
        }
        Err(e) if std::env::var_os("CI").is_some() => panic!("CI is set and no adapter: {e}"),
        Err(e) => {
            eprintln!("WARNING: GEMM KERNEL TESTS NOT RUN (no adapter): {e}");
            None
        }
    })
    .as_ref()
}

/// One product: `z` matrices `[m, k] · [k, n]` plus bias, with gaps in every operand.
#[derive(Debug, Clone, Copy)]
struct Case {
    m: usize,
    k: usize,
    n: usize,
    z: usize,
    /// Extra elements before `a` and `out`, and between their rows and matrices.
    gap: usize,
}

/// A small integer in -3..=3 from a counter (deterministic, no RNG needed).
fn small(i: usize, salt: usize) -> f32 {
    ((i.wrapping_mul(2_654_435_761).wrapping_add(salt * 97) >> 7) % 7) as f32 - 3.0
}

/// Runs `case` on the GPU and checks every output element exactly and every gap for NaN.
fn check(ctx: &GpuContext, c: Case) {
    let Case { m, k, n, z, gap } = c;
    let n4 = n.div_ceil(4);
    let (a_stride, out_stride) = (k + gap, n + gap);
    let (a_batch, out_batch) = (m * a_stride + gap, m * out_stride + gap);
    let (a_offset, out_offset) = (gap, gap);
    // a: NaN everywhere but the operands.
    let mut a = vec![f32::NAN; a_offset + z * a_batch];
    // w: [z][k][n4] of vec4, NaN in the padding lanes past n (computed, never stored).
    let mut w = vec![f32::NAN; z * k * n4 * 4];
    let mut bias = vec![f32::NAN; z * n4 * 4];
    let mut expected = vec![f32::NAN; out_offset + z * out_batch];
    for zz in 0..z {
        for r in 0..m {
            for kk in 0..k {
                a[a_offset + zz * a_batch + r * a_stride + kk] = small(r * 31 + kk, zz);
            }
        }
        for kk in 0..k {
            for col in 0..n {
                w[(zz * k + kk) * n4 * 4 + col] = small(kk * 17 + col, zz + 5);
            }
        }
        for col in 0..n {
            bias[zz * n4 * 4 + col] = small(col, zz + 11);
        }
        for r in 0..m {
            for col in 0..n {
                let mut s = bias[zz * n4 * 4 + col];
                for kk in 0..k {
                    s += a[a_offset + zz * a_batch + r * a_stride + kk]
                        * w[(zz * k + kk) * n4 * 4 + col];
                }
                expected[out_offset + zz * out_batch + r * out_stride + col] = s;
            }
        }
    }
    let u32_of = |v: usize| u32::try_from(v).unwrap();
    let params = GemmParams {
        m: u32_of(m),
        k: u32_of(k),
        n4: u32_of(n4),
        n_valid: u32_of(n),
        a_offset: u32_of(a_offset),
        a_stride: u32_of(a_stride),
        a_batch: u32_of(a_batch),
        w_batch: u32_of(k * n4),
        bias_batch: u32_of(n4),
        out_offset: u32_of(out_offset),
        out_stride: u32_of(out_stride),
        out_batch: u32_of(out_batch),
        scale_offset: 0,
    };
    let runs = |v: &GemmVariant| v.runs_on(&ctx.limits(), ctx.supports_subgroups());
    for variant in GemmVariant::ALL.into_iter().filter(runs) {
        let got = run(ctx, variant, &params, z, &a, &w, &bias, expected.len());
        for (i, (e, g)) in expected.iter().zip(&got).enumerate() {
            let ok = if e.is_nan() { g.is_nan() } else { e == g };
            assert!(ok, "{c:?} {variant:?}: element {i}: expected {e}, got {g}");
        }
    }
}

/// Dispatches the GEMM once and reads `out` (filled with NaN first) back.
#[allow(clippy::too_many_arguments)]
fn run(
    ctx: &GpuContext,
    variant: GemmVariant,
    params: &GemmParams,
    z: usize,
    a: &[f32],
    w: &[f32],
    bias: &[f32],
    out_len: usize,
) -> Vec<f32> {
    let (dev, queue) = (ctx.device(), ctx.queue());
    let kernel = ctx.kernel(&specialization(variant)).unwrap();
    use wgpu::BufferUsages as U;
    let input = |label, data: &[f32]| {
        device::upload(dev, queue, label, bytemuck::cast_slice(data), U::STORAGE)
    };
    let (a, w, bias) = (input("a", a), input("w", w), input("bias", bias));
    let nan = vec![f32::NAN; out_len];
    let out = device::upload(
        dev,
        queue,
        "out",
        bytemuck::cast_slice(&nan),
        U::STORAGE | U::COPY_SRC,
    );
    let staging = device::buffer(
        dev,
        "staging",
        (out_len * 4) as u64,
        U::MAP_READ | U::COPY_DST,
    );
    let uniform = device::upload(dev, queue, "params", bytemuck::bytes_of(params), U::UNIFORM);
    let entries = [
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &uniform,
            offset: 0,
            size: NonZeroU64::new(std::mem::size_of::<GemmParams>() as u64),
        }),
        a.as_entire_binding(),
        w.as_entire_binding(),
        bias.as_entire_binding(),
        out.as_entire_binding(),
    ];
    let entries: Vec<_> = entries
        .into_iter()
        .zip(0u32..)
        .map(|(resource, binding)| wgpu::BindGroupEntry { binding, resource })
        .collect();
    let group = dev.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("gemm test"),
        layout: &kernel.layout,
        entries: &entries,
    });
    let mut encoder = dev.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&kernel.pipeline);
        pass.set_bind_group(0, &group, &[0]);
        let [x, y, zg] = params
            .workgroups(z, variant)
            .map(|g| u32::try_from(g).unwrap());
        pass.dispatch_workgroups(x, y, zg);
    }
    encoder.copy_buffer_to_buffer(&out, 0, &staging, 0, (out_len * 4) as u64);
    let submission = queue.submit([encoder.finish()]);
    device::read_back(dev, &staging, (out_len * 4) as u64, submission).unwrap()
}

#[test]
fn every_small_size_exactly() {
    let Some(ctx) = context() else { return };
    for m in 1..=12 {
        for k in 1..=12 {
            for n in 1..=12 {
                check(
                    ctx,
                    Case {
                        m,
                        k,
                        n,
                        z: 1,
                        gap: 0,
                    },
                );
            }
        }
    }
}

#[test]
fn strides_offsets_and_batches() {
    let Some(ctx) = context() else { return };
    for (m, k, n, z, gap) in [
        (1, 1, 1, 2, 1),
        (3, 5, 7, 3, 2),
        (5, 4, 8, 2, 3),
        (12, 11, 10, 2, 5),
        (7, 12, 1, 3, 4),
        (9, 2, 13, 2, 1),
    ] {
        check(ctx, Case { m, k, n, z, gap });
    }
}

#[test]
fn awkward_large_sizes() {
    let Some(ctx) = context() else { return };
    // |a|, |w|, |bias| ≤ 3: every partial sum stays an integer below 2^24, so exact.
    for (m, k, n, z, gap) in [
        (257, 129, 67, 1, 0),
        (1000, 3, 13, 2, 3),
        (5, 1023, 130, 1, 1),
        (63, 65, 255, 2, 7),
    ] {
        check(ctx, Case { m, k, n, z, gap });
    }
}

/// `GemmParams` and the constants both sides hold, in every GEMM module (read by naga, no
/// device needed).
#[test]
fn params_and_constants_match_the_wgsl() {
    use super::super::contract::{fields, Shader};
    use super::{source, ROWS_PER_INVOCATION, WG_X, WG_Y};
    use crate::gpu::kernels::bindings::WeightsBinding;
    use crate::weights::WeightsDtype;
    let gemm_params = fields!(GemmParams: m, k, n4, n_valid, a_offset, a_stride, a_batch,
        w_batch, bias_batch, out_offset, out_stride, out_batch, scale_offset);
    for dtype in [WeightsDtype::F32, WeightsDtype::F16, WeightsDtype::I8] {
        for binding in [WeightsBinding::Buffer, WeightsBinding::Texture] {
            for subgroups in [false, true] {
                let what = format!("gemm {dtype:?} {binding:?} subgroups={subgroups}");
                let shader = Shader::parse(&what, source(dtype, binding, subgroups));
                let size = std::mem::size_of::<GemmParams>();
                shader.check_struct("GemmParams", size, gemm_params);
                assert_eq!(shader.constant("TM"), ROWS_PER_INVOCATION as f64);
                assert_eq!(shader.override_default("WG_X"), f64::from(WG_X));
                assert_eq!(shader.override_default("WG_Y"), f64::from(WG_Y));
                // The block kernel's register arrays hold MAX_B rows and columns.
                let max_b = shader.constant("MAX_B") as usize;
                for v in GemmVariant::ALL {
                    assert!(v.rows_per_invocation() <= max_b, "{v:?}");
                    assert!(v.columns_per_invocation() <= max_b, "{v:?}");
                }
            }
        }
    }
}
