#!/usr/bin/env python3
"""Writes tests/onnx/fixtures/quantized/: ONNX LSTM models quantized by onnxruntime's
`quantize_dynamic` (every LSTM becomes `com.microsoft.DynamicQuantizeLSTM`), with
onnxruntime's outputs on them.

Run (from the repository root, in the virtual environment of generate.py):

    ../onnx-venv/bin/python tests/onnx/generate_quantized.py

Each case is a float model (one LSTM node, or two stacked) with seeded random weights,
quantized with `per_channel` on or off (and `reduce_range` in one case), then run by
onnxruntime on one thread. case.json holds, besides generate.py's fields:

    "float_reference": {"outputs": {...}, "tolerance": {...}}
        onnxruntime's outputs for the float LSTM whose weights are exactly the values the
        quantized model's integers stand for, (q - zero_point) * scale: what a float32
        engine loading the quantized model must give, to float32 rounding.
    "quantization": {"per_channel": ..., "reduce_range": ...,
                     "onnxruntime_error": max |onnxruntime int8 - float reference|}

The expected outputs come from a session with `session.x64quantprecision` = 1 (see
run_exact). "tolerance" (against onnxruntime's int8 outputs) is 4 x "onnxruntime_error" (at least
1e-4): onnxruntime quantizes activations to 8 bits over the whole tensor, this crate to 7
bits over each row (see WeightsDtype::I8), a step at most twice onnxruntime's, so its error
against the float reference is at most about twice onnxruntime's and the two differ by at
most about three times it; 4 leaves a margin for the rounding of the sums.
"""

from __future__ import annotations

import shutil
import sys
import tempfile
import zlib
from pathlib import Path

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper
from onnxruntime.quantization import QuantType, quantize_dynamic

sys.path.insert(0, str(Path(__file__).resolve().parent))
import generate as g  # noqa: E402

GROUP = "quantized"


def lstm_model(rng, name, T, N, I, H, direction, bias, peep, seq, init, layers):
    """A float model of `layers` stacked LSTM nodes (a Squeeze between them, as
    torch.onnx.export writes it) with random weights; returns (model, feeds, roles)."""
    D = 2 if direction == "bidirectional" else 1
    nodes, inits, ginputs = [], [], []
    ginputs.append(helper.make_tensor_value_info("X", TensorProto.FLOAT, [T, N, I]))
    feeds = {"X": rng.normal(0, 1, (T, N, I)).astype(np.float32)}
    roles = {"input": "X", "output": "Y", "hn": "Y_h", "cn": "Y_c"}
    if seq:
        ginputs.append(helper.make_tensor_value_info("sequence_lens", TensorProto.INT32, [N]))
        lens = rng.integers(1, T + 1, N).astype(np.int32)
        lens[0] = T
        feeds["sequence_lens"] = lens
        roles["lengths"] = "sequence_lens"
    if init:
        for s, role in (("initial_h", "h0"), ("initial_c", "c0")):
            ginputs.append(helper.make_tensor_value_info(s, TensorProto.FLOAT, [D, N, H]))
            feeds[s] = rng.normal(0, 0.5, (D, N, H)).astype(np.float32)
            roles[role] = s
    x = "X"
    k = 1 / np.sqrt(H)
    for layer in range(layers):
        i_size = I if layer == 0 else D * H
        w = rng.uniform(-k, k, (D, 4 * H, i_size)).astype(np.float32)
        r = rng.uniform(-k, k, (D, 4 * H, H)).astype(np.float32)
        names = [x, f"W{layer}", f"R{layer}"]
        inits += [numpy_helper.from_array(w, f"W{layer}"), numpy_helper.from_array(r, f"R{layer}")]
        extra = []
        if bias:
            b = rng.uniform(-k, k, (D, 8 * H)).astype(np.float32)
            inits.append(numpy_helper.from_array(b, f"B{layer}"))
            extra.append((3, f"B{layer}"))
        if seq:
            extra.append((4, "sequence_lens"))
        if init and layer == 0:
            extra += [(5, "initial_h"), (6, "initial_c")]
        if peep:
            p = rng.uniform(-k, k, (D, 3 * H)).astype(np.float32)
            inits.append(numpy_helper.from_array(p, f"P{layer}"))
            extra.append((7, f"P{layer}"))
        for pos, v in extra:
            while len(names) < pos:
                names.append("")
            names.append(v)
        last = layer == layers - 1
        outs = ["Y", "Y_h", "Y_c"] if last else [f"y{layer}"]
        attrs = {"hidden_size": H}
        if direction != "forward":
            attrs["direction"] = direction
        nodes.append(helper.make_node("LSTM", names, outs, name=f"lstm_{layer}", **attrs))
        if not last:
            # [T, D, N, H] → [T, N, D·H]: Transpose then Reshape, as exporters write it.
            nodes.append(helper.make_node("Transpose", [f"y{layer}"], [f"t{layer}"],
                                          perm=[0, 2, 1, 3], name=f"transpose_{layer}"))
            shape = numpy_helper.from_array(np.array([0, 0, -1], np.int64), f"shape{layer}")
            inits.append(shape)
            nodes.append(helper.make_node("Reshape", [f"t{layer}", f"shape{layer}"],
                                          [f"x{layer + 1}"], name=f"reshape_{layer}"))
            x = f"x{layer + 1}"
    gouts = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, [T, D, N, H]),
             helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [D, N, H]),
             helper.make_tensor_value_info("Y_c", TensorProto.FLOAT, [D, N, H])]
    graph = helper.make_graph(nodes, name, ginputs, gouts, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8,
                              producer_name="wgpu-lstm-fixtures")
    onnx.checker.check_model(model, full_check=True)
    return model, feeds, roles


def quantize(model, per_channel, reduce_range):
    with tempfile.TemporaryDirectory() as tmp:
        src, dst = Path(tmp) / "f.onnx", Path(tmp) / "q.onnx"
        onnx.save(model, src)
        quantize_dynamic(src, dst, per_channel=per_channel, reduce_range=reduce_range,
                         weight_type=QuantType.QInt8)
        q = onnx.load(dst)
    assert any(n.op_type == "DynamicQuantizeLSTM" for n in q.graph.node), "not quantized"
    return q


def dequantized_twin(qmodel):
    """The float model whose LSTM weights are the quantized model's values."""
    inits = {i.name: numpy_helper.to_array(i) for i in qmodel.graph.initializer}
    nodes, new_inits, used = [], {}, set()
    for n in qmodel.graph.node:
        if n.op_type != "DynamicQuantizeLSTM":
            nodes.append(n)
            continue
        ins = list(n.input) + [""] * (12 - len(n.input))
        ws = []
        for q, s, z in ((ins[1], ins[8], ins[9]), (ins[2], ins[10], ins[11])):
            qa, sa, za = inits[q].astype(np.float32), inits[s], inits[z].astype(np.float32)
            if sa.ndim == 1:
                sa, za = sa[:, None], za[:, None]
            # [D, K, 4H] → [D, 4H, K]
            ws.append(((qa - za[:, None, :]) * sa[:, None, :]).transpose(0, 2, 1))
            used |= {q, s, z}
        w_name, r_name = ins[1] + "_deq", ins[2] + "_deq"
        new_inits[w_name], new_inits[r_name] = ws
        f_ins = [ins[0], w_name, r_name] + ins[3:8]
        while f_ins and f_ins[-1] == "":
            f_ins.pop()
        attrs = {a.name: helper.get_attribute_value(a) for a in n.attribute}
        attrs = {k: (v.decode() if isinstance(v, bytes) else v) for k, v in attrs.items()}
        nodes.append(helper.make_node("LSTM", f_ins, list(n.output), name=n.name, **attrs))
    keep = [i for i in qmodel.graph.initializer if i.name not in used]
    keep += [numpy_helper.from_array(v.astype(np.float32), k) for k, v in new_inits.items()]
    graph = helper.make_graph(nodes, "twin", list(qmodel.graph.input), list(qmodel.graph.output),
                              keep)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)], ir_version=8)


def run_exact(model, feeds):
    """onnxruntime on one thread with `session.x64quantprecision` = 1: on x86 cores without
    VNNI its default u8 x s8 kernel (AVX2 `vpmaddubsw`) saturates pairs of products at 16
    bits, and outputs of 7-bit-range-exceeding weights differ from the exact integer sums by
    up to 0.5 here; the option makes it use exact u8 x u8 sums (what a VNNI core computes)."""
    so = g.ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 4
    so.add_session_config_entry("session.x64quantprecision", "1")
    s = g.ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in s.get_outputs()], s.run(None, feeds)))


def to_uint8(qmodel):
    """The quantized model with uint8 weights: q + 128 and zero points 128 (what older
    onnxruntime releases wrote, and what its AVX2 precision option converts int8 to)."""
    for n in qmodel.graph.node:
        if n.op_type != "DynamicQuantizeLSTM":
            continue
        for i in (1, 2, 9, 11):
            init = next(t for t in qmodel.graph.initializer if t.name == n.input[i])
            a = numpy_helper.to_array(init).astype(np.int16) + 128
            init.CopyFrom(numpy_helper.from_array(a.astype(np.uint8), init.name))
    return qmodel


def case(name, T, N, I, H, direction="forward", bias=True, peep=False, seq=False, init=False,
         layers=1, per_channel=True, reduce_range=False, uint8=False):
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    model, feeds, roles = lstm_model(rng, name, T, N, I, H, direction, bias, peep, seq, init,
                                     layers)
    qmodel = quantize(model, per_channel, reduce_range)
    if uint8:
        qmodel = to_uint8(qmodel)
    got = run_exact(qmodel, feeds)
    fast, _ = g.run_ort(qmodel, feeds)
    ref, err = g.run_ort(dequantized_twin(qmodel), feeds)
    assert ref is not None, (name, err)
    ort_err = g.max_diff(got, ref)
    tol = {"abs": float(f"{max(4 * ort_err, 1e-4):.3g}"), "rel": 0.0}
    g.write_case(GROUP, name, qmodel, feeds, got, "onnxruntime-quantize_dynamic", roles,
                 f"LSTM x{layers} direction={direction} T={T} batch={N} input={I} hidden={H} "
                 f"bias={bias} peepholes={peep} lengths={seq} initial states={init}; "
                 f"quantize_dynamic(per_channel={per_channel}, reduce_range={reduce_range}, "
                 "weight_type=QInt8)" + ("; weights made uint8 (q + 128, zero point 128)"
                                         if uint8 else ""),
                 tolerance=tol,
                 extra={"expected_from": "onnxruntime (DynamicQuantizeLSTM)",
                        "quantization": {"per_channel": per_channel,
                                         "reduce_range": reduce_range,
                                         "onnxruntime_error": float(f"{ort_err:.3g}")}})
    d = g.FIXTURES / GROUP / name
    man = (d / "case.json").read_text()
    import json
    man = json.loads(man)
    man["float_reference"] = {"outputs": {}, "tolerance": g.TOL_DEEP if layers > 1 else g.TOL}
    for k, v in ref.items():
        f = "float_" + g.fname(k)
        np.save(d / f, np.ascontiguousarray(v, dtype=np.float32), allow_pickle=False)
        man["float_reference"]["outputs"][k] = f
    (d / "case.json").write_text(json.dumps(man, indent=1, sort_keys=True) + "\n")
    print(f"  {name}: onnxruntime int8 vs float reference {ort_err:.2e} "
          f"(default session: {g.max_diff(fast, ref):.2e})")


def refuse_case(name, mutate, expect):
    """A quantized model broken by `mutate(model)`; the loader's error contains `expect`."""
    rng = np.random.default_rng(zlib.crc32(name.encode()))
    model, feeds, roles = lstm_model(rng, name, 5, 2, 4, 6, "forward", True, False, False,
                                     False, 1)
    q = quantize(model, True, False)
    mutate(q)
    g.write_case(GROUP, name, q, feeds, {}, "refuse", roles, f"refused: {expect}",
                 expect_error=expect)


def replace_init(model, name, array):
    for i, t in enumerate(model.graph.initializer):
        if t.name == name:
            model.graph.initializer[i].CopyFrom(numpy_helper.from_array(array, name))
            return
    raise KeyError(name)


def node_of(model):
    return next(n for n in model.graph.node if n.op_type == "DynamicQuantizeLSTM")


def main():
    d = g.FIXTURES / GROUP
    if d.exists():
        shutil.rmtree(d)
    d.mkdir(parents=True)
    case("per_channel_forward", 12, 3, 10, 16)
    case("per_tensor_forward", 12, 3, 10, 16, per_channel=False)
    case("per_channel_batch1", 20, 1, 24, 32)
    case("per_channel_reverse_lengths", 9, 4, 6, 12, direction="reverse", seq=True)
    case("per_channel_bidirectional_states", 8, 3, 7, 10, direction="bidirectional", init=True,
         seq=True)
    case("per_tensor_bidirectional", 8, 2, 5, 9, direction="bidirectional", per_channel=False)
    case("per_channel_peepholes_nobias", 10, 2, 8, 11, bias=False, peep=True)
    case("per_channel_reduce_range", 10, 2, 8, 16, reduce_range=True)
    case("per_channel_two_layers", 10, 3, 12, 20, layers=2, init=True)
    case("per_tensor_two_layers_bidirectional", 7, 2, 6, 8, direction="bidirectional", layers=2,
         per_channel=False)
    case("per_channel_uint8_weights", 9, 3, 8, 12, uint8=True)

    def bad_scale_shape(m):
        n = node_of(m)
        replace_init(m, n.input[8], np.ones((1, 5), np.float32))
        replace_init(m, n.input[9], np.zeros((1, 5), np.int8))
    refuse_case("refuse_scale_shape", bad_scale_shape, "per channel")

    def negative_scale(m):
        n = node_of(m)
        replace_init(m, n.input[10], -np.ones((1, 24), np.float32))
    refuse_case("refuse_negative_scale", negative_scale, "must be finite and not negative")

    def no_scale(m):
        n = node_of(m)
        del n.input[8:]
    refuse_case("refuse_missing_scale", no_scale, "input W_scale is missing")

    def layout_1(m):
        node_of(m).attribute.append(helper.make_attribute("layout", 1))
    refuse_case("refuse_layout", layout_1, "no attribute `layout`")

    def float_weights(m):
        n = node_of(m)
        w = numpy_helper.to_array(next(i for i in m.graph.initializer if i.name == n.input[1]))
        replace_init(m, n.input[1], w.astype(np.float32))
    refuse_case("refuse_float_weights", float_weights, "takes int8 or uint8")


if __name__ == "__main__":
    main()
