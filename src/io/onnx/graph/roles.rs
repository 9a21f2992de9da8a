//! Which graph inputs and outputs carry the sequence, the states and the lengths.

use std::collections::BTreeSet;

use super::super::rnn::RnnNode;
use super::{Node, NodeKind, Port, Roles, Source};

/// The roles of graph inputs and outputs.
pub(super) fn roles(
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
