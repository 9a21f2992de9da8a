//! Graph analysis: values and nodes, checks, constant folding, which inputs and outputs carry
//! the sequence and the states, and which recurrent nodes stack into one multi-layer model.
//!
//! Every value has a kind (float or integer), maybe a constant (initializers and everything
//! computed from constants alone, folded here) and the set of run-time sources its *values*
//! depend on (graph inputs, recurrent outputs); a `Shape` reads only a shape, so shape
//! arithmetic does not depend on values. Shape parameters (Reshape's shape, Slice's starts…)
//! must not depend on run-time values: then every shape follows from the input shapes alone.
//!
//! Two recurrent nodes `a` → `b` stack into one model when the glue from `a`'s `Y` to `b`'s `X`
//! is private to them (nothing else reads it), moves data only (Transpose, Reshape, Squeeze…)
//! and the nodes agree on cell, directions, hidden size, layout and `sequence_lens`. The
//! engine then computes the layer-to-layer input itself (`[T, B, D·H]`, directions
//! concatenated); before each run the glue is evaluated on a probe tensor of the real size to
//! check that it computes exactly that.

mod analyse;
mod ports;
mod roles;
mod stacking;

use super::ops::Op;
use super::rnn::RnnNode;
use super::value::Value;

pub(crate) use analyse::analyse;

/// Elements the tensors a graph computes may hold together: all constants folded at load
/// time; at run time this plus [`RUN_FACTOR`] × the elements of the inputs and of the
/// recurrent outputs.
pub(crate) const BUDGET: usize = 1 << 25;

/// See [`BUDGET`].
pub(crate) const RUN_FACTOR: usize = 32;

/// A dimension of a graph input or output as the graph declares it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dim {
    /// A fixed size.
    Fixed(usize),
    /// A named dynamic size (`batch`, `seq`…): equal wherever the name appears.
    Symbol(String),
    /// A dynamic size without a name.
    Unknown,
}

impl std::fmt::Display for Dim {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Dim::Fixed(n) => write!(f, "{n}"),
            Dim::Symbol(s) => write!(f, "{s}"),
            Dim::Unknown => write!(f, "?"),
        }
    }
}

/// A graph input or output: name, declared shape (`None` when undeclared) and whether it
/// is float (else integer).
#[derive(Debug, Clone, PartialEq)]
pub struct Port {
    /// The name in the graph.
    pub name: String,
    /// The declared shape, `None` when the graph declares none.
    pub dims: Option<Vec<Dim>>,
    /// Float (`true`) or integer.
    pub float: bool,
    pub(crate) id: usize,
}

/// Which graph input or output plays each part of a recurrent model (the names the command
/// line's `--input`, `--h0`, `--c0`, `--lengths`, `--output`, `--hn`, `--cn` refer to).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Roles {
    /// The input sequence.
    pub input: Option<String>,
    /// The initial hidden state.
    pub h0: Option<String>,
    /// The initial cell state.
    pub c0: Option<String>,
    /// The sequence lengths.
    pub lengths: Option<String>,
    /// The output sequence (of the last recurrent node).
    pub output: Option<String>,
    /// The final hidden state(s).
    pub hn: Option<String>,
    /// The final cell state(s).
    pub cn: Option<String>,
}

/// A data source a value depends on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum Source {
    /// Run-time graph input (index into `inputs`).
    Input(usize),
    /// Output `slot` (0 Y, 1 Y_h, 2 Y_c) of the recurrent node at node index `node`.
    Rnn(usize, usize),
}

/// What a node computes.
#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Glue(Op),
    Rnn(Box<RnnNode>),
}

/// A node of the graph: its name, operator, and the value ids it reads and writes (`None`
/// for an absent optional input or unused output).
#[derive(Debug, Clone)]
pub(crate) struct Node {
    pub name: String,
    pub op_type: String,
    pub kind: NodeKind,
    pub inputs: Vec<Option<usize>>,
    pub outputs: Vec<Option<usize>>,
}

impl Node {
    /// `node 'name' (Op)`.
    pub fn label(&self) -> String {
        format!("node '{}' ({})", self.name, self.op_type)
    }
}

/// Glue evaluated on a probe to check that it passes layer `k`'s `Y` to layer `k + 1` as the
/// engine does.
#[derive(Debug, Clone)]
pub(crate) struct Boundary {
    /// `Y` of the lower node.
    pub y: usize,
    /// `X` of the upper node.
    pub x: usize,
    /// Glue node indices, in order.
    pub nodes: Vec<usize>,
}

/// Recurrent nodes run as one model: node indices bottom-up and the glue between them.
#[derive(Debug, Clone)]
pub(crate) struct Group {
    pub members: Vec<usize>,
    pub boundaries: Vec<Boundary>,
}

/// One step of a run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) enum Unit {
    Glue(usize),
    Group(usize),
}

/// A load error: the file is not a valid model, or not one this loader reads.
#[derive(Debug)]
pub(crate) enum LoadError {
    Invalid(String),
}

/// A [`LoadError::Invalid`] with message `m`.
fn invalid<T>(m: impl Into<String>) -> Result<T, LoadError> {
    Err(LoadError::Invalid(m.into()))
}

/// The analysed graph.
#[derive(Debug, Clone)]
pub(crate) struct Graph {
    pub names: Vec<String>,
    pub consts: Vec<Option<Value>>,
    pub nodes: Vec<Node>,
    pub inputs: Vec<Port>,
    pub outputs: Vec<Port>,
    pub groups: Vec<Group>,
    pub schedule: Vec<Unit>,
    pub roles: Roles,
}

impl Graph {
    /// The recurrent node at node index `node` (a group member).
    pub fn rnn(&self, node: usize) -> &RnnNode {
        match &self.nodes[node].kind {
            NodeKind::Rnn(r) => r,
            NodeKind::Glue(_) => unreachable!("group members are recurrent nodes"),
        }
    }
}
