//! Adapter, device and queue, chosen by backend and adapter name, with the kernel cache.

use std::sync::{Arc, Mutex, MutexGuard};

use crate::error::{Error, Result};
use crate::gpu::kernels::cache::{Family, Kernel, KernelCache, Specialization};
use crate::gpu::kernels::gemm::GemmVariant;
use crate::gpu::options::WeightsStorage;
use crate::gpu::tune::{GemmClass, TuneRecord, Tuner};
use crate::weights::WeightsDtype;

/// How to choose the adapter of a [`GpuContext`].
///
/// The default takes every backend, narrowed by the `WGPU_BACKEND` environment variable when it
/// is set (e.g. `WGPU_BACKEND=gl`). Vulkan, Metal and DX12 adapters come first, GL only where
/// none of those exists; among them a discrete GPU is preferred, then an integrated one, then
/// a virtual one, then a software (CPU) adapter.
#[derive(Debug, Clone)]
pub struct ContextOptions {
    /// Backends to search.
    pub backends: wgpu::Backends,
    /// Only adapters whose name contains this text (case-insensitive).
    pub adapter_name: Option<String>,
    /// Device limits to request instead of everything the adapter supports (each must be
    /// within the adapter's); lower limits make the crate's limit checks reachable in tests.
    pub limits: Option<wgpu::Limits>,
    /// A file where the kernel variants chosen by measurement are remembered between
    /// processes, keyed by adapter, driver and crate version (default: the
    /// `WGPU_LSTM_TUNE_CACHE` environment variable; none when unset). See
    /// [`GpuContext::tuning`].
    pub tune_cache: Option<std::path::PathBuf>,
}

impl ContextOptions {
    /// Options that select exactly the adapter `info` describes (by backend and name).
    pub fn for_adapter(info: &wgpu::AdapterInfo) -> Self {
        ContextOptions {
            backends: wgpu::Backends::from(info.backend),
            adapter_name: Some(info.name.clone()),
            limits: None,
            tune_cache: tune_cache_from_env(),
        }
    }
}

/// `WGPU_LSTM_TUNE_CACHE`, when set and not empty.
fn tune_cache_from_env() -> Option<std::path::PathBuf> {
    std::env::var_os("WGPU_LSTM_TUNE_CACHE")
        .filter(|v| !v.is_empty())
        .map(Into::into)
}

impl Default for ContextOptions {
    fn default() -> Self {
        ContextOptions {
            backends: wgpu::Backends::from_env().unwrap_or(wgpu::Backends::all()),
            adapter_name: None,
            limits: None,
            tune_cache: tune_cache_from_env(),
        }
    }
}

/// What wgpu reports about one adapter.
#[derive(Debug, Clone)]
pub struct AdapterSummary {
    /// Name, backend, device type and driver.
    pub info: wgpu::AdapterInfo,
    /// The limits the adapter supports.
    pub limits: wgpu::Limits,
}

/// Lists every adapter wgpu finds on `backends`.
pub fn list_adapters(backends: wgpu::Backends) -> Vec<AdapterSummary> {
    let instance = new_instance(backends);
    pollster::block_on(instance.enumerate_adapters(backends))
        .into_iter()
        .map(|a| AdapterSummary {
            info: a.get_info(),
            limits: a.limits(),
        })
        .collect()
}

/// Subgroup invocations the subgroup kernels share values between (8: each loads one of 8
/// consecutive elements and broadcasts it).
const SUBGROUP_KERNEL_LANES: u32 = 8;

fn new_instance(backends: wgpu::Backends) -> wgpu::Instance {
    let mut desc = wgpu::InstanceDescriptor::new_without_display_handle();
    desc.backends = backends;
    wgpu::Instance::new(desc)
}

fn preference(t: wgpu::DeviceType) -> u8 {
    match t {
        wgpu::DeviceType::DiscreteGpu => 0,
        wgpu::DeviceType::IntegratedGpu => 1,
        wgpu::DeviceType::VirtualGpu => 2,
        wgpu::DeviceType::Cpu => 3,
        wgpu::DeviceType::Other => 4,
    }
}

/// A wgpu device and queue with this crate's pipelines: create one per adapter and share it
/// (it is cheap to clone) between models.
///
/// ```no_run
/// use wgpu_lstm::{ContextOptions, GpuContext};
/// let ctx = GpuContext::new(&ContextOptions::default())?;
/// println!("running on {}", ctx.adapter_info().name);
/// # Ok::<(), wgpu_lstm::Error>(())
/// ```
#[derive(Debug, Clone)]
pub struct GpuContext {
    inner: Arc<Inner>,
}

#[derive(Debug)]
struct Inner {
    device: wgpu::Device,
    queue: wgpu::Queue,
    info: wgpu::AdapterInfo,
    kernels: KernelCache,
    tuner: Tuner,
    /// Held around every use of the device where the backend cannot share it between
    /// threads (GL: wgpu hands its one GL context between threads unreliably).
    exclusive: Option<Mutex<()>>,
}

impl GpuContext {
    /// Picks an adapter as `options` say and opens a device on it with every limit the adapter
    /// supports.
    pub fn new(options: &ContextOptions) -> Result<Self> {
        // Vulkan, Metal and DX12 first; GL only where none of them has a matching adapter
        // (GL compute is the least capable backend, and probing it is slow and noisy).
        let tiers = [
            options.backends & wgpu::Backends::PRIMARY,
            options.backends & !wgpu::Backends::PRIMARY,
        ];
        let mut adapters = Vec::new();
        for tier in tiers.into_iter().filter(|t| !t.is_empty()) {
            let instance = new_instance(tier);
            adapters = pollster::block_on(instance.enumerate_adapters(tier));
            if let Some(name) = &options.adapter_name {
                let needle = name.to_lowercase();
                adapters.retain(|a| a.get_info().name.to_lowercase().contains(&needle));
            }
            if !adapters.is_empty() {
                break;
            }
        }
        adapters.sort_by_key(|a| preference(a.get_info().device_type));
        let Some(adapter) = adapters.into_iter().next() else {
            let mut detail = String::new();
            if options.backends != wgpu::Backends::all() {
                detail += &format!(" for backends {:?}", options.backends);
            }
            if let Some(name) = &options.adapter_name {
                detail += &format!(" with a name containing `{name}`");
            }
            return Err(Error::NoAdapter { detail });
        };
        let info = adapter.get_info();
        // Subgroup operations where the subgroups have at least 8 invocations (what the
        // subgroup kernels assume).
        let mut wanted = wgpu::Features::TIMESTAMP_QUERY;
        if info.subgroup_min_size >= SUBGROUP_KERNEL_LANES {
            wanted |= wgpu::Features::SUBGROUP;
        }
        let desc = wgpu::DeviceDescriptor {
            label: Some("wgpu-lstm"),
            // Timestamps where the adapter has them: the benchmark reads device-only times.
            required_features: adapter.features() & wanted,
            required_limits: options.limits.clone().unwrap_or_else(|| adapter.limits()),
            ..Default::default()
        };
        let (device, queue) = pollster::block_on(adapter.request_device(&desc)).map_err(|e| {
            Error::RequestDevice {
                adapter: info.name.clone(),
                message: e.to_string(),
            }
        })?;
        let tuner = match &options.tune_cache {
            Some(path) => Tuner::with_cache(path, &info),
            None => Tuner::default(),
        };
        Ok(Self::build(device, queue, info, tuner))
    }

    /// Uses a device and queue the application already has (e.g. its renderer's).
    pub fn from_device(device: wgpu::Device, queue: wgpu::Queue, info: wgpu::AdapterInfo) -> Self {
        Self::build(device, queue, info, Tuner::default())
    }

    fn build(
        device: wgpu::Device,
        queue: wgpu::Queue,
        info: wgpu::AdapterInfo,
        tuner: Tuner,
    ) -> Self {
        let exclusive = (info.backend == wgpu::Backend::Gl).then(|| Mutex::new(()));
        GpuContext {
            inner: Arc::new(Inner {
                device,
                queue,
                info,
                kernels: KernelCache::default(),
                tuner,
                exclusive,
            }),
        }
    }

    /// The wgpu device.
    pub fn device(&self) -> &wgpu::Device {
        &self.inner.device
    }

    /// The wgpu queue.
    pub fn queue(&self) -> &wgpu::Queue {
        &self.inner.queue
    }

    /// The adapter this context runs on.
    pub fn adapter_info(&self) -> &wgpu::AdapterInfo {
        &self.inner.info
    }

    /// Whether the device can time passes with timestamp queries.
    pub fn supports_timestamps(&self) -> bool {
        self.inner
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY)
    }

    /// Whether the subgroup kernels ([`StepVariant::StepwiseWideSubgroup`],
    /// [`GemmVariant::Wide4Subgroup`]) run here: the device has subgroup operations and its
    /// subgroups have at least 8 invocations.
    ///
    /// [`StepVariant::StepwiseWideSubgroup`]: crate::StepVariant::StepwiseWideSubgroup
    pub fn supports_subgroups(&self) -> bool {
        self.inner
            .device
            .features()
            .contains(wgpu::Features::SUBGROUP)
            && self.inner.info.subgroup_min_size >= SUBGROUP_KERNEL_LANES
    }

    /// The device's limits.
    pub fn limits(&self) -> wgpu::Limits {
        self.inner.device.limits()
    }

    /// How many loop iterations one shader invocation may run in total, where the driver
    /// limits it: Mesa's llvmpipe (software Vulkan and GL) stops every loop of an invocation
    /// once 65 535 iterations have run, silently.
    pub(crate) fn loop_budget(&self) -> Option<u64> {
        let i = &self.inner.info;
        let software = i.name.contains("llvmpipe") || i.driver.contains("llvmpipe");
        software.then_some(65_535)
    }

    pub(crate) fn kernel(&self, spec: &Specialization) -> Result<Arc<Kernel>> {
        self.inner.kernels.get(&self.inner.device, spec)
    }

    /// The kernel variants this context has chosen by measurement so far (or read from its
    /// cache file), with the time each candidate took and the time spent choosing.
    pub fn tuning(&self) -> Vec<TuneRecord> {
        self.inner.tuner.records()
    }

    /// This device's tuner.
    pub(crate) fn tuner(&self) -> &Tuner {
        &self.inner.tuner
    }

    /// The GEMM variant for products of `class` reading weights from `storage`, measured on
    /// first request.
    pub(crate) fn tuned_gemm(
        &self,
        class: GemmClass,
        storage: WeightsStorage,
        dtype: WeightsDtype,
    ) -> Result<GemmVariant> {
        self.inner.tuner.gemm(
            &self.inner.device,
            &self.inner.queue,
            &self.inner.kernels,
            self.limits().max_compute_workgroups_per_dimension,
            self.limits().max_storage_buffer_binding_size,
            class,
            storage,
            dtype,
            self.supports_subgroups(),
        )
    }

    /// `requested`, or where it is [`WeightsStorage::Auto`] the storage in which this device
    /// reads weights fastest (measured on first request).
    pub(crate) fn weights_storage(&self, requested: WeightsStorage) -> Result<WeightsStorage> {
        if requested != WeightsStorage::Auto {
            return Ok(requested);
        }
        self.inner.tuner.storage(
            &self.inner.device,
            &self.inner.queue,
            &self.inner.kernels,
            self.limits().max_compute_workgroups_per_dimension,
            self.limits().max_storage_buffer_binding_size,
        )
    }

    /// The bind-group layout every pipeline of `family` reading weights from `storage` shares.
    pub(crate) fn bind_group_layout(
        &self,
        family: &'static Family,
        storage: WeightsStorage,
    ) -> wgpu::BindGroupLayout {
        self.inner
            .kernels
            .layout(&self.inner.device, family, storage.binding())
    }

    /// Whether this device serialises the threads that use it (GL: wgpu's GL backend hands its
    /// one context between threads unreliably, so a context on GL lets one thread at a time
    /// use the device).
    pub fn serializes_threads(&self) -> bool {
        self.inner.exclusive.is_some()
    }

    /// A guard to hold around a sequence of device operations: on backends that cannot share
    /// the device between threads (GL) it makes them take turns; elsewhere it is `None` and
    /// threads run at once. Not re-entrant: do not call it again while holding it.
    pub(crate) fn exclusive(&self) -> Option<MutexGuard<'_, ()>> {
        self.inner
            .exclusive
            .as_ref()
            .map(|m| m.lock().unwrap_or_else(|e| e.into_inner()))
    }
}
