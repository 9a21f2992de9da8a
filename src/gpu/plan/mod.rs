//! The plan of a forward, pure arithmetic with no GPU: from the model description, the
//! device's limits and an input's steps and batch to
//!
//! - the sizes of its data and the limits they must respect ([`sizes`]),
//! - the dispatches of one forward: parameter blocks and workgroup counts ([`schedule`]),
//! - the buffer sizes of a workspace that can hold it ([`layout`]),
//! - the split of an input the device cannot hold at once, over the batch and over time
//!   ([`chunks`]).
//!
//! Every limit is checked here, before anything is allocated, so a too-large input is split
//! by arithmetic rather than discovered by a failed allocation.

mod chunks;
mod layout;
mod schedule;
mod sizes;

pub(crate) use chunks::{capacity, chunks, Chunk};
pub(crate) use layout::Layout;
pub(crate) use schedule::{Projected, Schedule};
pub(crate) use sizes::{Extent, Limits, Sizes};

/// Limits for the unit tests: roomy, or with small bindings and workgroup counts.
#[cfg(test)]
mod test_limits {
    use super::Limits;

    pub fn roomy() -> Limits {
        Limits {
            max_buffer_size: 1 << 30,
            max_storage_binding: 1 << 30,
            max_workgroups: 65_535,
            uniform_alignment: 256,
            loop_budget: None,
            subgroups: false,
        }
    }

    pub fn small(binding: u64, groups: u32) -> Limits {
        Limits {
            max_storage_binding: binding,
            max_workgroups: groups,
            ..roomy()
        }
    }
}
