//! Kinds, constants and value sources, in order: recurrent nodes parsed with their weights,
//! glue checked and folded where all its inputs are constants.

use std::collections::BTreeSet;

use super::super::{invalid, LoadError, Node, NodeKind, Source, BUDGET};
use super::Analysis;
use crate::io::onnx::ops::{Op, SUPPORTED};
use crate::io::onnx::pb;
use crate::io::onnx::rnn::{self, QuantSlots, Refusal, RnnOp, Slots};
use crate::io::onnx::value::{Kind, Value};

impl Analysis<'_> {
    /// Kinds, constants and value sources, in order: recurrent nodes parsed with their
    /// weights, glue checked and folded where all its inputs are constants (within
    /// [`BUDGET`]).
    pub(super) fn kinds_constants_and_sources(&mut self) -> Result<(), LoadError> {
        let nvals = self.names.names.len();
        self.kinds = vec![None; nvals];
        self.deps = vec![BTreeSet::new(); nvals];
        self.konst = vec![None; nvals];
        for (id, v) in std::mem::take(&mut self.consts) {
            self.kinds[id] = Some(v.kind());
            self.konst[id] = Some(v);
        }
        for (k, p) in self.inputs.iter().enumerate() {
            self.kinds[p.id] = Some(if p.float { Kind::Float } else { Kind::Int });
            self.deps[p.id].insert(Source::Input(k));
        }
        let mut budget = BUDGET;
        for ni in self.order.clone() {
            if let Some(&(op, quantized, proto)) = self.rnn_ops.get(&ni) {
                self.rnn_node(ni, op, quantized, proto)?;
            } else {
                self.glue_node(ni, &mut budget)?;
            }
        }
        Ok(())
    }

    /// Recurrent node `ni` (operator `op`, `proto` in the file): its inputs' kinds checked,
    /// the node parsed (weights must be constants by now), its outputs float and depending on
    /// its inputs' sources and on the node itself.
    fn rnn_node(
        &mut self,
        ni: usize,
        op: RnnOp,
        quantized: bool,
        proto: &pb::NodeProto,
    ) -> Result<(), LoadError> {
        let n = &self.nodes[ni];
        let label = n.label();
        let slots = slots(n, op, quantized);
        let max_in = match (op, quantized) {
            (_, true) => 12,
            (RnnOp::Lstm, false) => 8,
            _ => 6,
        };
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
                if self.kinds[v] != Some(want) {
                    return invalid(format!(
                        "{label}: input {what} (`{}`) must be {}",
                        self.names.names[v],
                        if want == Kind::Float {
                            "float"
                        } else {
                            "an integer tensor"
                        }
                    ));
                }
            }
        }
        let parsed = rnn::parse(
            proto,
            op,
            slots.clone(),
            &|id| self.konst[id].clone(),
            &|id| self.names.names[id].clone(),
        )
        .map_err(|Refusal::Invalid(m)| LoadError::Invalid(format!("{label}: {m}")))?;
        let mut src: BTreeSet<Source> = BTreeSet::new();
        for v in [slots.x, slots.seq_lens, slots.init_h, slots.init_c]
            .into_iter()
            .flatten()
        {
            src.extend(self.deps[v].iter().copied());
        }
        for (k, o) in [slots.y, slots.y_h, slots.y_c].into_iter().enumerate() {
            if let Some(o) = o {
                self.kinds[o] = Some(Kind::Float);
                self.deps[o] = src.clone();
                self.deps[o].insert(Source::Rnn(ni, k));
            }
        }
        // Any further output names (none are valid) stay undefined kinds.
        self.nodes[ni].kind = NodeKind::Rnn(Box::new(parsed));
        Ok(())
    }

    /// Glue node `ni`: float arithmetic refused, shape parameters must not depend on run-time
    /// values, outputs take the operator's kind and their inputs' sources (a `Shape` reads
    /// none), and are folded within `budget` when every input is a constant.
    fn glue_node(&mut self, ni: usize, budget: &mut usize) -> Result<(), LoadError> {
        let n = &self.nodes[ni];
        let label = n.label();
        let NodeKind::Glue(op) = &n.kind else {
            unreachable!("recurrent nodes are in rnn_ops")
        };
        let in_kinds: Vec<Option<Kind>> = n
            .inputs
            .iter()
            .map(|v| v.and_then(|v| self.kinds[v]))
            .collect();
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
                if let Some(s) = self.deps[v].iter().next() {
                    let from = match *s {
                        Source::Input(k) => {
                            format!("the run-time input `{}`", self.inputs[k].name)
                        }
                        Source::Rnn(r, _) => format!("the output of {}", self.nodes[r].label()),
                    };
                    return invalid(format!(
                        "{label}: input `{}` depends on the values of {from}; shapes must follow from constants and Shape alone",
                        self.names.names[v]
                    ));
                }
            } else {
                src.extend(self.deps[v].iter().copied());
            }
        }
        let out_kind = op.output_kind(&in_kinds);
        let all_const = n.inputs.iter().flatten().all(|&v| self.konst[v].is_some());
        let folded = if all_const {
            let vals: Vec<Option<&Value>> = n
                .inputs
                .iter()
                .map(|v| v.and_then(|v| self.konst[v].as_ref()))
                .collect();
            Some(
                op.eval_within(&vals, n.outputs.len(), budget)
                    .map_err(|e| LoadError::Invalid(format!("{label}: {e}")))?,
            )
        } else {
            None
        };
        for (k, o) in n.outputs.iter().enumerate() {
            if let Some(o) = *o {
                self.kinds[o] = Some(out_kind);
                self.deps[o] = src.clone();
                if let Some(f) = &folded {
                    self.konst[o] = f.get(k).cloned();
                }
            }
        }
        Ok(())
    }
}

/// The input and output slots of recurrent node `n` (operator `op`, `quantized` for
/// `DynamicQuantizeLSTM`) by position; `initial_c`, `P` and `Y_c` only for LSTM.
fn slots(n: &Node, op: RnnOp, quantized: bool) -> Slots {
    let slot = |k: usize| n.inputs.get(k).copied().flatten();
    let out = |k: usize| n.outputs.get(k).copied().flatten();
    let lstm = op == RnnOp::Lstm;
    Slots {
        x: slot(0),
        w: slot(1),
        r: slot(2),
        b: slot(3),
        seq_lens: slot(4),
        init_h: slot(5),
        init_c: if lstm { slot(6) } else { None },
        p: if lstm { slot(7) } else { None },
        quant: quantized.then(|| QuantSlots {
            w_scale: slot(8),
            w_zero_point: slot(9),
            r_scale: slot(10),
            r_zero_point: slot(11),
        }),
        y: out(0),
        y_h: out(1),
        y_c: if lstm { out(2) } else { None },
    }
}
