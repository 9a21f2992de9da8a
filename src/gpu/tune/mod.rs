//! Kernel variants chosen by measurement. At the first use of a kernel family and shape class
//! on a device, every candidate variant is timed (GEMMs on scratch buffers of that class, step
//! kernels on the forward that asked) and the fastest is kept: in memory, and optionally in a file keyed by adapter, driver and crate
//! version, so that later processes skip the timing. Every choice, with the time each
//! candidate took and the time spent choosing, is kept for reports
//! ([`GpuContext::tuning`](crate::GpuContext::tuning)).

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::Mutex;
use std::time::Instant;

use crate::error::{Error, Result};
use crate::gpu::kernels::cache::KernelCache;
use crate::gpu::kernels::gemm::{self, GemmParams, GemmVariant};
use crate::gpu::kernels::step::{self, StepVariant};
use crate::gpu::options::WeightsStorage;
use crate::gpu::weights;
use crate::weights::WeightsDtype;

mod timing;
pub(crate) use timing::time_gemm;

/// Largest product timed for one shape class, in FLOPs per repetition: the class's shape is
/// shrunk (rows first) below this, which bounds the time spent choosing to a few hundred
/// milliseconds per class on a software adapter and microseconds on a GPU.
const MAX_TUNE_FLOPS: usize = 1 << 24;
/// Timed repetitions per candidate and round (after one warm-up), for GEMMs.
const TUNE_REPS: usize = 3;
/// Rounds over the candidates; each keeps its fastest round.
const TUNE_ROUNDS: usize = 2;
/// Largest size of the square product that decides where weights are stored.
const STORAGE_PROBE: usize = 256;

/// The shape class of a GEMM: rows, inner dimension and vec4 columns, each rounded up to a
/// power of two.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct GemmClass {
    pub m: usize,
    pub k: usize,
    pub n4: usize,
}

impl GemmClass {
    pub fn of(m: usize, k: usize, n4: usize) -> Self {
        GemmClass {
            m: m.max(1).next_power_of_two(),
            k: k.max(1).next_power_of_two(),
            n4: n4.max(1).next_power_of_two(),
        }
    }

    /// The product timed for this class: the class's shape with rows (then the inner
    /// dimension) halved until it is within [`MAX_TUNE_FLOPS`] and each operand within
    /// `max_binding` bytes; `None` where even 4 × 4 rows and inner elements exceed it.
    fn problem(&self, max_binding: u64) -> Option<(usize, usize, usize)> {
        let (mut m, mut k, n) = (self.m, self.k, 4 * self.n4);
        let flops = |m: usize, k: usize| 2 * m * k * n;
        let bytes = |rows: usize, cols: usize| (rows * cols * 4) as u64;
        while m > 4 && (flops(m, k) > MAX_TUNE_FLOPS || bytes(m, k.max(n)) > max_binding) {
            m /= 2;
        }
        while k > 4 && (flops(m, k) > MAX_TUNE_FLOPS || bytes(k, n) > max_binding) {
            k /= 2;
        }
        let fits = [bytes(m, k), bytes(k, n), bytes(m, n)]
            .iter()
            .all(|&b| b <= max_binding);
        fits.then_some((m, k, self.n4))
    }

    fn key(&self) -> String {
        format!("{}x{}x{}", self.m, self.k, self.n4)
    }
}

/// One choice of the tuner.
#[derive(Debug, Clone, PartialEq)]
pub struct TuneRecord {
    /// What was chosen: a kernel family (`gemm`, `step`, `tile`) or where weights live
    /// (`storage`).
    pub family: &'static str,
    /// The shape class, e.g. `128x64x32` (rows × inner dimension × vec4 columns, rounded up
    /// to powers of two).
    pub class: String,
    /// The variant chosen.
    pub chosen: &'static str,
    /// Each candidate and its time in milliseconds, the fastest of two alternating rounds
    /// (per product for GEMMs, per forward for step kernels; empty when the choice came from
    /// the cache file).
    pub candidates: Vec<(&'static str, f64)>,
    /// Time spent choosing, in milliseconds (pipeline compilation included).
    pub spent_ms: f64,
    /// Whether the choice was read from the cache file instead of measured.
    pub from_cache: bool,
}

/// Where choices are remembered between processes, and for which device.
#[derive(Debug)]
struct CacheFile {
    path: PathBuf,
    /// Adapter, driver and crate version: lines with another identity are kept but not used.
    identity: String,
}

/// The tuner of one device: a choice per kernel family and shape class.
#[derive(Debug, Default)]
pub(crate) struct Tuner {
    /// (family, class) → the chosen variant's name.
    chosen: Mutex<HashMap<(String, String), String>>,
    records: Mutex<Vec<TuneRecord>>,
    file: Option<CacheFile>,
}

impl Tuner {
    /// A tuner that remembers its choices in `path` (created on the first choice) for the
    /// device `info`, and starts from the choices already there.
    pub fn with_cache(path: &Path, info: &wgpu::AdapterInfo) -> Self {
        let identity = format!(
            "{}\t{}\t{} {}\t{:?}",
            env!("CARGO_PKG_VERSION"),
            info.name,
            info.driver,
            info.driver_info,
            info.backend
        )
        .replace('\n', " ");
        let tuner = Tuner {
            file: Some(CacheFile {
                path: path.to_path_buf(),
                identity,
            }),
            ..Tuner::default()
        };
        tuner.load();
        tuner
    }

    /// The choices made so far.
    pub fn records(&self) -> Vec<TuneRecord> {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .clone()
    }

    /// The variant of `family` for `class`: remembered, or chosen now by timing each of
    /// `candidates` with `time` (milliseconds; the smallest wins, the first on a tie).
    /// Concurrent first requests wait for one measurement; `time` must not ask this tuner
    /// for another choice (the lock is held while it measures).
    pub fn choose<V: Copy>(
        &self,
        family: &'static str,
        class: String,
        candidates: &[V],
        name: fn(V) -> &'static str,
        mut time: impl FnMut(V) -> Result<f64>,
    ) -> Result<V> {
        let mut chosen = self.chosen.lock().unwrap_or_else(|e| e.into_inner());
        let key = (family.to_string(), class);
        if let Some(v) = chosen
            .get(&key)
            .and_then(|n| candidates.iter().copied().find(|&v| name(v) == n))
        {
            return Ok(v);
        }
        let start = Instant::now();
        // Alternating rounds, each candidate keeping its fastest: a burst of other work on
        // the machine slows one round, not one candidate, and a kernel's first run (slower on
        // some drivers, 1.5–2× on lavapipe) never decides alone.
        let mut timed: Vec<(V, f64)> = candidates.iter().map(|&v| (v, f64::INFINITY)).collect();
        for _ in 0..TUNE_ROUNDS {
            for (v, best) in timed.iter_mut() {
                *best = best.min(time(*v)?);
            }
        }
        let Some(&(best, _)) = timed.iter().min_by(|a, b| a.1.total_cmp(&b.1)) else {
            return Err(Error::Internal(format!(
                "no {family} variant to choose from"
            )));
        };
        chosen.insert(key.clone(), name(best).to_string());
        self.record(TuneRecord {
            family,
            class: key.1,
            chosen: name(best),
            candidates: timed.iter().map(|&(v, ms)| (name(v), ms)).collect(),
            spent_ms: start.elapsed().as_secs_f64() * 1e3,
            from_cache: false,
        });
        self.save(&chosen);
        Ok(best)
    }

    /// The GEMM variant for products of `class` reading weights of type `dtype` from
    /// `storage` on this device, timed on first request (with weights of that type: the
    /// readers differ in cost).
    #[allow(clippy::too_many_arguments)]
    pub fn gemm(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        kernels: &KernelCache,
        max_workgroups: u32,
        max_binding: u64,
        class: GemmClass,
        storage: WeightsStorage,
        dtype: WeightsDtype,
        subgroups: bool,
    ) -> Result<GemmVariant> {
        // A class whose scratch product the device cannot hold is not measured: the first
        // kernel runs.
        let Some((m, k, n4)) = class.problem(max_binding) else {
            return Ok(GemmVariant::Rows4);
        };
        let params = GemmParams::dense(m, k, n4)?;
        let limits = device.limits();
        let candidates: Vec<GemmVariant> = GemmVariant::ALL
            .into_iter()
            .filter(|v| v.runs_on(&limits, subgroups))
            .collect();
        let mut key = class.key();
        if storage == WeightsStorage::Texture {
            key += "-texture";
        }
        if dtype != WeightsDtype::F32 {
            key = format!("{key}-{}", dtype.name());
        }
        let timer = GemmTimer {
            device,
            queue,
            kernels,
            max_workgroups,
        };
        self.choose("gemm", key, &candidates, GemmVariant::name, |variant| {
            timer.ms(&params, variant, storage, dtype)
        })
    }

    /// Where this device's models keep their weights: the storage in which a square product
    /// of up to [`STORAGE_PROBE`]² (within `max_binding` bytes per operand) with the `wide4`
    /// GEMM runs fastest, timed on first request.
    pub fn storage(
        &self,
        device: &wgpu::Device,
        queue: &wgpu::Queue,
        kernels: &KernelCache,
        max_workgroups: u32,
        max_binding: u64,
    ) -> Result<WeightsStorage> {
        let limits = device.limits();
        let mut n = STORAGE_PROBE;
        while n > 4 && (n * n * 4) as u64 > max_binding {
            n /= 2;
        }
        let candidates: Vec<WeightsStorage> = WeightsStorage::CHOICES
            .into_iter()
            .filter(|&s| s != WeightsStorage::Texture || weights::fits_texture(n * n / 4, &limits))
            .collect();
        if (n * n * 4) as u64 > max_binding || candidates.len() < 2 {
            return Ok(WeightsStorage::Buffer);
        }
        let params = GemmParams::dense(n, n, n / 4)?;
        let timer = GemmTimer {
            device,
            queue,
            kernels,
            max_workgroups,
        };
        // One class for every model of the device: the choice holds for all of them.
        let class = "gemm".to_string();
        self.choose("storage", class, &candidates, WeightsStorage::name, |s| {
            timer.ms(&params, GemmVariant::Wide4, s, WeightsDtype::F32)
        })
    }

    fn record(&self, r: TuneRecord) {
        self.records
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .push(r);
    }

    /// Reads this device's choices from the cache file; a missing or unreadable file, or a
    /// line that does not parse, is ignored (the choice is then measured again).
    fn load(&self) {
        let Some(file) = &self.file else { return };
        let Ok(text) = std::fs::read_to_string(&file.path) else {
            return;
        };
        let mut chosen = self.chosen.lock().unwrap_or_else(|e| e.into_inner());
        for line in text.lines() {
            let Some(rest) = line.strip_prefix(&file.identity) else {
                continue;
            };
            let fields: Vec<&str> = rest.trim_start_matches('\t').split('\t').collect();
            let [family, class, name] = fields.as_slice() else {
                continue;
            };
            let families = ["gemm", "step", "tile", "storage"];
            let Some(family) = families.into_iter().find(|f| f == family) else {
                continue;
            };
            if class.is_empty() || name.is_empty() {
                continue;
            }
            chosen.insert((family.to_string(), class.to_string()), name.to_string());
            self.record(TuneRecord {
                family,
                class: class.to_string(),
                chosen: known_name(name),
                candidates: Vec::new(),
                spent_ms: 0.0,
                from_cache: true,
            });
        }
    }

    /// Writes this device's choices to the cache file, keeping other devices' lines. A failure
    /// to write only loses the cache, never a forward.
    fn save(&self, chosen: &HashMap<(String, String), String>) {
        let Some(file) = &self.file else { return };
        let mut lines: Vec<String> = std::fs::read_to_string(&file.path)
            .unwrap_or_default()
            .lines()
            .filter(|l| !l.starts_with(&file.identity))
            .map(str::to_string)
            .collect();
        let mut ours: Vec<String> = chosen
            .iter()
            .map(|((family, class), v)| format!("{}\t{family}\t{class}\t{v}", file.identity))
            .collect();
        ours.sort();
        lines.extend(ours);
        let dir = match file.path.parent() {
            Some(p) if !p.as_os_str().is_empty() => p,
            _ => Path::new("."),
        };
        let write = || -> std::io::Result<()> {
            use std::io::Write;
            let mut tmp = tempfile::NamedTempFile::new_in(dir)?;
            tmp.write_all((lines.join("\n") + "\n").as_bytes())?;
            tmp.persist(&file.path).map_err(|e| e.error)?;
            Ok(())
        };
        let _ = write();
    }
}

/// What timing a GEMM kernel on scratch operands needs.
struct GemmTimer<'a> {
    device: &'a wgpu::Device,
    queue: &'a wgpu::Queue,
    kernels: &'a KernelCache,
    max_workgroups: u32,
}

impl GemmTimer<'_> {
    /// Milliseconds per product of `params` with `variant` reading its weights from `storage`
    /// (device time where the device has timestamps).
    fn ms(
        &self,
        params: &GemmParams,
        variant: GemmVariant,
        storage: WeightsStorage,
        dtype: WeightsDtype,
    ) -> Result<f64> {
        let spec = gemm::specialization(variant)
            .storage(storage.binding())
            .weights(dtype);
        let kernel = self.kernels.get(self.device, &spec)?;
        let timestamps = self
            .device
            .features()
            .contains(wgpu::Features::TIMESTAMP_QUERY);
        let t = time_gemm(
            self.device,
            self.queue,
            &kernel,
            params,
            variant,
            storage,
            dtype,
            TUNE_REPS,
            timestamps,
            self.max_workgroups,
        )?;
        Ok(t.device_s.unwrap_or(t.wall_s) * 1e3 / TUNE_REPS as f64)
    }
}

/// The static name of a variant read from a file (`unknown` for a name no variant has; such a
/// choice is measured again when it is asked for).
fn known_name(name: &str) -> &'static str {
    let step = StepVariant::ALL.map(StepVariant::name);
    let tiles = (1..=step::MAX_BATCH_TILE).map(step::tile_name);
    let storages = WeightsStorage::CHOICES.map(WeightsStorage::name);
    GemmVariant::ALL
        .map(GemmVariant::name)
        .into_iter()
        .chain(storages)
        .chain(step)
        .chain(tiles)
        .find(|n| *n == name)
        .unwrap_or("unknown")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn classes_round_up_and_problems_stay_bounded() {
        let c = GemmClass::of(100, 40, 128);
        assert_eq!((c.m, c.k, c.n4), (128, 64, 128));
        assert_eq!(c.key(), "128x64x128");
        let big = GemmClass::of(1 << 20, 4096, 1024);
        let (m, k, n4) = big.problem(u64::MAX).unwrap();
        assert!(2 * m * k * 4 * n4 <= MAX_TUNE_FLOPS, "{m} {k} {n4}");
        assert_eq!(n4, 1024);
        // Small classes are timed as they are.
        assert_eq!(GemmClass::of(3, 5, 2).problem(u64::MAX), Some((4, 8, 2)));
        // Every operand within a small binding limit.
        let (m, k, n4) = GemmClass::of(4096, 512, 32).problem(64 * 1024).unwrap();
        assert!(m * k * 4 <= 65536 && k * n4 * 16 <= 65536 && m * n4 * 16 <= 65536);
        assert_eq!(GemmClass::of(4, 4, 1 << 20).problem(1024), None);
    }
}
