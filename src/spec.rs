//! The model description shared by every path: cell kind, sizes, layers, directions.

use crate::error::{Error, Result};

/// The recurrent cell of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// PyTorch `nn.LSTM`: gate rows i, f, g, o (optionally with peepholes or a projection,
    /// see [`RnnSpec::peephole`] and [`RnnSpec::proj_size`]).
    Lstm,
    /// PyTorch `nn.GRU`: gate rows r, z, n.
    Gru,
    /// PyTorch `nn.RNN` with `nonlinearity='tanh'`.
    RnnTanh,
    /// PyTorch `nn.RNN` with `nonlinearity='relu'`.
    RnnRelu,
}

impl Cell {
    /// Every cell.
    pub const ALL: [Cell; 4] = [Cell::Lstm, Cell::Gru, Cell::RnnTanh, Cell::RnnRelu];

    /// Number of gate rows per hidden unit in `weight_ih` / `weight_hh` (4 for LSTM, 3 for
    /// GRU, 1 for RNN).
    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
            Cell::Gru => 3,
            Cell::RnnTanh | Cell::RnnRelu => 1,
        }
    }

    /// Lowercase name, as used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
            Cell::Gru => "gru",
            Cell::RnnTanh => "rnn_tanh",
            Cell::RnnRelu => "rnn_relu",
        }
    }

    /// The cell named `name` (as [`Cell::name`] gives it).
    pub fn from_name(name: &str) -> Option<Cell> {
        Cell::ALL.into_iter().find(|c| c.name() == name)
    }

    /// Whether the cell carries a cell state `c` besides `h`.
    pub fn has_cell_state(self) -> bool {
        matches!(self, Cell::Lstm)
    }
}

/// Sizes and structure of a recurrent model, as in PyTorch's constructor arguments.
///
/// ```
/// use wgpu_lstm::{Cell, RnnSpec};
/// let spec = RnnSpec::lstm(40, 128).layers(2).bidirectional(true);
/// assert_eq!(spec.num_directions(), 2);
/// assert_eq!(spec.layer_input_size(1), 256);
/// ```
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct RnnSpec {
    /// The cell.
    pub cell: Cell,
    /// Features of the input `x` (PyTorch `input_size`).
    pub input_size: usize,
    /// Features of the hidden state (PyTorch `hidden_size`).
    pub hidden_size: usize,
    /// Stacked layers (PyTorch `num_layers`).
    pub num_layers: usize,
    /// Run a reverse direction too and concatenate (PyTorch `bidirectional`).
    pub bidirectional: bool,
    /// Whether the model has `bias_ih_l{k}` / `bias_hh_l{k}` (PyTorch `bias`).
    pub bias: bool,
    /// LSTM only: size of the projected hidden state, 0 for none (PyTorch `proj_size`).
    pub proj_size: usize,
    /// LSTM only: peephole connections from the cell state to the gates (Gers / ONNX).
    pub peephole: bool,
}

impl RnnSpec {
    /// A one-layer, unidirectional model of `cell` with biases.
    pub fn new(cell: Cell, input_size: usize, hidden_size: usize) -> Self {
        RnnSpec {
            cell,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            bias: true,
            proj_size: 0,
            peephole: false,
        }
    }

    /// A one-layer, unidirectional LSTM with biases.
    pub fn lstm(input_size: usize, hidden_size: usize) -> Self {
        Self::new(Cell::Lstm, input_size, hidden_size)
    }

    /// A one-layer, unidirectional GRU with biases.
    pub fn gru(input_size: usize, hidden_size: usize) -> Self {
        Self::new(Cell::Gru, input_size, hidden_size)
    }

    /// Sets the LSTM projection size (0 for none).
    pub fn proj_size(mut self, proj_size: usize) -> Self {
        self.proj_size = proj_size;
        self
    }

    /// Sets LSTM peephole connections.
    pub fn peephole(mut self, peephole: bool) -> Self {
        self.peephole = peephole;
        self
    }

    /// Sets the number of layers.
    pub fn layers(mut self, num_layers: usize) -> Self {
        self.num_layers = num_layers;
        self
    }

    /// Sets bidirectionality.
    pub fn bidirectional(mut self, bidirectional: bool) -> Self {
        self.bidirectional = bidirectional;
        self
    }

    /// Sets whether the model has biases.
    pub fn bias(mut self, bias: bool) -> Self {
        self.bias = bias;
        self
    }

    /// 2 when bidirectional, else 1.
    pub fn num_directions(&self) -> usize {
        if self.bidirectional {
            2
        } else {
            1
        }
    }

    /// Features of `h` and of each direction's output: `proj_size` when projecting, else
    /// `hidden_size`.
    pub fn hidden_out(&self) -> usize {
        if self.proj_size > 0 {
            self.proj_size
        } else {
            self.hidden_size
        }
    }

    /// Features each layer outputs per time step: directions × [`RnnSpec::hidden_out`].
    pub fn output_size(&self) -> usize {
        self.num_directions() * self.hidden_out()
    }

    /// Input features of layer `layer`: `input_size` for layer 0, else the previous layer's output.
    pub fn layer_input_size(&self, layer: usize) -> usize {
        if layer == 0 {
            self.input_size
        } else {
            self.output_size()
        }
    }

    /// Rows of `weight_ih` / `weight_hh`: gates × hidden size.
    pub fn gate_rows(&self) -> usize {
        self.cell.gates() * self.hidden_size
    }

    /// Checks that every size is non-zero and that projection and peepholes are only asked of
    /// an LSTM, with `proj_size < hidden_size` as in PyTorch.
    pub fn validate(&self) -> Result<()> {
        for (name, v) in [
            ("input_size", self.input_size),
            ("hidden_size", self.hidden_size),
            ("num_layers", self.num_layers),
        ] {
            if v == 0 {
                return Err(Error::InvalidSpec(format!("{name} must be at least 1")));
            }
        }
        if self.cell != Cell::Lstm && (self.proj_size > 0 || self.peephole) {
            return Err(Error::InvalidSpec(format!(
                "projection and peepholes need an lstm, not a {}",
                self.cell.name()
            )));
        }
        if self.proj_size >= self.hidden_size && self.proj_size > 0 {
            return Err(Error::InvalidSpec(format!(
                "proj_size ({}) must be smaller than hidden_size ({})",
                self.proj_size, self.hidden_size
            )));
        }
        Ok(())
    }

    /// Floating-point operations of one forward over `steps` × `batch`, counting a multiply-add
    /// as 2: Σ over layers and directions of `2·T·B·G·H·(in + H_out)`, plus `2·T·B·H·P` for a
    /// projection.
    pub fn forward_flops(&self, steps: usize, batch: usize) -> f64 {
        let per_dir = |layer: usize| {
            let tb = steps as f64 * batch as f64;
            let gates = 2.0
                * tb
                * self.gate_rows() as f64
                * (self.layer_input_size(layer) + self.hidden_out()) as f64;
            gates + 2.0 * tb * (self.hidden_size * self.proj_size) as f64
        };
        (0..self.num_layers)
            .map(|l| per_dir(l) * self.num_directions() as f64)
            .sum()
    }
}
