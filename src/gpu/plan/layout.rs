//! The buffers of a workspace that serves every input up to a capacity.

use super::schedule::{blocks_per_layer, check_dispatches};
use super::sizes::{Extent, Limits, Sizes};
use crate::error::Result;
use crate::gpu::device::TIMESTAMP_BYTES;
use crate::spec::RnnSpec;

/// The buffers of a workspace that serves every input up to `capacity`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Layout {
    pub capacity: Extent,
    pub sizes: Sizes,
    /// Bytes between two parameter blocks.
    pub param_stride: u64,
    /// Bytes of the parameter blocks: enough for every schedule within the capacity.
    pub params: u64,
    /// Bytes of the readback buffer: `y`, `h_n`, `c_n` and two timestamps.
    pub staging: u64,
}

impl Layout {
    /// The layout for `capacity`, or the first limit it exceeds.
    pub fn new(spec: &RnnSpec, limits: &Limits, capacity: Extent) -> Result<Self> {
        let sizes = Sizes::new(spec, capacity);
        let param_stride = limits.param_stride();
        let params = (spec.num_layers * blocks_per_layer(capacity.steps)) as u64 * param_stride;
        let staging = sizes.readback(true) + TIMESTAMP_BYTES;
        let (t, b) = (capacity.steps, capacity.batch);
        let shape = format!("{t} steps × batch {b}");
        for (what, bytes) in [
            ("input x", sizes.x),
            ("layer output", sizes.y),
            ("input projection", sizes.gx),
            ("hidden state", sizes.h),
            ("cell state", sizes.c),
            ("step outputs before projection", sizes.proj_m.unwrap_or(0)),
            ("parameter blocks", params),
            ("readback", staging),
        ] {
            limits.check_buffer(&format!("{what} for {shape}"), bytes)?;
        }
        // The largest forward within the capacity must fit the dispatch limits too, with every
        // kernel variant.
        check_dispatches(spec, limits, capacity)?;
        Ok(Layout {
            capacity,
            sizes,
            param_stride,
            params,
            staging,
        })
    }
}
