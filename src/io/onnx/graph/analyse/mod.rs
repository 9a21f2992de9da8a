//! Analysis of a decoded graph: checks, topological order, value kinds and sources, constant
//! folding, live nodes; stacking and roles are delegated.

mod values;

use std::collections::{BTreeSet, HashMap};

use super::super::ops::{Op, SUPPORTED};
use super::super::rnn::RnnOp;
use super::super::value::{decode, DataDir, Kind, Value};
use super::ports::{port_of, Names};
use super::roles::roles;
use super::stacking::Ctx;
use super::{invalid, Graph, LoadError, Node, NodeKind, Port, Source};
use crate::io::onnx::pb;

/// Most nodes, named values, run-time graph inputs and recurrent nodes a graph may have:
/// far beyond what exporters write for recurrent models (a 3-layer dynamo export has about
/// 100 nodes), and low enough that the analysis (which tracks, per value, the inputs and
/// recurrent outputs it depends on) stays small on hostile files.
const MAX_NODES: usize = 1 << 14;
/// See [`MAX_NODES`].
const MAX_VALUES: usize = 1 << 16;
/// See [`MAX_NODES`].
const MAX_INPUTS: usize = 64;
/// See [`MAX_NODES`].
const MAX_RNN_NODES: usize = 64;

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
    let mut a = Analysis::new(dir);
    a.initializers(g)?;
    a.graph_inputs(g)?;
    a.nodes(g)?;
    a.topological_order()?;
    a.kinds_constants_and_sources()?;
    a.graph_outputs(g)?;
    a.live_nodes()?;
    Ok(a.into_graph())
}

/// A graph under analysis: what the phases of [`analyse`] have found so far, each phase
/// reading what the earlier ones left.
struct Analysis<'a> {
    /// Where external data may be read from.
    dir: DataDir<'a>,
    /// Value names and their ids.
    names: Names,
    /// The initializers by value id, until [`Analysis::kinds_constants_and_sources`] takes
    /// them into `konst`.
    consts: HashMap<usize, Value>,
    /// Values defined so far: initializers, run-time graph inputs, node outputs.
    defined: BTreeSet<usize>,
    /// The run-time graph inputs (inputs with an initializer are constants, not listed).
    inputs: Vec<Port>,
    /// The nodes in file order (recurrent ones as `Glue(Identity)` until parsed).
    nodes: Vec<Node>,
    /// The node producing each value (by value id).
    producer: HashMap<usize, usize>,
    /// The recurrent nodes by node index, with their operator and proto, parsed once their
    /// weights are folded.
    /// (`true`: onnxruntime's `DynamicQuantizeLSTM`).
    rnn_ops: HashMap<usize, (RnnOp, bool, &'a pb::NodeProto)>,
    /// Node indices in topological order.
    order: Vec<usize>,
    /// Per value: float or integer (`None` for names nothing defines).
    kinds: Vec<Option<Kind>>,
    /// Per value: the run-time sources its values depend on.
    deps: Vec<BTreeSet<Source>>,
    /// Per value: its constant, when known at load time (initializers and folded values).
    konst: Vec<Option<Value>>,
    /// The graph outputs.
    outputs: Vec<Port>,
    /// Per node: whether a graph output needs it.
    live: Vec<bool>,
}

impl<'a> Analysis<'a> {
    /// An analysis with nothing found yet.
    fn new(dir: DataDir<'a>) -> Self {
        Analysis {
            dir,
            names: Names {
                ids: HashMap::new(),
                names: Vec::new(),
            },
            consts: HashMap::new(),
            defined: BTreeSet::new(),
            inputs: Vec::new(),
            nodes: Vec::new(),
            producer: HashMap::new(),
            rnn_ops: HashMap::new(),
            order: Vec::new(),
            kinds: Vec::new(),
            deps: Vec::new(),
            konst: Vec::new(),
            outputs: Vec::new(),
            live: Vec::new(),
        }
    }

    /// Initializers: constants.
    fn initializers(&mut self, g: &pb::GraphProto) -> Result<(), LoadError> {
        for t in &g.initializer {
            let name = t.name.clone().unwrap_or_default();
            if name.is_empty() {
                return invalid("an initializer has no name");
            }
            let id = self.names.id(&name);
            let v = decode(t, self.dir, &format!("initializer `{name}`"))
                .map_err(LoadError::Invalid)?;
            if self.consts.insert(id, v).is_some() {
                return invalid(format!("initializer `{name}` is given twice"));
            }
        }
        self.defined = self.consts.keys().copied().collect();
        Ok(())
    }

    /// Run-time graph inputs. A graph input with an initializer is a constant default.
    fn graph_inputs(&mut self, g: &pb::GraphProto) -> Result<(), LoadError> {
        for v in &g.input {
            let name = v.name.clone().unwrap_or_default();
            let id = self.names.id(&name);
            if self.consts.contains_key(&id) {
                continue;
            }
            if name.is_empty() || !self.defined.insert(id) {
                return invalid(format!("graph input `{name}` is unnamed or given twice"));
            }
            self.inputs.push(port_of(v, "graph input", id)?);
            if self.inputs.len() > MAX_INPUTS {
                return invalid(format!(
                    "the graph has more than {MAX_INPUTS} run-time inputs"
                ));
            }
        }
        Ok(())
    }

    /// Nodes: each one's operator checked (glue parsed; recurrent ones set aside until their
    /// weights are folded), its inputs and outputs named, every output defined once and every
    /// input defined somewhere.
    fn nodes(&mut self, g: &'a pb::GraphProto) -> Result<(), LoadError> {
        for (i, n) in g.node.iter().enumerate() {
            self.node(i, n)?;
        }
        for n in &self.nodes {
            for &v in n.inputs.iter().flatten() {
                if !self.defined.contains(&v) {
                    return invalid(format!(
                        "{}: input `{}` is not produced by any node, initializer or graph input",
                        n.label(),
                        self.names.names[v]
                    ));
                }
            }
        }
        Ok(())
    }

    /// Node `i` of the file, `n`: see [`Analysis::nodes`].
    fn node(&mut self, i: usize, n: &'a pb::NodeProto) -> Result<(), LoadError> {
        let op_type = n.op_type.clone().unwrap_or_default();
        let name = match n.name.as_deref() {
            Some(s) if !s.is_empty() => s.to_string(),
            _ => format!("#{i}"),
        };
        let label = format!("node '{name}' ({op_type})");
        let domain = n.domain.as_deref().unwrap_or("");
        let kind = if let Some((op, quantized)) = RnnOp::from_node(domain, &op_type) {
            self.rnn_ops.insert(self.nodes.len(), (op, quantized, n));
            if self.rnn_ops.len() > MAX_RNN_NODES {
                return invalid(format!(
                    "{label}: the graph has more than {MAX_RNN_NODES} LSTM/GRU/RNN nodes"
                ));
            }
            None
        } else if !domain.is_empty() && domain != "ai.onnx" {
            return invalid(format!(
                "{label} of domain `{domain}` is not supported: {SUPPORTED}"
            ));
        } else {
            match Op::parse(n, self.dir) {
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
        let ins = ids(&n.input, &mut self.names);
        let outs = ids(&n.output, &mut self.names);
        if self.names.names.len() > MAX_VALUES {
            return invalid(format!(
                "{label}: the graph names more than {MAX_VALUES} values"
            ));
        }
        for &o in outs.iter().flatten() {
            if !self.defined.insert(o) {
                return invalid(format!(
                    "{label}: output `{}` is defined twice",
                    self.names.names[o]
                ));
            }
            self.producer.insert(o, self.nodes.len());
        }
        self.nodes.push(Node {
            name,
            op_type,
            // Recurrent nodes are parsed once their weights are folded
            // (`Analysis::kinds_constants_and_sources`).
            kind: NodeKind::Glue(kind.unwrap_or(Op::Identity)),
            inputs: ins,
            outputs: outs,
        });
        Ok(())
    }

    /// Topological order of the nodes (an error names a node on a cycle).
    fn topological_order(&mut self) -> Result<(), LoadError> {
        self.order = topo_order(&self.nodes, &self.producer).map_err(LoadError::Invalid)?;
        Ok(())
    }

    /// Graph outputs: each must be produced by the graph, and there must be one.
    fn graph_outputs(&mut self, g: &pb::GraphProto) -> Result<(), LoadError> {
        for v in &g.output {
            let name = v.name.clone().unwrap_or_default();
            let Some(&id) = self.names.ids.get(&name) else {
                return invalid(format!(
                    "graph output `{name}` is not produced by the graph"
                ));
            };
            if !self.defined.contains(&id) {
                return invalid(format!(
                    "graph output `{name}` is not produced by the graph"
                ));
            }
            self.outputs.push(port_of(v, "graph output", id)?);
        }
        if self.outputs.is_empty() {
            return invalid("the graph has no outputs");
        }
        Ok(())
    }

    /// Live nodes: those graph outputs need (constants are not recomputed); one of them must
    /// be recurrent.
    fn live_nodes(&mut self) -> Result<(), LoadError> {
        self.live = vec![false; self.nodes.len()];
        let mut stack: Vec<usize> = self.outputs.iter().map(|p| p.id).collect();
        let mut seen = vec![false; self.names.names.len()];
        while let Some(v) = stack.pop() {
            if std::mem::replace(&mut seen[v], true) || self.konst[v].is_some() {
                continue;
            }
            if let Some(&p) = self.producer.get(&v) {
                self.live[p] = true;
                stack.extend(self.nodes[p].inputs.iter().flatten().copied());
            }
        }
        if !self
            .nodes
            .iter()
            .enumerate()
            .any(|(i, n)| self.live[i] && matches!(n.kind, NodeKind::Rnn(_)))
        {
            return invalid("no graph output depends on an LSTM, GRU or RNN node");
        }
        Ok(())
    }

    /// The analysed graph: which recurrent nodes stack, the schedule of the run and the roles
    /// of the graph's inputs and outputs (delegated to `stacking` and `roles`).
    fn into_graph(self) -> Graph {
        let nvals = self.names.names.len();
        let mut consumers: Vec<Vec<usize>> = vec![Vec::new(); nvals];
        for (i, n) in self.nodes.iter().enumerate() {
            for &v in n.inputs.iter().flatten() {
                if !consumers[v].contains(&i) {
                    consumers[v].push(i);
                }
            }
        }
        let mut is_output = vec![false; nvals];
        for p in &self.outputs {
            is_output[p.id] = true;
        }
        let ctx = Ctx {
            nodes: &self.nodes,
            producer: &self.producer,
            consumers: &consumers,
            konst: &self.konst,
            deps: &self.deps,
            is_output: &is_output,
            live: &self.live,
            order: &self.order,
        };
        let pairs = ctx.stack_pairs();
        let (groups, schedule) = match ctx.schedule(&pairs) {
            Some(s) => s,
            None => ctx
                .schedule(&HashMap::new())
                .expect("the graph itself is acyclic"),
        };
        let roles = roles(
            &self.nodes,
            &self.inputs,
            &self.outputs,
            &self.deps,
            &self.order,
            &self.live,
        );
        Graph {
            names: self.names.names,
            consts: self.konst,
            nodes: self.nodes,
            inputs: self.inputs,
            outputs: self.outputs,
            groups,
            schedule,
            roles,
        }
    }
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
