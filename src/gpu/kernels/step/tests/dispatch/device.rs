//! One case run on the device as the host runs a layer: its [`Schedule`], the pipelines
//! the specialisations name, the schedule's parameter blocks pointed at the buffers built
//! here, and every output buffer read back.

use std::num::NonZeroU64;

use super::case::{Case, DeviceInputs, Inputs};
use crate::gpu::context::GpuContext;
use crate::gpu::device;
use crate::gpu::kernels::cache::Specialization;
use crate::gpu::kernels::gemm::GemmVariant;
use crate::gpu::kernels::step::{self, StepParams, StepVariant};
use crate::gpu::plan::{Extent, Limits, Schedule};
use crate::gpu::weights::WeightStore;
use crate::weights::WeightsDtype;

/// What one run read back, and what ran.
pub(super) struct Outputs {
    pub(super) m: Vec<f32>,
    pub(super) c: Vec<f32>,
    pub(super) mn: Vec<f32>,
    pub(super) variant: StepVariant,
    pub(super) tile: usize,
}

/// Runs the layer's steps as the host would for `requested` and `tile`, on `dev`'s buffers.
pub(super) fn run(
    ctx: &GpuContext,
    case: &Case,
    inp: &Inputs,
    dev: &DeviceInputs,
    requested: StepVariant,
    tile: usize,
) -> Outputs {
    // One thread at a time where the backend needs it (GL), as a model's forward.
    let _turn = ctx.exclusive();
    let spec = &inp.spec;
    let limits = Limits::new(&ctx.limits(), ctx.loop_budget(), ctx.supports_subgroups());
    let extent = Extent::new(case.steps, case.batch);
    let schedule =
        Schedule::new(spec, &limits, extent, (requested, tile), GemmVariant::Rows4).unwrap();
    let (variant, bt) = (schedule.variant, schedule.batch_tile);
    assert_eq!(bt, step::batch_tile(case.batch, tile));
    let kernel = |s: Specialization| {
        ctx.kernel(&s.weights(case.dtype).storage(case.storage.binding()))
            .unwrap()
    };
    let step_kernel = kernel(step::specialization(spec, case.batch, bt, variant));
    let reset_kernel = step::reset_specialization(spec, case.batch, bt, variant).map(kernel);
    assert_eq!(reset_kernel.is_some(), schedule.reset_pass);
    // The schedule's blocks, with the offsets of the buffers built here (gaps before every
    // part) in place of the layer's own.
    let steps = &schedule.layers[0].steps;
    assert_eq!(
        steps.len(),
        if variant.is_sequence() { 1 } else { case.steps }
    );
    let mut params = schedule.params.clone();
    let size = std::mem::size_of::<StepParams>();
    for (s, dispatch) in steps.iter().enumerate() {
        let at = dispatch.offset as usize;
        let mut p: StepParams = bytemuck::pod_read_unaligned(&params[at..at + size]);
        let u = |v: usize| u32::try_from(v).unwrap();
        let want = [case.batch, case.steps, s, inp.dirs, inp.h, inp.n4, inp.k0].map(u);
        let got = [p.batch, p.steps, p.step, p.dirs, p.hidden, p.n4, p.k0];
        assert_eq!(got, want, "the schedule's step parameters");
        p.w0_offset = dev.w0_offset;
        p.wrec_offset = dev.wrec_offset;
        p.ph_offset = dev.ph_offset;
        p.h0_offset = u(inp.gap_h0);
        p.state_offset = u(inp.gap_state);
        params[at..at + size].copy_from_slice(bytemuck::bytes_of(&p));
    }

    let (device, queue) = (ctx.device(), ctx.queue());
    use wgpu::BufferUsages as U;
    let input = |label, data: &[u8]| device::upload(device, queue, label, data, U::STORAGE);
    let output = |label, data: &[f32]| {
        let bytes = bytemuck::cast_slice(data);
        device::upload(device, queue, label, bytes, U::STORAGE | U::COPY_SRC)
    };
    let uniform = device::upload(device, queue, "params", &params, U::UNIFORM);
    let gx = input("gx", bytemuck::cast_slice(&dev.gx));
    let w_bytes: Vec<u8> = match case.dtype {
        WeightsDtype::F32 => bytemuck::cast_slice(&dev.w).to_vec(),
        WeightsDtype::F16 => dev
            .w
            .iter()
            .flat_map(|&v| half::f16::from_f32(v).to_le_bytes())
            .collect(),
        WeightsDtype::I8 => unreachable!("the step kernels run f32 and f16 weights"),
    };
    let w = WeightStore::upload(device, queue, "w", &w_bytes, case.dtype, case.storage);
    let h0 = input("h0", bytemuck::cast_slice(&dev.h0));
    let m = output("m", &dev.m);
    let c = output("c", &dev.c);
    let mn = output("mn", &dev.mn);
    let lens = input("lens", bytemuck::cast_slice(&dev.lens));
    let resources = [
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: &uniform,
            offset: 0,
            size: NonZeroU64::new(size as u64),
        }),
        gx.as_entire_binding(),
        w.binding(),
        h0.as_entire_binding(),
        m.as_entire_binding(),
        c.as_entire_binding(),
        mn.as_entire_binding(),
        lens.as_entire_binding(),
    ];
    let entries: Vec<_> = resources
        .into_iter()
        .zip(0u32..)
        .map(|(resource, binding)| wgpu::BindGroupEntry { binding, resource })
        .collect();
    let group = device.create_bind_group(&wgpu::BindGroupDescriptor {
        label: Some("step test"),
        layout: &step_kernel.layout,
        entries: &entries,
    });
    let bytes = |v: &Vec<f32>| (v.len() * 4) as u64;
    let (mb, cb, nb) = (bytes(&dev.m), bytes(&dev.c), bytes(&dev.mn));
    let staging = device::buffer(device, "staging", mb + cb + nb, U::MAP_READ | U::COPY_DST);
    let mut encoder = device.create_command_encoder(&Default::default());
    {
        let mut pass = encoder.begin_compute_pass(&Default::default());
        pass.set_pipeline(&step_kernel.pipeline);
        for dispatch in steps {
            let [x, y, z] = dispatch.groups;
            pass.set_bind_group(0, &group, &[dispatch.offset]);
            if let Some(reset) = &reset_kernel {
                pass.set_pipeline(&reset.pipeline);
                pass.dispatch_workgroups(x, y, z);
                pass.set_pipeline(&step_kernel.pipeline);
            }
            pass.dispatch_workgroups(x, y, z);
        }
    }
    encoder.copy_buffer_to_buffer(&m, 0, &staging, 0, mb);
    encoder.copy_buffer_to_buffer(&c, 0, &staging, mb, cb);
    encoder.copy_buffer_to_buffer(&mn, 0, &staging, mb + cb, nb);
    let submission = queue.submit([encoder.finish()]);
    let mut all = device::read_back(device, &staging, mb + cb + nb, submission).unwrap();
    let mn_out = all.split_off(((mb + cb) / 4) as usize);
    let c_out = all.split_off((mb / 4) as usize);
    Outputs {
        m: all,
        c: c_out,
        mn: mn_out,
        variant,
        tile: bt,
    }
}
