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
    if model is not None:
        manifest["ops"] = sorted({(n.domain + "." if n.domain not in ("", "ai.onnx") else "")
                                  + n.op_type for n in model.graph.node})
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
        return np.where(x >= alpha, x, 0.0)
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
                 f"(original.onnx is the unmodified test model, original.inputs its full input set). "
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

# --------------------------------------------------------------------------------------
# Group torch
# --------------------------------------------------------------------------------------


def strip_metadata(model):
    """Drops exporter stack traces / doc strings (they hold local file paths)."""
    del model.metadata_props[:]
    model.graph.doc_string = ""
    for n in model.graph.node:
        del n.metadata_props[:]
        n.doc_string = ""
    for vi in list(model.graph.value_info):
        del vi.metadata_props[:]
    return model


def gen_torch():
    try:
        import torch
    except ImportError:
        print("torch is not installed: skipping the torch group")
        return False
    import io
    import warnings

    warnings.simplefilter("ignore")
    nn = torch.nn
    torch.use_deterministic_algorithms(True)
    torch.set_num_threads(1)

    class Wrap(nn.Module):
        def __init__(self, rnn, states):
            super().__init__()
            self.rnn = rnn
            self.states = states
            self.lstm = isinstance(rnn, nn.LSTM)

        def forward(self, x):
            out, hid = self.rnn(x)
            if self.lstm:
                return out, hid[0], hid[1]
            return out, hid

    class WrapH(Wrap):
        def forward(self, x, h0):
            return self.rnn(x, h0)

    class WrapHC(Wrap):
        def forward(self, x, h0, c0):
            out, (hn, cn) = self.rnn(x, (h0, c0))
            return out, hn, cn

    specs = [
        # name, class, kwargs, states, exporter, extra export kwargs
        ("lstm_1layer", nn.LSTM, dict(input_size=3, hidden_size=7), False, "legacy", {}),
        ("lstm_2layer_bidirectional_batch_first_states", nn.LSTM,
         dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True),
         True, "legacy", {}),
        ("lstm_3layer_states", nn.LSTM, dict(input_size=2, hidden_size=3, num_layers=3),
         True, "legacy", {}),
        ("lstm_2layer_bidirectional_no_bias", nn.LSTM,
         dict(input_size=5, hidden_size=3, num_layers=2, bidirectional=True, bias=False),
         False, "legacy", {}),
        ("lstm_2layer_bidirectional_initializers_as_inputs", nn.LSTM,
         dict(input_size=3, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True),
         True, "legacy", {"keep_initializers_as_inputs": True}),
        # proj_size: the legacy exporter refuses it ("LSTMs with projections" unsupported) and
        # the dynamo exporter (torch 2.15) writes a model onnxruntime rejects (Concat of
        # tensors of different rank, projection weights lost); ONNX's LSTM has no projection.
        # Not a fixture; see README.
        ("gru_1layer_batch_first", nn.GRU, dict(input_size=6, hidden_size=5, batch_first=True),
         False, "legacy", {}),
        ("gru_2layer_bidirectional_states", nn.GRU,
         dict(input_size=3, hidden_size=7, num_layers=2, bidirectional=True), True, "legacy", {}),
        ("gru_3layer_bidirectional_batch_first", nn.GRU,
         dict(input_size=2, hidden_size=3, num_layers=3, bidirectional=True, batch_first=True),
         False, "legacy", {}),
        ("rnn_tanh_2layer_bidirectional_batch_first_states", nn.RNN,
         dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True),
         True, "legacy", {}),
        ("rnn_relu_3layer", nn.RNN, dict(input_size=3, hidden_size=7, num_layers=3,
                                          nonlinearity="relu"), False, "legacy", {}),
        ("rnn_relu_bidirectional_states", nn.RNN,
         dict(input_size=5, hidden_size=3, bidirectional=True, nonlinearity="relu"),
         True, "legacy", {}),
        ("dynamo_lstm_2layer_bidirectional_batch_first_states", nn.LSTM,
         dict(input_size=4, hidden_size=5, num_layers=2, bidirectional=True, batch_first=True),
         True, "dynamo", {}),
        ("dynamo_gru_2layer", nn.GRU, dict(input_size=3, hidden_size=5, num_layers=2),
         False, "dynamo", {}),
        # The dynamo exporter unrolls nn.RNN (tanh and relu) into MatMul/Add/SequenceAt for
        # the traced T while declaring T dynamic: written to the refuse group.
        ("dynamo_rnn_relu_bidirectional_batch_first_states", nn.RNN,
         dict(input_size=3, hidden_size=5, bidirectional=True, batch_first=True,
              nonlinearity="relu"), True, "dynamo", {}),
    ]
    for old in (FIXTURES / "refuse").glob("torch_*"):
        shutil.rmtree(old)
    for name, cls, kw, states, exporter, ekw in specs:
        torch.manual_seed(zlib.crc32(name.encode()))
        rnn = cls(**kw).eval()
        mod = (WrapHC if cls is nn.LSTM else WrapH)(rnn, states) if states else Wrap(rnn, states)
        mod.eval()
        bf = kw.get("batch_first", False)
        D = 2 if kw.get("bidirectional") else 1
        L = kw.get("num_layers", 1)
        H = kw["hidden_size"]
        Hout = kw.get("proj_size", 0) or H
        lstm = cls is nn.LSTM

        def make(Nb, T, rng):
            x = torch.tensor(rng.standard_normal((Nb, T, kw["input_size"]) if bf
                                                 else (T, Nb, kw["input_size"])), dtype=torch.float32)
            st = []
            if states:
                st.append(torch.tensor(rng.uniform(-0.8, 0.8, (L * D, Nb, Hout)), dtype=torch.float32))
                if lstm:
                    st.append(torch.tensor(rng.uniform(-0.8, 0.8, (L * D, Nb, H)), dtype=torch.float32))
            return x, st

        rng = np.random.default_rng(zlib.crc32(name.encode()))
        # traced with batch 2, T 4 (dynamo: batch 6, T 9, sizes no other dimension has, as
        # torch.export specialises a dynamic size equal to a static one); fixture batch 3, T 5
        tb, tt = (2, 4) if exporter == "legacy" else (6, 9)
        dx, dst = make(tb, tt, rng)
        x, st = make(3, 5, rng)         # fixture: batch 3, T 5 (dynamic axes)
        in_names = ["input"] + (["h0", "c0"] if lstm else ["h0"])[:len(st)]
        out_names = ["output", "hn", "cn"] if lstm else ["output", "hn"]
        seq_axes = {0: "batch", 1: "seq"} if bf else {0: "seq", 1: "batch"}
        dyn = {"input": seq_axes, "output": seq_axes}
        for n_ in in_names[1:] + out_names[1:]:
            dyn[n_] = {1: "batch"}
        notes = [f"torch.nn.{cls.__name__}({', '.join(f'{k}={v!r}' for k, v in kw.items())}); "
                 f"exported with torch {torch.__version__} "
                 + ("legacy TorchScript exporter (dynamo=False), opset 17, dynamic_axes batch/seq"
                    if exporter == "legacy" else "dynamo exporter (dynamo=True), dynamic_shapes batch/seq")
                 + (f", {', '.join(f'{k}={v}' for k, v in ekw.items())}" if ekw else "")
                 + f"; traced with batch {tb}, T {tt}, the fixture runs batch 3, T 5; expected outputs are PyTorch's"]
        try:
            if exporter == "legacy":
                f = io.BytesIO()
                torch.onnx.export(mod, (dx, *dst), f, dynamo=False, opset_version=17,
                                  input_names=in_names, output_names=out_names,
                                  dynamic_axes=dyn, **ekw)
                model = onnx.load_from_string(f.getvalue())
            else:
                # Dim.AUTO: explicit Dims with min=1 make torch.export specialise seq when
                # initial states are given
                A = torch.export.Dim.AUTO
                ds = ({0: A, 1: A},) + tuple({1: A} for _ in dst)
                prog = torch.onnx.export(mod, (dx, *dst), dynamo=True, input_names=in_names,
                                         output_names=out_names, dynamic_shapes=ds,
                                         verbose=False)
                model = prog.model_proto
        except Exception as e:  # noqa: BLE001
            msg = re.sub(r"\x1b\[[0-9;]*m", "", " ".join(str(e).split()))[:600]
            SUMMARY.append(f"torch/{name}: export failed: {msg}")
            (FIXTURES / "torch" / "EXPORT_FAILURES.txt").open("a").write(f"{name}: {msg}\n")
            continue
        strip_metadata(model)
        onnx.checker.check_model(model)
        xdims = [d.dim_param or d.dim_value for d in model.graph.input[0].type.tensor_type.shape.dim]
        notes.append(f"graph input dims {xdims}")
        if exporter != "legacy":
            assert all(isinstance(v, str) for v in xdims[:2]), (name, xdims)
        with torch.no_grad():
            ref = mod(x, *st)
        expected = {n_: r.numpy().astype(np.float32) for n_, r in zip(out_names, ref)}
        feeds = {n_: t.numpy() for n_, t in zip(in_names, [x, *st])}
        gin = [vi.name for vi in model.graph.input]
        assert gin[:len(in_names)] == in_names, (name, gin)
        feeds_all = dict(feeds)
        if "MatMul" in {n.op_type for n in model.graph.node}:
            first = next(n for n in model.graph.node if n.op_type == "MatMul")
            got, err = run_ort(model, feeds)
            write_case("refuse", "torch_" + name, model, feeds_all, {}, "torch-export",
                       {"input": "input", "h0": "h0" if states else None, "output": "output",
                        "hn": "hn"},
                       "; ".join(notes) + "; the exporter unrolled the recurrence into MatMul/Add/"
                       "SequenceAt nodes for the traced length (T 9) although the graph declares "
                       "T dynamic, so there is no RNN node to run; the loader must refuse it, naming "
                       f"the first unsupported node ({first.name}, MatMul). onnxruntime on batch 3, "
                       f"T 5: {err or 'ran'}.", expect_error="MatMul",
                       extra={"exporter": exporter, "torch": torch.__version__})
            SUMMARY.append(f"torch/{name}: unrolled by the exporter -> refuse/torch_{name}")
            continue
        got, err = run_ort(model, feeds)
        extra = {"exporter": exporter, "torch": torch.__version__}
        if got is None:
            extra["onnxruntime"] = {"refused": err}
            notes.append(f"onnxruntime {ort.__version__} refuses it: {err}")
            ortnote = "onnxruntime refused"
        else:
            dd = max_diff(expected, got)
            extra["onnxruntime"] = {"max_abs_diff_vs_torch": fmt(dd)}
            ortnote = f"max|ort-torch| {dd:.2e}"
            if dd > 1e-5:
                notes.append(f"onnxruntime disagrees with PyTorch (max abs diff {dd:.3g})")
        roles = {"input": "input", "h0": "h0" if states else None,
                 "c0": "c0" if (states and lstm) else None,
                 "output": "output", "hn": "hn", "cn": "cn" if lstm else None}
        if len(gin) > len(in_names):
            notes.append(f"graph inputs {gin[len(in_names):]} are backed by initializers of the "
                         f"same name (defaults; not fed)")
        write_case("torch", name, model, feeds_all, expected, "torch-export", roles,
                   "; ".join(notes) + ".", tolerance=TOL_DEEP if L > 1 else TOL, extra=extra)
        SUMMARY.append(f"torch/{name}: {ortnote}")
    return True


# --------------------------------------------------------------------------------------
# Group keras: graphs in the pattern tf2onnx emits for Keras recurrent layers
# --------------------------------------------------------------------------------------

KERAS_OPSET = 15
INT64_MAX = np.iinfo(np.int64).max


def c64(vals):
    return np.asarray(vals, np.int64)


class GB:
    """Tiny graph builder: nodes, initializers, constant names."""

    def __init__(self, name):
        self.name = name
        self.nodes = []
        self.inits = []
        self.count = {}

    def uniq(self, base):
        self.count[base] = self.count.get(base, 0) + 1
        return f"{base}__{self.count[base]}"

    def const(self, arr, base="const"):
        nm = self.uniq(base)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), nm))
        return nm

    def op(self, op_type, inputs, n_out=1, name=None, domain=None, **attrs):
        nm = name or self.uniq(op_type)
        outs = [f"{nm}:{i}" for i in range(n_out)]
        kw = {"domain": domain} if domain else {}
        self.nodes.append(helper.make_node(op_type, inputs, outs, name=nm, **attrs, **kw))
        return outs[0] if n_out == 1 else outs

    def model(self, inputs, outputs, opset=KERAS_OPSET, extra_opsets=()):
        g = helper.make_graph(self.nodes, self.name, inputs, outputs, self.inits)
        ops = [helper.make_opsetid("", opset)] + [helper.make_opsetid(d, v) for d, v in extra_opsets]
        return helper.make_model(g, opset_imports=ops, ir_version=8, producer_name="tf2onnx-pattern")


def keras_lstm_weights(rng, I, H, D=1, bias=True):
    """Keras kernel [I,4H] / recurrent [H,4H] / bias [4H] (gates i,f,c,o), converted as
    tf2onnx does: rows reordered to i,o,f,c, W = kernel^T, Rb = 0."""
    Ws, Rs, Bs = [], [], []
    for _ in range(D):
        k = rng.uniform(-0.5, 0.5, (I, 4 * H))
        r = rng.uniform(-0.5, 0.5, (H, 4 * H))
        b = rng.uniform(-0.3, 0.3, 4 * H) if bias else np.zeros(4 * H)
        b[H:2 * H] += 1.0  # unit_forget_bias
        reorder = lambda m: np.concatenate([np.split(m, 4, axis=-1)[j] for j in (0, 3, 1, 2)], -1)
        Ws.append(reorder(k).T)
        Rs.append(reorder(r).T)
        Bs.append(np.concatenate([reorder(b), np.zeros(4 * H)]))
    f = np.float32
    return np.stack(Ws).astype(f), np.stack(Rs).astype(f), np.stack(Bs).astype(f)


def keras_gru_weights(rng, I, H, reset_after=True):
    """Keras GRU kernel [I,3H] (gates z,r,h), bias [2,3H] with reset_after (input and
    recurrent biases); ONNX order z,r,h is the same."""
    k = rng.uniform(-0.5, 0.5, (I, 3 * H))
    r = rng.uniform(-0.5, 0.5, (H, 3 * H))
    b = rng.uniform(-0.3, 0.3, (2, 3 * H)) if reset_after else np.stack(
        [rng.uniform(-0.3, 0.3, 3 * H), np.zeros(3 * H)])
    f = np.float32
    return k.T[None].astype(f), r.T[None].astype(f), b.reshape(1, 6 * H).astype(f)


def keras_rnn_weights(rng, I, H):
    k = rng.uniform(-0.5, 0.5, (I, H))
    r = rng.uniform(-0.5, 0.5, (H, H))
    b = rng.uniform(-0.3, 0.3, H)
    f = np.float32
    return k.T[None].astype(f), r.T[None].astype(f), np.concatenate([b, np.zeros(H)])[None].astype(f)


def vi(name, dims, et=TensorProto.FLOAT):
    return helper.make_tensor_value_info(name, et, dims)


def zero_state(gb, x_name, H):
    """Keras' zero initial state for a dynamic batch: tf.zeros([batch, units]) ->
    Shape, Gather, Unsqueeze, Concat, ConstantOfShape, then Unsqueeze to [1, batch, H]."""
    shp = gb.op("Shape", [x_name])
    b = gb.op("Gather", [shp, gb.const(c64(0), "zero")], axis=0)
    b1 = gb.op("Unsqueeze", [b, gb.const(c64([0]), "axes")])
    full = gb.op("Concat", [b1, gb.const(c64([H]), "units")], axis=0)
    z = gb.op("ConstantOfShape", [full], value=numpy_helper.from_array(np.zeros(1, np.float32)))
    return gb.op("Unsqueeze", [z, gb.const(c64([0]), "axes")])


def seq_out(gb, y):
    """Y [T,1,B,H] -> Squeeze(axis 1) -> Transpose -> [B,T,H] (return_sequences=True)."""
    sq = gb.op("Squeeze", [y, gb.const(c64([1]), "axes")])
    return sq, gb.op("Transpose", [sq], perm=[1, 0, 2])


def last_out(gb, sq):
    """outputs[-1] of the time-major sequence: Slice(-1:) then Squeeze(axis 0)."""
    sl = gb.op("Slice", [sq, gb.const(c64([-1]), "starts"), gb.const(c64([INT64_MAX]), "ends"),
                         gb.const(c64([0]), "axes")])
    return gb.op("Squeeze", [sl, gb.const(c64([0]), "axes")])


def finish_keras(name, gb, ginputs, feeds, outputs, ref, roles, notes, requires=None):
    """outputs: list of (graph output name, internal tensor name, dims)."""
    for out_name, tensor, _ in outputs:
        gb.nodes.append(helper.make_node("Identity", [tensor], [out_name], name=f"{out_name}_identity"))
    model = gb.model(ginputs, [vi(o, d) for o, _, d in outputs])
    onnx.checker.check_model(model, full_check=True)
    got, err = run_ort(model, feeds)
    assert got is not None, (name, err)
    d = max_diff({k: ref[k] for k in got}, got)
    extra = {"expected_from": "onnxruntime",
             "onnxruntime": {"max_abs_diff_vs_numpy_reference": fmt(d)}}
    if requires:
        extra["requires_ops"] = requires
    write_case("keras", name, model, feeds, got, "keras-pattern", roles, notes, extra=extra)
    SUMMARY.append(f"keras/{name}: max|ort-numpy| {d:.2e}")


def gen_keras():
    f32 = np.float32
    common = ("Graph built with onnx.helper in the pattern tf2onnx (lstm_tf2_rewriter / "
              "gru_tf2_rewriter) emits for a Keras layer with batch-major input: ")

    # 1. LSTM, return_sequences=True, zero initial state built from the batch size
    name = "keras_lstm_return_sequences"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 3, 5, 4, 5
    W, R, B = keras_lstm_weights(rng, I, H)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    h0 = zero_state(gb, "input_1", H)
    c0 = zero_state(gb, "input_1", H)
    y = gb.op("LSTM", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B"), "", h0, c0],
              n_out=3, name="lstm/LSTM", hidden_size=H, activations=["Sigmoid", "Tanh", "Tanh"])[0]
    _, out = seq_out(gb, y)
    ry, _, _ = reference("LSTM", {"hidden_size": H}, x.transpose(1, 0, 2), W, R, B)
    finish_keras(name, gb, [vi("input_1", ["unk__1", "unk__2", I])], {"input_1": x},
                 [("lstm", out, ["unk__1", "unk__2", H])],
                 {"lstm": ry[:, 0].transpose(1, 0, 2)},
                 {"input": "input_1", "output": "lstm"},
                 common + "Keras LSTM(5, return_sequences=True): Transpose [B,T,I]->[T,B,I], LSTM "
                 "with W/R/B converted from Keras kernel/recurrent_kernel/bias (gates i,f,c,o -> "
                 "i,o,f,c, Rb = 0), zero initial states built as tf.zeros([batch, units]) "
                 "(Shape, Gather, Unsqueeze, Concat, ConstantOfShape, Unsqueeze), Y -> Squeeze(1) "
                 "-> Transpose -> [B,T,H]; dynamic batch and time.")

    # 2. LSTM, return_sequences=False, no initial state inputs: outputs[-1]
    name = "keras_lstm_last_output"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 2, 6, 3, 7
    W, R, B = keras_lstm_weights(rng, I, H)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    y = gb.op("LSTM", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B")], n_out=3,
              name="lstm_1/LSTM", hidden_size=H, activations=["Sigmoid", "Tanh", "Tanh"])[0]
    sq = gb.op("Squeeze", [y, gb.const(c64([1]), "axes")])
    out = last_out(gb, sq)
    ry, _, _ = reference("LSTM", {"hidden_size": H}, x.transpose(1, 0, 2), W, R, B)
    finish_keras(name, gb, [vi("input_1", ["unk__1", T, I])], {"input_1": x},
                 [("lstm_1", out, ["unk__1", H])], {"lstm_1": ry[-1, 0]},
                 {"input": "input_1", "output": "lstm_1"},
                 common + "Keras LSTM(7) (return_sequences=False): the last output is "
                 "outputs[-1] of the time-major sequence, Slice(starts=-1, axis 0) + Squeeze(0); "
                 "the graph output carries the last step, [B,H]; initial states absent.")

    # 3. LSTM with initial_state inputs and return_state=True
    name = "keras_lstm_initial_state_return_state"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 4, 3, 2, 3
    W, R, B = keras_lstm_weights(rng, I, H)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    hh = rng.uniform(-0.8, 0.8, (N, H)).astype(f32)
    cc = rng.uniform(-0.8, 0.8, (N, H)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    h0 = gb.op("Unsqueeze", ["input_2", gb.const(c64([0]), "axes")])
    c0 = gb.op("Unsqueeze", ["input_3", gb.const(c64([0]), "axes")])
    y, yh, yc = gb.op("LSTM", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B"), "", h0, c0],
                      n_out=3, name="lstm_2/LSTM", hidden_size=H,
                      activations=["Sigmoid", "Tanh", "Tanh"])
    _, out = seq_out(gb, y)
    hn = gb.op("Squeeze", [yh, gb.const(c64([0]), "axes")])
    cn = gb.op("Squeeze", [yc, gb.const(c64([0]), "axes")])
    ry, rh, rc = reference("LSTM", {"hidden_size": H}, x.transpose(1, 0, 2), W, R, B,
                           h0=hh[None], c0=cc[None])
    finish_keras(name, gb, [vi("input_1", ["unk__1", "unk__2", I]), vi("input_2", ["unk__1", H]),
                            vi("input_3", ["unk__1", H])],
                 {"input_1": x, "input_2": hh, "input_3": cc},
                 [("lstm_2", out, ["unk__1", "unk__2", H]), ("lstm_2_1", hn, ["unk__1", H]),
                  ("lstm_2_2", cn, ["unk__1", H])],
                 {"lstm_2": ry[:, 0].transpose(1, 0, 2), "lstm_2_1": rh[0], "lstm_2_2": rc[0]},
                 {"input": "input_1", "h0": "input_2", "c0": "input_3", "output": "lstm_2",
                  "hn": "lstm_2_1", "cn": "lstm_2_2"},
                 common + "Keras LSTM(3, return_sequences=True, return_state=True) called with "
                 "initial_state=[h, c] from two model inputs [B,H]: each Unsqueeze(0) -> "
                 "initial_h / initial_c; Y_h and Y_c -> Squeeze(0) -> [B,H] outputs.")

    # 4. LSTM with recurrent_activation='hard_sigmoid' (Keras 2 default before TF 2)
    name = "keras_lstm_hard_sigmoid"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 2, 4, 5, 3
    W, R, B = keras_lstm_weights(rng, I, H)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    y = gb.op("LSTM", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B")], n_out=3,
              name="lstm_3/LSTM", hidden_size=H, activations=["HardSigmoid", "Tanh", "Tanh"])[0]
    _, out = seq_out(gb, y)
    at = {"hidden_size": H, "activations": ["HardSigmoid", "Tanh", "Tanh"]}
    ry, _, _ = reference("LSTM", at, x.transpose(1, 0, 2), W, R, B)
    finish_keras(name, gb, [vi("input_1", ["unk__1", T, I])], {"input_1": x},
                 [("lstm_3", out, ["unk__1", T, H])], {"lstm_3": ry[:, 0].transpose(1, 0, 2)},
                 {"input": "input_1", "output": "lstm_3"},
                 common + "Keras LSTM(3, recurrent_activation='hard_sigmoid', "
                 "return_sequences=True): activations HardSigmoid,Tanh,Tanh without "
                 "activation_alpha/beta (defaults 0.2 / 0.5, Keras 2's hard_sigmoid).")

    # 5. GRU reset_after=True -> linear_before_reset=1, return_sequences=True
    name = "keras_gru_reset_after_return_sequences"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 3, 6, 4, 5
    W, R, B = keras_gru_weights(rng, I, H)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    h0 = zero_state(gb, "input_1", H)
    y = gb.op("GRU", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B"), "", h0], n_out=2,
              name="gru/GRU", hidden_size=H, linear_before_reset=1,
              activations=["Sigmoid", "Tanh"])[0]
    _, out = seq_out(gb, y)
    at = {"hidden_size": H, "linear_before_reset": 1}
    ry, _, _ = reference("GRU", at, x.transpose(1, 0, 2), W, R, B)
    finish_keras(name, gb, [vi("input_1", ["unk__1", "unk__2", I])], {"input_1": x},
                 [("gru", out, ["unk__1", "unk__2", H])], {"gru": ry[:, 0].transpose(1, 0, 2)},
                 {"input": "input_1", "output": "gru"},
                 common + "Keras GRU(5, reset_after=True, return_sequences=True) (the TF2 "
                 "default): linear_before_reset=1, B from Keras' bias [2,3H] (input and recurrent "
                 "biases), gates z,r,h; zero initial state from the batch size.")

    # 6. GRU, initial state input, return_sequences=False
    name = "keras_gru_initial_state_last_output"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 2, 5, 3, 7
    W, R, B = keras_gru_weights(rng, I, H)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    hh = rng.uniform(-0.8, 0.8, (N, H)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    h0 = gb.op("Unsqueeze", ["input_2", gb.const(c64([0]), "axes")])
    y = gb.op("GRU", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B"), "", h0], n_out=2,
              name="gru_1/GRU", hidden_size=H, linear_before_reset=1,
              activations=["Sigmoid", "Tanh"])[0]
    sq = gb.op("Squeeze", [y, gb.const(c64([1]), "axes")])
    out = last_out(gb, sq)
    ry, _, _ = reference("GRU", {"hidden_size": H, "linear_before_reset": 1}, x.transpose(1, 0, 2),
                         W, R, B, h0=hh[None])
    finish_keras(name, gb, [vi("input_1", ["unk__1", "unk__2", I]), vi("input_2", ["unk__1", H])],
                 {"input_1": x, "input_2": hh}, [("gru_1", out, ["unk__1", H])],
                 {"gru_1": ry[-1, 0]}, {"input": "input_1", "h0": "input_2", "output": "gru_1"},
                 common + "Keras GRU(7) called with initial_state from a [B,H] model input "
                 "(Unsqueeze(0)); return_sequences=False: Slice(-1) + Squeeze(0) of the sequence.")

    # 7. GRU reset_after=False -> linear_before_reset=0 (Keras 2 / TF1 default)
    name = "keras_gru_reset_before"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 2, 4, 2, 3
    W, R, B = keras_gru_weights(rng, I, H, reset_after=False)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    y = gb.op("GRU", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B")], n_out=2,
              name="gru_2/GRU", hidden_size=H, linear_before_reset=0,
              activations=["Sigmoid", "Tanh"])[0]
    _, out = seq_out(gb, y)
    ry, _, _ = reference("GRU", {"hidden_size": H}, x.transpose(1, 0, 2), W, R, B)
    finish_keras(name, gb, [vi("input_1", ["unk__1", T, I])], {"input_1": x},
                 [("gru_2", out, ["unk__1", T, H])], {"gru_2": ry[:, 0].transpose(1, 0, 2)},
                 {"input": "input_1", "output": "gru_2"},
                 common + "Keras GRU(3, reset_after=False, return_sequences=True): "
                 "linear_before_reset=0, a single bias (Rb = 0).")

    # 8. SimpleRNN, return_sequences=True
    name = "keras_simplernn_return_sequences"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 3, 7, 4, 5
    W, R, B = keras_rnn_weights(rng, I, H)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    h0 = zero_state(gb, "input_1", H)
    y = gb.op("RNN", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B"), "", h0], n_out=2,
              name="simple_rnn/RNN", hidden_size=H, activations=["Tanh"])[0]
    _, out = seq_out(gb, y)
    ry, _, _ = reference("RNN", {"hidden_size": H}, x.transpose(1, 0, 2), W, R, B)
    finish_keras(name, gb, [vi("input_1", ["unk__1", "unk__2", I])], {"input_1": x},
                 [("simple_rnn", out, ["unk__1", "unk__2", H])],
                 {"simple_rnn": ry[:, 0].transpose(1, 0, 2)},
                 {"input": "input_1", "output": "simple_rnn"},
                 common + "Keras SimpleRNN(5, return_sequences=True): RNN with activations Tanh.")

    # 9. SimpleRNN relu, last output through Y_h
    name = "keras_simplernn_relu_last_output"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 4, 3, 6, 3
    W, R, B = keras_rnn_weights(rng, I, H)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    _, yh = gb.op("RNN", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B")], n_out=2,
                  name="simple_rnn_1/RNN", hidden_size=H, activations=["Relu"])
    out = gb.op("Squeeze", [yh, gb.const(c64([0]), "axes")])
    _, rh, _ = reference("RNN", {"hidden_size": H, "activations": ["Relu"]}, x.transpose(1, 0, 2),
                         W, R, B)
    finish_keras(name, gb, [vi("input_1", ["unk__1", T, I])], {"input_1": x},
                 [("simple_rnn_1", out, ["unk__1", H])], {"simple_rnn_1": rh[0]},
                 {"input": "input_1", "hn": "simple_rnn_1"},
                 common + "Keras SimpleRNN(3, activation='relu') (return_sequences=False) with "
                 "the final state taken from Y_h -> Squeeze(0) (Y unused); the graph output "
                 "is the final hidden state, so its role is hn.")

    # 10. Bidirectional(LSTM(return_sequences=True)) merged into one bidirectional node
    name = "keras_bidirectional_lstm"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 3, 5, 3, 4
    W, R, B = keras_lstm_weights(rng, I, H, D=2)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    y = gb.op("LSTM", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B")], n_out=3,
              name="bidirectional/LSTM", hidden_size=H, direction="bidirectional",
              activations=["Sigmoid", "Tanh", "Tanh"] * 2)[0]
    tr = gb.op("Transpose", [y], perm=[0, 2, 1, 3])
    rs = gb.op("Reshape", [tr, gb.const(c64([0, 0, -1]), "shape")])
    out = gb.op("Transpose", [rs], perm=[1, 0, 2])
    ry, _, _ = reference("LSTM", {"hidden_size": H, "direction": "bidirectional"},
                         x.transpose(1, 0, 2), W, R, B)
    finish_keras(name, gb, [vi("input_1", ["unk__1", "unk__2", I])], {"input_1": x},
                 [("bidirectional", out, ["unk__1", "unk__2", 2 * H])],
                 {"bidirectional": ry.transpose(0, 2, 1, 3).reshape(T, N, 2 * H).transpose(1, 0, 2)},
                 {"input": "input_1", "output": "bidirectional"},
                 common + "Keras Bidirectional(LSTM(4, return_sequences=True)) (merge_mode "
                 "'concat'), merged by tf2onnx's bilstm rewriter into one bidirectional LSTM: "
                 "Y [T,2,B,H] -> Transpose(0,2,1,3) -> Reshape([0,0,-1]) -> Transpose -> [B,T,2H].")

    # 11. Stacked LSTM -> GRU
    name = "keras_stacked_lstm_gru"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H1, H2 = 2, 5, 3, 5, 3
    W1, R1, B1 = keras_lstm_weights(rng, I, H1)
    W2, R2, B2 = keras_gru_weights(rng, H1, H2)
    gb = GB(name)
    x = rng.standard_normal((N, T, I)).astype(f32)
    xt = gb.op("Transpose", ["input_1"], perm=[1, 0, 2])
    y1 = gb.op("LSTM", [xt, gb.const(W1, "W"), gb.const(R1, "R"), gb.const(B1, "B")], n_out=3,
               name="lstm_4/LSTM", hidden_size=H1, activations=["Sigmoid", "Tanh", "Tanh"])[0]
    _, s1 = seq_out(gb, y1)           # Keras output of layer 1, [B,T,H1]
    idn = gb.op("Identity", [s1])      # dropout at inference
    x2 = gb.op("Transpose", [idn], perm=[1, 0, 2])
    _, yh2 = gb.op("GRU", [x2, gb.const(W2, "W"), gb.const(R2, "R"), gb.const(B2, "B")], n_out=2,
                   name="gru_3/GRU", hidden_size=H2, linear_before_reset=1,
                   activations=["Sigmoid", "Tanh"])
    out = gb.op("Squeeze", [yh2, gb.const(c64([0]), "axes")])
    ry1, _, _ = reference("LSTM", {"hidden_size": H1}, x.transpose(1, 0, 2), W1, R1, B1)
    _, rh2, _ = reference("GRU", {"hidden_size": H2, "linear_before_reset": 1}, ry1[:, 0], W2, R2, B2)
    finish_keras(name, gb, [vi("input_1", ["unk__1", T, I])], {"input_1": x},
                 [("gru_3", out, ["unk__1", H2])], {"gru_3": rh2[0]},
                 {"input": "input_1", "hn": "gru_3"},
                 common + "Sequential([LSTM(5, return_sequences=True), Dropout, GRU(3)]): "
                 "layer 1's batch-major output (Squeeze, Transpose), Identity (Dropout at "
                 "inference), Transpose back to time-major into the GRU; the GRU's final state "
                 "Y_h -> Squeeze(0) is the model output [B,H2].")

    # 12. Masking -> LSTM: sequence_lens computed from the input
    name = "keras_masking_lstm"
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    N, T, I, H = 3, 6, 4, 5
    W, R, B = keras_lstm_weights(rng, I, H)
    lens = np.array([6, 3, 1], np.int32)
    x = rng.standard_normal((N, T, I)).astype(f32)
    for n, L in enumerate(lens):
        x[n, L:] = 0.0  # post-padding with the mask value
    gb = GB(name)
    eq = gb.op("Equal", ["input_1", gb.const(np.zeros((), f32), "mask_value")])
    ne = gb.op("Not", [eq])
    nef = gb.op("Cast", [ne], to=TensorProto.FLOAT)
    anyf = gb.op("ReduceMax", [nef], axes=[-1], keepdims=1)       # K.any(..., axis=-1)
    masked = gb.op("Mul", ["input_1", anyf])                      # Masking output
    maskb = gb.op("Cast", [anyf], to=TensorProto.BOOL)            # [B,T,1]
    mask_tm = gb.op("Transpose", [maskb], perm=[1, 0, 2])          # Keras rnn: time-major mask
    xt = gb.op("Transpose", [masked], perm=[1, 0, 2])
    m_bm = gb.op("Transpose", [mask_tm], perm=[1, 0, 2])            # tf2onnx: back to [B,T,1]
    m_sq = gb.op("Squeeze", [m_bm, gb.const(c64([-1]), "axes")])
    m_i = gb.op("Cast", [m_sq], to=TensorProto.INT32)
    seql = gb.op("ReduceSum", [m_i, gb.const(c64([-1]), "axes")], keepdims=0)
    _, yh, _ = gb.op("LSTM", [xt, gb.const(W, "W"), gb.const(R, "R"), gb.const(B, "B"), seql],
                     n_out=3, name="lstm_5/LSTM", hidden_size=H,
                     activations=["Sigmoid", "Tanh", "Tanh"])
    out = gb.op("Squeeze", [yh, gb.const(c64([0]), "axes")])
    _, rh, _ = reference("LSTM", {"hidden_size": H}, x.transpose(1, 0, 2), W, R, B, seq=lens)
    finish_keras(name, gb, [vi("input_1", ["unk__1", "unk__2", I])], {"input_1": x},
                 [("lstm_5", out, ["unk__1", H])], {"lstm_5": rh[0]},
                 {"input": "input_1", "hn": "lstm_5"},
                 common + "Sequential([Masking(mask_value=0.), LSTM(5)]): the Masking layer "
                 "(Equal, Not, Cast, ReduceMax over features, Mul) and tf2onnx's reduction of the "
                 "Keras mask to sequence_lens (Transpose, Squeeze(-1), Cast int32, "
                 "ReduceSum(-1)); post-padded input (lengths 6, 3, 1); the output is the last "
                 "valid step's state (Y_h -> Squeeze(0)), which is Keras' last output for masked "
                 "input. sequence_lens is computed from the input by Equal/Not/Cast/ReduceMax/"
                 "Mul/ReduceSum, which are not recurrent glue: a loader that does not evaluate "
                 "them must refuse this model naming one of them (see requires_ops).",
                 requires=["Equal", "Not", "Cast", "ReduceMax", "Mul", "ReduceSum"])


# --------------------------------------------------------------------------------------
# Group refuse
# --------------------------------------------------------------------------------------


def gen_refuse():
    f32 = np.float32

    def base(name, op="LSTM", H=4, I=3, D=1, **attrs):
        rng = np.random.default_rng(zlib.crc32(name.encode()))
        G = GATES[op]
        W = rng.uniform(-0.5, 0.5, (D, G * H, I)).astype(f32)
        R = rng.uniform(-0.5, 0.5, (D, G * H, H)).astype(f32)
        x = rng.standard_normal((5, 2, I)).astype(f32)
        return rng, W, R, x

    def ref_case(name, model, feeds, expect, notes, roles, check=True, raw=None):
        if check:
            onnx.checker.check_model(model)
        got, err = run_ort(model, feeds) if raw is None else (None, "not run")
        ortnote = ("onnxruntime runs it" if got is not None else f"onnxruntime: {err}")
        write_case("refuse", name, model, feeds, {}, "refuse", roles, notes + " (" + ortnote + ")",
                   expect_error=expect, raw_model=raw)
        SUMMARY.append(f"refuse/{name}: expect_error {expect!r}; {ortnote[:120]}")

    roles = {"input": "X", "output": "Y"}

    # MatMul after the LSTM
    name = "unsupported_op_matmul"
    rng, W, R, x = base(name)
    gb = GB(name)
    _, yh, _ = gb.op("LSTM", ["X", gb.const(W, "W"), gb.const(R, "R")], n_out=3, name="lstm",
                     hidden_size=4)
    sq = gb.op("Squeeze", [yh, gb.const(c64([0]), "axes")])
    gb.nodes.append(helper.make_node("MatMul", [sq, gb.const(rng.standard_normal((4, 2)).astype(f32),
                                                             "dense")], ["Y"], name="dense/MatMul"))
    m = gb.model([vi("X", [5, 2, 3])], [vi("Y", [2, 2])])
    ref_case(name, m, {"X": x}, "MatMul", "A dense layer (MatMul 'dense/MatMul') after the LSTM: "
             "not a recurrent op nor glue; the error names the node and its op", roles)

    # Attention (ONNX opset 23) after the LSTM
    name = "unsupported_op_attention"
    rng, W, R, x = base(name)
    gb = GB(name)
    y = gb.op("LSTM", ["X", gb.const(W, "W"), gb.const(R, "R")], n_out=3, name="lstm",
              hidden_size=4)[0]
    sq = gb.op("Squeeze", [y, gb.const(c64([1]), "axes")])
    bt = gb.op("Transpose", [sq], perm=[1, 0, 2])
    gb.nodes.append(helper.make_node("Attention", [bt, bt, bt], ["Y"], name="self_attention",
                                     q_num_heads=2, kv_num_heads=2))
    m = gb.model([vi("X", [5, 2, 3])], [vi("Y", [2, 5, 4])], opset=23)
    ref_case(name, m, {"X": x}, "Attention", "ONNX Attention (opset 23) on the LSTM's output", roles)

    # unknown activation
    name = "unknown_activation"
    rng, W, R, x = base(name)
    gb = GB(name)
    gb.nodes.append(helper.make_node("LSTM", ["X", gb.const(W, "W"), gb.const(R, "R")], ["Y"],
                                     name="lstm", hidden_size=4,
                                     activations=["Sigmoid", "Swish", "Tanh"]))
    m = gb.model([vi("X", [5, 2, 3])], [vi("Y", [5, 1, 2, 4])], opset=14)
    ref_case(name, m, {"X": x}, "Swish", "activations=[Sigmoid, Swish, Tanh]: Swish is not one of "
             "the operator's activation functions", roles)

    # wrong number of activations
    name = "wrong_activation_count"
    rng, W, R, x = base(name)
    gb = GB(name)
    gb.nodes.append(helper.make_node("LSTM", ["X", gb.const(W, "W"), gb.const(R, "R")], ["Y"],
                                     name="lstm", hidden_size=4, activations=["Sigmoid", "Tanh"]))
    m = gb.model([vi("X", [5, 2, 3])], [vi("Y", [5, 1, 2, 4])], opset=14)
    ref_case(name, m, {"X": x}, "activations", "LSTM forward with 2 activations (3 per direction "
             "are required)", roles)

    # hidden_size disagrees with W/R
    name = "hidden_size_mismatch"
    rng, W, R, x = base(name, H=5)
    gb = GB(name)
    gb.nodes.append(helper.make_node("LSTM", ["X", gb.const(W, "W"), gb.const(R, "R")], ["Y"],
                                     name="lstm", hidden_size=4))
    m = gb.model([vi("X", [5, 2, 3])], [vi("Y", [5, 1, 2, 4])], opset=14)
    ref_case(name, m, {"X": x}, "hidden_size", "hidden_size=4 while W is [1, 20, 3] and R "
             "[1, 20, 5] (hidden 5)", roles, check=False)

    # direction disagrees with W's first dimension
    name = "direction_mismatch"
    rng, W, R, x = base(name, op="GRU")
    gb = GB(name)
    gb.nodes.append(helper.make_node("GRU", ["X", gb.const(W, "W"), gb.const(R, "R")], ["Y"],
                                     name="gru", hidden_size=4, direction="bidirectional"))
    m = gb.model([vi("X", [5, 2, 3])], [vi("Y", [5, 2, 2, 4])], opset=14)
    ref_case(name, m, {"X": x}, "direction", "GRU direction=bidirectional with W/R for one "
             "direction ([1, 12, 3])", roles, check=False)

    # unknown direction
    name = "unknown_direction"
    rng, W, R, x = base(name, op="RNN")
    gb = GB(name)
    gb.nodes.append(helper.make_node("RNN", ["X", gb.const(W, "W"), gb.const(R, "R")], ["Y"],
                                     name="rnn", hidden_size=4, direction="sideways"))
    m = gb.model([vi("X", [5, 2, 3])], [vi("Y", [5, 1, 2, 4])], opset=14)
    ref_case(name, m, {"X": x}, "sideways", "RNN direction='sideways'", roles, check=False)

    # weights as a run-time graph input (no initializer)
    name = "weights_not_initializer"
    rng, W, R, x = base(name)
    gb = GB(name)
    gb.nodes.append(helper.make_node("LSTM", ["X", "W_runtime", gb.const(R, "R")], ["Y"],
                                     name="lstm", hidden_size=4))
    m = gb.model([vi("X", [5, 2, 3]), vi("W_runtime", [1, 16, 3])], [vi("Y", [5, 1, 2, 4])],
                 opset=14)
    ref_case(name, m, {"X": x, "W_runtime": W}, "W_runtime", "W comes from the graph input "
             "'W_runtime' with no initializer: weights must be constants", roles)

    # a shape only known at run time from the values of another input
    name = "dynamic_shape_unresolved"
    rng, W, R, x = base(name)
    gb = GB(name)
    xr = gb.op("Reshape", ["X_flat", "target_shape"], name="reshape_input")
    gb.nodes.append(helper.make_node("LSTM", [xr, gb.const(W, "W"), gb.const(R, "R")], ["Y"],
                                     name="lstm", hidden_size=4))
    m = gb.model([vi("X_flat", ["n"]), vi("target_shape", [3], TensorProto.INT64)],
                 [vi("Y", ["T", 1, "B", 4])], opset=14)
    ref_case(name, m, {"X_flat": x.reshape(-1), "target_shape": c64([5, 2, 3])}, "Reshape",
             "the sequence is X_flat reshaped by the values of the run-time input target_shape "
             "(Reshape 'reshape_input'): its shape cannot be resolved from the graph",
             {"input": "X_flat", "output": "Y"})

    # not a protobuf / truncated file
    name = "truncated_model"
    rng, W, R, x = base(name)
    gb = GB(name)
    gb.nodes.append(helper.make_node("LSTM", ["X", gb.const(W, "W"), gb.const(R, "R")], ["Y"],
                                     name="lstm", hidden_size=4))
    m = gb.model([vi("X", [5, 2, 3])], [vi("Y", [5, 1, 2, 4])], opset=14)
    data = m.SerializeToString(deterministic=True)
    raw = data[: len(data) // 2]
    try:
        onnx.load_from_string(raw)
        decoded = "onnx decodes the truncated bytes"
    except Exception:  # noqa: BLE001
        decoded = "onnx refuses the truncated bytes too"
    ref_case(name, None, {"X": x}, "protobuf", "model.onnx is a valid model cut to half its "
             f"bytes; the error must say the file is not a valid ONNX protobuf ({decoded})",
             roles, check=False, raw=raw)



GROUPS = {"onnx_node": gen_onnx_node, "random": gen_random, "torch": gen_torch,
          "keras": gen_keras, "refuse": gen_refuse}


def verify(groups):
    """Loads every fixture back from disk: model.onnx parses and passes the checker, and
    onnxruntime either reproduces the expected outputs within the case's tolerance, refuses
    the model where case.json records that, or differs where case.json records that."""
    counts = {}
    for g in groups:
        for d in sorted((FIXTURES / g).iterdir()):
            if not d.is_dir():
                continue
            man = json.loads((d / "case.json").read_text())
            feeds = {k: np.load(d / v) for k, v in man["inputs"].items()}
            key = g
            if "expect_error" in man:
                counts[key] = counts.get(key, 0) + 1
                continue
            model = onnx.load(d / "model.onnx")
            onnx.checker.check_model(model)
            got, err = run_ort(model, feeds)
            rec = man.get("onnxruntime", {})
            if got is None:
                assert "refused" in rec, (d, err)
            else:
                tol = man["tolerance"]
                for k, f in man["outputs"].items():
                    e = np.load(d / f)
                    ok = np.all(np.abs(got[k] - e) <= tol["abs"] + tol["rel"] * np.abs(e))
                    if not ok:
                        assert man.get("expected_from", "").startswith("numpy"), (d, k)
            counts[key] = counts.get(key, 0) + 1
    return counts


def main(argv):
    groups = argv or list(GROUPS)
    for g in groups:
        if g not in GROUPS:
            sys.exit(f"unknown group {g}; groups: {', '.join(GROUPS)}")
    for g in groups:
        if g == "torch":
            try:
                import torch  # noqa: F401
            except ImportError:
                print("torch is not installed: the torch group is left as it is")
                continue
        d = FIXTURES / g
        if d.exists():
            for sub in d.iterdir():
                # refuse/torch_* are written by the torch group
                if not (g == "refuse" and sub.name.startswith("torch_")):
                    shutil.rmtree(sub) if sub.is_dir() else sub.unlink()
        d.mkdir(parents=True, exist_ok=True)
        print(f"== {g}", flush=True)
        if GROUPS[g]() is False:
            print(f"group {g} skipped")
    print("\n".join(SUMMARY))
    counts = verify([g for g in GROUPS if (FIXTURES / g).exists()])
    print("verified from disk:", ", ".join(f"{g} {n}" for g, n in counts.items()))


if __name__ == "__main__":
    main(sys.argv[1:])
