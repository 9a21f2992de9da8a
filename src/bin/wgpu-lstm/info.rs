//! `wgpu-lstm info`: every adapter wgpu finds, with the limits that matter here.

use wgpu_lstm::{list_adapters, Error};

use crate::gpu_args::GpuArgs;

pub fn info(gpu: &GpuArgs) -> Result<(), Error> {
    let adapters: Vec<_> = list_adapters(gpu.backends())
        .into_iter()
        .filter(|a| gpu.matches(&a.info.name))
        .collect();
    if adapters.is_empty() {
        return Err(Error::NoAdapter {
            detail: gpu.describe(),
        });
    }
    for (i, a) in adapters.iter().enumerate() {
        let (info, l) = (&a.info, &a.limits);
        println!(
            "adapter {i}: {} ({:?}, {:?} backend)",
            info.name, info.device_type, info.backend
        );
        println!("  driver: {} {}", info.driver, info.driver_info);
        println!(
            "  max_buffer_size: {}  max_storage_buffer_binding_size: {}",
            l.max_buffer_size, l.max_storage_buffer_binding_size
        );
        println!(
            "  max_compute_workgroups_per_dimension: {}  max_compute_invocations_per_workgroup: {}",
            l.max_compute_workgroups_per_dimension, l.max_compute_invocations_per_workgroup
        );
        println!(
            "  max_compute_workgroup_storage_size: {}  max_storage_buffers_per_shader_stage: {}  min_uniform_buffer_offset_alignment: {}",
            l.max_compute_workgroup_storage_size,
            l.max_storage_buffers_per_shader_stage,
            l.min_uniform_buffer_offset_alignment
        );
    }
    Ok(())
}
