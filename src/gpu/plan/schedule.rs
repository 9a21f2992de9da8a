//! The dispatches of one forward: its step kernel, each dispatch's workgroups and parameter
//! block, and the blocks to upload.

use super::sizes::{Extent, Limits, Sizes};
use crate::error::Result;
use crate::gpu::kernels::bindings::param as index;
use crate::gpu::kernels::gemm::{GemmParams, GemmVariant};
use crate::gpu::kernels::step::{self, StepParams, StepVariant};
use crate::gpu::pack::{self, LayerLayout};
use crate::spec::RnnSpec;

/// Parameter blocks per layer at most: input projection, one per step, two projection GEMMs.
pub(super) fn blocks_per_layer(steps: usize) -> usize {
    steps + 3
}

/// One dispatch: its parameter block's dynamic offset and its workgroup counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dispatch {
    pub offset: u32,
    pub groups: [u32; 3],
}

/// The two projections of a layer of an LSTM with `proj_size`: of its step outputs (into
/// `y`) and of its final states (into `h_n`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Projected<T> {
    pub y: T,
    pub h_n: T,
}

impl<T> Projected<T> {
    /// Both, `y` first.
    pub fn both(&self) -> [&T; 2] {
        [&self.y, &self.h_n]
    }
}

/// The dispatches of one layer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct LayerDispatches {
    /// Input projection of every step and direction.
    pub input: Dispatch,
    /// One per step (stepwise) or one for the whole sequence.
    pub steps: Vec<Dispatch>,
    /// Projection of the step outputs and of the final states (LSTM with `proj_size`).
    pub proj: Option<Projected<Dispatch>>,
}

/// What one forward of an extent dispatches: the step kernel, each dispatch, and the
/// parameter blocks to upload (laid out as the dispatches' offsets say).
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Schedule {
    pub extent: Extent,
    /// Sizes of the forward's data: where the readback puts each tensor.
    pub sizes: Sizes,
    /// The step kernel that runs (never [`StepVariant::Auto`]).
    pub variant: StepVariant,
    /// The GEMM kernel of the input projections and projections.
    pub gemm: GemmVariant,
    /// Batch rows per invocation of the step kernel.
    pub batch_tile: usize,
    /// Each stepwise step is preceded by the first pass of a two-pass step (a GRU whose
    /// reset gate applies before its linear part), with the same parameters.
    pub reset_pass: bool,
    pub layers: Vec<LayerDispatches>,
    /// The parameter blocks, `Limits::param_stride` bytes apart.
    pub params: Vec<u8>,
}

/// Parameter blocks written one after another, each at an aligned offset.
struct Blocks {
    stride: u64,
    bytes: Vec<u8>,
}

impl Blocks {
    fn push<T: bytemuck::Pod>(&mut self, block: &T) -> Result<u32> {
        let offset = self.bytes.len();
        let stride = self.stride as usize;
        self.bytes.resize(offset + stride, 0);
        let b = bytemuck::bytes_of(block);
        self.bytes[offset..offset + b.len()].copy_from_slice(b);
        index("a parameter block offset", offset)
    }
}

impl Schedule {
    /// The schedule of a forward over `extent` with the step kernel `requested` (resolved for
    /// the batch, and replaced by the stepwise kernel where the driver's loop budget is too
    /// small for the whole-sequence one) on batch tiles of `tile` rows (0: the default).
    pub fn new(
        spec: &RnnSpec,
        limits: &Limits,
        extent: Extent,
        (requested, tile): (StepVariant, usize),
        gemm: GemmVariant,
    ) -> Result<Self> {
        let Extent { steps, batch } = extent;
        let variant = effective_variant(spec, limits, extent, requested, tile);
        let gemm = gemm.on(limits.subgroups);
        let d = spec.num_directions();
        let (h, h_out) = (spec.hidden_size, spec.hidden_out());
        let n4 = step::columns(spec.cell, h);
        let shape = format!("{steps} steps × batch {batch}");
        let mut blocks = Blocks {
            stride: limits.param_stride(),
            bytes: Vec::new(),
        };
        let step_groups = limits.check_workgroups(
            &format!("the step kernel for {shape}"),
            step::workgroups(spec, batch, tile, variant),
        )?;
        let gemm_groups = |p: &GemmParams| {
            limits.check_workgroups(
                &format!("a matrix product for {shape}"),
                p.workgroups(d, gemm),
            )
        };
        let mut layers = Vec::with_capacity(spec.num_layers);
        for layer in 0..spec.num_layers {
            let weights = LayerLayout::new(spec, layer);
            let input = GemmParams {
                scale_offset: index("weight offset", weights.w_ih)?,
                ..GemmParams::dense(steps * batch, spec.layer_input_size(layer), n4)?
            };
            let input = Dispatch {
                groups: gemm_groups(&input)?,
                offset: blocks.push(&input)?,
            };
            let base = StepParams {
                batch: index("batch", batch)?,
                steps: index("steps", steps)?,
                step: 0,
                dirs: index("directions", d)?,
                hidden: index("hidden size", h)?,
                n4: index("weight columns", n4)?,
                k0: index("hidden size", h_out)?,
                w0_offset: 0,
                wrec_offset: index("weight offset", weights.wrec_offset)?,
                ph_offset: index("weight offset", weights.ph_offset)?,
                h0_offset: index("state offset", layer * d * batch * h_out)?,
                state_offset: index("state offset", layer * d * batch * h)?,
                s0_offset: index("weight offset", weights.i8_scales().0)?,
                srec_offset: index("weight offset", weights.i8_scales().1)?,
            };
            let step_count = if variant.is_sequence() { 1 } else { steps };
            let mut step_dispatches = Vec::with_capacity(step_count);
            for s in 0..step_count {
                let params = StepParams {
                    step: index("step", s)?,
                    ..base
                };
                step_dispatches.push(Dispatch {
                    offset: blocks.push(&params)?,
                    groups: step_groups,
                });
            }
            let proj = match projection_params(spec, layer, extent)? {
                Some(Projected { y, h_n }) => Some(Projected {
                    y: Dispatch {
                        groups: gemm_groups(&y)?,
                        offset: blocks.push(&y)?,
                    },
                    h_n: Dispatch {
                        groups: gemm_groups(&h_n)?,
                        offset: blocks.push(&h_n)?,
                    },
                }),
                None => None,
            };
            layers.push(LayerDispatches {
                input,
                steps: step_dispatches,
                proj,
            });
        }
        Ok(Schedule {
            extent,
            sizes: Sizes::new(spec, extent),
            variant,
            gemm,
            batch_tile: step::batch_tile(batch, tile),
            reset_pass: step::two_pass(spec) && !variant.is_sequence(),
            layers,
            params: blocks.bytes,
        })
    }

    /// Compute dispatches this schedule records.
    pub fn dispatches(&self) -> usize {
        self.layers
            .iter()
            .map(|l| {
                let steps = l.steps.len() * if self.reset_pass { 2 } else { 1 };
                1 + steps + l.proj.as_ref().map_or(0, |p| p.both().len())
            })
            .sum()
    }
}

/// Checks, without building a schedule, that every dispatch of a forward over `extent` fits
/// the workgroup-count limit with every kernel variant, and that its parameters fit `u32`.
pub(super) fn check_dispatches(spec: &RnnSpec, limits: &Limits, extent: Extent) -> Result<()> {
    let Extent { steps, batch } = extent;
    let shape = format!("{steps} steps × batch {batch}");
    for variant in StepVariant::ALL {
        for tile in step::BATCH_TILES {
            limits.check_workgroups(
                &format!("the step kernel for {shape}"),
                step::workgroups(spec, batch, tile, variant),
            )?;
        }
    }
    let d = spec.num_directions();
    let n4 = step::columns(spec.cell, spec.hidden_size);
    for layer in 0..spec.num_layers {
        let input = GemmParams::dense(steps * batch, spec.layer_input_size(layer), n4)?;
        let proj = projection_params(spec, layer, extent)?;
        let products = std::iter::once(&input).chain(proj.iter().flat_map(|p| p.both()));
        for p in products {
            for gemm in GemmVariant::ALL {
                limits.check_workgroups(
                    &format!("a matrix product for {shape}"),
                    p.workgroups(d, gemm),
                )?;
            }
        }
    }
    Ok(())
}

/// The GEMMs that project a layer's step outputs and final states (LSTM with `proj_size`).
fn projection_params(
    spec: &RnnSpec,
    layer: usize,
    e: Extent,
) -> Result<Option<Projected<GemmParams>>> {
    if spec.proj_size == 0 {
        return Ok(None);
    }
    let Extent { steps, batch } = e;
    let (d, h, p) = (spec.num_directions(), spec.hidden_size, spec.proj_size);
    let np = pack::proj_columns(spec);
    // y[t, b, d·P + p] = Σ_k m[t, b, d·H + k] · W_hr[p, k]
    let y = GemmParams {
        m: index("rows", steps * batch)?,
        k: index("hidden size", h)?,
        n4: index("projection columns", np)?,
        n_valid: index("projection size", p)?,
        a_offset: 0,
        a_stride: index("row stride", d * h)?,
        a_batch: index("hidden size", h)?,
        w_batch: index("weight stride", h * np)?,
        bias_batch: index("projection columns", np)?,
        out_offset: 0,
        out_stride: index("row stride", d * p)?,
        out_batch: index("projection size", p)?,
        scale_offset: index("weight offset", d * h * np)?,
    };
    // h_n[l·D + d, b, p] = Σ_k m_n[l·D + d, b, k] · W_hr[p, k]
    let hn = GemmParams {
        m: index("batch", batch)?,
        a_offset: index("state offset", layer * d * batch * h)?,
        a_stride: index("hidden size", h)?,
        a_batch: index("state stride", batch * h)?,
        out_offset: index("state offset", layer * d * batch * p)?,
        out_stride: index("projection size", p)?,
        out_batch: index("state stride", batch * p)?,
        ..y
    };
    Ok(Some(Projected { y, h_n: hn }))
}

/// The step kernel a forward of `extent` runs: `requested` resolved for the batch, with the
/// whole-sequence kernel replaced by the stepwise one where the driver's loop budget is too
/// small for it (with a tenth kept in reserve), and a subgroup kernel by its plain form where
/// the device has no subgroups.
fn effective_variant(
    spec: &RnnSpec,
    limits: &Limits,
    extent: Extent,
    requested: StepVariant,
    tile: usize,
) -> StepVariant {
    let v = requested.resolve(extent.batch).on(limits.subgroups);
    let fits = |budget: u64| {
        step::sequence_loop_iterations(spec, extent.batch, tile, extent.steps) <= budget * 9 / 10
    };
    if v.is_sequence() && !limits.loop_budget.is_none_or(fits) {
        v.stepwise()
    } else {
        v
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::plan::test_limits::roomy;
    use crate::gpu::plan::Layout;

    #[test]
    fn dispatch_counts() {
        let spec = RnnSpec::lstm(3, 5).layers(2);
        let e = Extent::new(50, 2);
        let step = Schedule::new(
            &spec,
            &roomy(),
            e,
            (StepVariant::Stepwise, 0),
            GemmVariant::Rows4,
        )
        .unwrap();
        assert_eq!(step.dispatches(), 2 * 51);
        assert_eq!(step.variant, StepVariant::Stepwise);
        let seq = Schedule::new(
            &spec,
            &roomy(),
            e,
            (StepVariant::Auto, 0),
            GemmVariant::Wide,
        )
        .unwrap();
        assert_eq!((seq.dispatches(), seq.variant), (4, StepVariant::Sequence));
        let proj = RnnSpec::lstm(3, 5).proj_size(2);
        let p = Schedule::new(
            &proj,
            &roomy(),
            e,
            (StepVariant::Stepwise, 0),
            GemmVariant::Rows4,
        )
        .unwrap();
        assert_eq!(p.dispatches(), 1 + 50 + 2);
        // Blocks are aligned and distinct, and fit the capacity's parameter buffer.
        let layout = Layout::new(&proj, &roomy(), e).unwrap();
        let offsets: Vec<u32> = p.layers[0]
            .steps
            .iter()
            .chain([&p.layers[0].input])
            .chain(p.layers[0].proj.iter().flat_map(|p| p.both()))
            .map(|d| d.offset)
            .collect();
        assert!(offsets.iter().all(|o| o % 256 == 0));
        let mut unique = offsets.clone();
        unique.sort_unstable();
        unique.dedup();
        assert_eq!(unique.len(), offsets.len());
        assert!(p.params.len() as u64 <= layout.params);
    }

    #[test]
    fn a_small_loop_budget_falls_back_to_stepwise() {
        let spec = RnnSpec::lstm(3, 64);
        let limits = Limits {
            loop_budget: Some(1000),
            ..roomy()
        };
        let short = Schedule::new(
            &spec,
            &limits,
            Extent::new(2, 1),
            (StepVariant::Sequence, 0),
            GemmVariant::Rows4,
        )
        .unwrap();
        assert_eq!(short.variant, StepVariant::Sequence);
        let long = Schedule::new(
            &spec,
            &limits,
            Extent::new(500, 1),
            (StepVariant::Sequence, 0),
            GemmVariant::Rows4,
        )
        .unwrap();
        assert_eq!(long.variant, StepVariant::Stepwise);
    }
}
