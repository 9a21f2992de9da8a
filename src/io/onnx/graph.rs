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

use std::collections::{BTreeSet, HashMap};

use super::ops::{Op, SUPPORTED};
use super::pb;
use super::rnn::{self, Refusal, RnnNode, RnnOp, Slots};
use super::value::{decode, DataDir, Kind, Value};

/// Elements the tensors a graph computes may hold together: all constants folded at load
/// time; at run time this plus [`RUN_FACTOR`] × the elements of the inputs and of the
/// recurrent outputs.
pub(crate) const BUDGET: usize = 1 << 25;

/// See [`BUDGET`].
pub(crate) const RUN_FACTOR: usize = 32;

/// Most nodes, named values, run-time graph inputs and recurrent nodes a graph may have:
/// far beyond what exporters write for recurrent models (a 3-layer dynamo export has about
/// 100 nodes), and low enough that the analysis (which tracks, per value, the inputs and
/// recurrent outputs it depends on) stays small on hostile files.
const MAX_NODES: usize = 1 << 14;
const MAX_VALUES: usize = 1 << 16;
const MAX_INPUTS: usize = 64;
const MAX_RNN_NODES: usize = 64;

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

#[derive(Debug, Clone)]
pub(crate) enum NodeKind {
    Glue(Op),
    Rnn(Box<RnnNode>),
}

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

/// A load error: invalid model (file error) or not supported yet (input error).
#[derive(Debug)]
pub(crate) enum LoadError {
    Invalid(String),
    NotYet(String),
}

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
    pub fn rnn(&self, node: usize) -> &RnnNode {
        match &self.nodes[node].kind {
            NodeKind::Rnn(r) => r,
            NodeKind::Glue(_) => unreachable!("group members are recurrent nodes"),
        }
    }
}

struct Names {
    ids: HashMap<String, usize>,
    names: Vec<String>,
}

impl Names {
    fn id(&mut self, name: &str) -> usize {
        if let Some(&i) = self.ids.get(name) {
            return i;
        }
        self.names.push(name.to_string());
        self.ids.insert(name.to_string(), self.names.len() - 1);
        self.names.len() - 1
    }
}

fn port_of(v: &pb::ValueInfoProto, what: &str, id: usize) -> Result<Port, LoadError> {
    let name = v.name.clone().unwrap_or_default();
    let tensor = match v.r#type.as_ref().and_then(|t| t.value.as_ref()) {
        Some(pb::type_proto::Value::TensorType(t)) => t,
        None => {
            return Ok(Port {
                name,
                dims: None,
                float: true,
                id,
            })
        }
        Some(_) => return invalid(format!("{what} `{name}` is not a tensor")),
    };
    let code = tensor.elem_type.unwrap_or(1);
    let float = match Kind::of_onnx(code) {
        Some(Kind::Float) => true,
        Some(Kind::Int) => false,
        None => {
            return invalid(format!(
                "{what} `{name}` has element type {}; supported: float and integer types",
                super::value::type_name(code)
            ))
        }
    };
    let dims = tensor.shape.as_ref().map(|s| {
        s.dim
            .iter()
            .map(|d| match &d.value {
                Some(pb::tensor_shape_proto::dimension::Value::DimValue(v)) if *v >= 0 => {
                    Dim::Fixed(*v as usize)
                }
                Some(pb::tensor_shape_proto::dimension::Value::DimParam(p)) if !p.is_empty() => {
                    Dim::Symbol(p.clone())
                }
                _ => Dim::Unknown,
            })
            .collect()
    });
    Ok(Port {
        name,
        dims,
        float,
        id,
    })
}

/// Analyses the graph of `model`; `dir` is where external data may be read from.
pub(crate) fn analyse(model: &pb::ModelProto, dir: DataDir<'_>) -> Result<Graph, LoadError> {
    let Some(g) = model.graph.as_ref() else {
        return invalid("the model has no graph");
    };
    if g.node.len() > MAX_NODES {
        return invalid(format!(
            "the graph has {} nodes; at most {MAX_NODES} are supported",
            g.node.len()
        ));
    }
    let mut names = Names {
        ids: HashMap::new(),
        names: Vec::new(),
    };
    // Initializers: constants. A graph input with an initializer is a constant default.
    let mut consts: HashMap<usize, Value> = HashMap::new();
    for t in &g.initializer {
        let name = t.name.clone().unwrap_or_default();
        if name.is_empty() {
            return invalid("an initializer has no name");
        }
        let id = names.id(&name);
        let v = decode(t, dir, &format!("initializer `{name}`")).map_err(LoadError::Invalid)?;
        if consts.insert(id, v).is_some() {
            return invalid(format!("initializer `{name}` is given twice"));
        }
    }
    let mut defined: BTreeSet<usize> = consts.keys().copied().collect();
    let mut inputs = Vec::new();
    for v in &g.input {
        let name = v.name.clone().unwrap_or_default();
        let id = names.id(&name);
        if consts.contains_key(&id) {
            continue;
        }
        if name.is_empty() || !defined.insert(id) {
            return invalid(format!("graph input `{name}` is unnamed or given twice"));
        }
        inputs.push(port_of(v, "graph input", id)?);
        if inputs.len() > MAX_INPUTS {
            return invalid(format!(
                "the graph has more than {MAX_INPUTS} run-time inputs"
            ));
        }
    }

    // Nodes.
    let mut nodes: Vec<Node> = Vec::new();
    let mut producer: HashMap<usize, usize> = HashMap::new();
    let mut pending_rnn: Vec<(usize, RnnOp, &pb::NodeProto)> = Vec::new();
    for (i, n) in g.node.iter().enumerate() {
        let op_type = n.op_type.clone().unwrap_or_default();
        let name = match n.name.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("#{i}"),
        };
        let label = format!("node '{name}' ({op_type})");
        let domain = n.domain.as_deref().unwrap_or("");
        let kind = if !domain.is_empty() && domain != "ai.onnx" {
            return invalid(format!(
                "{label} of domain `{domain}` is not supported: {SUPPORTED}"
            ));
        } else if let Some(op) = RnnOp::from_op_type(&op_type) {
            pending_rnn.push((nodes.len(), op, n));
            if pending_rnn.len() > MAX_RNN_NODES {
                return invalid(format!(
                    "{label}: the graph has more than {MAX_RNN_NODES} LSTM/GRU/RNN nodes"
                ));
            }
            None
        } else {
            match Op::parse(n, dir) {
                Ok(Some(op)) => Some(op),
                Ok(None) => return invalid(format!("{label} is not supported: {SUPPORTED}")),
                Err(e) => return invalid(format!("{label}: {e}")),
            }
        };
        let ids = |list: &[String], names: &mut Names| -> Vec<Option<usize>> {
            list.iter()
                .map(|s| (!s.is_empty()).then(|| names.id(s)))
                .collect()
        };
        let ins = ids(&n.input, &mut names);
        let outs = ids(&n.output, &mut names);
        if names.names.len() > MAX_VALUES {
            return invalid(format!(
                "{label}: the graph names more than {MAX_VALUES} values"
            ));
        }
        for &o in outs.iter().flatten() {
            if !defined.insert(o) {
                return invalid(format!(
                    "{label}: output `{}` is defined twice",
                    names.names[o]
                ));
            }
            producer.insert(o, nodes.len());
        }
        nodes.push(Node {
            name,
            op_type,
            // Recurrent nodes are parsed once their weights are folded (below).
            kind: NodeKind::Glue(kind.unwrap_or(Op::Identity)),
            inputs: ins,
            outputs: outs,
        });
    }
    for n in &nodes {
        for &v in n.inputs.iter().flatten() {
            if !defined.contains(&v) {
                return invalid(format!(
                    "{}: input `{}` is not produced by any node, initializer or graph input",
                    n.label(),
                    names.names[v]
                ));
            }
        }
    }
    let rnn_ops: HashMap<usize, (RnnOp, &pb::NodeProto)> = pending_rnn
        .into_iter()
        .map(|(i, op, n)| (i, (op, n)))
        .collect();

    let order = topo_order(&nodes, &producer).map_err(LoadError::Invalid)?;

    // Kinds, constants and value sources, in order.
    let nvals = names.names.len();
    let mut kinds: Vec<Option<Kind>> = vec![None; nvals];
    let mut deps: Vec<BTreeSet<Source>> = vec![BTreeSet::new(); nvals];
    let mut konst: Vec<Option<Value>> = vec![None; nvals];
    for (id, v) in consts {
        kinds[id] = Some(v.kind());
        konst[id] = Some(v);
    }
    for (k, p) in inputs.iter().enumerate() {
        kinds[p.id] = Some(if p.float { Kind::Float } else { Kind::Int });
        deps[p.id].insert(Source::Input(k));
    }
    let mut budget = BUDGET;
    for &ni in &order {
        let label = nodes[ni].label();
        if let Some(&(op, proto)) = rnn_ops.get(&ni) {
            let n = &nodes[ni];
            let slot = |k: usize| n.inputs.get(k).copied().flatten();
            let out = |k: usize| n.outputs.get(k).copied().flatten();
            let slots = Slots {
                x: slot(0),
                w: slot(1),
                r: slot(2),
                b: slot(3),
                seq_lens: slot(4),
                init_h: slot(5),
                init_c: if op == RnnOp::Lstm { slot(6) } else { None },
                p: if op == RnnOp::Lstm { slot(7) } else { None },
                y: out(0),
                y_h: out(1),
                y_c: if op == RnnOp::Lstm { out(2) } else { None },
            };
            let max_in = if op == RnnOp::Lstm { 8 } else { 6 };
            let max_out = if op == RnnOp::Lstm { 3 } else { 2 };
            if n.inputs.len() > max_in || n.outputs.len() > max_out {
                return invalid(format!(
                    "{label} has {} inputs and {} outputs; at most {max_in} and {max_out}",
                    n.inputs.len(),
                    n.outputs.len()
                ));
            }
            for (what, v, want) in [
                ("X", slots.x, Kind::Float),
                ("sequence_lens", slots.seq_lens, Kind::Int),
                ("initial_h", slots.init_h, Kind::Float),
                ("initial_c", slots.init_c, Kind::Float),
            ] {
                if let Some(v) = v {
                    if kinds[v] != Some(want) {
                        return invalid(format!(
                            "{label}: input {what} (`{}`) must be {}",
                            names.names[v],
                            if want == Kind::Float {
                                "float"
                            } else {
                                "an integer tensor"
                            }
                        ));
                    }
                }
            }
            let parsed = rnn::parse(proto, op, slots.clone(), &|id| konst[id].clone(), &|id| {
                names.names[id].clone()
            })
            .map_err(|r| match r {
                Refusal::Invalid(m) => LoadError::Invalid(format!("{label}: {m}")),
                Refusal::NotYet(m) => LoadError::NotYet(format!("{label}: {m}")),
            })?;
            let mut src: BTreeSet<Source> = BTreeSet::new();
            for v in [slots.x, slots.seq_lens, slots.init_h, slots.init_c]
                .into_iter()
                .flatten()
            {
                src.extend(deps[v].iter().copied());
            }
            for (k, o) in [slots.y, slots.y_h, slots.y_c].into_iter().enumerate() {
                if let Some(o) = o {
                    kinds[o] = Some(Kind::Float);
                    deps[o] = src.clone();
                    deps[o].insert(Source::Rnn(ni, k));
                }
            }
            // Any further output names (none are valid) stay undefined kinds.
            nodes[ni].kind = NodeKind::Rnn(Box::new(parsed));
            continue;
        }
        let n = &nodes[ni];
        let NodeKind::Glue(op) = &n.kind else {
            unreachable!("recurrent nodes handled above")
        };
        let in_kinds: Vec<Option<Kind>> =
            n.inputs.iter().map(|v| v.and_then(|v| kinds[v])).collect();
        if let Op::Arith(_) = op {
            if in_kinds.iter().flatten().any(|&k| k == Kind::Float) {
                return invalid(format!(
                    "{label} on float data is not supported: only integer (shape) arithmetic; {SUPPORTED}"
                ));
            }
        }
        let mut src: BTreeSet<Source> = BTreeSet::new();
        for (i, v) in n.inputs.iter().enumerate() {
            let Some(v) = *v else { continue };
            if op.reads_shape_only() {
                continue;
            }
            if op.is_param(i) {
                if let Some(s) = deps[v].iter().next() {
                    let from = match *s {
                        Source::Input(k) => format!("the run-time input `{}`", inputs[k].name),
                        Source::Rnn(r, _) => format!("the output of {}", nodes[r].label()),
                    };
                    return invalid(format!(
                        "{label}: input `{}` depends on the values of {from}; shapes must follow from constants and Shape alone",
                        names.names[v]
                    ));
                }
            } else {
                src.extend(deps[v].iter().copied());
            }
        }
        let out_kind = op.output_kind(&in_kinds);
        let all_const = n.inputs.iter().flatten().all(|&v| konst[v].is_some());
        let folded = if all_const {
            let vals: Vec<Option<&Value>> = n
                .inputs
                .iter()
                .map(|v| v.and_then(|v| konst[v].as_ref()))
                .collect();
            Some(
                op.eval_within(&vals, n.outputs.len(), &mut budget)
                    .map_err(|e| LoadError::Invalid(format!("{label}: {e}")))?,
            )
        } else {
            None
        };
        let outs = n.outputs.clone();
        for (k, o) in outs.iter().enumerate() {
            if let Some(o) = *o {
                kinds[o] = Some(out_kind);
                deps[o] = src.clone();
                if let Some(f) = &folded {
                    konst[o] = f.get(k).cloned();
                }
            }
        }
    }

    // Graph outputs.
    let mut outputs = Vec::new();
    for v in &g.output {
        let name = v.name.clone().unwrap_or_default();
        let Some(&id) = names.ids.get(&name) else {
            return invalid(format!(
                "graph output `{name}` is not produced by the graph"
            ));
        };
        if !defined.contains(&id) {
            return invalid(format!(
                "graph output `{name}` is not produced by the graph"
            ));
        }
        outputs.push(port_of(v, "graph output", id)?);
    }
    if outputs.is_empty() {
        return invalid("the graph has no outputs");
    }

    // Live nodes: those graph outputs need (constants are not recomputed).
    let mut live = vec![false; nodes.len()];
    let mut stack: Vec<usize> = outputs.iter().map(|p| p.id).collect();
    let mut seen = vec![false; nvals];
    while let Some(v) = stack.pop() {
        if std::mem::replace(&mut seen[v], true) || konst[v].is_some() {
            continue;
        }
        if let Some(&p) = producer.get(&v) {
            live[p] = true;
            stack.extend(nodes[p].inputs.iter().flatten().copied());
        }
    }
    if !nodes
        .iter()
        .enumerate()
        .any(|(i, n)| live[i] && matches!(n.kind, NodeKind::Rnn(_)))
    {
        return invalid("no graph output depends on an LSTM, GRU or RNN node");
    }

    let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); nvals];
    for (i, n) in nodes.iter().enumerate() {
        for &v in n.inputs.iter().flatten() {
            if !consumers[v].contains(&i) {
                consumers[v].push(i);
            }
        }
    }
    let is_output: Vec<bool> = {
        let mut o = vec![false; nvals];
        for p in &outputs {
            o[p.id] = true;
        }
        o
    };
    let ctx = Ctx {
        nodes: &nodes,
        producer: &producer,
        consumers: &consumers,
        konst: &konst,
        deps: &deps,
        is_output: &is_output,
        live: &live,
        order: &order,
    };
    let pairs = ctx.stack_pairs();
    let (groups, schedule) = match ctx.schedule(&pairs) {
        Some(s) => s,
        None => ctx
            .schedule(&HashMap::new())
            .expect("the graph itself is acyclic"),
    };

    let roles = roles(&nodes, &inputs, &outputs, &deps, &order, &live);
    Ok(Graph {
        names: names.names,
        consts: konst,
        nodes,
        inputs,
        outputs,
        groups,
        schedule,
        roles,
    })
}

/// Kahn's algorithm over the nodes; an error names a node on a cycle.
fn topo_order(nodes: &[Node], producer: &HashMap<usize, usize>) -> Result<Vec<usize>, String> {
    let mut indeg = vec![0usize; nodes.len()];
    let mut users: Vec<Vec<usize>> = vec![Vec::new(); nodes.len()];
    for (i, n) in nodes.iter().enumerate() {
        for v in n.inputs.iter().flatten() {
            if let Some(&p) = producer.get(v) {
                indeg[i] += 1;
                users[p].push(i);
            }
        }
    }
    let mut ready: Vec<usize> = (0..nodes.len()).rev().filter(|&i| indeg[i] == 0).collect();
    let mut order = Vec::with_capacity(nodes.len());
    while let Some(i) = ready.pop() {
        order.push(i);
        for &u in users[i].iter().rev() {
            indeg[u] -= 1;
            if indeg[u] == 0 {
                ready.push(u);
            }
        }
    }
    if order.len() != nodes.len() {
        let i = (0..nodes.len())
            .find(|&i| indeg[i] > 0)
            .expect("a node left");
        return Err(format!("{} is on a cycle", nodes[i].label()));
    }
    Ok(order)
}

struct Ctx<'a> {
    nodes: &'a [Node],
    producer: &'a HashMap<usize, usize>,
    consumers: &'a [Vec<usize>],
    konst: &'a [Option<Value>],
    deps: &'a [BTreeSet<Source>],
    is_output: &'a [bool],
    live: &'a [bool],
    order: &'a [usize],
}

impl Ctx<'_> {
    fn rnn(&self, i: usize) -> Option<&RnnNode> {
        match &self.nodes[i].kind {
            NodeKind::Rnn(r) => Some(r),
            NodeKind::Glue(_) => None,
        }
    }

    /// For each recurrent node that stacks on another, `upper → (lower, glue nodes)`.
    fn stack_pairs(&self) -> HashMap<usize, (usize, Vec<usize>)> {
        let mut pairs = HashMap::new();
        for &bi in self.order {
            if !self.live[bi] {
                continue;
            }
            let Some(b) = self.rnn(bi) else { continue };
            let Some(bx) = b.slots.x else { continue };
            // The lower node: the one recurrent Y that X's values come from.
            let rnn_src: Vec<(usize, usize)> = self.deps[bx]
                .iter()
                .filter_map(|s| match *s {
                    Source::Rnn(n, k) => Some((n, k)),
                    Source::Input(_) => None,
                })
                .collect();
            let Some((ai, a, ay)) = rnn_src.iter().find_map(|&(n, k)| {
                let a = self.rnn(n)?;
                let ay = a.slots.y?;
                (k == 0 && self.deps[bx] == self.deps[ay]).then_some((n, a, ay))
            }) else {
                continue;
            };
            let compatible = a.op == b.op
                && a.cell == b.cell
                && a.directions == b.directions
                && a.hidden == b.hidden
                && a.layout == b.layout
                && a.slots.seq_lens == b.slots.seq_lens
                && b.input_size == a.directions * a.hidden
                && a.has_bias() == b.has_bias()
                && a.has_peephole() == b.has_peephole();
            if !compatible {
                continue;
            }
            if let Some(glue) = self.private_glue(ay, bx, bi) {
                pairs.insert(bi, (ai, glue));
            }
        }
        pairs
    }

    /// The glue nodes from `y` to `x` (consumed by node `b`) when that glue is private and
    /// moves data only.
    fn private_glue(&self, y: usize, x: usize, b: usize) -> Option<Vec<usize>> {
        // Ancestors of x.
        let mut anc = vec![false; self.nodes.len()];
        let mut stack = vec![x];
        let mut seen = BTreeSet::new();
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            if let Some(&p) = self.producer.get(&v) {
                anc[p] = true;
                stack.extend(self.nodes[p].inputs.iter().flatten().copied());
            }
        }
        // Descendants of y.
        let mut desc = vec![false; self.nodes.len()];
        let mut stack = vec![y];
        let mut seen = BTreeSet::new();
        while let Some(v) = stack.pop() {
            if !seen.insert(v) {
                continue;
            }
            for &c in &self.consumers[v] {
                desc[c] = true;
                stack.extend(self.nodes[c].outputs.iter().flatten().copied());
            }
        }
        let s: Vec<usize> = self
            .order
            .iter()
            .copied()
            .filter(|&i| anc[i] && desc[i])
            .collect();
        let in_s = |i: usize| s.contains(&i);
        if self.consumers[y].iter().any(|&c| !in_s(c)) || self.is_output[y] {
            return None;
        }
        for &n in &s {
            let node = &self.nodes[n];
            let NodeKind::Glue(op) = &node.kind else {
                return None;
            };
            let moves_data = matches!(
                op,
                Op::Identity
                    | Op::Transpose { .. }
                    | Op::Reshape { .. }
                    | Op::Squeeze { .. }
                    | Op::Unsqueeze { .. }
                    | Op::Shape { .. }
                    | Op::Gather { .. }
                    | Op::Slice { .. }
                    | Op::Concat { .. }
                    | Op::Arith(_)
                    | Op::Cast(_)
            );
            if !moves_data {
                return None;
            }
            for &o in node.outputs.iter().flatten() {
                if self.is_output[o] {
                    return None;
                }
                for &c in &self.consumers[o] {
                    let ok = in_s(c) || (o == x && c == b);
                    if !ok {
                        return None;
                    }
                }
            }
            for (i, v) in node.inputs.iter().enumerate() {
                let Some(v) = *v else { continue };
                if op.is_param(i) || op.reads_shape_only() || self.konst[v].is_some() {
                    continue;
                }
                let from_s = self.producer.get(&v).is_some_and(|&p| in_s(p));
                if v != y && !from_s {
                    return None;
                }
            }
        }
        // x is read by b as X only.
        let rb = self.rnn(b)?;
        let other = [rb.slots.seq_lens, rb.slots.init_h, rb.slots.init_c];
        if other.contains(&Some(x)) {
            return None;
        }
        Some(s)
    }

    /// Groups and the order of units, or `None` when stacking `pairs` would need a group's
    /// output before the group runs.
    fn schedule(
        &self,
        pairs: &HashMap<usize, (usize, Vec<usize>)>,
    ) -> Option<(Vec<Group>, Vec<Unit>)> {
        let lower_of: HashMap<usize, usize> = pairs.iter().map(|(&b, (a, _))| (*a, b)).collect();
        let mut groups: Vec<Group> = Vec::new();
        let mut unit_of_node: HashMap<usize, Unit> = HashMap::new();
        for &i in self.order {
            if !self.live[i] || self.rnn(i).is_none() || pairs.contains_key(&i) {
                continue;
            }
            // i is a bottom node: follow the chain up.
            let mut g = Group {
                members: vec![i],
                boundaries: Vec::new(),
            };
            let mut cur = i;
            while let Some(&up) = lower_of.get(&cur) {
                let (_, glue) = &pairs[&up];
                g.boundaries.push(Boundary {
                    y: self.rnn(cur)?.slots.y?,
                    x: self.rnn(up)?.slots.x?,
                    nodes: glue.clone(),
                });
                g.members.push(up);
                cur = up;
            }
            let gi = groups.len();
            for &m in &g.members {
                unit_of_node.insert(m, Unit::Group(gi));
            }
            for b in &g.boundaries {
                for &n in &b.nodes {
                    unit_of_node.insert(n, Unit::Group(gi));
                }
            }
            groups.push(g);
        }
        for &i in self.order {
            let all_const = self.nodes[i]
                .outputs
                .iter()
                .flatten()
                .all(|&o| self.konst[o].is_some());
            if self.live[i] && !unit_of_node.contains_key(&i) && !all_const {
                unit_of_node.insert(i, Unit::Glue(i));
            }
        }
        // Units and their dependencies.
        let mut units: Vec<Unit> = Vec::new();
        let mut index: HashMap<Unit, usize> = HashMap::new();
        for &i in self.order {
            if let Some(&u) = unit_of_node.get(&i) {
                if let std::collections::hash_map::Entry::Vacant(e) = index.entry(u) {
                    e.insert(units.len());
                    units.push(u);
                }
            }
        }
        let mut preds: Vec<BTreeSet<usize>> = vec![BTreeSet::new(); units.len()];
        for (&n, u) in &unit_of_node {
            let ui = index[u];
            for &v in self.nodes[n].inputs.iter().flatten() {
                if self.konst[v].is_some() {
                    continue;
                }
                if let Some(p) = self.producer.get(&v).and_then(|p| unit_of_node.get(p)) {
                    let pi = index[p];
                    if pi == ui {
                        // Inside a group only glue may feed glue or the next X.
                        // Inside a group only the glue between layers and the next
                        // layer's X read values of the group.
                        let internal = match u {
                            Unit::Group(g) => groups[*g].boundaries.iter().any(|b| {
                                let glue = b.nodes.contains(&n);
                                let next_x =
                                    b.x == v && self.rnn(n).is_some_and(|r| r.slots.x == Some(v));
                                glue || next_x
                            }),
                            Unit::Glue(_) => true,
                        };
                        if !internal {
                            return None;
                        }
                    } else {
                        preds[ui].insert(pi);
                    }
                }
            }
        }
        let mut indeg: Vec<usize> = preds.iter().map(|p| p.len()).collect();
        let mut succ: Vec<Vec<usize>> = vec![Vec::new(); units.len()];
        for (u, p) in preds.iter().enumerate() {
            for &q in p {
                succ[q].push(u);
            }
        }
        let mut ready: Vec<usize> = (0..units.len()).rev().filter(|&u| indeg[u] == 0).collect();
        let mut out = Vec::new();
        while let Some(u) = ready.pop() {
            out.push(units[u]);
            for &s in succ[u].iter().rev() {
                indeg[s] -= 1;
                if indeg[s] == 0 {
                    ready.push(s);
                }
            }
        }
        (out.len() == units.len()).then_some((groups, out))
    }
}

/// The roles of graph inputs and outputs.
fn roles(
    nodes: &[Node],
    inputs: &[Port],
    outputs: &[Port],
    deps: &[BTreeSet<Source>],
    order: &[usize],
    live: &[bool],
) -> Roles {
    let mut r = Roles::default();
    let rnns: Vec<(usize, &RnnNode)> = order
        .iter()
        .filter(|&&i| live[i])
        .filter_map(|&i| match &nodes[i].kind {
            NodeKind::Rnn(n) => Some((i, &**n)),
            NodeKind::Glue(_) => None,
        })
        .collect();
    let input_of = |v: Option<usize>| -> Option<String> {
        deps[v?].iter().find_map(|s| match *s {
            Source::Input(k) => Some(inputs[k].name.clone()),
            Source::Rnn(..) => None,
        })
    };
    for (_, n) in &rnns {
        let x = n.slots.x.expect("checked");
        let from_rnn = deps[x].iter().any(|s| matches!(s, Source::Rnn(..)));
        if r.input.is_none() && !from_rnn {
            r.input = input_of(Some(x));
        }
        r.h0 = r.h0.take().or_else(|| input_of(n.slots.init_h));
        r.c0 = r.c0.take().or_else(|| input_of(n.slots.init_c));
        r.lengths = r.lengths.take().or_else(|| input_of(n.slots.seq_lens));
    }
    let last = rnns.last().map(|(i, _)| *i);
    for p in outputs {
        let d = &deps[p.id];
        if r.output.is_none() && last.is_some_and(|l| d.contains(&Source::Rnn(l, 0))) {
            r.output = Some(p.name.clone());
        } else if r.hn.is_none() && d.iter().any(|s| matches!(s, Source::Rnn(_, 1))) {
            r.hn = Some(p.name.clone());
        } else if r.cn.is_none() && d.iter().any(|s| matches!(s, Source::Rnn(_, 2))) {
            r.cn = Some(p.name.clone());
        }
    }
    r
}
