//! `--backend` and `--adapter`, shared by every command.

use clap::ValueEnum;
use wgpu_lstm::{ContextOptions, UploadOptions, WeightsDtype, WeightsStorage};

/// `--weights-dtype`: how a model stores its weights (f16: the GPU; i8: the CPU and the GPU).
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default, Debug)]
pub enum Dtype {
    #[default]
    F32,
    F16,
    I8,
}

impl Dtype {
    pub fn weights(self) -> WeightsDtype {
        match self {
            Dtype::F32 => WeightsDtype::F32,
            Dtype::F16 => WeightsDtype::F16,
            Dtype::I8 => WeightsDtype::I8,
        }
    }

    /// Upload settings for these weights in `storage`.
    pub fn upload(self, storage: Storage) -> UploadOptions {
        UploadOptions::default()
            .weights(self.weights())
            .storage(storage.storage())
    }
}

/// `--weights-storage`: where a GPU model keeps its weights.
#[derive(Clone, Copy, PartialEq, Eq, ValueEnum, Default, Debug)]
pub enum Storage {
    /// Measured on the device (the faster of the two).
    #[default]
    Auto,
    /// A storage buffer.
    Buffer,
    /// A texture read with `textureLoad`.
    Texture,
}

impl Storage {
    pub fn storage(self) -> WeightsStorage {
        match self {
            Storage::Auto => WeightsStorage::Auto,
            Storage::Buffer => WeightsStorage::Buffer,
            Storage::Texture => WeightsStorage::Texture,
        }
    }
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
pub enum Backend {
    Vulkan,
    Metal,
    Dx12,
    Gl,
}

impl Backend {
    pub fn backends(self) -> wgpu::Backends {
        match self {
            Backend::Vulkan => wgpu::Backends::VULKAN,
            Backend::Metal => wgpu::Backends::METAL,
            Backend::Dx12 => wgpu::Backends::DX12,
            Backend::Gl => wgpu::Backends::GL,
        }
    }
}

#[derive(clap::Args, Clone, Default)]
pub struct GpuArgs {
    /// GPU backend (default: every backend, or the WGPU_BACKEND environment variable).
    #[arg(long, value_enum)]
    pub backend: Option<Backend>,
    /// Only adapters whose name contains this text (case-insensitive); `all` for every one.
    #[arg(long, value_name = "NAME")]
    pub adapter: Option<String>,
}

impl GpuArgs {
    /// The backends to search.
    pub fn backends(&self) -> wgpu::Backends {
        match self.backend {
            Some(b) => b.backends(),
            None => ContextOptions::default().backends,
        }
    }

    /// The adapter-name filter, `None` for every adapter.
    pub fn adapter_filter(&self) -> Option<String> {
        self.adapter
            .as_ref()
            .filter(|a| !a.eq_ignore_ascii_case("all"))
            .map(|a| a.to_lowercase())
    }

    /// Whether `name` passes the adapter filter.
    pub fn matches(&self, name: &str) -> bool {
        self.adapter_filter()
            .is_none_or(|f| name.to_lowercase().contains(&f))
    }

    /// What these arguments asked for, for a "no adapter" message (empty when nothing).
    pub fn describe(&self) -> String {
        let mut d = String::new();
        if let Some(b) = self.backend {
            d += &format!(
                " for backend {}",
                b.to_possible_value()
                    .map_or("?".into(), |v| v.get_name().to_string())
            );
        }
        if let Some(f) = self.adapter_filter() {
            d += &format!(" with a name containing `{f}`");
        }
        d
    }

    /// Context options for one adapter chosen by these arguments.
    pub fn options(&self) -> ContextOptions {
        ContextOptions {
            backends: self.backends(),
            adapter_name: self.adapter_filter(),
            ..ContextOptions::default()
        }
    }
}
