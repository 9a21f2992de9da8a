#!/usr/bin/env python3
"""Writes the ONNX test fixtures under tests/onnx/fixtures/.

Run (from the repository root, in a virtual environment outside the repository):

    python3 -m venv ../onnx-venv
    ../onnx-venv/bin/pip install onnx onnxruntime numpy torch onnxscript
    ../onnx-venv/bin/python tests/onnx/generate.py            # every group
    ../onnx-venv/bin/python tests/onnx/generate.py random     # only some groups

The fixtures were generated with the versions recorded in tests/onnx/README.md
(onnx 1.23.2, onnxruntime 1.31.1, numpy 2.4.6, torch: see README). Without
torch the `torch` group is skipped (its existing fixtures are left alone).

What it writes: one directory per case, tests/onnx/fixtures/<group>/<case>/, with

    model.onnx     the model
    <name>.npy     one file per graph input fed at run time and per expected graph
                   output, named after the graph input / output (characters outside
                   [A-Za-z0-9_.-] replaced by '_'); float32, int32 for sequence_lens
    case.json      manifest: inputs, outputs, source, tolerance, roles, notes, ...

Groups:

    onnx_node  every LSTM/GRU/RNN case of ONNX's own operator tests
               (onnx.backend.test.case.node.{lstm,gru,rnn}), collected with
               onnx's own test-case collector, expected outputs = ONNX's numpy reference
    random     seeded single-node models over the attribute combinations
    torch      torch.onnx.export of nn.LSTM / nn.GRU / nn.RNN, expected = PyTorch
    keras      graphs in the pattern tf2onnx emits for Keras LSTM / GRU / SimpleRNN
    refuse     models the loader must refuse; case.json has "expect_error"

Every run is deterministic (fixed seeds, single-threaded onnxruntime); a group is
deleted and rewritten as a whole. The script checks every non-refusal fixture by
running it with onnxruntime (where onnxruntime accepts the model) and against the
numpy reference implementation below, and prints a summary.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import sys
import zlib
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
from onnx import TensorProto, helper, numpy_helper

HERE = Path(__file__).resolve().parent
FIXTURES = HERE / "fixtures"

# Tolerances written into case.json: |actual - expected| <= abs + rel * |expected|.
TOL = {"abs": 1e-5, "rel": 1e-4}
TOL_DEEP = {"abs": 3e-5, "rel": 1e-4}  # stacked layers

SUMMARY: list[str] = []
ort.set_default_logger_severity(4)


# --------------------------------------------------------------------------------------
# Writing cases
# --------------------------------------------------------------------------------------


def fname(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", name) + ".npy"


def fmt(x: float | None) -> float | None:
    return None if x is None else float(f"{x:.3g}")


def write_case(group, case, model, inputs, outputs, source, roles, notes, tolerance=None,
               extra=None, expect_error=None, raw_model: bytes | None = None):
    d = FIXTURES / group / case
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    data = raw_model if raw_model is not None else model.SerializeToString(deterministic=True)
    (d / "model.onnx").write_bytes(data)
    manifest = {"inputs": {}, "source": source, "notes": notes}
    for name, arr in inputs.items():
        arr = np.ascontiguousarray(arr)
        assert arr.dtype in (np.float32, np.int32, np.int64), (case, name, arr.dtype)
        np.save(d / fname(name), arr, allow_pickle=False)
        manifest["inputs"][name] = fname(name)
    if expect_error is None:
        manifest["outputs"] = {}
        for name, arr in outputs.items():
            arr = np.ascontiguousarray(arr, dtype=np.float32)
            assert np.all(np.isfinite(arr)), (case, name)
            np.save(d / fname(name), arr, allow_pickle=False)
            manifest["outputs"][name] = fname(name)
        manifest["tolerance"] = tolerance or TOL
    else:
        manifest["expect_error"] = expect_error
    manifest["roles"] = {k: v for k, v in roles.items() if v}
    if extra:
        manifest.update(extra)
    (d / "case.json").write_text(json.dumps(manifest, indent=1, sort_keys=True) + "\n")


# --------------------------------------------------------------------------------------
# onnxruntime
# --------------------------------------------------------------------------------------


def ort_session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    return ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])


def run_ort(model, feeds):
    """Returns ({name: array}, None) or (None, error text)."""
    try:
        s = ort_session(model)
        names = [o.name for o in s.get_outputs()]
        return dict(zip(names, s.run(None, feeds))), None
    except Exception as e:  # noqa: BLE001
        msg = str(e).strip().splitlines()
        msg = " ".join(m.strip() for m in msg if m.strip())
        msg = re.sub(r"\x1b\[[0-9;]*m", "", msg)
        msg = re.sub(r"/onnxruntime_src/\S+:\d+ ", "", msg)
        return None, msg[:400]


def max_diff(a: dict, b: dict) -> float:
    return max(float(np.max(np.abs(np.asarray(a[k], np.float64) - np.asarray(b[k], np.float64))))
               if np.asarray(a[k]).size else 0.0 for k in a)


# --------------------------------------------------------------------------------------
# numpy reference of ONNX LSTM / GRU / RNN (float64), full semantics
# --------------------------------------------------------------------------------------

# Activation functions as the operator definitions give them. The alpha/beta lists are
# consumed, in order over the activations of every direction, only by the activations
# that take the parameter (as onnxruntime does). Missing values take the default of the
# ONNX operator of the same name (LeakyRelu 0.01, ThresholdedRelu 1.0, HardSigmoid 0.2 /
# 0.5, Elu 1.0, Affine 1.0 / 0.0 as ONNX's former Affine op); ScaledTanh has none and
# must be given explicitly.
ACT_PARAMS = {  # name (lower case) -> (takes alpha, takes beta)
    "sigmoid": (False, False), "tanh": (False, False), "relu": (False, False),
    "affine": (True, True), "leakyrelu": (True, False), "thresholdedrelu": (True, False),
    "scaledtanh": (True, True), "hardsigmoid": (True, True), "elu": (True, False),
    "softsign": (False, False), "softplus": (False, False),
}
ONNX_DEFAULTS = {"leakyrelu": (0.01, None), "thresholdedrelu": (1.0, None),
                 "hardsigmoid": (0.2, 0.5), "elu": (1.0, None), "affine": (1.0, 0.0)}
ORT_DEFAULTS = {"leakyrelu": (0.01, 0.0), "hardsigmoid": (0.2, 0.5), "elu": (1.0, 0.0)}


def activation(name, x, alpha, beta):
    n = name.lower()
    if n == "sigmoid":
        return 1.0 / (1.0 + np.exp(-x))
    if n == "tanh":
        return np.tanh(x)
    if n == "relu":
        return np.maximum(x, 0.0)
    if n == "affine":
        return alpha * x + beta
    if n == "leakyrelu":
        return np.where(x >= 0, x, alpha * x)
    if n == "thresholdedrelu":
        return np.where(x > alpha, x, 0.0)
    if n == "scaledtanh":
        return alpha * np.tanh(beta * x)
    if n == "hardsigmoid":
        return np.clip(alpha * x + beta, 0.0, 1.0)
    if n == "elu":
        return np.where(x >= 0, x, alpha * (np.exp(np.minimum(x, 0.0)) - 1.0))
    if n == "softsign":
        return x / (1.0 + np.abs(x))
    if n == "softplus":
        return np.logaddexp(0.0, x)
    raise ValueError(f"unknown activation {name}")


def resolve_activations(names, alphas, betas, defaults):
    ai, bi, out = 0, 0, []
    for name in names:
        n = name.lower()
        ta, tb = ACT_PARAMS[n]
        da, db = defaults.get(n, (0.0, 0.0))
        a = b = 0.0
        if ta:
            if alphas is not None and ai < len(alphas):
                a = alphas[ai]
                ai += 1
            else:
                a = da
        if tb:
            if betas is not None and bi < len(betas):
                b = betas[bi]
                bi += 1
            else:
                b = db
        out.append((name, a, b))
    return out


DEFAULT_ACTS = {"LSTM": ["Sigmoid", "Tanh", "Tanh"], "GRU": ["Sigmoid", "Tanh"], "RNN": ["Tanh"]}
GATES = {"LSTM": 4, "GRU": 3, "RNN": 1}


def reference(op, attrs, X, W, R, B=None, seq=None, h0=None, c0=None, P=None, defaults=None):
    """ONNX LSTM/GRU/RNN in float64. Returns (Y, Y_h, Y_c or None) in the node's layout.

    Conventions where the operator text is silent, chosen as onnxruntime does:
    steps past a sequence's length give Y = 0; Y_h/Y_c are the states after the last
    valid step (reverse: after position 0); a length of 0 gives Y_h = Y_c = 0;
    `clip` bounds the gate pre-activations (peephole and biases included), not the
    cell state fed to h(); `input_forget` sets f = 1 - i.
    """
    defaults = ONNX_DEFAULTS if defaults is None else defaults
    X = np.asarray(X, np.float64)
    W = np.asarray(W, np.float64)
    R = np.asarray(R, np.float64)
    layout = attrs.get("layout", 0)
    direction = attrs.get("direction", "forward")
    D = 2 if direction == "bidirectional" else 1
    H = attrs.get("hidden_size", R.shape[-1])
    G = GATES[op]
    if layout == 1:
        X = X.swapaxes(0, 1)
        h0 = None if h0 is None else np.asarray(h0).swapaxes(0, 1)
        c0 = None if c0 is None else np.asarray(c0).swapaxes(0, 1)
    T, N, _ = X.shape
    B = np.zeros((D, 2 * G * H)) if B is None else np.asarray(B, np.float64)
    h0 = np.zeros((D, N, H)) if h0 is None else np.asarray(h0, np.float64)
    c0 = np.zeros((D, N, H)) if c0 is None else np.asarray(c0, np.float64)
    P = np.zeros((D, 3 * H)) if P is None else np.asarray(P, np.float64)
    seq = np.full(N, T) if seq is None else np.asarray(seq)
    names = attrs.get("activations", DEFAULT_ACTS[op] * D)
    k = len(DEFAULT_ACTS[op])
    acts = resolve_activations(names, attrs.get("activation_alpha"), attrs.get("activation_beta"),
                               defaults)
    clip = attrs.get("clip")
    cl = (lambda v: np.clip(v, -clip, clip)) if clip is not None else (lambda v: v)
    lbr = attrs.get("linear_before_reset", 0)
    input_forget = attrs.get("input_forget", 0)

    Y = np.zeros((T, D, N, H))
    Yh = np.zeros((D, N, H))
    Yc = np.zeros((D, N, H))
    for d in range(D):
        rev = direction == "reverse" or d == 1
        fa = acts[d * k:(d + 1) * k]

        def A(j, v, fa=fa):
            return activation(fa[j][0], v, fa[j][1], fa[j][2])

        Wd, Rd = W[d], R[d]
        Wb, Rb = B[d, :G * H], B[d, G * H:]
        for n in range(N):
            L = int(seq[n])
            h, c = h0[d, n].copy(), c0[d, n].copy()
            steps = range(L - 1, -1, -1) if rev else range(L)
            for t in steps:
                x = X[t, n]
                if op == "LSTM":
                    g = Wd @ x + Rd @ h + Wb + Rb
                    gi, go, gf, gc = np.split(g, 4)
                    pi, po, pf = np.split(P[d], 3)
                    i = A(0, cl(gi + pi * c))
                    f = 1.0 - i if input_forget else A(0, cl(gf + pf * c))
                    cc = A(1, cl(gc))
                    c = f * c + i * cc
                    o = A(0, cl(go + po * c))
                    h = o * A(2, c)
                elif op == "GRU":
                    wz, wr, wh = np.split(Wd, 3)
                    rz, rr, rh = np.split(Rd, 3)
                    wbz, wbr, wbh = np.split(Wb, 3)
                    rbz, rbr, rbh = np.split(Rb, 3)
                    z = A(0, cl(wz @ x + rz @ h + wbz + rbz))
                    r = A(0, cl(wr @ x + rr @ h + wbr + rbr))
                    if lbr:
                        hh = A(1, cl(wh @ x + r * (rh @ h + rbh) + wbh))
                    else:
                        hh = A(1, cl(wh @ x + rh @ (r * h) + rbh + wbh))
                    h = (1.0 - z) * hh + z * h
                else:
                    h = A(0, cl(Wd @ x + Rd @ h + Wb + Rb))
                Y[t, d, n] = h
            if L > 0:
                Yh[d, n], Yc[d, n] = h, c
    if layout == 1:
        Y = Y.transpose(2, 0, 1, 3)
        Yh = Yh.transpose(1, 0, 2)
        Yc = Yc.transpose(1, 0, 2)
    return Y, Yh, (Yc if op == "LSTM" else None)


# --------------------------------------------------------------------------------------
# Group onnx_node
# --------------------------------------------------------------------------------------

NODE_SLOTS = {
    "LSTM": ["X", "W", "R", "B", "sequence_lens", "initial_h", "initial_c", "P"],
    "GRU": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
    "RNN": ["X", "W", "R", "B", "sequence_lens", "initial_h"],
}
RUNTIME_SLOTS = {"X": "input", "sequence_lens": "lengths", "initial_h": "h0", "initial_c": "c0"}
OUTPUT_ROLES = ["output", "hn", "cn"]


def attrs_of(node):
    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def decode_attrs(a):
    out = {}
    for k, v in a.items():
        if isinstance(v, bytes):
            v = v.decode()
        elif isinstance(v, list) and v and isinstance(v[0], bytes):
            v = [x.decode() for x in v]
        out[k] = v
    return out


def gen_onnx_node():
    from onnx.backend.test.case.node import collect_testcases

    cases = [c for c in collect_testcases()
             if len(c.model.graph.node) == 1
             and c.model.graph.node[0].op_type in ("LSTM", "GRU", "RNN")]
    found = []
    for c in cases:
        orig = c.model
        node = orig.graph.node[0]
        op = node.op_type
        (ins, outs), = c.data_sets
        graph_inputs = [vi.name for vi in orig.graph.input]
        by_name = dict(zip(graph_inputs, ins))
        out_by_name = dict(zip([vi.name for vi in orig.graph.output], outs))
        # Slot of each input name
        slot_of = {}
        for slot, nm in zip(NODE_SLOTS[op], node.input):
            if nm:
                slot_of[nm] = slot
        # model.onnx: the same node and graph, with the constant inputs (W, R, B, P)
        # moved to initializers; X, sequence_lens, initial_h, initial_c stay inputs.
        m = onnx.ModelProto()
        m.CopyFrom(orig)
        g = m.graph
        keep = [vi for vi in g.input if slot_of[vi.name] in RUNTIME_SLOTS]
        del g.input[:]
        g.input.extend(keep)
        for nm, arr in by_name.items():
            if slot_of[nm] not in RUNTIME_SLOTS:
                g.initializer.append(numpy_helper.from_array(np.asarray(arr), nm))
        onnx.checker.check_model(m)
        run_inputs = {nm: np.asarray(by_name[nm]) for nm in by_name if slot_of[nm] in RUNTIME_SLOTS}
        roles = {RUNTIME_SLOTS[slot_of[nm]]: nm for nm in run_inputs}
        for role, nm in zip(OUTPUT_ROLES, node.output):
            if nm:
                roles[role] = nm
        # onnxruntime on the original model (all inputs fed) and on model.onnx
        notes = [f"ONNX operator test {c.name} (onnx {onnx.__version__}, "
                 f"onnx/backend/test/case/node/{ {'LSTM': 'lstm', 'GRU': 'gru', 'RNN': 'rnn'}[op]}.py), "
                 f"opset {m.opset_import[0].version}; expected outputs are the test's own numpy "
                 f"reference; W/R/B/P moved from graph inputs to initializers "
                 f"(original.onnx is the unmodified test model, original_inputs its full input set). "
                 f"ONNX's own comparison uses rtol {c.rtol}, atol {c.atol}."]
        extra = {"onnx_test": c.name}
        got, err = run_ort(m, run_inputs)
        if err:
            notes.append(f"onnxruntime {ort.__version__} refuses the model: {err}")
            extra["onnxruntime"] = {"refused": err}
            ort_note = "refused"
        else:
            d = max_diff(out_by_name, got)
            extra["onnxruntime"] = {"max_abs_diff": fmt(d)}
            ort_note = f"max|ort-ref| {d:.2e}"
            if d > 1e-5:
                notes.append(f"onnxruntime {ort.__version__} disagrees with the reference: max abs diff {d:.3g}")
        # own numpy reference
        a = decode_attrs(attrs_of(node))
        sl = {slot_of[nm]: by_name[nm] for nm in by_name}
        ry = reference(op, a, sl["X"], sl["W"], sl["R"], sl.get("B"), sl.get("sequence_lens"),
                       sl.get("initial_h"), sl.get("initial_c"), sl.get("P"))
        rd = max_diff(out_by_name, {nm: ry[i] for i, nm in enumerate(node.output) if nm})
        extra["numpy_reference_max_abs_diff"] = fmt(rd)
        d = FIXTURES / "onnx_node" / c.name
        write_case("onnx_node", c.name, m, run_inputs, out_by_name, "onnx-node-test", roles,
                   " ".join(notes), extra=extra)
        (d / "original.onnx").write_bytes(orig.SerializeToString(deterministic=True))
        orig_files = {}
        for nm, arr in by_name.items():
            f = fname(nm)
            if not (d / f).exists():
                np.save(d / f, np.ascontiguousarray(arr), allow_pickle=False)
            orig_files[nm] = f
        man = json.loads((d / "case.json").read_text())
        man["original"] = {"model": "original.onnx", "inputs": orig_files}
        (d / "case.json").write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
        found.append(c.name)
        SUMMARY.append(f"onnx_node/{c.name}: onnxruntime {ort_note}; own numpy reference {rd:.2e}")
    return found


# --------------------------------------------------------------------------------------
# Group random
# --------------------------------------------------------------------------------------

ALL_ACTS = ["Sigmoid", "Tanh", "Relu", "HardSigmoid", "LeakyRelu", "ThresholdedRelu",
            "ScaledTanh", "Affine", "Elu", "Softsign", "Softplus"]
# explicit parameters used when a case gives them
ALPHA = {"affine": 0.8, "leakyrelu": 0.07, "thresholdedrelu": 0.15, "scaledtanh": 1.5,
         "hardsigmoid": 0.3, "elu": 0.9}
BETA = {"affine": 0.1, "scaledtanh": 0.7, "hardsigmoid": 0.45}


def explicit_params(acts):
    al = [ALPHA[a.lower()] for a in acts if ACT_PARAMS[a.lower()][0]]
    be = [BETA[a.lower()] for a in acts if ACT_PARAMS[a.lower()][1]]
    return al, be


def seq_lengths(rng, N, T):
    if N == 1:
        return np.array([max(1, T - 1)], np.int32)
    L = rng.integers(1, T + 1, size=N)
    L[0] = T
    L[1] = max(1, T - 1 - int(rng.integers(0, max(1, T - 1))))
    if L[1] == T:
        L[1] = max(1, T - 1)
    return rng.permutation(L).astype(np.int32)


def build_single(op, attrs, arrays, outputs, dims_symbolic=False, opset=14, name="g"):
    """Single-node model. arrays: slot -> array (None: absent); runtime slots become graph
    inputs, W/R/B/P initializers. outputs: which of Y, Y_h, Y_c are produced."""
    slots = NODE_SLOTS[op]
    present = [s for s in slots if arrays.get(s) is not None]
    last = max(slots.index(s) for s in present)
    node_inputs = [s if arrays.get(s) is not None else "" for s in slots[:last + 1]]
    out_names = ["Y", "Y_h", "Y_c"][:3 if op == "LSTM" else 2]
    node_outputs = [n if outputs.get(n) else "" for n in out_names]
    while node_outputs and node_outputs[-1] == "":
        node_outputs.pop()
    node = helper.make_node(op, node_inputs, node_outputs, name=f"{op.lower()}_0", **attrs)
    layout = attrs.get("layout", 0)
    D = 2 if attrs.get("direction") == "bidirectional" else 1
    H = attrs.get("hidden_size") or arrays["R"].shape[-1]
    X = arrays["X"]
    T, N = (X.shape[1], X.shape[0]) if layout else (X.shape[0], X.shape[1])
    t_dim, n_dim = ("seq", "batch") if dims_symbolic else (T, N)
    ginputs, inits = [], []
    for s in present:
        a = arrays[s]
        if s in RUNTIME_SLOTS:
            if s == "X":
                shp = [n_dim, t_dim, a.shape[2]] if layout else [t_dim, n_dim, a.shape[2]]
            elif s == "sequence_lens":
                shp = [n_dim]
            else:
                shp = [n_dim, D, H] if layout else [D, n_dim, H]
            et = TensorProto.INT32 if s == "sequence_lens" else TensorProto.FLOAT
            ginputs.append(helper.make_tensor_value_info(s, et, shp))
        else:
            inits.append(numpy_helper.from_array(a.astype(np.float32), s))
    gouts = []
    for nm in node_outputs:
        if not nm:
            continue
        if nm == "Y":
            shp = [n_dim, t_dim, D, H] if layout else [t_dim, D, n_dim, H]
        else:
            shp = [n_dim, D, H] if layout else [D, n_dim, H]
        gouts.append(helper.make_tensor_value_info(nm, TensorProto.FLOAT, shp))
    g = helper.make_graph([node], name, ginputs, gouts, inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)], ir_version=8,
                          producer_name="wgpu-lstm-fixtures")
    onnx.checker.check_model(m, full_check=True)
    return m, node_outputs


def layout0_twin(op, attrs, arrays, outputs):
    """The same computation with layout = 0 (onnxruntime refuses layout = 1)."""
    a0 = dict(attrs)
    a0["layout"] = 0
    arr0 = dict(arrays)
    arr0["X"] = arrays["X"].swapaxes(0, 1)
    for s in ("initial_h", "initial_c"):
        if arrays.get(s) is not None:
            arr0[s] = arrays[s].swapaxes(0, 1)
    m0, _ = build_single(op, a0, arr0, outputs)
    feeds = {s: np.ascontiguousarray(arr0[s]) for s in RUNTIME_SLOTS if arr0.get(s) is not None}
    got, err = run_ort(m0, feeds)
    if got is None:
        return None, err
    back = {}
    for k, v in got.items():
        back[k] = v.transpose(2, 0, 1, 3) if k == "Y" else v.transpose(1, 0, 2)
    return back, err


def random_case(name, op, direction="forward", layout=0, bias=True, seq=False, init=False,
                peep=False, clip=None, input_forget=0, acts=None, params="explicit", lbr=None,
                outputs=("Y", "Y_h", "Y_c"), sizes=None, symbolic=False, hidden_attr=True,
                zero_len=False, all_short=False, wscale=0.6, expect="ort", notes="", opset=14):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    D = 2 if direction == "bidirectional" else 1
    G = GATES[op]
    if sizes is None:
        H = int(rng.choice([3, 5, 7]))
        I = int(rng.integers(2, 7))
        N = int(rng.integers(2 if (seq or zero_len) else 1, 5))
        T = int(rng.integers(3 if seq else 1, 8))
    else:
        T, N, I, H = sizes
    attrs = {"hidden_size": H} if hidden_attr else {}
    if direction != "forward":
        attrs["direction"] = direction
    if layout:
        attrs["layout"] = 1
    if clip is not None:
        attrs["clip"] = clip
    if input_forget:
        attrs["input_forget"] = 1
    if lbr is not None:
        attrs["linear_before_reset"] = lbr
    if acts is not None:
        attrs["activations"] = acts
        if params in ("explicit", "partial"):
            al, be = explicit_params(acts)
            if params == "partial":
                al, be = al[:1], be[:1]
            if al:
                attrs["activation_alpha"] = al
            if be:
                attrs["activation_beta"] = be
    f32 = np.float32
    arrays = {
        "X": rng.standard_normal((N, T, I) if layout else (T, N, I)).astype(f32),
        "W": rng.uniform(-wscale, wscale, (D, G * H, I)).astype(f32),
        "R": rng.uniform(-wscale, wscale, (D, G * H, H)).astype(f32),
        "B": rng.uniform(-0.4, 0.4, (D, 2 * G * H)).astype(f32) if bias else None,
    }
    if seq or zero_len:
        L = seq_lengths(rng, N, T)
        if all_short:
            L = np.minimum(L, T - 1).astype(np.int32)
        if zero_len:
            L[int(rng.integers(0, N))] = 0
        arrays["sequence_lens"] = L
    if init:
        shp = (N, D, H) if layout else (D, N, H)
        arrays["initial_h"] = rng.uniform(-0.8, 0.8, shp).astype(f32)
        if op == "LSTM":
            arrays["initial_c"] = rng.uniform(-0.8, 0.8, shp).astype(f32)
    if peep:
        arrays["P"] = rng.uniform(-0.5, 0.5, (D, 3 * H)).astype(f32)
    outs = {k: True for k in outputs if (op == "LSTM" or k != "Y_c")}
    model, node_outputs = build_single(op, attrs, arrays, outs, dims_symbolic=symbolic,
                                       name=name, opset=opset)
    feeds = {s: arrays[s] for s in RUNTIME_SLOTS if arrays.get(s) is not None}
    ry, rh, rc = reference(op, attrs, arrays["X"], arrays["W"], arrays["R"], arrays["B"],
                           arrays.get("sequence_lens"), arrays.get("initial_h"),
                           arrays.get("initial_c"), arrays.get("P"))
    ref = {k: v for k, v in zip(["Y", "Y_h", "Y_c"], [ry, rh, rc]) if k in node_outputs}
    got, err = run_ort(model, feeds)
    extra = {}
    info = []
    via = None
    if got is None and layout == 1 and hidden_attr:
        got, err2 = layout0_twin(op, attrs, arrays, outs)
        if got is not None:
            via = "layout-0 twin"
            got = {k: v for k, v in got.items() if k in ref}
    if got is None:
        extra["onnxruntime"] = {"refused": err}
        info.append(f"onnxruntime {ort.__version__} refuses the model ({err})")
        expect = "numpy"
    else:
        d = max_diff(ref, got)
        extra["onnxruntime"] = {"max_abs_diff_vs_numpy_reference": fmt(d)}
        if via:
            extra["onnxruntime"]["refused"] = err
            extra["onnxruntime"]["ran"] = "the same model with layout = 0 on transposed inputs"
            info.append(f"onnxruntime {ort.__version__} refuses layout = 1; it ran the layout-0 twin "
                        f"on transposed inputs (outputs transposed back)")
        if d > 1e-4:
            info.append(f"onnxruntime disagrees with the numpy reference (max abs diff {d:.3g})")
    if expect == "ort" and got is not None:
        expected = {k: got[k] for k in ref}
        extra["expected_from"] = "onnxruntime" + (" (layout-0 twin)" if via else "")
    else:
        expected = ref
        extra["expected_from"] = "numpy reference (generate.py)"
    roles = {RUNTIME_SLOTS[s]: s for s in feeds}
    for role, nm in zip(OUTPUT_ROLES, ["Y", "Y_h", "Y_c"]):
        if nm in node_outputs:
            roles[role] = nm
    desc = [f"{op} direction={direction} layout={layout}",
            f"T={arrays['X'].shape[1] if layout else arrays['X'].shape[0]} "
            f"batch={arrays['X'].shape[0] if layout else arrays['X'].shape[1]} "
            f"input={arrays['X'].shape[2]} hidden={arrays['R'].shape[-1]}"]
    if notes:
        desc.append(notes)
    write_case("random", name, model, feeds, expected,
               "onnxruntime-random", roles, "; ".join(desc + info) + ".", extra=extra)
    SUMMARY.append(f"random/{name}: expected from {extra['expected_from']}; "
                   + (f"onnxruntime refused" if got is None else
                      f"max|ort-numpy| {max_diff(ref, got):.2e}" + (" via layout-0 twin" if via else "")))
    return extra


def gen_random():
    dirs = ["forward", "reverse", "bidirectional"]
    n = 0
    for op in ["LSTM", "GRU", "RNN"]:
        o = op.lower()
        for d in dirs:
            for lay in (0, 1):
                # everything present: B, ragged sequence_lens, initial states, all outputs
                random_case(f"{o}_{d}_layout{lay}_full", op, d, lay, bias=True, seq=True, init=True,
                            symbolic=(lay == 1), notes="B, ragged sequence_lens, initial states")
                # nothing optional: no B, no lengths, no states; a subset of outputs
                outs = {("forward", 0): ("Y",), ("forward", 1): ("Y_h",),
                        ("reverse", 0): ("Y_h", "Y_c") if op == "LSTM" else ("Y_h",),
                        ("reverse", 1): ("Y",), ("bidirectional", 0): ("Y_h",),
                        ("bidirectional", 1): ("Y", "Y_c") if op == "LSTM" else ("Y",)}[(d, lay)]
                random_case(f"{o}_{d}_layout{lay}_bare", op, d, lay, bias=False, outputs=outs,
                            symbolic=(lay == 0), notes="no B, no sequence_lens, no initial states; "
                            "outputs " + ", ".join(outs))
                n += 2
    # GRU linear_before_reset = 1
    for d in dirs:
        for lay in (0, 1):
            random_case(f"gru_lbr1_{d}_layout{lay}", "GRU", d, lay, seq=(lay == 0), init=True,
                        lbr=1, notes="linear_before_reset=1")
    random_case("gru_lbr0_explicit_bidirectional", "GRU", "bidirectional", 0, seq=True, init=True,
                lbr=0, notes="linear_before_reset=0 given explicitly")
    # LSTM peepholes, input_forget, clip
    random_case("lstm_peephole_forward", "LSTM", "forward", 0, seq=True, init=True, peep=True,
                notes="peepholes P")
    random_case("lstm_peephole_reverse_layout1", "LSTM", "reverse", 1, seq=True, init=True,
                peep=True, notes="peepholes P")
    random_case("lstm_peephole_bidirectional", "LSTM", "bidirectional", 0, seq=True, init=True,
                peep=True, notes="peepholes P")
    random_case("lstm_input_forget_forward", "LSTM", "forward", 0, init=True, input_forget=1,
                notes="input_forget=1 (f = 1 - i)")
    random_case("lstm_input_forget_peephole_bidirectional", "LSTM", "bidirectional", 0, seq=True,
                init=True, peep=True, input_forget=1, notes="input_forget=1 with peepholes")
    random_case("lstm_clip_forward", "LSTM", "forward", 0, init=True, peep=True, clip=0.7,
                wscale=2.0, notes="clip=0.7 with large weights so that clipping acts")
    random_case("lstm_clip_input_forget_peephole_bidirectional_layout1", "LSTM", "bidirectional", 1,
                seq=True, init=True, peep=True, clip=1.1, input_forget=1, wscale=2.0,
                notes="clip=1.1, input_forget, peepholes")
    random_case("gru_clip_bidirectional", "GRU", "bidirectional", 0, seq=True, init=True, clip=0.8,
                wscale=2.0, notes="clip=0.8, linear_before_reset=0")
    random_case("gru_clip_lbr1_forward", "GRU", "forward", 0, init=True, clip=0.6, lbr=1,
                wscale=2.0, notes="clip=0.6, linear_before_reset=1")
    random_case("rnn_clip_reverse", "RNN", "reverse", 0, seq=True, init=True, clip=0.5, wscale=2.0,
                notes="clip=0.5")
    # activations, alpha/beta given explicitly (consumed only by activations taking them)
    act_cases = [
        ("LSTM", "bidirectional", ["HardSigmoid", "Tanh", "Softsign", "Sigmoid", "ScaledTanh", "Elu"], None),
        ("LSTM", "bidirectional", ["Sigmoid", "Relu", "Affine", "HardSigmoid", "LeakyRelu", "ThresholdedRelu"], None),
        ("LSTM", "forward", ["Softsign", "Softplus", "Tanh"], None),
        ("LSTM", "reverse", ["Sigmoid", "Elu", "LeakyRelu"], None),
        ("GRU", "bidirectional", ["HardSigmoid", "Softsign", "Sigmoid", "ScaledTanh"], 0),
        ("GRU", "bidirectional", ["Sigmoid", "Relu", "Softsign", "Affine"], 1),
        ("GRU", "bidirectional", ["HardSigmoid", "LeakyRelu", "Sigmoid", "ThresholdedRelu"], 0),
        ("GRU", "forward", ["Sigmoid", "Elu"], 1),
        ("GRU", "reverse", ["Softplus", "Tanh"], 0),
        ("RNN", "bidirectional", ["Relu", "Sigmoid"], None),
        ("RNN", "bidirectional", ["LeakyRelu", "Tanh"], None),
        ("RNN", "bidirectional", ["ThresholdedRelu", "ScaledTanh"], None),
        ("RNN", "bidirectional", ["Affine", "HardSigmoid"], None),
        ("RNN", "bidirectional", ["Elu", "Softsign"], None),
        ("RNN", "forward", ["Softplus"], None),
    ]
    covered = {}
    for i, (op, d, acts, lbr) in enumerate(act_cases):
        nm = f"{op.lower()}_act_{d}_" + "_".join(a.lower() for a in acts)
        lay = i % 2
        random_case(nm, op, d, lay, seq=(i % 3 == 0), init=(i % 3 != 2), lbr=lbr, acts=acts,
                    wscale=0.5, notes="activations " + ",".join(acts) +
                    " with explicit activation_alpha/activation_beta")
        for a in acts:
            covered.setdefault(op, set()).add(a)
    for op in covered:
        assert covered[op] == set(ALL_ACTS), (op, set(ALL_ACTS) - covered[op])
    # defaults of alpha/beta where onnxruntime and the operator definitions agree
    random_case("lstm_act_default_params_forward", "LSTM", "forward", 0, init=True,
                acts=["HardSigmoid", "LeakyRelu", "Elu"], params="none",
                notes="activations HardSigmoid, LeakyRelu, Elu without activation_alpha/beta: "
                "defaults 0.2/0.5, 0.01, 1.0")
    random_case("gru_act_default_params_bidirectional", "GRU", "bidirectional", 0, init=True,
                acts=["HardSigmoid", "LeakyRelu", "Sigmoid", "Elu"], params="none",
                notes="defaults for HardSigmoid, LeakyRelu, Elu")
    # defaults where onnxruntime differs from the operator definitions: expected = numpy
    random_case("lstm_act_default_params_thresholdedrelu_affine", "LSTM", "forward", 0, init=True,
                acts=["Sigmoid", "ThresholdedRelu", "Affine"], params="none", expect="numpy",
                notes="ThresholdedRelu and Affine without activation_alpha/beta; expected uses the "
                "ONNX operator defaults (ThresholdedRelu alpha=1.0; Affine alpha=1.0, beta=0.0 as "
                "ONNX's former Affine op), while onnxruntime uses alpha=0 (and beta=0)")
    # partial alpha/beta lists: the given values go to the first activations taking them
    random_case("lstm_act_partial_params_forward", "LSTM", "forward", 0, init=True,
                acts=["HardSigmoid", "LeakyRelu", "Elu"], params="partial",
                notes="activation_alpha=[0.3], activation_beta=[0.45]: HardSigmoid takes both, "
                "LeakyRelu and Elu keep their defaults 0.01 and 1.0")
    random_case("rnn_act_default_params_bidirectional", "RNN", "bidirectional", 0, init=True,
                acts=["LeakyRelu", "Tanh"], params="none", notes="LeakyRelu default alpha in the "
                "forward direction, Tanh in the reverse")
    # sequence length corner cases
    random_case("lstm_seq_all_shorter_bidirectional", "LSTM", "bidirectional", 0, seq=True,
                init=True, all_short=True, sizes=(6, 3, 4, 5),
                notes="every length < T: trailing steps of Y are zero for every batch entry")
    random_case("gru_seq_reverse_batch1", "GRU", "reverse", 0, seq=True, init=True,
                sizes=(5, 1, 3, 3), notes="batch 1 with a length shorter than T")
    random_case("lstm_seq_zero_length_bidirectional", "LSTM", "bidirectional", 0, zero_len=True,
                init=True, sizes=(4, 3, 2, 3),
                notes="one sequence of length 0; the operator text is silent, onnxruntime gives "
                "Y = 0 for it and Y_h = Y_c = 0 (not the initial state); expected follows "
                "onnxruntime (it accepts 0 <= length <= T)")
    random_case("rnn_seq_zero_length_forward", "RNN", "forward", 0, zero_len=True, init=True,
                sizes=(3, 2, 2, 3), notes="one sequence of length 0 (onnxruntime convention: "
                "Y_h = 0)")
    random_case("lstm_t1_batch1", "LSTM", "forward", 0, init=True, sizes=(1, 1, 2, 3),
                notes="T = 1, batch 1")
    random_case("gru_t1_bidirectional_layout1", "GRU", "bidirectional", 1, init=True,
                sizes=(1, 4, 6, 7), notes="T = 1")
    random_case("lstm_no_hidden_size_attr", "LSTM", "forward", 0, init=True, hidden_attr=False,
                notes="no hidden_size attribute (optional in the operator); the hidden size "
                "comes from R's shape")
    random_case("gru_no_hidden_size_attr_bidirectional", "GRU", "bidirectional", 0,
                hidden_attr=False, notes="no hidden_size attribute")
    random_case("lstm_opset22_bidirectional", "LSTM", "bidirectional", 0, init=True, seq=True,
                peep=True, opset=22, notes="opset 22 (LSTM-22, same semantics as LSTM-14)")


# --------------------------------------------------------------------------------------
# main
# --------------------------------------------------------------------------------------

GROUPS = {"onnx_node": gen_onnx_node, "random": gen_random}


def main(argv):
    groups = argv or list(GROUPS)
    for g in groups:
        if g not in GROUPS:
            sys.exit(f"unknown group {g}; groups: {', '.join(GROUPS)}")
    for g in groups:
        d = FIXTURES / g
        if d.exists():
            shutil.rmtree(d)
        d.mkdir(parents=True)
        print(f"== {g}", flush=True)
        GROUPS[g]()
    print("\n".join(SUMMARY))


if __name__ == "__main__":
    main(sys.argv[1:])
