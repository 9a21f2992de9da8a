//! Running one group of recurrent nodes on its engine: the sequence input, the lengths and
//! the initial states read and checked, the glue at the stack boundaries probed, the outputs
//! put in the graph's shapes.

use std::collections::HashMap;

use ndarray::{s, Array3, ArrayD, Axis, Ix3, IxDyn};

use super::{eval_glue, get};
use crate::error::{Error, Result};
use crate::io::onnx::graph::{self, Graph, Group, NodeKind};
use crate::io::onnx::rnn;
use crate::io::onnx::{OnnxModel, Value};
use crate::tensor::{Forward, Input, Output};

impl OnnxModel {
    /// Runs group `gi` on `engine`; returns the values of its members' outputs.
    pub(super) fn run_group(
        &self,
        gi: usize,
        engine: &dyn Forward,
        env: &[Option<Value>],
    ) -> Result<Vec<(usize, Value)>> {
        let run = GroupRun::new(&self.graph, &self.graph.groups[gi], env)?;

        // The glue between layers must hand Y on as the engine does.
        for bd in &run.group.boundaries {
            check_boundary(run.g, env, bd, run.bf, [run.t, run.d, run.b, run.h])?;
        }

        let lengths = run.lengths()?;
        let h0 = run.states(&|r| r.slots.init_h, "initial_h")?;
        let c0 = run.states(&|r| r.slots.init_c, "initial_c")?;
        let mut input = Input::new(run.x.view()).batch_first(run.bf);
        if let Some(h0) = &h0 {
            input = input.h0(h0.view());
        }
        if let Some(c0) = &c0 {
            input = input.c0(c0.view());
        }
        if let Some(l) = &lengths {
            input = input.lengths(l);
        }
        let mut out = engine.forward(&input).map_err(|e| run.err(e.to_string()))?;
        // A sequence of length 0 ends in zero states (as onnxruntime has it), not in its
        // initial ones.
        for (row, _) in lengths
            .iter()
            .flatten()
            .enumerate()
            .filter(|(_, &n)| n == 0)
        {
            out.h_n.slice_mut(s![.., row, ..]).fill(0.0);
            if let Some(c) = &mut out.c_n {
                c.slice_mut(s![.., row, ..]).fill(0.0);
            }
        }
        run.outputs(&out)
    }
}

/// A group being run: its bottom node's sequence input `X`, checked, and the sizes it gives.
struct GroupRun<'a> {
    /// The graph.
    g: &'a Graph,
    /// The group.
    group: &'a Group,
    /// The values computed so far.
    env: &'a [Option<Value>],
    /// The bottom node's label, for messages.
    label: String,
    /// `X`.
    x: ArrayD<f32>,
    /// Whether the nodes have `layout = 1`.
    bf: bool,
    /// Time steps.
    t: usize,
    /// Batch elements.
    b: usize,
    /// Directions.
    d: usize,
    /// Hidden size.
    h: usize,
    /// Layers (members of the group).
    layers: usize,
}

impl<'a> GroupRun<'a> {
    /// Reads `X` of `group`'s bottom node: a float tensor of 3 dimensions, with time steps and
    /// batch elements.
    fn new(g: &'a Graph, group: &'a Group, env: &'a [Option<Value>]) -> Result<Self> {
        let first = g.rnn(group.members[0]);
        let label = g.nodes[group.members[0]].label();
        let err = |m: String| invalid_input(&label, m);
        let x = float_input(g, env, first.slots.x.expect("checked"), "X", err)?;
        if x.ndim() != 3 {
            return Err(err(format!(
                "input X has shape {:?}; expected 3 dimensions",
                x.shape()
            )));
        }
        let bf = first.layout == 1;
        let (t, b) = if bf {
            (x.shape()[1], x.shape()[0])
        } else {
            (x.shape()[0], x.shape()[1])
        };
        if t == 0 || b == 0 {
            return Err(err(format!(
                "input X has shape {:?}: no {}",
                x.shape(),
                if t == 0 {
                    "time steps"
                } else {
                    "batch elements"
                }
            )));
        }
        Ok(GroupRun {
            g,
            group,
            env,
            label,
            x,
            bf,
            t,
            b,
            d: first.directions,
            h: first.hidden,
            layers: group.members.len(),
        })
    }

    /// An invalid input, the message prefixed with the bottom node's label.
    fn err(&self, m: String) -> Error {
        invalid_input(&self.label, m)
    }

    /// Value `v`, input `what` of a node, which must be a float tensor.
    fn float(&self, v: usize, what: &str) -> Result<ArrayD<f32>> {
        float_input(self.g, self.env, v, what, |m| self.err(m))
    }

    /// The bottom node's `sequence_lens`, when it has them: one per batch element, each
    /// within the time steps.
    fn lengths(&self) -> Result<Option<Vec<usize>>> {
        let first = self.g.rnn(self.group.members[0]);
        let Some(v) = first.slots.seq_lens else {
            return Ok(None);
        };
        let (t, b) = (self.t, self.b);
        let Some(Value::I64(l)) = get(self.g, self.env, v) else {
            return Err(self.err("sequence_lens is not an integer tensor".into()));
        };
        if l.shape() != [b] {
            return Err(self.err(format!(
                "sequence_lens has shape {:?}; expected [{b}] (the batch)",
                l.shape()
            )));
        }
        let mut out = Vec::with_capacity(b);
        for (i, &n) in l.iter().enumerate() {
            if n < 0 || n as u64 > t as u64 {
                return Err(self.err(format!(
                    "sequence_lens[{i}] = {n} is outside 0..={t} (the input's time steps)"
                )));
            }
            out.push(n as usize);
        }
        Ok(Some(out))
    }

    /// The initial states `[layers·D, B, H]` of the members' inputs `which` (input `what`):
    /// `None` when no member has one, zeros for the members without.
    fn states(
        &self,
        which: &dyn Fn(&rnn::RnnNode) -> Option<usize>,
        what: &str,
    ) -> Result<Option<Array3<f32>>> {
        let (g, group) = (self.g, self.group);
        let (bf, b, d, h) = (self.bf, self.b, self.d, self.h);
        if !group.members.iter().any(|&m| which(g.rnn(m)).is_some()) {
            return Ok(None);
        }
        let mut all = Array3::<f32>::zeros((self.layers * d, b, h));
        for (k, &m) in group.members.iter().enumerate() {
            let Some(v) = which(g.rnn(m)) else { continue };
            let s = self.float(v, what)?;
            let want = if bf { [b, d, h] } else { [d, b, h] };
            if s.shape() != want {
                return Err(Error::InvalidInput(format!(
                    "{}: input {what} (`{}`) has shape {:?}; expected {want:?}",
                    g.nodes[m].label(),
                    g.names[v],
                    s.shape()
                )));
            }
            let mut s = s.into_dimensionality::<Ix3>().expect("rank checked");
            if bf {
                s = s.permuted_axes([1, 0, 2]);
            }
            all.slice_mut(s![k * d..(k + 1) * d, .., ..]).assign(&s);
        }
        Ok(Some(all))
    }

    /// The values of the members' outputs from the engine's `out`, in the graph's shapes: the
    /// top node's `Y`, each member's `Y_h` and `Y_c`.
    fn outputs(&self, out: &Output) -> Result<Vec<(usize, Value)>> {
        let (g, group) = (self.g, self.group);
        let (bf, t, b, d, h) = (self.bf, self.t, self.b, self.d, self.h);
        let mut values = Vec::new();
        let last = g.rnn(*group.members.last().expect("a member"));
        if let Some(y) = last.slots.y {
            let y4 = out
                .y
                .as_standard_layout()
                .into_owned()
                .into_shape_with_order(if bf {
                    IxDyn(&[b, t, d, h])
                } else {
                    IxDyn(&[t, b, d, h])
                })
                .map_err(|e| Error::Internal(format!("engine output y: {e}")))?;
            let y4 = if bf {
                y4
            } else {
                y4.permuted_axes(IxDyn(&[0, 2, 1, 3]))
                    .as_standard_layout()
                    .into_owned()
            };
            values.push((y, Value::F32(y4)));
        }
        let state_out = |all: &ArrayD<f32>, k: usize| -> Value {
            let s = all
                .slice_axis(Axis(0), (k * d..(k + 1) * d).into())
                .to_owned();
            Value::F32(if bf {
                s.permuted_axes(IxDyn(&[1, 0, 2]))
                    .as_standard_layout()
                    .into_owned()
            } else {
                s
            })
        };
        for (k, &m) in group.members.iter().enumerate() {
            let r = g.rnn(m);
            if let Some(v) = r.slots.y_h {
                values.push((v, state_out(&out.h_n, k)));
            }
            if let (Some(v), Some(c)) = (r.slots.y_c, &out.c_n) {
                values.push((v, state_out(c, k)));
            }
        }
        Ok(values)
    }
}

/// An invalid input, the message prefixed with `label`.
fn invalid_input(label: &str, m: String) -> Error {
    Error::InvalidInput(format!("{label}: {m}"))
}

/// Value `v` (computed in `env`, or constant), input `what` of a node, which must be a float
/// tensor; `err` makes the error.
fn float_input(
    g: &Graph,
    env: &[Option<Value>],
    v: usize,
    what: &str,
    err: impl Fn(String) -> Error,
) -> Result<ArrayD<f32>> {
    match get(g, env, v) {
        Some(Value::F32(a)) => Ok(a.clone()),
        _ => Err(err(format!(
            "input {what} (`{}`) is not a float tensor",
            g.names[v]
        ))),
    }
}

/// Evaluates the glue of a stack boundary on a probe `Y` whose every element is distinct and
/// checks it yields the `X` the engine computes itself (`[T, B, D·H]`, or `[B, T, D·H]` with
/// layout 1, directions concatenated forward first).
fn check_boundary(
    g: &Graph,
    env: &[Option<Value>],
    bd: &graph::Boundary,
    batch_first: bool,
    [t, d, b, h]: [usize; 4],
) -> Result<()> {
    let y_shape = if batch_first {
        vec![b, t, d, h]
    } else {
        vec![t, d, b, h]
    };
    let n: usize = y_shape.iter().product();
    // Distinct values exact in f32: one probe below 2^24 elements, else two (high and low bits).
    let parts: &[(u32, u64)] = if n < 1 << 24 {
        &[(0, u64::MAX)]
    } else {
        &[(20, u64::MAX), (0, (1 << 20) - 1)]
    };
    for &(shift, mask) in parts {
        // Row-major: element idx holds (idx >> shift) & mask.
        let data: Vec<f32> = (0..n as u64)
            .map(|i| ((i >> shift) & mask) as f32)
            .collect();
        let probe = ArrayD::from_shape_vec(IxDyn(&y_shape), data).expect("count");
        let mut budget = graph::BUDGET.saturating_add(n.saturating_mul(graph::RUN_FACTOR));
        let mut local: HashMap<usize, Value> = HashMap::new();
        local.insert(bd.y, Value::F32(probe.clone()));
        for &ni in &bd.nodes {
            let lookup = |v| local.get(&v).or_else(|| get(g, env, v));
            let outs = eval_glue(g, ni, lookup, &mut budget)?;
            local.extend(outs);
        }
        let expected = if batch_first {
            probe
        } else {
            probe
                .permuted_axes(IxDyn(&[0, 2, 1, 3]))
                .as_standard_layout()
                .into_owned()
        };
        let expected = expected
            .into_shape_with_order(if batch_first {
                IxDyn(&[b, t, d * h])
            } else {
                IxDyn(&[t, b, d * h])
            })
            .expect("same count");
        let ok = matches!(local.get(&bd.x), Some(Value::F32(a)) if *a == expected);
        if !ok {
            let upper = g
                .nodes
                .iter()
                .find(|n| matches!(&n.kind, NodeKind::Rnn(r) if r.slots.x == Some(bd.x)))
                .map_or_else(String::new, |n| n.label());
            return Err(Error::InvalidInput(format!(
                "{upper}: the glue from `{}` to its input `{}` does not pass the layer below's output on unchanged (directions concatenated), which stacked layers need",
                g.names[bd.y], g.names[bd.x]
            )));
        }
    }
    Ok(())
}
