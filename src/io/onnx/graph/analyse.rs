//! Analysis of a decoded graph: checks, topological order, value kinds and sources, constant
//! folding, live nodes; stacking and roles are delegated.

use std::collections::{BTreeSet, HashMap};

use super::super::ops::{Op, SUPPORTED};
use crate::io::onnx::pb;
use super::super::rnn::{self, Refusal, RnnOp, Slots};
use super::super::value::{decode, DataDir, Kind, Value};
use super::ports::{port_of, Names};
use super::roles::roles;
use super::stacking::Ctx;
use super::{invalid, Graph, LoadError, Node, NodeKind, Source, BUDGET};

/// Most nodes, named values, run-time graph inputs and recurrent nodes a graph may have:
/// far beyond what exporters write for recurrent models (a 3-layer dynamo export has about
/// 100 nodes), and low enough that the analysis (which tracks, per value, the inputs and
/// recurrent outputs it depends on) stays small on hostile files.
const MAX_NODES: usize = 1 << 14;
const MAX_VALUES: usize = 1 << 16;
const MAX_INPUTS: usize = 64;
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
            .map_err(|Refusal::Invalid(m)| LoadError::Invalid(format!("{label}: {m}")))?;
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
