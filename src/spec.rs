//! The model description shared by every path: cell kind, sizes, layers, directions.

use crate::error::{Error, Result};

/// The recurrent cell of a model.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Cell {
    /// PyTorch `nn.LSTM`: gate rows i, f, g, o.
    Lstm,
}

impl Cell {
    /// Number of gate rows per hidden unit in `weight_ih` / `weight_hh` (4 for LSTM).
    pub fn gates(self) -> usize {
        match self {
            Cell::Lstm => 4,
        }
    }

    /// Lowercase name, as used in files and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Cell::Lstm => "lstm",
        }
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
}

impl RnnSpec {
    /// A one-layer, unidirectional LSTM with biases.
    pub fn lstm(input_size: usize, hidden_size: usize) -> Self {
        RnnSpec {
            cell: Cell::Lstm,
            input_size,
            hidden_size,
            num_layers: 1,
            bidirectional: false,
            bias: true,
        }
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

    /// Features each layer outputs per time step: directions × hidden size.
    pub fn output_size(&self) -> usize {
        self.num_directions() * self.hidden_size
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

    /// Checks that every size is non-zero.
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
        Ok(())
    }

    /// Floating-point operations of one forward over `steps` × `batch`, counting a multiply-add
    /// as 2: Σ over layers and directions of `2·T·B·G·H·(in + H)`.
    pub fn forward_flops(&self, steps: usize, batch: usize) -> f64 {
        let per_dir = |layer: usize| {
            2.0 * steps as f64
                * batch as f64
                * self.gate_rows() as f64
                * (self.layer_input_size(layer) + self.hidden_size) as f64
        };
        (0..self.num_layers)
            .map(|l| per_dir(l) * self.num_directions() as f64)
            .sum()
    }
}
