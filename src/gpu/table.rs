//! The state table on the GPU: every slot's `h` and `c` in two device buffers. A round is
//! one forward whose compute pass starts with a gather of its rows' states from their slots
//! into the workspace's state buffers and ends with a scatter of the final states back
//! (`shaders/state/`): states never cross to the host between rounds; only `y` (and the
//! final states of rows that ask for them) are read back.

use ndarray::{s, Array2};

use crate::error::{Error, Result};
use crate::gpu::device;
use crate::gpu::execute::{self, Init, Job, TableOps};
use crate::gpu::kernels::cache::Kernel;
use crate::gpu::kernels::state::{self, StateParams};
use crate::gpu::model::{contiguous, GpuModel};
use crate::gpu::options::ForwardOptions;
use crate::gpu::plan::{self, Extent, Layout, Schedule};
use crate::gpu::workspace::Workspace;
use crate::spec::RnnSpec;
use crate::table::{check_rows, pack_rows, RoundOutput, RoundRow, SlotState, StateTable};
use crate::tensor::{Input, Prepared};
use std::collections::HashMap;
use std::sync::Arc;

/// Slots in device buffers (see the module documentation).
#[derive(Debug)]
pub(crate) struct GpuTable {
    model: GpuModel,
    slots: usize,
    /// The most rows of a round.
    max_rows: usize,
    /// `[slots, L·D, H_out]`.
    table_h: wgpu::Buffer,
    /// `[slots, L·D, H]` for an LSTM, else a placeholder.
    table_c: wgpu::Buffer,
    /// The slots of a round's rows, `[max_rows]` u32.
    row_slots: wgpu::Buffer,
    /// The round's [`StateParams`].
    params: wgpu::Buffer,
    /// Where [`StateTable::read`] reads one slot back.
    staging: wgpu::Buffer,
    gather: Arc<Kernel>,
    scatter: Arc<Kernel>,
    /// The workspace of the rounds so far, grown when a round needs more steps.
    bound: Option<Bound>,
    /// The kernels the tuner chose for rounds of each batch class (rows rounded up to a power
    /// of two), measured once per class on a round of `quantum` steps (see [`GpuTable::choice`]).
    choices: HashMap<usize, ForwardOptions>,
    /// The steps of a full round of a unidirectional model.
    quantum: usize,
}

/// A workspace with the bind groups that tie it to the table.
#[derive(Debug)]
struct Bound {
    ws: Workspace,
    gather: wgpu::BindGroup,
    scatter: wgpu::BindGroup,
}

impl GpuTable {
    /// A table of `slots` zero states for `model`, its rounds at most `max_rows` rows of at
    /// most `quantum` steps (a unidirectional model; a bidirectional one runs whole requests).
    pub fn new(model: GpuModel, slots: usize, max_rows: usize, quantum: usize) -> Result<GpuTable> {
        let spec = model.spec().clone();
        let (hb, cb) = slot_bytes(&spec);
        let limits = model.limits();
        let too_many = |what: &str, bytes: u64| limits.check_buffer(what, bytes);
        too_many("state table (hidden states)", hb * slots as u64)?;
        too_many("state table (cell states)", cb * slots as u64)?;
        let ctx = model.context().clone();
        let _device = ctx.exclusive();
        let dev = ctx.device();
        use wgpu::BufferUsages as U;
        let table = U::STORAGE | U::COPY_SRC | U::COPY_DST;
        let (gather, scatter, bufs) = device::scoped(dev, "state table allocation", || {
            let gather = ctx.kernel(&state::specialization(state::Direction::Gather))?;
            let scatter = ctx.kernel(&state::specialization(state::Direction::Scatter))?;
            let bufs = [
                device::buffer(dev, "state table h", hb * slots as u64, table),
                device::buffer(dev, "state table c", cb * slots as u64, table),
                device::buffer(
                    dev,
                    "round slots",
                    4 * max_rows as u64,
                    U::STORAGE | U::COPY_DST,
                ),
                device::buffer(
                    dev,
                    "state table params",
                    std::mem::size_of::<StateParams>() as u64,
                    U::UNIFORM | U::COPY_DST,
                ),
                device::buffer(dev, "slot readback", hb + cb, U::MAP_READ | U::COPY_DST),
            ];
            Ok((gather, scatter, bufs))
        })?;
        let [table_h, table_c, row_slots, params, staging] = bufs;
        drop(_device);
        // wgpu creates buffers zeroed: every slot starts as zeros.
        Ok(GpuTable {
            model,
            slots,
            max_rows,
            table_h,
            table_c,
            row_slots,
            params,
            staging,
            gather,
            scatter,
            bound: None,
            choices: HashMap::new(),
            quantum,
        })
    }

    /// The kernels of a round: the tuner's choice for its class. A unidirectional model's
    /// rounds vary in rows and steps from one round to the next; asking the tuner per round
    /// would measure every (rows, steps) class as it first appears, in the middle of
    /// serving. Instead each batch class is measured once, on a zero input of `quantum` steps
    /// (most rounds under load are full), and kept. A bidirectional model's rounds run whole
    /// requests; their classes go to the tuner as a forward's do.
    fn choice(&mut self, p: &Prepared<'_>, chunks: &[plan::Chunk]) -> Result<ForwardOptions> {
        let spec = self.model.spec();
        if spec.num_directions() > 1 {
            return self.model.choose(p, chunks, &ForwardOptions::default());
        }
        let class = p.batch.next_power_of_two().min(self.max_rows);
        if let Some(o) = self.choices.get(&class) {
            return Ok(*o);
        }
        let x = ndarray::Array3::<f32>::zeros((self.quantum, class, spec.input_size));
        let input = Input::new(x.view());
        let sample = Prepared::new(spec, &input)?;
        let extent = Extent::new(self.quantum, class);
        let chunks = plan::chunks(spec, self.model.limits(), extent)?;
        let o = self
            .model
            .choose(&sample, &chunks, &ForwardOptions::default())?;
        self.choices.insert(class, o);
        Ok(o)
    }

    /// Makes the workspace cover `need`, growing it (steps rounded up to a power of two,
    /// rows to the most a round takes) where it does not. Takes the device's turn.
    fn ensure(&mut self, need: Extent) -> Result<()> {
        if let Some(b) = &self.bound {
            if b.ws.layout.capacity.covers(need) {
                return Ok(());
            }
        }
        let (spec, limits) = (self.model.spec(), self.model.limits());
        let old = self
            .bound
            .as_ref()
            .map_or(Extent::new(1, 1), |b| b.ws.layout.capacity);
        let want = Extent::new(need.steps.next_power_of_two().max(old.steps), self.max_rows);
        let layout =
            Layout::new(spec, limits, want).or_else(|_| Layout::new(spec, limits, need))?;
        let ws = self.model.workspace(layout, None)?;
        let dev = self.model.context().device();
        let group = |label, kernel: &Kernel, h: &wgpu::Buffer| {
            let resources = [
                self.params.as_entire_binding(),
                self.row_slots.as_entire_binding(),
                self.table_h.as_entire_binding(),
                self.table_c.as_entire_binding(),
                h.as_entire_binding(),
                ws.state.c.as_entire_binding(),
            ];
            let entries: Vec<_> = resources
                .into_iter()
                .zip(0u32..)
                .map(|(resource, binding)| wgpu::BindGroupEntry { binding, resource })
                .collect();
            dev.create_bind_group(&wgpu::BindGroupDescriptor {
                label: Some(label),
                layout: &kernel.layout,
                entries: &entries,
            })
        };
        let gather = group("state gather", &self.gather, &ws.state.h0);
        let scatter = group("state scatter", &self.scatter, &ws.state.hn);
        self.bound = Some(Bound {
            ws,
            gather,
            scatter,
        });
        Ok(())
    }

    /// A slot's byte offsets in the two table buffers.
    fn offsets(&self, slot: usize) -> Result<(u64, u64)> {
        if slot >= self.slots {
            return Err(Error::Internal(format!(
                "state table slot {slot} out of range"
            )));
        }
        let (hb, cb) = slot_bytes(self.model.spec());
        Ok((hb * slot as u64, cb * slot as u64))
    }
}

/// Bytes of one slot's hidden state and cell state (0 without one).
fn slot_bytes(spec: &RnnSpec) -> (u64, u64) {
    let ld = (spec.num_layers * spec.num_directions()) as u64;
    let c = if spec.cell.has_cell_state() {
        spec.hidden_size as u64
    } else {
        0
    };
    (4 * ld * spec.hidden_out() as u64, 4 * ld * c)
}

impl StateTable for GpuTable {
    fn spec(&self) -> &RnnSpec {
        self.model.spec()
    }

    fn slots(&self) -> usize {
        self.slots
    }

    fn bytes(&self) -> u64 {
        let (hb, cb) = slot_bytes(self.model.spec());
        (hb + cb) * self.slots as u64
    }

    fn fits(&self, steps: usize, rows: usize) -> bool {
        rows <= self.max_rows
            && Layout::new(
                self.model.spec(),
                self.model.limits(),
                Extent::new(steps, rows),
            )
            .is_ok()
    }

    fn set(&mut self, slot: usize, state: Option<&SlotState>) -> Result<()> {
        let (ho, co) = self.offsets(slot)?;
        let zeros = SlotState::zeros(self.model.spec());
        let state = state.unwrap_or(&zeros);
        let ctx = self.model.context();
        let _device = ctx.exclusive();
        let h = state.h.as_standard_layout();
        let h = h.as_slice().unwrap_or_default();
        ctx.queue()
            .write_buffer(&self.table_h, ho, bytemuck::cast_slice(h));
        if let Some(c) = &state.c {
            let c = c.as_standard_layout();
            let c = c.as_slice().unwrap_or_default();
            ctx.queue()
                .write_buffer(&self.table_c, co, bytemuck::cast_slice(c));
        }
        Ok(())
    }

    fn read(&mut self, slot: usize) -> Result<SlotState> {
        let (ho, co) = self.offsets(slot)?;
        let spec = self.model.spec().clone();
        let (hb, cb) = slot_bytes(&spec);
        let ctx = self.model.context();
        let _device = ctx.exclusive();
        let dev = ctx.device();
        let data = device::scoped(dev, "state table readback", || {
            let mut encoder = dev.create_command_encoder(&Default::default());
            encoder.copy_buffer_to_buffer(&self.table_h, ho, &self.staging, 0, hb);
            if cb > 0 {
                encoder.copy_buffer_to_buffer(&self.table_c, co, &self.staging, hb, cb);
            }
            let submission = ctx.queue().submit([encoder.finish()]);
            device::read_back(dev, &self.staging, hb + cb, submission)
        })?;
        let ld = spec.num_layers * spec.num_directions();
        let hl = ld * spec.hidden_out();
        let shape_err = |e: ndarray::ShapeError| device::gpu_error("state table readback", e);
        let h = Array2::from_shape_vec((ld, spec.hidden_out()), data[..hl].to_vec())
            .map_err(shape_err)?;
        let c = if cb > 0 {
            Some(
                Array2::from_shape_vec((ld, spec.hidden_size), data[hl..].to_vec())
                    .map_err(shape_err)?,
            )
        } else {
            None
        };
        Ok(SlotState { h, c })
    }

    fn round(&mut self, rows: &[RoundRow<'_>]) -> Result<RoundOutput> {
        let spec = self.model.spec().clone();
        check_rows(&spec, self.slots, rows)?;
        if rows.len() > self.max_rows {
            return Err(Error::Internal(format!(
                "a round of {} rows in a table of rounds up to {}",
                rows.len(),
                self.max_rows
            )));
        }
        let (x, lens) = pack_rows(&spec, rows);
        let extent = Extent::new(x.dim().0, rows.len());
        let ctx = self.model.context().clone();
        let _device = ctx.exclusive();
        let input = Input::new(x.view()).lengths(&lens);
        let p = Prepared::new(&spec, &input)?;
        let chunks = plan::chunks(&spec, self.model.limits(), extent)?;
        if chunks.len() != 1 {
            return Err(Error::Internal(format!(
                "a round of {} steps × {} rows does not fit the device in one forward",
                extent.steps, extent.batch
            )));
        }
        let options = self.choice(&p, &chunks)?;
        self.ensure(extent)?;
        let step = (options.variant, options.batch_tile);
        let schedule = Schedule::new(&spec, self.model.limits(), extent, step, options.gemm)?;
        let pipelines = self.model.pipelines(&schedule)?;
        let ld = spec.num_layers * spec.num_directions();
        let params = StateParams {
            rows: u32::try_from(rows.len()).unwrap_or(u32::MAX),
            ld: u32::try_from(ld).unwrap_or(u32::MAX),
            width_h: u32::try_from(spec.hidden_out()).unwrap_or(u32::MAX),
            width_c: if spec.cell.has_cell_state() {
                u32::try_from(spec.hidden_size).unwrap_or(u32::MAX)
            } else {
                0
            },
        };
        let slots: Vec<u32> = rows
            .iter()
            .map(|r| u32::try_from(r.slot).unwrap_or(u32::MAX))
            .collect();
        let queue = ctx.queue();
        queue.write_buffer(&self.row_slots, 0, bytemuck::cast_slice(&slots));
        queue.write_buffer(&self.params, 0, bytemuck::bytes_of(&params));
        let bound = self.bound.as_ref().expect("ensured above");
        let read_states = rows.iter().any(|r| r.read_state);
        let lens32: Vec<u32> = lens
            .iter()
            .map(|&l| u32::try_from(l).unwrap_or(u32::MAX))
            .collect();
        let xs = x.as_standard_layout();
        let job = Job {
            x: contiguous(&xs),
            lens: &lens32,
            init: Init::Table(TableOps {
                gather: &self.gather,
                scatter: &self.scatter,
                gather_group: &bound.gather,
                scatter_group: &bound.scatter,
                groups: params.groups(),
                cell_state: spec.cell.has_cell_state(),
            }),
            read_states,
            timing: false,
        };
        let out = execute::run(
            ctx.device(),
            queue,
            &bound.ws,
            &schedule,
            pipelines.kernels(),
            job,
        )?;
        let raw = self.model.unpack(&out.data, extent, read_states)?;
        let mut states = Vec::with_capacity(rows.len());
        for (b, row) in rows.iter().enumerate() {
            let state = match (&raw.states, row.read_state) {
                (Some((h_n, c_n)), true) => Some(SlotState {
                    h: h_n.slice(s![.., b, ..]).to_owned(),
                    c: spec
                        .cell
                        .has_cell_state()
                        .then(|| c_n.slice(s![.., b, ..]).to_owned()),
                }),
                _ => None,
            };
            states.push(state);
        }
        let output = RoundOutput {
            y: raw.y,
            batch_row: (0..rows.len()).collect(),
            states,
        };
        Ok(output)
    }
}
