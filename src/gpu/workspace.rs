//! Workspaces: the buffers and bind groups of a forward, sized by a [`Layout`]'s capacity so
//! that one workspace serves every input up to it, and the pool that lends them to forwards
//! running at the same time.

use std::num::NonZeroU64;
use std::ops::Deref;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Mutex;

use crate::error::{Error, Result};
use crate::gpu::device::{self, Timestamps};
use crate::gpu::kernels::gemm::GemmParams;
use crate::gpu::kernels::step::StepParams;
use crate::gpu::plan::{Extent, Layout, Projected, Sizes};
use crate::gpu::weights::{DeviceWeights, WeightStore};

/// The recurrent state on the device. A forward reads `h0` at its first step, updates `c` in
/// place and leaves the final hidden state in `hn`; a stream keeps these between chunks.
#[derive(Debug, Clone)]
pub(crate) struct StateBuffers {
    /// `h0` `[L·D, B, H_out]`.
    pub h0: wgpu::Buffer,
    /// Cell state, updated in place; ends as `c_n` `[L·D, B, H]`.
    pub c: wgpu::Buffer,
    /// `h_n` `[L·D, B, H_out]`.
    pub hn: wgpu::Buffer,
}

impl StateBuffers {
    /// State buffers of the sizes `sizes` gives (its `h` and `c`), sizes the caller has
    /// checked against the device's limits (a [`Layout`] does).
    pub fn new(device: &wgpu::Device, sizes: &Sizes) -> Result<Self> {
        use wgpu::BufferUsages as U;
        let usage = U::STORAGE | U::COPY_SRC | U::COPY_DST;
        device::scoped(device, "state allocation", || {
            Ok(StateBuffers {
                h0: device::buffer(device, "h0", sizes.h, usage),
                c: device::buffer(device, "cell state", sizes.c, usage),
                hn: device::buffer(device, "h_n", sizes.h, usage),
            })
        })
    }
}

/// The output sequences of the layers: layer `l` writes `even` when `l` is even, and the next
/// layer reads it.
#[derive(Debug)]
pub(crate) struct LayerOutputs {
    pub even: wgpu::Buffer,
    pub odd: wgpu::Buffer,
}

impl LayerOutputs {
    /// The buffer layer `layer` writes.
    pub fn of_layer(&self, layer: usize) -> &wgpu::Buffer {
        if layer.is_multiple_of(2) {
            &self.even
        } else {
            &self.odd
        }
    }
}

/// An LSTM with a projection: the step outputs `m` `[T, B, D·H]` and their final values
/// `[L·D, B, H]`, before the projection GEMMs turn them into `y` and `h_n`.
#[derive(Debug)]
pub(crate) struct Unprojected {
    pub m: wgpu::Buffer,
    pub mn: wgpu::Buffer,
}

/// The bind-group layouts of the kernel families a workspace binds.
#[derive(Debug, Clone)]
pub(crate) struct BindLayouts {
    pub gemm: wgpu::BindGroupLayout,
    pub step: wgpu::BindGroupLayout,
}

/// The bind groups of one layer's dispatches.
#[derive(Debug)]
pub(crate) struct LayerGroups {
    /// Input projection.
    pub input: wgpu::BindGroup,
    /// Every step (both step kernels share the layout).
    pub step: wgpu::BindGroup,
    /// Projection of the step outputs and of the final states.
    pub proj: Option<Projected<wgpu::BindGroup>>,
}

/// Buffers and bind groups of forwards up to `layout.capacity`.
#[derive(Debug)]
pub(crate) struct Workspace {
    pub layout: Layout,
    /// Input sequence `[T, B, I]`.
    pub x: wgpu::Buffer,
    /// Layer outputs, ping-ponged between layers.
    pub ys: LayerOutputs,
    /// Input projections of one layer.
    pub gx: wgpu::Buffer,
    pub state: StateBuffers,
    /// Sequence lengths `[B]` (u32).
    pub lens: wgpu::Buffer,
    /// With a projection: step outputs and final states before projection.
    pub proj: Option<Unprojected>,
    /// The forward's parameter blocks, written before each submit.
    pub params: wgpu::Buffer,
    /// `y`, `h_n`, `c_n` (and the pass's two timestamps) copied here for the one readback.
    pub staging: wgpu::Buffer,
    /// Timestamp queries around the forward's compute pass, where the device has them.
    pub timestamps: Option<Timestamps>,
    pub layers: Vec<LayerGroups>,
}

impl Workspace {
    /// Creates the buffers of `layout` and the bind groups of every layer, on `state` (new
    /// state buffers when `None`).
    pub fn new(
        device: &wgpu::Device,
        layout: Layout,
        weights: &DeviceWeights,
        bind: &BindLayouts,
        state: Option<StateBuffers>,
        timestamps: bool,
    ) -> Result<Self> {
        let sizes = layout.sizes;
        let state = match state {
            Some(s) if s.c.size() < sizes.c || s.hn.size() < sizes.h => {
                return Err(Error::Internal(format!(
                    "state buffers hold fewer than the workspace's {} sequences",
                    layout.capacity.batch
                )))
            }
            Some(s) => s,
            None => StateBuffers::new(device, &sizes)?,
        };
        device::scoped(device, "workspace allocation", || {
            Ok(Self::build(
                device, layout, weights, bind, state, timestamps,
            ))
        })
    }

    fn build(
        device: &wgpu::Device,
        layout: Layout,
        weights: &DeviceWeights,
        bind: &BindLayouts,
        state: StateBuffers,
        timestamps: bool,
    ) -> Self {
        use wgpu::BufferUsages as U;
        let sizes = layout.sizes;
        let buffer =
            |label: &str, bytes: u64, usage: U| device::buffer(device, label, bytes, usage);
        let rw = U::STORAGE | U::COPY_SRC | U::COPY_DST;
        let x = buffer("input x", sizes.x, U::STORAGE | U::COPY_DST);
        let ys = LayerOutputs {
            even: buffer("layer output (even layers)", sizes.y, rw),
            odd: buffer("layer output (odd layers)", sizes.y, rw),
        };
        let gx = buffer("input projection", sizes.gx, rw);
        let lens = buffer("lengths", sizes.lens, U::STORAGE | U::COPY_DST);
        let proj = sizes.proj_m.map(|m| Unprojected {
            m: buffer("step outputs before projection", m, rw),
            mn: buffer("final states before projection", sizes.c, rw),
        });
        let params = buffer(
            "dispatch parameters",
            layout.params,
            U::UNIFORM | U::COPY_DST,
        );
        let staging = buffer("readback", layout.staging, U::MAP_READ | U::COPY_DST);
        let timestamps = timestamps.then(|| Timestamps::new(device, "forward timestamps"));

        let binder = Binder {
            device,
            bind,
            params: &params,
        };
        let layers = weights
            .layers
            .iter()
            .enumerate()
            .map(|(layer, lw)| {
                let input = if layer == 0 {
                    &x
                } else {
                    ys.of_layer(layer - 1)
                };
                let output = ys.of_layer(layer);
                // The step writes h_t into the layer output directly, unless it is projected
                // after.
                let (m, mn) = match &proj {
                    Some(p) => (&p.m, &p.mn),
                    None => (output, &state.hn),
                };
                LayerGroups {
                    input: binder.gemm(
                        &format!("input projection layer {layer}"),
                        input,
                        &lw.w_ih,
                        &lw.bias,
                        &gx,
                    ),
                    step: binder.step(
                        &format!("step layer {layer}"),
                        [&gx, &state.h0, m, &state.c, mn, &lens],
                        &lw.w_step,
                    ),
                    proj: lw.w_hr.as_ref().map(|p| Projected {
                        y: binder.gemm(
                            &format!("projection of y, layer {layer}"),
                            m,
                            &p.weights,
                            &p.zero_bias,
                            output,
                        ),
                        h_n: binder.gemm(
                            &format!("projection of h_n, layer {layer}"),
                            mn,
                            &p.weights,
                            &p.zero_bias,
                            &state.hn,
                        ),
                    }),
                }
            })
            .collect();
        Workspace {
            layout,
            x,
            ys,
            gx,
            state,
            lens,
            proj,
            params,
            staging,
            timestamps,
            layers,
        }
    }

    /// The buffer holding the last layer's output.
    pub fn final_y(&self) -> &wgpu::Buffer {
        self.ys.of_layer(self.layers.len() - 1)
    }

    /// Fills every buffer a forward writes with NaN, so that an element a kernel leaves
    /// unwritten shows as NaN instead of an earlier forward's value. With `state`, also the
    /// final-state buffers (not when a forward continues from them).
    pub fn poison(&self, queue: &wgpu::Queue, state: bool) {
        let mut buffers = vec![&self.ys.even, &self.ys.odd, &self.gx];
        if let Some(p) = &self.proj {
            buffers.push(&p.m);
            // The final states before projection carry over like `c` and `h_n`.
            if state {
                buffers.push(&p.mn);
            }
        }
        if state {
            buffers.extend([&self.state.c, &self.state.hn]);
        }
        for b in buffers {
            let nan = vec![f32::NAN; (b.size() / 4) as usize];
            queue.write_buffer(b, 0, bytemuck::cast_slice(&nan));
        }
    }
}

/// Most idle workspaces a pool keeps; beyond that the smallest is dropped.
const MAX_IDLE: usize = 16;

/// Creates a workspace's bind groups, each binding the dispatch-parameter buffer at binding 0
/// (one parameter struct per dispatch, at a dynamic offset).
struct Binder<'a> {
    device: &'a wgpu::Device,
    bind: &'a BindLayouts,
    params: &'a wgpu::Buffer,
}

impl<'a> Binder<'a> {
    /// One `T` of the parameter buffer, at the offset each dispatch gives.
    fn uniform<T>(&self) -> wgpu::BindingResource<'a> {
        wgpu::BindingResource::Buffer(wgpu::BufferBinding {
            buffer: self.params,
            offset: 0,
            size: NonZeroU64::new(std::mem::size_of::<T>() as u64),
        })
    }

    /// A bind group of `layout` with `resources` at bindings 0, 1, 2, …
    fn group(
        &self,
        label: &str,
        layout: &wgpu::BindGroupLayout,
        resources: Vec<wgpu::BindingResource<'_>>,
    ) -> wgpu::BindGroup {
        let entries: Vec<wgpu::BindGroupEntry<'_>> = resources
            .into_iter()
            .zip(0u32..)
            .map(|(resource, binding)| wgpu::BindGroupEntry { binding, resource })
            .collect();
        self.device.create_bind_group(&wgpu::BindGroupDescriptor {
            label: Some(label),
            layout,
            entries: &entries,
        })
    }

    /// A GEMM's group, bindings as the GEMM family's layout: params, a, w, bias, out.
    fn gemm(
        &self,
        label: &str,
        a: &wgpu::Buffer,
        w: &WeightStore,
        bias: &wgpu::Buffer,
        out: &wgpu::Buffer,
    ) -> wgpu::BindGroup {
        let resources = vec![
            self.uniform::<GemmParams>(),
            a.as_entire_binding(),
            w.binding(),
            bias.as_entire_binding(),
            out.as_entire_binding(),
        ];
        self.group(label, &self.bind.gemm, resources)
    }

    /// A step's group, bindings as the step family's layout: params, gx, weights, h0, m, c,
    /// mn, lens (`buffers` holds gx, h0, m, c, mn, lens).
    fn step(&self, label: &str, buffers: [&wgpu::Buffer; 6], w: &WeightStore) -> wgpu::BindGroup {
        let [gx, h0, m, c, mn, lens] = buffers;
        let resources = vec![
            self.uniform::<StepParams>(),
            gx.as_entire_binding(),
            w.binding(),
            h0.as_entire_binding(),
            m.as_entire_binding(),
            c.as_entire_binding(),
            mn.as_entire_binding(),
            lens.as_entire_binding(),
        ];
        self.group(label, &self.bind.step, resources)
    }
}

/// Idle workspaces of one model, lent to one forward at a time each, so that forwards on
/// several threads run at once.
#[derive(Debug, Default)]
pub(crate) struct Pool {
    idle: Mutex<Vec<Workspace>>,
    created: AtomicUsize,
}

impl Pool {
    /// The smallest idle workspace that covers `need`, lent until the returned guard drops;
    /// without one, a new workspace from `create`, given the smallest capacity that covers
    /// both `need` and every idle workspace (so that the pool converges on a few large ones).
    pub fn lend(
        &self,
        need: Extent,
        create: impl FnOnce(Extent) -> Result<Workspace>,
    ) -> Result<Lent<'_>> {
        let (found, largest) = {
            let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
            let best = idle
                .iter()
                .enumerate()
                .filter(|(_, w)| w.layout.capacity.covers(need))
                .min_by_key(|(_, w)| w.layout.capacity.steps * w.layout.capacity.batch)
                .map(|(i, _)| i);
            let largest = idle
                .iter()
                .map(|w| w.layout.capacity)
                .fold(need, Extent::max);
            (best.map(|i| idle.swap_remove(i)), largest)
        };
        let ws = match found {
            Some(ws) => ws,
            None => {
                let ws = create(largest)?;
                self.created.fetch_add(1, Ordering::Relaxed);
                ws
            }
        };
        Ok(Lent {
            pool: self,
            ws: Some(ws),
        })
    }

    /// Workspaces created so far.
    pub fn created(&self) -> usize {
        self.created.load(Ordering::Relaxed)
    }

    fn give_back(&self, ws: Workspace) {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        idle.push(ws);
        if idle.len() > MAX_IDLE {
            if let Some(i) = (0..idle.len())
                .min_by_key(|&i| idle[i].layout.capacity.steps * idle[i].layout.capacity.batch)
            {
                idle.swap_remove(i);
            }
        }
    }
}

/// A workspace lent by a [`Pool`]; dropping it gives it back.
#[derive(Debug)]
pub(crate) struct Lent<'p> {
    pool: &'p Pool,
    ws: Option<Workspace>,
}

impl Deref for Lent<'_> {
    type Target = Workspace;
    fn deref(&self) -> &Workspace {
        self.ws.as_ref().expect("lent until dropped")
    }
}

impl Drop for Lent<'_> {
    fn drop(&mut self) {
        if let Some(ws) = self.ws.take() {
            self.pool.give_back(ws);
        }
    }
}
