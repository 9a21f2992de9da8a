//! Running an analysed model: inputs checked against the graph, the glue evaluated, each
//! stack run on its engine (`group`), the stack boundaries checked, the outputs collected.

mod group;

use std::collections::{BTreeMap, HashMap};

use ndarray::ArrayD;

use super::graph::{self, Graph, NodeKind, Unit};
use super::{Dim, OnnxModel, Port, Value};
use crate::error::{Error, Result};
use crate::tensor::Forward;

impl OnnxModel {
    /// [`OnnxModel::run`] on the CPU.
    pub fn run_cpu(
        &self,
        inputs: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, ArrayD<f32>>> {
        let models = self.cpu_models();
        let engines: Vec<&dyn Forward> = models.iter().map(|m| m as &dyn Forward).collect();
        self.run(&engines, inputs)
    }

    /// Runs the graph: `engines[i]` is a model built from `stacks()[i].weights`; `inputs`
    /// holds every graph input by name (floats as [`Value::F32`], `sequence_lens` as
    /// [`Value::I64`]) in the shape the graph declares. Returns every graph output by name.
    pub fn run(
        &self,
        engines: &[&dyn Forward],
        inputs: &BTreeMap<String, Value>,
    ) -> Result<BTreeMap<String, ArrayD<f32>>> {
        if engines.len() != self.stacks.len() {
            return Err(Error::InvalidInput(format!(
                "`{}` has {} recurrent stack(s), {} model(s) were given",
                self.path,
                self.stacks.len(),
                engines.len()
            )));
        }
        let g = &self.graph;
        let mut env: Vec<Option<Value>> = vec![None; g.names.len()];
        // Tensors computed by the glue: see graph::BUDGET.
        let mut budget = graph::BUDGET;
        let grant = |budget: &mut usize, n: usize| {
            *budget = budget.saturating_add(n.saturating_mul(graph::RUN_FACTOR));
        };
        let mut symbols: HashMap<&str, usize> = HashMap::new();
        for name in inputs.keys() {
            if !g.inputs.iter().any(|p| &p.name == name) {
                let known: Vec<&str> = g.inputs.iter().map(|p| p.name.as_str()).collect();
                return Err(Error::InvalidInput(format!(
                    "`{}` has no run-time input `{name}` (inputs: {})",
                    self.path,
                    known.join(", ")
                )));
            }
        }
        for p in &g.inputs {
            let v = inputs.get(&p.name).ok_or_else(|| {
                Error::InvalidInput(format!("graph input `{}` is missing", p.name))
            })?;
            let v = match (p.float, v) {
                (true, Value::F32(_)) | (false, Value::I64(_)) => v.clone(),
                (false, Value::F32(_)) => {
                    return Err(Error::InvalidInput(format!(
                        "graph input `{}` is an integer tensor, float data was given",
                        p.name
                    )))
                }
                (true, Value::I64(_)) => {
                    return Err(Error::InvalidInput(format!(
                        "graph input `{}` is a float tensor, integer data was given",
                        p.name
                    )))
                }
            };
            check_dims("graph input", p, v.shape(), &mut symbols)?;
            grant(&mut budget, v.len());
            env[p.id] = Some(v);
        }
        for unit in &g.schedule {
            match *unit {
                Unit::Glue(n) => {
                    for (o, v) in eval_glue(g, n, |v| get(g, &env, v), &mut budget)? {
                        env[o] = Some(v);
                    }
                }
                Unit::Group(gi) => {
                    let outs = self.run_group(gi, engines[gi], &env)?;
                    for (o, v) in outs {
                        grant(&mut budget, v.len());
                        env[o] = Some(v);
                    }
                }
            }
        }
        let mut out = BTreeMap::new();
        for p in &g.outputs {
            let v = get(g, &env, p.id).ok_or_else(|| {
                Error::Internal(format!("graph output `{}` was not computed", p.name))
            })?;
            check_dims("graph output", p, v.shape(), &mut symbols)?;
            out.insert(p.name.clone(), v.to_f32());
        }
        Ok(out)
    }
}

/// Runs glue node `n` on the values `lookup` finds for its inputs, within `budget`; returns
/// each output that the graph uses, with its value.
pub(super) fn eval_glue<'a>(
    g: &Graph,
    n: usize,
    lookup: impl Fn(usize) -> Option<&'a Value>,
    budget: &mut usize,
) -> Result<Vec<(usize, Value)>> {
    let node = &g.nodes[n];
    let NodeKind::Glue(op) = &node.kind else {
        unreachable!("only glue nodes are evaluated here")
    };
    let vals: Vec<Option<&Value>> = node.inputs.iter().map(|v| v.and_then(&lookup)).collect();
    let outs = op
        .eval_within(&vals, node.outputs.len(), budget)
        .map_err(|e| Error::InvalidInput(format!("{}: {e}", node.label())))?;
    Ok(node
        .outputs
        .iter()
        .zip(outs)
        .filter_map(|(o, v)| o.map(|o| (o, v)))
        .collect())
}

/// The value of `v`: computed or constant.
pub(super) fn get<'a>(g: &'a Graph, env: &'a [Option<Value>], v: usize) -> Option<&'a Value> {
    env[v].as_ref().or(g.consts[v].as_ref())
}

/// Checks a shape against a declared one; named dims must agree across the graph's inputs
/// and outputs.
fn check_dims<'a>(
    what: &str,
    p: &'a Port,
    shape: &[usize],
    symbols: &mut HashMap<&'a str, usize>,
) -> Result<()> {
    let Some(dims) = &p.dims else { return Ok(()) };
    let declared = || {
        dims.iter()
            .map(|d| d.to_string())
            .collect::<Vec<_>>()
            .join(", ")
    };
    let mismatch = || {
        Error::InvalidInput(format!(
            "{what} `{}` has shape {:?}; the graph declares [{}]",
            p.name,
            shape,
            declared()
        ))
    };
    if dims.len() != shape.len() {
        return Err(mismatch());
    }
    for (d, &n) in dims.iter().zip(shape) {
        match d {
            Dim::Fixed(f) if *f != n => return Err(mismatch()),
            Dim::Symbol(s) if *symbols.entry(s.as_str()).or_insert(n) != n => {
                return Err(mismatch())
            }
            _ => {}
        }
    }
    Ok(())
}
