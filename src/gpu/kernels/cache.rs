//! The pipeline cache and its key. A kernel family (a folder of `shaders/`) describes itself
//! with a [`Family`]; a [`Specialization`] names one pipeline of it; the [`KernelCache`] of a
//! device compiles each pipeline once. The families use this module; it knows none of them.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};
use std::sync::{Arc, Mutex};

use super::bindings::WeightsBinding;
use crate::error::{Error, Result};
use crate::gpu::device::one_line;
use crate::weights::WeightsDtype;

/// A kernel family: its WGSL and its bind-group layout. Each family module holds one as a
/// `static`; two families are the same when their names are.
#[derive(Debug)]
pub(crate) struct Family {
    /// The family's name, also its folder in `shaders/`.
    pub name: &'static str,
    /// The WGSL module for weights of a type, bound one way, with the family's subgroup
    /// kernels or not (a module using subgroup builtins compiles only on devices with them).
    pub source: fn(WeightsDtype, WeightsBinding, bool) -> &'static str,
    /// The bind-group layout's entries, the weights (binding 2) bound as given.
    pub layout: fn(WeightsBinding) -> Vec<wgpu::BindGroupLayoutEntry>,
}

impl PartialEq for Family {
    fn eq(&self, other: &Self) -> bool {
        self.name == other.name
    }
}

impl Eq for Family {}

impl Hash for Family {
    fn hash<H: Hasher>(&self, state: &mut H) {
        self.name.hash(state);
    }
}

/// The value of one `override` constant: an integer, a boolean (0 or 1) or a float, held as
/// its `f64` bits so that specialisations can be compared and hashed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct Constant(u64);

impl Constant {
    /// The value as WGSL pipeline constants take it.
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
    pub family: &'static Family,
    /// The type of its weights (binding 2).
    pub weights: WeightsDtype,
    /// How its weights are bound (binding 2).
    pub storage: WeightsBinding,
    /// Whether the kernel uses subgroup operations (its module is then built with the
    /// family's subgroup kernels, on devices that have them).
    pub subgroups: bool,
    /// The WGSL entry point.
    pub entry: &'static str,
    /// Values of the `override` constants that differ from the shader's defaults.
    pub constants: Vec<(&'static str, Constant)>,
}

impl Specialization {
    /// This kernel reading its weights as `weights`.
    pub fn weights(self, weights: WeightsDtype) -> Self {
        Specialization { weights, ..self }
    }

    /// This kernel reading its weights bound as `storage`.
    pub fn storage(self, storage: WeightsBinding) -> Self {
        Specialization { storage, ..self }
    }

    /// Its WGSL module.
    pub fn source(&self) -> &'static str {
        (self.family.source)(self.weights, self.storage, self.subgroups)
    }

    /// The pipeline constants as wgpu takes them.
    pub fn constant_values(&self) -> Vec<(&'static str, f64)> {
        self.constants
            .iter()
            .map(|&(k, v)| (k, v.value()))
            .collect()
    }
}

impl std::fmt::Display for Specialization {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        describe(f, self.family.name, self.entry, self.weights, self.storage)?;
        for (k, v) in &self.constants {
            write!(f, " {k}={}", v.value())?;
        }
        Ok(())
    }
}

/// A kernel's name as labels and reports give it, before its constants:
/// `family::entry [weights=f16] [storage=texture]`.
pub(crate) fn describe(
    f: &mut std::fmt::Formatter<'_>,
    family: &str,
    entry: &str,
    weights: WeightsDtype,
    storage: WeightsBinding,
) -> std::fmt::Result {
    write!(f, "{family}::{entry}")?;
    if weights != WeightsDtype::F32 {
        write!(f, " weights={}", weights.name())?;
    }
    if storage == WeightsBinding::Texture {
        write!(f, " storage=texture")?;
    }
    Ok(())
}

/// A compiled pipeline and the layout its bind groups must follow.
#[derive(Debug)]
pub(crate) struct Kernel {
    pub pipeline: wgpu::ComputePipeline,
    pub layout: wgpu::BindGroupLayout,
}

/// A shader module: family, weights' type and binding, subgroup kernels or not.
type ModuleKey = (&'static Family, WeightsDtype, WeightsBinding, bool);

/// Pipelines of one device, created on first use. Every pipeline of a family shares the
/// family's shader module and bind-group layout, so one bind group serves all of them.
#[derive(Debug, Default)]
pub(crate) struct KernelCache {
    pipelines: Mutex<HashMap<Specialization, Arc<Kernel>>>,
    layouts: Mutex<HashMap<(&'static Family, WeightsBinding), wgpu::BindGroupLayout>>,
    modules: Mutex<HashMap<ModuleKey, wgpu::ShaderModule>>,
}

impl KernelCache {
    /// The shader module of `spec`, created on first request.
    fn module(&self, device: &wgpu::Device, spec: &Specialization) -> wgpu::ShaderModule {
        let key = (spec.family, spec.weights, spec.storage, spec.subgroups);
        let mut modules = self.modules.lock().unwrap_or_else(|e| e.into_inner());
        modules
            .entry(key)
            .or_insert_with(|| {
                device.create_shader_module(wgpu::ShaderModuleDescriptor {
                    label: Some(spec.family.name),
                    source: wgpu::ShaderSource::Wgsl(spec.source().into()),
                })
            })
            .clone()
    }

    /// The bind-group layout every pipeline of `family` reading its weights bound as
    /// `storage` shares (whatever the weights' type), created on first request.
    pub fn layout(
        &self,
        device: &wgpu::Device,
        family: &'static Family,
        storage: WeightsBinding,
    ) -> wgpu::BindGroupLayout {
        let mut layouts = self.layouts.lock().unwrap_or_else(|e| e.into_inner());
        layouts
            .entry((family, storage))
            .or_insert_with(|| {
                device.create_bind_group_layout(&wgpu::BindGroupLayoutDescriptor {
                    label: Some(family.name),
                    entries: &(family.layout)(storage),
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
        let module = self.module(device, spec);
        let layout = self.layout(device, spec.family, spec.storage);
        let pipeline_layout = device.create_pipeline_layout(&wgpu::PipelineLayoutDescriptor {
            label: Some(&label),
            bind_group_layouts: &[Some(&layout)],
            immediate_size: 0,
        });
        let constants = spec.constant_values();
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
