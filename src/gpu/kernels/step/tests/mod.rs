//! The step family's contract with `shaders/step/`: the parameter struct and the constants
//! both sides hold, in every module the host can build (read by naga, no device needed).
//! The catalog's test checks every entry point and `override` the host asks for. The kernels
//! themselves run on a device in [`dispatch`].

use super::super::contract::{fields, Shader};
use super::*;

mod dispatch;

/// Every step module: three weight readers, with and without the subgroup product.
fn modules() -> Vec<(String, Shader)> {
    let mut out = Vec::new();
    for dtype in [WeightsDtype::F32, WeightsDtype::F16, WeightsDtype::I8] {
        for binding in [WeightsBinding::Buffer, WeightsBinding::Texture] {
            for subgroups in [false, true] {
                let what = format!("step {dtype:?} {binding:?} subgroups={subgroups}");
                let shader = Shader::parse(&what, source(dtype, binding, subgroups));
                out.push((what, shader));
            }
        }
    }
    out
}

#[test]
fn params_and_constants_match_the_wgsl() {
    let step_params = fields!(StepParams: batch, steps, step, dirs, hidden, n4, k0, w0_offset,
        wrec_offset, ph_offset, h0_offset, state_offset, s0_offset, srec_offset);
    for (_, shader) in modules() {
        shader.check_struct("StepParams", std::mem::size_of::<StepParams>(), step_params);
        assert_eq!(shader.constant("MAX_BT"), MAX_BATCH_TILE as f64);
        assert_eq!(shader.override_default("WG"), f64::from(WG));
        assert_eq!(shader.override_default("BT"), DEFAULT_BATCH_TILE as f64);
        assert_eq!(shader.override_default("CT"), 1.0);
        // The host leaves out the gate constants equal to the shader's defaults
        // (`gate_constants`): those defaults must be PyTorch's equations.
        assert_eq!(shader.override_default("REVERSED"), 2.0);
        assert_eq!(shader.override_default("CLIP"), 0.0);
        assert_eq!(shader.override_default("INPUT_FORGET"), 0.0);
        assert_eq!(shader.override_default("RESET_AFTER"), 1.0);
        let lstm = Activations::of(Cell::Lstm);
        for d in 0..2 {
            for (name, a) in [("F", lstm.f), ("G", lstm.g), ("H", lstm.h)] {
                let code = shader.override_default(&format!("ACT_{name}{d}"));
                assert_eq!(code, f64::from(a.code()), "ACT_{name}{d}");
                assert_eq!(shader.override_default(&format!("A_{name}{d}")), 0.0);
                assert_eq!(shader.override_default(&format!("B_{name}{d}")), 0.0);
            }
        }
    }
}
