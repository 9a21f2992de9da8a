//! The kernel choices a forward makes by measurement: the step kernel and its batch tile,
//! timed on the input's first steps, and the GEMM kernel of the input projection, timed by the
//! context's tuner. Each is made once per device and shape class and remembered by the tuner.

use crate::error::Result;
use crate::gpu::kernels::gemm::GemmVariant;
use crate::gpu::kernels::step::{self, StepVariant};
use crate::gpu::model::GpuModel;
use crate::gpu::options::ForwardOptions;
use crate::gpu::options::WeightsStorage;
use crate::gpu::plan::{self, Chunk, Extent};
use crate::gpu::tune::GemmClass;
use crate::tensor::Prepared;
use crate::weights::WeightsDtype;

/// Time steps of an input that the step kernels are timed on when the tuner chooses between
/// them.
const TUNE_STEPS: usize = 16;

impl GpuModel {
    /// `options` with every kernel choice left to the tuner made: the GEMM, the step kernel
    /// and its batch tile, for `p` split into `chunks`.
    pub(crate) fn choose(
        &self,
        p: &Prepared<'_>,
        chunks: &[Chunk],
        options: &ForwardOptions,
    ) -> Result<ForwardOptions> {
        // The GEMM first: measuring the step kernels runs forwards, which must not ask the
        // tuner again while it measures.
        let options = ForwardOptions {
            gemm: self.gemm_variant(options.gemm, chunks[0].extent())?,
            ..*options
        };
        let options = ForwardOptions {
            variant: self.step_variant(p, chunks, &options)?,
            ..options
        };
        Ok(ForwardOptions {
            batch_tile: self.batch_tile(p, chunks, &options)?,
            ..options
        })
    }

    /// `options.variant`, or where it is [`StepVariant::Auto`] the step kernel the context's tuner
    /// chose for this model's shape class (cell, hidden size, layers, directions, and batch
    /// and steps rounded up to powers of two) — measured, on first request, by running this
    /// very input with each kernel.
    fn step_variant(
        &self,
        p: &Prepared<'_>,
        chunks: &[Chunk],
        options: &ForwardOptions,
    ) -> Result<StepVariant> {
        if options.variant != StepVariant::Auto {
            return Ok(options.variant);
        }
        let class = self.step_class(chunks[0].extent());
        let subgroups = self.ctx.supports_subgroups();
        let candidates: Vec<StepVariant> = StepVariant::ALL
            .into_iter()
            .filter(|v| subgroups || !v.needs_subgroups())
            .collect();
        let mut sample = None;
        self.ctx
            .tuner()
            .choose("step", class, &candidates, StepVariant::name, |variant| {
                let timed = ForwardOptions {
                    variant,
                    ..*options
                };
                self.time_sample(p, &mut sample, &timed)
            })
    }

    /// `options.batch_tile`, or where it is 0 the tile the context's tuner measures fastest
    /// for the step kernel `options.variant` and the shape class (among 1, 2, 4 and 8 rows, as
    /// they fit the batch).
    fn batch_tile(
        &self,
        p: &Prepared<'_>,
        chunks: &[Chunk],
        options: &ForwardOptions,
    ) -> Result<usize> {
        let e = chunks[0].extent();
        let candidates = step::tile_candidates(e.batch);
        if options.batch_tile != 0 || candidates.len() < 2 {
            return Ok(options.batch_tile);
        }
        let class = format!("{}-{}", self.step_class(e), options.variant.name());
        let mut sample = None;
        self.ctx
            .tuner()
            .choose("tile", class, &candidates, step::tile_name, |tile| {
                let timed = ForwardOptions {
                    batch_tile: tile,
                    ..*options
                };
                self.time_sample(p, &mut sample, &timed)
            })
    }

    /// The step kernels' shape class of `e`: cell, hidden size, layers, directions, batch and
    /// steps rounded up to powers of two, the weights' storage and type (each reader costs
    /// differently).
    fn step_class(&self, e: Extent) -> String {
        let spec = &self.spec;
        let storage = match self.weights_storage() {
            WeightsStorage::Texture => "-texture",
            _ => "",
        };
        let dtype = match self.weights_dtype() {
            WeightsDtype::F32 => String::new(),
            other => format!("-{}", other.name()),
        };
        format!(
            "{}-h{}-l{}-d{}-b{}-t{}{storage}{dtype}",
            spec.cell.name(),
            spec.hidden_size.next_power_of_two(),
            spec.num_layers,
            spec.num_directions(),
            e.batch.next_power_of_two(),
            e.steps.next_power_of_two()
        )
    }

    /// Milliseconds of a forward over the first [`TUNE_STEPS`] steps of `p` with `options`
    /// (device time where the device has timestamps). `sample` holds that prefix, built on
    /// first use: both kernels' costs grow linearly with the steps, and the time spent
    /// choosing stays bounded.
    fn time_sample<'a>(
        &self,
        p: &'a Prepared<'_>,
        sample: &mut Option<(Prepared<'a>, Vec<Chunk>)>,
        options: &ForwardOptions,
    ) -> Result<f64> {
        let timed = ForwardOptions {
            timing: true,
            ..*options
        };
        let (input, input_chunks) = match sample {
            Some(s) => s,
            None => {
                let prefix = p.prefix(TUNE_STEPS);
                let e = Extent::new(prefix.steps, prefix.batch);
                let c = plan::chunks(&self.spec, &self.limits, e)?;
                sample.insert((prefix, c))
            }
        };
        let start = std::time::Instant::now();
        let (_, stats) = self.run_chunks(input, input_chunks, &timed)?;
        let wall = start.elapsed().as_secs_f64() * 1e3;
        Ok(stats.device_ms.unwrap_or(wall))
    }

    /// `requested`, or where it is [`GemmVariant::Auto`] the variant the context's tuner
    /// chooses for the first layer's input projection of `extent`.
    pub(crate) fn gemm_variant(
        &self,
        requested: GemmVariant,
        extent: Extent,
    ) -> Result<GemmVariant> {
        if requested != GemmVariant::Auto {
            return Ok(requested);
        }
        let n4 = step::columns(self.spec.cell, self.spec.hidden_size);
        let m = extent.steps * extent.batch;
        self.ctx.tuned_gemm(
            GemmClass::of(m, self.spec.input_size, n4),
            self.weights_storage(),
            self.weights_dtype(),
        )
    }
}
