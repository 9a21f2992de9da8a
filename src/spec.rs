//! The model description shared by every path: cell kind, sizes, layers, directions.

use crate::activation::{Activation, Activations};
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

/// A cell's own activation functions (PyTorch's, and ONNX's defaults), and which of the three
/// roles it uses.
impl Activations {
    /// PyTorch's functions for `cell` (and ONNX's defaults): LSTM σ, tanh, tanh; GRU σ, tanh;
    /// RNN tanh or relu.
    ///
    /// ```
    /// use wgpu_lstm::{Activation, Activations, Cell};
    /// assert!(Activations::of(Cell::Gru).is_default(Cell::Gru));
    /// assert_eq!(
    ///     Activations::of(Cell::Lstm).list(Cell::Lstm),
    ///     vec![Activation::Sigmoid, Activation::Tanh, Activation::Tanh]
    /// );
    /// ```
    pub fn of(cell: Cell) -> Activations {
        let (f, g) = match cell {
            Cell::Lstm | Cell::Gru => (Activation::Sigmoid, Activation::Tanh),
            Cell::RnnTanh => (Activation::Tanh, Activation::Tanh),
            Cell::RnnRelu => (Activation::Relu, Activation::Tanh),
        };
        Activations {
            f,
            g,
            h: Activation::Tanh,
        }
    }

    /// The functions `cell` uses, in ONNX's order (`[f, g, h]` for LSTM, `[f, g]` for GRU,
    /// `[f]` for RNN).
    pub fn list(self, cell: Cell) -> Vec<Activation> {
        let roles = match cell {
            Cell::Lstm => 3,
            Cell::Gru => 2,
            Cell::RnnTanh | Cell::RnnRelu => 1,
        };
        [self.f, self.g, self.h][..roles].to_vec()
    }

    /// Whether these are PyTorch's functions for `cell`.
    pub fn is_default(self, cell: Cell) -> bool {
        self.list(cell) == Activations::of(cell).list(cell)
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
#[derive(Debug, Clone, PartialEq)]
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
    /// Unidirectional models only: the one direction walks each sequence from its last step
    /// to its first (ONNX `direction = "reverse"`; see [`RnnSpec::direction`]).
    pub reverse: bool,
    /// Per direction (forward, then reverse), the activation functions (ONNX `activations`,
    /// `activation_alpha`, `activation_beta`); empty for the cell's own, PyTorch's
    /// ([`Activations::of`]).
    pub activations: Vec<Activations>,
    /// Every gate pre-activation is clamped to `[−clip, clip]` before its activation function
    /// (ONNX `clip`; peepholes and biases included); `None` for no bound.
    pub clip: Option<f32>,
    /// LSTM only: the forget gate is coupled to the input gate, `f = 1 − i` (ONNX
    /// `input_forget = 1`; the forget gate's weights are then unused).
    pub input_forget: bool,
    /// GRU only: where the reset gate applies. `true` (PyTorch's `nn.GRU`, ONNX
    /// `linear_before_reset = 1`, the default here): `n = g(W_in x + b_in + r ⊙ (W_hn h +
    /// b_hn))`; `false` (ONNX's default): `n = g(W_in x + b_in + W_hn (r ⊙ h) + b_hn)`.
    pub linear_before_reset: bool,
}

/// Which way the directions of a model walk the sequence (ONNX `direction`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Direction {
    /// One direction, first step to last.
    Forward,
    /// One direction, last step to first (each sequence from its own last step).
    Reverse,
    /// Both, outputs concatenated forward then reverse (PyTorch `bidirectional=True`).
    Bidirectional,
}

impl Direction {
    /// The direction of `spec`.
    pub fn of(spec: &RnnSpec) -> Direction {
        match (spec.bidirectional, spec.reverse) {
            (true, _) => Direction::Bidirectional,
            (false, true) => Direction::Reverse,
            (false, false) => Direction::Forward,
        }
    }

    /// ONNX's name: `forward`, `reverse` or `bidirectional`.
    pub fn name(self) -> &'static str {
        match self {
            Direction::Forward => "forward",
            Direction::Reverse => "reverse",
            Direction::Bidirectional => "bidirectional",
        }
    }
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
            reverse: false,
            activations: Vec::new(),
            clip: None,
            input_forget: false,
            linear_before_reset: true,
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

    /// Sets bidirectionality (a reverse direction is then the second one).
    pub fn bidirectional(mut self, bidirectional: bool) -> Self {
        self.bidirectional = bidirectional;
        if bidirectional {
            self.reverse = false;
        }
        self
    }

    /// Sets the direction: forward, reverse (one direction, last step to first) or both.
    ///
    /// ```
    /// use wgpu_lstm::{Direction, RnnSpec};
    /// let spec = RnnSpec::gru(8, 16).direction(Direction::Reverse);
    /// assert_eq!(spec.num_directions(), 1);
    /// assert!(spec.reverses(0));
    /// assert_eq!(Direction::of(&spec), Direction::Reverse);
    /// ```
    pub fn direction(mut self, direction: Direction) -> Self {
        self.bidirectional = direction == Direction::Bidirectional;
        self.reverse = direction == Direction::Reverse;
        self
    }

    /// Sets the activation functions of each direction (one entry per direction; empty for
    /// the cell's own).
    ///
    /// ```
    /// use wgpu_lstm::{Activation, Activations, Cell, RnnSpec};
    /// let hard = Activations {
    ///     f: Activation::HardSigmoid { alpha: 0.2, beta: 0.5 },
    ///     ..Activations::of(Cell::Lstm)
    /// };
    /// let spec = RnnSpec::lstm(8, 16).activations(vec![hard]).clip(Some(5.0));
    /// spec.validate()?;
    /// # Ok::<(), wgpu_lstm::Error>(())
    /// ```
    pub fn activations(mut self, activations: Vec<Activations>) -> Self {
        self.activations = activations;
        self
    }

    /// Sets the bound on gate pre-activations (`None` for none).
    pub fn clip(mut self, clip: Option<f32>) -> Self {
        self.clip = clip;
        self
    }

    /// Sets LSTM input-forget coupling (`f = 1 − i`).
    pub fn input_forget(mut self, input_forget: bool) -> Self {
        self.input_forget = input_forget;
        self
    }

    /// Sets where a GRU applies its reset gate (see [`RnnSpec::linear_before_reset`]).
    pub fn linear_before_reset(mut self, linear_before_reset: bool) -> Self {
        self.linear_before_reset = linear_before_reset;
        self
    }

    /// Whether direction `d` walks the sequence from its end: the second direction of a
    /// bidirectional model, or the one direction of a reverse model.
    pub fn reverses(&self, d: usize) -> bool {
        d == 1 || self.reverse
    }

    /// Whether a forward needs the whole sequence at once (a direction walks it backwards),
    /// so that it cannot be streamed or split over time.
    pub fn needs_whole_sequence(&self) -> bool {
        self.bidirectional || self.reverse
    }

    /// The activation functions of direction `d`.
    pub fn activations_of(&self, d: usize) -> Activations {
        self.activations
            .get(d)
            .copied()
            .unwrap_or_else(|| Activations::of(self.cell))
    }

    /// Whether the cell computes PyTorch's equations: its own activation functions, no
    /// clip, no input-forget coupling, a GRU's reset gate after its linear part.
    pub fn plain_gates(&self) -> bool {
        (0..self.num_directions()).all(|d| self.activations_of(d).is_default(self.cell))
            && self.clip.is_none()
            && !self.input_forget
            && self.linear_before_reset
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
        if self.reverse && self.bidirectional {
            return Err(Error::InvalidSpec(
                "`reverse` is for a unidirectional model; a bidirectional one already has a reverse direction".into(),
            ));
        }
        if !self.activations.is_empty() && self.activations.len() != self.num_directions() {
            return Err(Error::InvalidSpec(format!(
                "`activations` has {} entries; the model has {} direction(s) (or give none for the cell's own)",
                self.activations.len(),
                self.num_directions()
            )));
        }
        for a in &self.activations {
            for f in a.list(self.cell) {
                f.check()?;
            }
        }
        if let Some(clip) = self.clip {
            if clip.is_nan() || clip <= 0.0 {
                return Err(Error::InvalidSpec(format!(
                    "clip = {clip} must be positive"
                )));
            }
        }
        if self.input_forget && self.cell != Cell::Lstm {
            return Err(Error::InvalidSpec(format!(
                "input_forget needs an lstm, not a {}",
                self.cell.name()
            )));
        }
        if !self.linear_before_reset && self.cell != Cell::Gru {
            return Err(Error::InvalidSpec(format!(
                "linear_before_reset = false is a gru option, not one of a {}",
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
