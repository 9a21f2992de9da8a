//! Compute kernels: one module per WGSL file in `shaders/`, each owning its bind-group layout,
//! its parameter struct and the way it is dispatched.
//!
//! Pipelines are created once per device and specialisation (WGSL `override` values) and kept
//! in a [`KernelCache`]; nothing here is created on the per-forward path once it has been seen.

pub(crate) mod gemm;
pub(crate) mod step;

use std::collections::HashMap;
use std::num::NonZeroU64;
use std::sync::{Arc, Mutex, OnceLock};

use crate::error::{Error, Result};
use crate::gpu::device::one_line;
pub use crate::weights::WeightsDtype;

/// Where a model's weights live on the device and how the kernels read them; the values read
/// are the same bits either way, so results do not depend on it.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Hash)]
pub enum WeightsStorage {
    /// Chosen by measurement on the device at the first upload (a GEMM timed reading its
    /// weights each way; kept with the context and in the tuning cache).
    #[default]
    Auto,
    /// A read-only storage buffer.
    Buffer,
    /// A 2D texture (`rgba32float`, or `rgba16float` for float16 weights) read with
    /// `textureLoad`; models whose weights exceed the device's texture size use a buffer.
    Texture,
}

impl WeightsStorage {
    /// The storages a choice is made between.
    pub const CHOICES: [WeightsStorage; 2] = [WeightsStorage::Buffer, WeightsStorage::Texture];

    /// Lowercase name, as on the command line.
    pub fn name(self) -> &'static str {
        match self {
            WeightsStorage::Auto => "auto",
            WeightsStorage::Buffer => "buffer",
            WeightsStorage::Texture => "texture",
        }
    }

    /// The binding of the weights (binding 2 of both families) for this storage.
    fn entry(self) -> wgpu::BindGroupLayoutEntry {
        match self {
            WeightsStorage::Texture => wgpu::BindGroupLayoutEntry {
                binding: 2,
                visibility: wgpu::ShaderStages::COMPUTE,
                ty: wgpu::BindingType::Texture {
                    sample_type: wgpu::TextureSampleType::Float { filterable: false },
                    view_dimension: wgpu::TextureViewDimension::D2,
                    multisampled: false,
                },
                count: None,
            },
            _ => storage(2, true),
        }
    }
}

/// A kernel family: one WGSL file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Family {
    Gemm,
    Step,
}

impl Family {
    /// The kernel's name, also its file name in `shaders/`.
    pub fn name(self) -> &'static str {
        match self {
            Family::Gemm => "gemm",
            Family::Step => "step",
        }
    }

    /// WGSL source, embedded at build time: the weights' binding for `weights` in `storage` (a
    /// prelude, `shaders/weights_{f32,f16,texture}.wgsl`; a texture reads both types the same
    /// way), the family's file, then, for a device with subgroups where `subgroups`, the
    /// family's subgroup kernels (`shaders/*_subgroup.wgsl`; a module using subgroup builtins
    /// compiles only there). The step family without subgroups appends `step_plain.wgsl`.
    pub fn source(
        self,
        weights: WeightsDtype,
        storage: WeightsStorage,
        subgroups: bool,
    ) -> &'static str {
        static SOURCES: OnceLock<[String; 12]> = OnceLock::new();
        let sources = SOURCES.get_or_init(|| {
            let preludes = [
                include_str!("../../../shaders/weights_f32.wgsl"),
                include_str!("../../../shaders/weights_f16.wgsl"),
                include_str!("../../../shaders/weights_texture.wgsl"),
            ];
            // [family][subgroups]: the family's file and what follows it.
            let families = [
                [
                    (include_str!("../../../shaders/gemm.wgsl"), ""),
                    (
                        include_str!("../../../shaders/gemm.wgsl"),
                        include_str!("../../../shaders/gemm_subgroup.wgsl"),
                    ),
                ],
                [
                    (
                        include_str!("../../../shaders/step.wgsl"),
                        include_str!("../../../shaders/step_plain.wgsl"),
                    ),
                    (
                        include_str!("../../../shaders/step.wgsl"),
                        include_str!("../../../shaders/step_subgroup.wgsl"),
                    ),
                ],
            ];
            std::array::from_fn(|i| {
                let (body, tail) = families[i / 6][(i / 3) % 2];
                format!("{}\n{body}\n{tail}", preludes[i % 3])
            })
        });
        let family = match self {
            Family::Gemm => 0,
            Family::Step => 6,
        };
        let prelude = match (storage, weights) {
            (WeightsStorage::Texture, _) => 2,
            (_, WeightsDtype::F32) => 0,
            (_, WeightsDtype::F16) => 1,
        };
        &sources[family + 3 * usize::from(subgroups) + prelude]
    }

    fn layout_entries(self, storage: WeightsStorage) -> Vec<wgpu::BindGroupLayoutEntry> {
        let mut entries = match self {
            Family::Gemm => gemm::layout_entries(),
            Family::Step => step::layout_entries(),
        };
        for e in &mut entries {
            if e.binding == 2 {
                *e = storage.entry();
            }
        }
        entries
    }
}

/// The value of one `override` constant: an integer, a boolean (0 or 1) or a float, held as
/// its `f64` bits so that specialisations can be compared and hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Constant(u64);

impl Constant {
    pub fn value(self) -> f64 {
        f64::from_bits(self.0)
    }
}

impl From<u32> for Constant {
    fn from(v: u32) -> Self {
        Constant(f64::from(v).to_bits())
    }
}

impl From<f32> for Constant {
    fn from(v: f32) -> Self {
        Constant(f64::from(v).to_bits())
    }
}

impl From<bool> for Constant {
    fn from(v: bool) -> Self {
        Constant::from(u32::from(v))
    }
}

/// A kernel family with the values of its `override` constants: the pipeline-cache key.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub(crate) struct Specialization {
    pub family: Family,
    /// The type of its weights (binding 2).
    pub weights: WeightsDtype,
    /// Where its weights live (binding 2); never `Auto` once a model has chosen.
    pub storage: WeightsStorage,
    /// Whether the kernel uses subgroup operations (its module is then built with the
    /// family's subgroup kernels, on devices that have them).
    pub subgroups: bool,
    /// The WGSL entry point.
    pub entry: &'static str,
    pub constants: Vec<(&'static str, Constant)>,
}

impl Specialization {
    /// This kernel reading its weights as `weights`.
    pub fn weights(self, weights: WeightsDtype) -> Self {
        Specialization { weights, ..self }
    }

    /// This kernel reading its weights from `storage`.
    pub fn storage(self, storage: WeightsStorage) -> Self {
        Specialization { storage, ..self }
    }
}

impl std::fmt::Display for Specialization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}::{}", self.family.name(), self.entry)?;
        if self.weights != WeightsDtype::F32 {
            write!(f, " weights={}", self.weights.name())?;
        }
        if self.storage == WeightsStorage::Texture {
            write!(f, " storage=texture")?;
        }
        for (k, v) in &self.constants {
            write!(f, " {k}={}", v.value())?;
        }
        Ok(())
    }
}

/// One kernel as the library can compile it: WGSL source, entry point and `override` values.
#[derive(Debug, Clone, PartialEq)]
pub struct KernelSource {
    /// Kernel family, also the file name in `shaders/` (without `.wgsl`).
    pub family: &'static str,
    /// The WGSL text (the weights' prelude, then the family's file).
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
        write!(f, "{}::{}", self.family, self.entry)?;
        if self.weights != WeightsDtype::F32 {
            write!(f, " weights={}", self.weights.name())?;
        }
        if self.storage == WeightsStorage::Texture {
            write!(f, " storage=texture")?;
        }
        for (k, v) in &self.constants {
            write!(f, " {k}={v}")?;
        }
        Ok(())
    }
}

/// Every kernel specialisation the library can create, for tools that check them all (for
/// instance translating each to every backend's shading language).
pub fn catalog() -> Vec<KernelSource> {
    use crate::spec::{Cell, RnnSpec};
    let mut specs: Vec<Specialization> = gemm::GemmVariant::ALL
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
                    for v in step::Variant::ALL {
                        specs.push(step::specialization(&spec, batch, batch, v));
                    }
                }
            }
        }
    }
    // ONNX's gate options: every activation function in each role and direction, clip,
    // input_forget, a reverse-only direction, the two-pass GRU.
    use crate::activation::{Activation, Activations};
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
        for v in [step::Variant::Stepwise, step::Variant::Sequence] {
            specs.push(step::specialization(&spec, 2, 0, v));
        }
    }
    for cell in Cell::ALL {
        let spec = RnnSpec::new(cell, 1, 100).direction(crate::spec::Direction::Reverse);
        specs.push(step::specialization(&spec, 1, 0, step::Variant::Stepwise));
    }
    let gru = RnnSpec::gru(1, 100).linear_before_reset(false);
    for v in step::Variant::ALL {
        specs.push(step::specialization(&gru, 3, 0, v));
        specs.extend(step::reset_specialization(&gru, 3, 0, v));
    }
    // Every kernel above once more with float16 weights, then all of them reading a texture.
    let f16: Vec<Specialization> = specs
        .iter()
        .map(|s| s.clone().weights(WeightsDtype::F16))
        .collect();
    specs.extend(f16);
    let texture: Vec<Specialization> = specs
        .iter()
        .map(|s| s.clone().storage(WeightsStorage::Texture))
        .collect();
    specs.extend(texture);
    let mut out: Vec<KernelSource> = Vec::new();
    for s in specs {
        let k = KernelSource {
            family: s.family.name(),
            source: s.family.source(s.weights, s.storage, s.subgroups),
            weights: s.weights,
            storage: s.storage,
            subgroups: s.subgroups,
            entry: s.entry,
            constants: s.constants.iter().map(|&(k, v)| (k, v.value())).collect(),
        };
        if !out.contains(&k) {
            out.push(k);
        }
    }
    out
}

/// A compiled pipeline and the layout its bind groups must follow.
#[derive(Debug)]
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// A shader module: family, weights' type and storage, subgroup kernels or not.
type ModuleKey = (Family, WeightsDtype, WeightsStorage, bool);

/// Pipelines of one device, created on first use. Every pipeline of a family shares the
/// family's shader module and bind-group layout, so one bind group serves all of them.
#[derive(Debug, Default)]
pub(crate) struct KernelCache {
    pipelines: Mutex<HashMap<Specialization, Arc<Kernel>>>,
    layouts: Mutex<HashMap<(Family, WeightsStorage), wgpu::BindGroupLayout>>,
    modules: Mutex<HashMap<ModuleKey, wgpu::ShaderModule>>,
}

impl KernelCache {
    /// The shader module of `key`, created on first request.
    fn module(&self, device: &wgpu::Device, key: ModuleKey) -> wgpu::ShaderModule {
        let (family, weights, storage, subgroups) = key;
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        modules
            .entry(key)
            .or_insert_with(|| {
                let source = family.source(weights, storage, subgroups);
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(family.name()),
                    source: wgpu::ShaderSource::Wgsl(source.into()),
                })
            })
            .clone()
    }

    /// The bind-group layout every pipeline of `family` reading its weights from `storage`
    /// shares (whatever the weights' type), created on first request.
    pub fn layout(
        &self,
        device: &wgpu::Device,
        family: Family,
        storage: WeightsStorage,
    ) -> wgpu::BindGroupLayout {
        let storage = match storage {
            WeightsStorage::Texture => WeightsStorage::Texture,
            _ => WeightsStorage::Buffer,
        };
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        layouts
            .entry((family, storage))
            .or_insert_with(|| {
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(family.name()),
                    entries: &family.layout_entries(storage),
                })
            })
            .clone()
    }

    /// The pipeline for `spec`, compiled on first request.
    pub fn get(&self, device: &wgpu::Device, spec: &Specialization) -> Result<Arc<Kernel>> {
        let mut pipelines = self.pipelines.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(k) = pipelines.get(spec) {
            return Ok(k.clone());
        }
        let label = spec.to_string();
        let scope = device.push_error_scope(wgpu::ErrorFilter::Validation);
        let module = self.module(
            device,
            (spec.family, spec.weights, spec.storage, spec.subgroups),
        );
        let layout = self.layout(device, spec.family, spec.storage);
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants: Vec<(&str, f64)> = spec
            .constants
            .iter()
            .map(|&(k, v)| (k, v.value()))
            .collect();
        let pipeline = device.create_compute_pipeline(&wgpu::ComputePipelineDescriptor {
            label: Some(&label),
            layout: Some(&pipeline_layout),
            module: &module,
            entry_point: Some(spec.entry),
            compilation_options: wgpu::PipelineCompilationOptions {
                constants: &constants,
                zero_initialize_workgroup_memory: false,
            },
            cache: None,
        });
        if let Some(e) = pollster::block_on(scope.pop()) {
            return Err(Error::Gpu {
                during: format!("pipeline creation of kernel `{label}`"),
                message: one_line(&e.to_string()),
            });
        }
        let kernel = Arc::new(Kernel { pipeline, layout });
        pipelines.insert(spec.clone(), kernel.clone());
        Ok(kernel)
    }
}

/// A storage-buffer binding visible to compute.
pub(crate) fn storage(binding: u32, read_only: bool) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Storage { read_only },
            has_dynamic_offset: false,
            min_binding_size: None,
        },
        count: None,
    }
}

/// A uniform binding with a dynamic offset, holding one `T` per dispatch.
pub(crate) fn dynamic_uniform<T>(binding: u32) -> wgpu::BindGroupLayoutEntry {
    wgpu::BindGroupLayoutEntry {
        binding,
        visibility: wgpu::ShaderStages::COMPUTE,
        ty: wgpu::BindingType::Buffer {
            ty: wgpu::BufferBindingType::Uniform,
            has_dynamic_offset: true,
            min_binding_size: NonZeroU64::new(std::mem::size_of::<T>() as u64),
        },
        count: None,
    }
}

/// `⌈n / d⌉`.
pub(crate) fn div_ceil(n: usize, d: usize) -> usize {
    n.div_ceil(d)
}

/// `value` as a `u32` kernel parameter, or the limit it exceeds (never a silent truncation).
pub(crate) fn param(what: &str, value: usize) -> Result<u32> {
    u32::try_from(value).map_err(|_| Error::ExceedsLimit {
        what: what.to_string(),
        limit: "u32 kernel parameter",
        needed: value as u64,
        allowed: u64::from(u32::MAX),
    })
}
