//! The adapter's ceiling: a large plain matrix product with the crate's own GEMM kernel
//! (`shaders/gemm/`), so that each recurrent-layer figure can be read as a fraction of it.

use crate::error::Result;
use crate::gpu::context::GpuContext;
use crate::gpu::kernels::gemm::{self, GemmParams, GemmVariant};
use crate::gpu::options::WeightsStorage;
use crate::gpu::tune::time_gemm;
use crate::weights::WeightsDtype;

/// The measured throughput of `reps` products `[n, n] · [n, n]` recorded in one submit.
#[derive(Debug, Clone, PartialEq)]
pub struct GemmCeiling {
    /// Matrix size.
    pub n: usize,
    /// Products timed.
    pub reps: usize,
    /// GFLOP/s from the wall time of the submit (waiting for the device included).
    pub gflops: f64,
    /// GFLOP/s from timestamp queries, where the device has them.
    pub device_gflops: Option<f64>,
}

/// Runs the GEMM kernel `variant` on `n × n × n` products, its weights in `storage`
/// ([`WeightsStorage::Auto`]: where this device's models keep theirs): one warm-up, then
/// `reps` in one submit.
pub fn gemm_ceiling(
    ctx: &GpuContext,
    n: usize,
    reps: usize,
    variant: GemmVariant,
    storage: WeightsStorage,
) -> Result<GemmCeiling> {
    let storage = ctx.weights_storage(storage)?;
    let _device = ctx.exclusive();
    let kernel = ctx.kernel(&gemm::specialization(variant).storage(storage.binding()))?;
    let n = n.next_multiple_of(4).max(4);
    let reps = reps.max(1);
    let params = GemmParams::dense(n, n, n / 4)?;
    let t = time_gemm(
        ctx.device(),
        ctx.queue(),
        &kernel,
        &params,
        variant,
        storage,
        WeightsDtype::F32,
        reps,
        ctx.supports_timestamps(),
        ctx.limits().max_compute_workgroups_per_dimension,
    )?;
    let flops = 2.0 * (n as f64).powi(3) * reps as f64;
    Ok(GemmCeiling {
        n,
        reps,
        gflops: flops / t.wall_s / 1e9,
        device_gflops: t.device_s.map(|s| flops / s / 1e9),
    })
}
