//! Each adapter's GEMM ceiling: a large plain product with the crate's GEMM kernels, so that
//! each forward's throughput can be read as a fraction of what the adapter does at best.

use wgpu_lstm::gpu::GemmCeiling;
use wgpu_lstm::{
    gemm_ceiling, Error, GemmVariant, GpuContext, GpuModel, RnnSpec, UploadOptions, Weights,
    WeightsStorage,
};

use crate::report::{AdapterRecord, CeilingRecord};

/// Matrix size of the timed `n × n × n` products.
pub const N: usize = 1024;

/// How the ceiling is measured.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct CeilingPlan {
    /// Products timed in one submit.
    pub reps: usize,
    /// Alternating rounds over the kernels (the machine's speed drifts); each kernel keeps its
    /// best round.
    pub rounds: usize,
    /// Whether the weights are timed in both storages (else in the one this device's models
    /// use, measured on it).
    pub both_storages: bool,
    /// Where given, a kernel whose first timed product shows that `reps` of them would take
    /// longer than this many seconds keeps that one product's time (a software adapter takes
    /// a second or more per product; a GPU, a millisecond).
    pub max_kernel_s: Option<f64>,
}

impl CeilingPlan {
    /// The storages timed on `ctx`: both, or the one its models keep their weights in.
    fn storages(&self, ctx: &GpuContext) -> Result<Vec<WeightsStorage>, Error> {
        if self.both_storages {
            Ok(WeightsStorage::CHOICES.to_vec())
        } else {
            Ok(vec![device_storage(ctx)?])
        }
    }

    /// The GEMM variants `ctx` can run.
    fn variants(ctx: &GpuContext) -> Vec<GemmVariant> {
        let limits = ctx.limits();
        GemmVariant::ALL
            .into_iter()
            .filter(|v| v.runs_on(&limits, ctx.supports_subgroups()))
            .collect()
    }

    /// Every (GEMM variant, storage) timed on `ctx`, in this order each round.
    fn kernels(&self, ctx: &GpuContext) -> Result<Vec<(GemmVariant, WeightsStorage)>, Error> {
        let variants = Self::variants(ctx);
        Ok(self
            .storages(ctx)?
            .into_iter()
            .flat_map(|s| variants.iter().map(move |&v| (v, s)))
            .collect())
    }

    /// Products `ctx`'s ceiling times in all, at most (each with its warm-up).
    pub fn products(&self, ctx: &GpuContext) -> usize {
        let storages = if self.both_storages { 2 } else { 1 };
        let per_kernel = match self.max_kernel_s {
            Some(_) => 2 + self.reps + 1,
            None => self.reps + 1,
        };
        Self::variants(ctx).len() * storages * self.rounds.max(1) * per_kernel
    }
}

/// Where `ctx`'s models keep their weights ([`WeightsStorage::Auto`] resolved: measured on
/// the device at the first upload, then remembered by the context): read from a tiny model.
fn device_storage(ctx: &GpuContext) -> Result<WeightsStorage, Error> {
    let tiny = Weights::random(&RnnSpec::lstm(1, 4), 0)?;
    let model = GpuModel::upload_with(
        ctx,
        &tiny,
        &UploadOptions::default().storage(WeightsStorage::Auto),
    )?;
    Ok(model.weights_storage())
}

/// Times every kernel of `plan` on `ctx`: one record per kernel, its best round, and the
/// adapter's ceiling (the best GFLOP/s of them).
pub fn measure(ctx: &GpuContext, plan: CeilingPlan) -> Result<(Vec<CeilingRecord>, f64), Error> {
    let kernels = plan.kernels(ctx)?;
    let mut best: Vec<Option<GemmCeiling>> = vec![None; kernels.len()];
    for _round in 0..plan.rounds.max(1) {
        for (i, &(variant, storage)) in kernels.iter().enumerate() {
            let c = time_kernel(ctx, plan, variant, storage)?;
            if best[i].as_ref().is_none_or(|b| c.gflops > b.gflops) {
                best[i] = Some(c);
            }
        }
    }
    let info = ctx.adapter_info();
    let mut top = 0.0f64;
    let mut records = Vec::new();
    for (&(variant, storage), c) in kernels.iter().zip(best.into_iter().flatten()) {
        top = top.max(c.gflops);
        records.push(CeilingRecord {
            adapter: AdapterRecord::new(info),
            variant: kernel_name(variant, storage),
            n: c.n,
            reps: c.reps,
            gflops: c.gflops,
            device_gflops: c.device_gflops,
        });
    }
    Ok((records, top))
}

/// One kernel's `plan.reps` products in one submit, or where `plan.max_kernel_s` bounds it
/// and one product shows they would take longer, that one product.
fn time_kernel(
    ctx: &GpuContext,
    plan: CeilingPlan,
    variant: GemmVariant,
    storage: WeightsStorage,
) -> Result<GemmCeiling, Error> {
    if let Some(max_s) = plan.max_kernel_s {
        let one = gemm_ceiling(ctx, N, 1, variant, storage)?;
        let product_s = 2.0 * (one.n as f64).powi(3) / (one.gflops * 1e9);
        if one.gflops <= 0.0 || product_s * plan.reps as f64 > max_s {
            return Ok(one);
        }
    }
    gemm_ceiling(ctx, N, plan.reps, variant, storage)
}

/// A GEMM kernel's name in the report: the variant, `+texture` where its weights are in a
/// texture.
fn kernel_name(variant: GemmVariant, storage: WeightsStorage) -> String {
    match storage {
        WeightsStorage::Texture => format!("{}+texture", variant.name()),
        _ => variant.name().to_string(),
    }
}

/// What `plan` times on `ctx`, for the progress line.
pub fn describe(ctx: &GpuContext, plan: CeilingPlan) -> String {
    let names: Vec<&str> = CeilingPlan::variants(ctx)
        .into_iter()
        .map(GemmVariant::name)
        .collect();
    format!(
        "{N}×{N}×{N} × {}{} in {} round(s), {}: {}",
        plan.reps,
        match plan.max_kernel_s {
            Some(s) => format!(" (1 where that takes over {s} s)"),
            None => String::new(),
        },
        plan.rounds.max(1),
        if plan.both_storages {
            "weights in a buffer and in a texture"
        } else {
            "weights where the device keeps them"
        },
        names.join(", ")
    )
}
