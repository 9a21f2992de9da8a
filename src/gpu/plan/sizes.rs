//! The device limits a plan respects, and the sizes of a forward's data.

use crate::error::{Error, Result};
use crate::gpu::kernels::gemm::GemmParams;
use crate::gpu::kernels::step::{self, StepParams};
use crate::spec::RnnSpec;

/// Bytes per element: every buffer holds f32 or u32.
const WORD: u64 = 4;

/// The device limits a plan respects.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Limits {
    /// `max_buffer_size`.
    pub max_buffer_size: u64,
    /// `max_storage_buffer_binding_size`.
    pub max_storage_binding: u64,
    /// `max_compute_workgroups_per_dimension`.
    pub max_workgroups: u32,
    /// `min_uniform_buffer_offset_alignment`.
    pub uniform_alignment: u32,
    /// Loop iterations one invocation may run in total, where the driver stops longer loops.
    pub loop_budget: Option<u64>,
    /// Whether the subgroup kernels run on the device.
    pub subgroups: bool,
}

impl Limits {
    pub fn new(limits: &wgpu::Limits, loop_budget: Option<u64>, subgroups: bool) -> Self {
        Limits {
            max_buffer_size: limits.max_buffer_size,
            max_storage_binding: limits.max_storage_buffer_binding_size,
            max_workgroups: limits.max_compute_workgroups_per_dimension,
            uniform_alignment: limits.min_uniform_buffer_offset_alignment,
            loop_budget,
            subgroups,
        }
    }

    /// Checks a buffer of `bytes` against the buffer-size limits, and that the kernels can
    /// index every 4-byte element of it with a `u32`.
    pub fn check_buffer(&self, what: &str, bytes: u64) -> Result<()> {
        for (limit, allowed) in [
            ("max_buffer_size", self.max_buffer_size),
            ("max_storage_buffer_binding_size", self.max_storage_binding),
            ("u32 element index", u64::from(u32::MAX) * WORD),
        ] {
            if bytes > allowed {
                return Err(Error::ExceedsLimit {
                    what: what.to_string(),
                    limit,
                    needed: bytes,
                    allowed,
                });
            }
        }
        Ok(())
    }

    /// Checks one dispatch's workgroup counts.
    pub(super) fn check_workgroups(&self, what: &str, groups: [usize; 3]) -> Result<[u32; 3]> {
        let allowed = u64::from(self.max_workgroups);
        let mut out = [0u32; 3];
        for (o, &n) in out.iter_mut().zip(&groups) {
            *o = u32::try_from(n)
                .ok()
                .filter(|&n| u64::from(n) <= allowed)
                .ok_or_else(|| Error::ExceedsLimit {
                    what: what.to_string(),
                    limit: "max_compute_workgroups_per_dimension",
                    needed: n as u64,
                    allowed,
                })?;
        }
        Ok(out)
    }

    /// Bytes between two parameter blocks: the larger block, aligned for dynamic offsets.
    pub(super) fn param_stride(&self) -> u64 {
        let block = std::mem::size_of::<GemmParams>().max(std::mem::size_of::<StepParams>());
        (block as u64).next_multiple_of(u64::from(self.uniform_alignment.max(1)))
    }
}

/// Time steps × batch of an input, a chunk, or a workspace's capacity.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Extent {
    pub steps: usize,
    pub batch: usize,
}

impl Extent {
    pub fn new(steps: usize, batch: usize) -> Self {
        Extent { steps, batch }
    }

    /// Whether an input of `other` fits in a workspace of this capacity.
    pub fn covers(&self, other: Extent) -> bool {
        self.steps >= other.steps && self.batch >= other.batch
    }

    /// The smallest extent covering both.
    pub fn max(self, other: Extent) -> Extent {
        Extent::new(self.steps.max(other.steps), self.batch.max(other.batch))
    }
}

/// Byte sizes of the data of one forward of a given extent: in a workspace (its capacity) or
/// in a readback (the input's own extent, packed densely from offset 0).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Sizes {
    /// Input sequence `[T, B, I]`.
    pub x: u64,
    /// Output sequence of a layer `[T, B, D·H_out]`.
    pub y: u64,
    /// Input projections of a layer `[D, T, B, n4]` of vec4.
    pub gx: u64,
    /// `h0` or `h_n` `[L·D, B, H_out]`.
    pub h: u64,
    /// Cell state `[L·D, B, H]` (also the final states before projection).
    pub c: u64,
    /// Sequence lengths `[B]` of u32.
    pub lens: u64,
    /// Step outputs before the projection `[T, B, D·H]` (projection only).
    pub proj_m: Option<u64>,
}

impl Sizes {
    pub fn new(spec: &RnnSpec, e: Extent) -> Self {
        let (t, b) = (e.steps as u64, e.batch as u64);
        let d = spec.num_directions() as u64;
        let ld = spec.num_layers as u64 * d;
        let h = spec.hidden_size as u64;
        let n4 = step::columns(spec.cell, spec.hidden_size) as u64;
        Sizes {
            x: t * b * spec.input_size as u64 * WORD,
            y: t * b * spec.output_size() as u64 * WORD,
            gx: d * t * b * 4 * n4 * WORD,
            h: ld * b * spec.hidden_out() as u64 * WORD,
            c: ld * b * h * WORD,
            lens: b * WORD,
            proj_m: (spec.proj_size > 0).then_some(t * b * d * h * WORD),
        }
    }

    /// Where a readback puts `y`, `h_n` and `c_n`, one after another.
    pub fn readback(&self, states: bool) -> u64 {
        if states {
            self.y + self.h + self.c
        } else {
            self.y
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::kernels::bindings::param as index;
    use crate::gpu::plan::test_limits::roomy;

    #[test]
    fn sizes_count_every_tensor() {
        let spec = RnnSpec::lstm(3, 5).layers(2).bidirectional(true);
        let s = Sizes::new(&spec, Extent::new(7, 2));
        assert_eq!(s.x, 7 * 2 * 3 * 4);
        assert_eq!(s.y, 7 * 2 * 10 * 4);
        assert_eq!(s.gx, 2 * 7 * 2 * 5 * 16);
        assert_eq!(s.h, 4 * 2 * 5 * 4);
        assert_eq!(s.c, s.h);
        assert_eq!(s.proj_m, None);
        let p = Sizes::new(&spec.clone().proj_size(3), Extent::new(7, 2));
        assert_eq!(p.y, 7 * 2 * 6 * 4);
        assert_eq!(p.h, 4 * 2 * 3 * 4);
        assert_eq!(p.proj_m, Some(7 * 2 * 10 * 4));
    }

    #[test]
    fn oversized_parameters_are_errors_not_truncations() {
        assert!(index("x", u32::MAX as usize).is_ok());
        let e = index("steps", u32::MAX as usize + 1).unwrap_err();
        assert!(matches!(e, Error::ExceedsLimit { .. }));
        let huge = Limits {
            max_buffer_size: u64::MAX,
            max_storage_binding: u64::MAX,
            ..roomy()
        };
        let e = huge.check_buffer("y", u64::from(u32::MAX) * 8).unwrap_err();
        assert!(e.to_string().contains("u32"), "{e}");
    }
}
