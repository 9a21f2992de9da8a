//! Every WGSL kernel in every specialisation the library can create, validated by naga and
//! translated to each backend's language: SPIR-V (Vulkan), MSL (Metal), HLSL (DX12) and GLSL
//! (GL). This is what wgpu does on those platforms before handing the shader to the driver;
//! an error here names kernel, specialisation and target. Kernels with subgroup operations
//! skip GLSL (wgpu's GL backend has none).

use naga::back::{glsl, hlsl, msl, spv};
use naga::valid::{Capabilities, ValidationFlags, Validator};
use naga::ShaderStage;
use wgpu_lstm::gpu::kernel_catalog;

/// The validator wgpu uses on a device with the downlevel flag `SHADER_F16_IN_F32` (the
/// `pack/unpack2x16float` functions of the float16-weight kernels): every Vulkan, Metal and
/// DX12 device, and GL where the driver has the functions (Mesa's llvmpipe does).
/// Kernels using subgroup operations are validated with them: they are created only on
/// devices that have them (`GpuContext::supports_subgroups`).
fn validator(subgroups: bool) -> Validator {
    let mut caps = Capabilities::default() | Capabilities::SHADER_FLOAT16_IN_FLOAT32;
    if subgroups {
        caps |= Capabilities::SUBGROUP;
    }
    Validator::new(ValidationFlags::all(), caps)
}

#[test]
fn every_kernel_translates_to_every_backend() {
    let catalog = kernel_catalog();
    assert!(catalog.len() > 20, "catalog has {} kernels", catalog.len());
    let mut failures = Vec::new();
    for k in &catalog {
        let mut fail = |target: &str, e: String| failures.push(format!("{k} → {target}: {e}"));
        let module = match naga::front::wgsl::parse_str(k.source) {
            Ok(m) => m,
            Err(e) => {
                fail("wgsl parse", e.emit_to_string(k.source));
                continue;
            }
        };
        let info = match validator(k.subgroups).validate(&module) {
            Ok(i) => i,
            Err(e) => {
                fail("validation", e.emit_to_string(k.source));
                continue;
            }
        };
        let mut constants = naga::back::PipelineConstants::default();
        for &(name, v) in &k.constants {
            constants.insert(name.to_string(), v);
        }
        let (module, info) = match naga::back::pipeline_constants::process_overrides(
            &module,
            &info,
            Some((ShaderStage::Compute, k.entry)),
            &constants,
        ) {
            Ok(r) => r,
            Err(e) => {
                fail("override specialisation", e.to_string());
                continue;
            }
        };
        let spv_opts = spv::PipelineOptions {
            shader_stage: ShaderStage::Compute,
            entry_point: k.entry.to_string(),
        };
        if let Err(e) = spv::write_vec(&module, &info, &spv::Options::default(), Some(&spv_opts)) {
            fail("SPIR-V (Vulkan)", e.to_string());
        }
        if let Err(e) = msl::write_string(
            &module,
            &info,
            &msl::Options::default(),
            &msl::PipelineOptions::default(),
        ) {
            fail("MSL (Metal)", e.to_string());
        }
        let mut hlsl_out = String::new();
        let hlsl_pipeline = hlsl::PipelineOptions {
            entry_point: Some((ShaderStage::Compute, k.entry.to_string())),
        };
        if let Err(e) = hlsl::Writer::new(&mut hlsl_out, &hlsl::Options::default(), &hlsl_pipeline)
            .write(&module, &info, None)
        {
            fail("HLSL (DX12)", e.to_string());
        }
        if k.subgroups {
            // wgpu's GL backend offers no subgroup operations: these kernels never run there.
            continue;
        }
        let glsl_opts = glsl::Options {
            version: glsl::Version::Embedded {
                version: 310,
                is_webgl: false,
            },
            ..glsl::Options::default()
        };
        let glsl_pipeline = glsl::PipelineOptions {
            shader_stage: ShaderStage::Compute,
            entry_point: k.entry.to_string(),
            multiview: None,
        };
        let mut glsl_out = String::new();
        match glsl::Writer::new(
            &mut glsl_out,
            &module,
            &info,
            &glsl_opts,
            &glsl_pipeline,
            naga::proc::BoundsCheckPolicies::default(),
        ) {
            Ok(mut w) => {
                if let Err(e) = w.write() {
                    fail("GLSL ES 3.1 (GL)", e.to_string());
                }
            }
            Err(e) => fail("GLSL ES 3.1 (GL)", e.to_string()),
        }
    }
    eprintln!(
        "{} kernel specialisations × 4 targets checked",
        catalog.len()
    );
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}
