//! Every kernel specialisation the library can create, for tools that check them all (for
//! instance translating each to every backend's shading language).

use crate::activation::{Activation, Activations};
use crate::gpu::kernels::bindings::WeightsBinding;
use crate::gpu::kernels::cache::{describe, Specialization};
use crate::gpu::kernels::gemm::{self, GemmVariant};
use crate::gpu::kernels::state;
use crate::gpu::kernels::step::{self, StepVariant};
use crate::gpu::options::WeightsStorage;
use crate::spec::{Cell, RnnSpec};
use crate::weights::WeightsDtype;

/// One kernel as the library can compile it: WGSL source, entry point and `override` values.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSource {
    /// Kernel family, also its folder in `shaders/`.
    pub family: &'static str,
    /// The WGSL text (a weight reader, then the family's files).
    pub source: &'static str,
    /// The type of its weights.
    pub weights: WeightsDtype,
    /// Where its weights live.
    pub storage: WeightsStorage,
    /// Whether it uses subgroup operations (needs a device with them).
    pub subgroups: bool,
    /// The entry point.
    pub entry: &'static str,
    /// Values of the `override` constants.
    pub constants: Vec<(&'static str, f64)>,
}

impl std::fmt::Display for KernelSource {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        describe(
            f,
            self.family,
            self.entry,
            self.weights,
            self.storage.binding(),
        )?;
        for (k, v) in &self.constants {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// Every kernel specialisation the library can create, for tools that check them all (for
/// instance translating each to every backend's shading language).
pub fn catalog() -> Vec<KernelSource> {
    let mut specs: Vec<Specialization> = GemmVariant::ALL
        .into_iter()
        .map(gemm::specialization)
        .collect();
    for cell in Cell::ALL {
        for peephole in [false, true] {
            if peephole && cell != Cell::Lstm {
                continue;
            }
            // Hidden sizes that reach every whole-sequence workgroup size (64, 128, 256).
            for hidden in [1, 100, 200, 1000] {
                let spec = RnnSpec::new(cell, 1, hidden).peephole(peephole);
                for batch in 1..=step::MAX_BATCH_TILE {
                    for v in StepVariant::ALL {
                        specs.push(step::specialization(&spec, batch, batch, v));
                    }
                }
            }
        }
    }
    // ONNX's gate options: every activation function in each role and direction, clip,
    // input_forget, a reverse-only direction, the two-pass GRU.
    let every = Activation::examples();
    for (k, &a) in every.iter().enumerate() {
        let b = every[(k + 3) % every.len()];
        let acts = vec![
            Activations { f: a, g: b, h: a },
            Activations { f: b, g: a, h: b },
        ];
        let spec = RnnSpec::lstm(1, 100)
            .bidirectional(true)
            .activations(acts)
            .clip(Some(3.0))
            .input_forget(k % 2 == 0);
        for v in [StepVariant::Stepwise, StepVariant::Sequence] {
            specs.push(step::specialization(&spec, 2, 0, v));
        }
    }
    for cell in Cell::ALL {
        let spec = RnnSpec::new(cell, 1, 100).direction(crate::spec::Direction::Reverse);
        specs.push(step::specialization(&spec, 1, 0, StepVariant::Stepwise));
    }
    let gru = RnnSpec::gru(1, 100).linear_before_reset(false);
    for v in StepVariant::ALL {
        specs.push(step::specialization(&gru, 3, 0, v));
        specs.extend(step::reset_specialization(&gru, 3, 0, v));
    }
    // Every kernel above once more with float16 weights, then all of them reading a texture;
    // and once more with int8 weights (always from a buffer).
    let int8: Vec<Specialization> = specs
        .iter()
        .map(|s| s.clone().weights(WeightsDtype::I8))
        .collect();
    let f16: Vec<Specialization> = specs
        .iter()
        .map(|s| s.clone().weights(WeightsDtype::F16))
        .collect();
    specs.extend(f16);
    let texture: Vec<Specialization> = specs
        .iter()
        .map(|s| s.clone().storage(WeightsBinding::Texture))
        .collect();
    specs.extend(texture);
    specs.extend(int8);
    // The state table's two kernels (no weights).
    specs.extend([state::Direction::Gather, state::Direction::Scatter].map(state::specialization));
    let mut out: Vec<KernelSource> = Vec::new();
    for s in specs {
        let k = KernelSource {
            family: s.family.name,
            source: s.source(),
            weights: s.weights,
            storage: match s.storage {
                WeightsBinding::Buffer => WeightsStorage::Buffer,
                WeightsBinding::Texture => WeightsStorage::Texture,
            },
            subgroups: s.subgroups,
            entry: s.entry,
            constants: s.constant_values(),
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::gpu::kernels::contract::Shader;

    /// Every kernel the library can create names an entry point and `override`s that its
    /// module has (a misspelt constant would otherwise fail only at pipeline creation, on a
    /// device); read by naga, no device needed.
    #[test]
    fn every_kernel_names_what_its_module_has() {
        let kernels = catalog();
        let mut modules: Vec<(&'static str, Shader)> = Vec::new();
        for k in &kernels {
            if !modules.iter().any(|(s, _)| std::ptr::eq(*s, k.source)) {
                modules.push((k.source, Shader::parse(&k.to_string(), k.source)));
            }
        }
        assert_eq!(
            modules.len(),
            17,
            "2 families × 4 weight readers × subgroups or not, and the state table's"
        );
        for k in &kernels {
            let (_, shader) = modules
                .iter()
                .find(|(s, _)| std::ptr::eq(*s, k.source))
                .expect("parsed above");
            shader.entry_point(k.entry);
            let overrides = shader.overrides();
            for (name, _) in &k.constants {
                assert!(
                    overrides.iter().any(|o| o == name),
                    "{k}: no override `{name}`"
                );
            }
        }
        assert!(kernels.len() > 1000, "{} kernels", kernels.len());
    }
}
