//! Which recurrent nodes stack into one multi-layer model, and the order of the run's units.

use std::collections::{BTreeSet, HashMap};

use super::super::ops::Op;
use super::super::rnn::RnnNode;
use super::super::value::Value;
use super::{Boundary, Group, Node, NodeKind, Source, Unit};

/// What stacking and scheduling read of the analysed graph.
pub(super) struct Ctx<'a> {
    pub(super) nodes: &'a [Node],
    pub(super) producer: &'a HashMap<usize, usize>,
    pub(super) consumers: &'a [Vec<usize>],
    pub(super) konst: &'a [Option<Value>],
    pub(super) deps: &'a [BTreeSet<Source>],
    pub(super) is_output: &'a [bool],
    pub(super) live: &'a [bool],
    pub(super) order: &'a [usize],
}

impl Ctx<'_> {
    /// Node `i` when it is recurrent.
    fn rnn(&self, i: usize) -> Option<&RnnNode> {
        match &self.nodes[i].kind {
            NodeKind::Rnn(r) => Some(r),
            NodeKind::Glue(_) => None,
        }
    }

    /// For each recurrent node that stacks on another, `upper → (lower, glue nodes)`.
    pub(super) fn stack_pairs(&self) -> HashMap<usize, (usize, Vec<usize>)> {
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
                && a.same_semantics(b)
                && a.hidden == b.hidden
                && a.layout == b.layout
                && a.slots.seq_lens == b.slots.seq_lens
                && b.input_size == a.directions * a.hidden;
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
    pub(super) fn schedule(
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
