#!/usr/bin/env python3
"""CPU throughput of wgpu-lstm against onnxruntime's LSTM/GRU on the benchmark suite, float32
and int8.

Builds, for each shape of the default suite, the equivalent ONNX model (stacked LSTM or GRU
nodes; bidirectional outputs transposed and reshaped between layers), and its int8 twin made
by onnxruntime's `quantize_dynamic(per_channel=True)` (every LSTM becomes
`com.microsoft.DynamicQuantizeLSTM`; onnxruntime quantizes no GRU, so `gru` has no int8
onnxruntime column). For each thread count and each shape it times onnxruntime
(intra_op_num_threads = N, default session options) on both models and
`wgpu-lstm bench --device cpu --threads N --weights-dtype f32,i8` (one run, both types) one
right after the other, in --rounds rounds (default 5) that alternate which goes first, so
that both see the same load on a shared machine (a burst of load from elsewhere that slows
one side for a round or two then moves neither median). Within a round each is repeated
alike (2 warm-up runs, then at least 10 timed runs and half a second of them; --quick: 1, 3
and a tenth of a second). Prints each side's median over the rounds of its medians and the
ratios (onnxruntime ms / wgpu-lstm ms: above 1 means wgpu-lstm is faster), float32 against
float32 and int8 against int8, with the range of the rounds' own float32 ratios, and our
int8 speed over our float32. --no-int8 times float32 only.

The instruction sets of our side: what the core has, unless WGPU_LSTM_CPU_ISA (avx2,
avxvnni, portable) forces a slower path; the table's last line names the float32 and int8
kernels that ran.

    pip install onnxruntime onnx numpy
    cargo build --release
    python3 benches/compare_onnxruntime.py [--quick] [--threads 2,1] [--rounds 5] [--json FILE]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

# NumPy's BLAS threads would spin beside onnxruntime's after any BLAS call: one thread each.
for _var in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
from onnx import TensorProto, helper, numpy_helper  # noqa: E402
from onnxruntime.quantization import QuantType, quantize_dynamic  # noqa: E402

# name: (cell, input, hidden, layers, bidirectional, batch, steps) -- src/bench.rs default_suite
SUITE = {
    "edge": ("lstm", 40, 128, 1, False, 1, 100),
    "batch": ("lstm", 128, 256, 1, False, 64, 50),
    "deep": ("lstm", 512, 512, 2, False, 16, 50),
    "bidir": ("lstm", 80, 256, 2, True, 8, 200),
    "gru": ("gru", 128, 256, 1, False, 64, 50),
}


def build_model(cell, inp, hidden, layers, bidir, rng):
    d = 2 if bidir else 1
    g = 4 if cell == "lstm" else 3
    nodes, inits = [], []
    x = "X"
    size = inp
    for layer in range(layers):
        k = 1.0 / np.sqrt(hidden)
        w = rng.uniform(-k, k, (d, g * hidden, size)).astype(np.float32)
        r = rng.uniform(-k, k, (d, g * hidden, hidden)).astype(np.float32)
        b = rng.uniform(-k, k, (d, 2 * g * hidden)).astype(np.float32)
        names = [f"W{layer}", f"R{layer}", f"B{layer}"]
        for n, t in zip(names, (w, r, b)):
            inits.append(numpy_helper.from_array(t, n))
        y = f"Y{layer}"
        attrs = dict(hidden_size=hidden, direction="bidirectional" if bidir else "forward")
        if cell == "gru":
            attrs["linear_before_reset"] = 1  # PyTorch's GRU
        nodes.append(helper.make_node(cell.upper(), [x] + names, [y], **attrs))
        # Y: [T, D, B, H] -> [T, B, D*H]
        nodes.append(helper.make_node("Transpose", [y], [f"T{layer}"], perm=[0, 2, 1, 3]))
        shape = f"S{layer}"
        inits.append(numpy_helper.from_array(np.array([0, 0, d * hidden], dtype=np.int64), shape))
        nodes.append(helper.make_node("Reshape", [f"T{layer}", shape], [f"O{layer}"]))
        x = f"O{layer}"
        size = d * hidden
    graph = helper.make_graph(
        nodes,
        "rnn",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "B", inp])],
        [helper.make_tensor_value_info(x, TensorProto.FLOAT, ["T", "B", size])],
        inits,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model.SerializeToString()


def available_cores():
    """The cores this process may run on (what `wgpu-lstm` uses by default)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count()


def quantized(model_bytes):
    """`model_bytes` through onnxruntime's `quantize_dynamic` (int8 weights per channel), or
    None when it quantizes no recurrent node (a GRU)."""
    with tempfile.TemporaryDirectory() as d:
        src, dst = os.path.join(d, "f.onnx"), os.path.join(d, "q.onnx")
        with open(src, "wb") as f:
            f.write(model_bytes)
        quantize_dynamic(src, dst, per_channel=True, weight_type=QuantType.QInt8)
        q = onnx.load(dst)
    if not any(n.op_type == "DynamicQuantizeLSTM" for n in q.graph.node):
        return None
    return q.SerializeToString()


def ort_sessions(shape, threads, rng, int8):
    """onnxruntime's sessions for `shape` on `threads` threads, float32 and (when `int8` and
    onnxruntime quantizes the cell) int8, and their input."""
    cell, inp, hidden, layers, bidir, batch, steps = shape
    opts = ort.SessionOptions()
    opts.intra_op_num_threads = threads
    opts.inter_op_num_threads = 1
    opts.log_severity_level = 3
    model = build_model(cell, inp, hidden, layers, bidir, rng)
    sess = ort.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    q = quantized(model) if int8 else None
    qsess = q and ort.InferenceSession(q, opts, providers=["CPUExecutionProvider"])
    x = rng.uniform(-1, 1, (steps, batch, inp)).astype(np.float32)
    return sess, qsess, x


def time_ort(sess, x, repeat):
    """Median ms of onnxruntime's forward, repeated as `wgpu-lstm bench` repeats its own: at
    least `warmup` untimed runs (and a fifth of `min_s`), then at least `reps` timed runs and
    `min_s` seconds of them (at most 10 000)."""
    warmup, reps, min_s = repeat
    start, done = time.perf_counter(), 0
    while done < warmup or time.perf_counter() - start < min_s / 5:
        sess.run(None, {"X": x})
        done += 1
    runs = []
    while len(runs) < reps or (sum(runs) < min_s * 1e3 and len(runs) < 10_000):
        t0 = time.perf_counter()
        sess.run(None, {"X": x})
        runs.append((time.perf_counter() - t0) * 1e3)
    return float(np.median(runs))


def time_ours(binary, name, threads, quick, int8):
    """Our median ms per weights type ("f32", and "i8" when `int8`), the f32 run's peak bytes
    and the kernels our CPU engine ran (the f32 run's, then the i8 run's)."""
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "cpu.json")
        cmd = [binary, "bench", "--device", "cpu", "--suite", name, "--threads", str(threads),
               "--weights-dtype", "f32,i8" if int8 else "f32", "--json", out]
        if quick:
            cmd.append("--quick")
        subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL)
        records = json.load(open(out))["records"]
        ms = {r["weights"]: r["median_ms"] for r in records}
        f32 = next(r for r in records if r["weights"] == "f32")
        kernels = ", ".join(r.get("variant") or "?" for r in records)
        return ms, f32.get("peak_bytes"), kernels


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--suite", default=",".join(SUITE))
    ap.add_argument("--threads", default=str(available_cores()),
                    help="comma-separated thread counts, each run for both (default: the cores "
                         "this process may use)")
    ap.add_argument("--rounds", type=int, default=5,
                    help="rounds per shape and thread count, onnxruntime and wgpu-lstm "
                         "alternating (default 5); each side's time is the median of its "
                         "rounds' medians")
    ap.add_argument("--json", help="write the comparison here")
    ap.add_argument("--no-int8", action="store_true", help="time float32 only")
    ap.add_argument("--bin", default=os.path.join(os.path.dirname(__file__), "..", "target", "release", "wgpu-lstm"))
    args = ap.parse_args()
    if args.rounds < 1:
        ap.error("--rounds must be at least 1")
    names = args.suite.split(",")
    thread_counts = [int(t) for t in args.threads.split(",")]
    # As `wgpu-lstm bench` (src/bench.rs, Repeat::QUICK / Repeat::FULL).
    repeat = (1, 3, 0.1) if args.quick else (2, 10, 0.5)
    rows = []
    int8 = not args.no_int8
    for threads in thread_counts:
        for n in names:
            sess, qsess, x = ort_sessions(SUITE[n], threads, np.random.default_rng(0), int8)
            runs = {"ort": [], "ort_i8": [], "f32": [], "i8": []}
            peak = kernel = None
            for k in range(args.rounds):
                print(f"{threads} threads, {n}: round {k + 1} of {args.rounds}", file=sys.stderr)

                def theirs():
                    runs["ort"].append(time_ort(sess, x, repeat))
                    if qsess is not None:
                        runs["ort_i8"].append(time_ort(qsess, x, repeat))

                # Each side first in every other round, so that a drift in the machine's load
                # falls on both alike.
                if k % 2 == 0:
                    theirs()
                ms, peak, kernel = time_ours(args.bin, n, threads, args.quick, int8)
                runs["f32"].append(ms["f32"])
                if int8:
                    runs["i8"].append(ms["i8"])
                if k % 2 == 1:
                    theirs()
            med = {k: (float(np.median(v)) if v else None) for k, v in runs.items()}
            ratio = lambda a, b: a / b if a and b else None  # noqa: E731
            rows.append(dict(shape=n, threads=threads, onnxruntime_ms=med["ort"],
                             wgpu_lstm_cpu_ms=med["f32"], ratio=med["ort"] / med["f32"],
                             round_ratios=[o / w for o, w in zip(runs["ort"], runs["f32"])],
                             onnxruntime_rounds_ms=runs["ort"], wgpu_lstm_rounds_ms=runs["f32"],
                             onnxruntime_int8_ms=med["ort_i8"], wgpu_lstm_int8_ms=med["i8"],
                             ratio_int8=ratio(med["ort_i8"], med["i8"]),
                             int8_speedup=ratio(med["f32"], med["i8"]),
                             onnxruntime_int8_rounds_ms=runs["ort_i8"],
                             wgpu_lstm_int8_rounds_ms=runs["i8"],
                             wgpu_lstm_peak_bytes=peak, wgpu_lstm_kernel=kernel))
    if args.json:
        # Written first (the table below may go to a pipe that closes early), whole or not at
        # all: into a temporary file beside it, then renamed.
        tmp = args.json + ".tmp"
        with open(tmp, "w") as f:
            json.dump(dict(onnxruntime=ort.__version__, cores=os.cpu_count(),
                           available=available_cores(), rounds=args.rounds, rows=rows), f,
                      indent=2)
        os.replace(tmp, args.json)
    fmt = lambda v, spec: format(v, spec) if v is not None else "-"  # noqa: E731
    print(f"{'shape':<6} {'thr':>3} {'ort f32 ms':>11} {'ours f32 ms':>11} {'ratio':>6} "
          f"{'rounds':>10} {'ort i8 ms':>10} {'ours i8 ms':>10} {'ratio':>6} {'i8/f32':>6}"
          "  (ratio = ort / ours; goal >= 1.0)")
    for r in rows:
        spread = f"{min(r['round_ratios']):.2f}-{max(r['round_ratios']):.2f}"
        print(f"{r['shape']:<6} {r['threads']:>3} {r['onnxruntime_ms']:>11.3f} "
              f"{r['wgpu_lstm_cpu_ms']:>11.3f} {r['ratio']:>6.2f} {spread:>10} "
              f"{fmt(r['onnxruntime_int8_ms'], '.3f'):>10} {fmt(r['wgpu_lstm_int8_ms'], '.3f'):>10} "
              f"{fmt(r['ratio_int8'], '.2f'):>6} {fmt(r['int8_speedup'], '.2f'):>6}")
    kernels = sorted({k for r in rows for k in (r["wgpu_lstm_kernel"] or "?").split(", ")})
    print(f"onnxruntime {ort.__version__}, {os.cpu_count()} cores, {available_cores()} available; "
          f"our kernels: {', '.join(kernels)}")


if __name__ == "__main__":
    main()
