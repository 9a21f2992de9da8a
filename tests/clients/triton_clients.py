"""`wgpu-lstm serve` driven by clients that are not ours: NVIDIA's `tritonclient` over HTTP
and over gRPC. Every output is checked against the library's own result for the same input
(`wgpu-lstm run --device cpu` on the same model file).

    python tests/clients/triton_clients.py --bin target/debug/wgpu-lstm

Needs `tritonclient[http,grpc]` and numpy (`.ci/run` prepares a virtual environment). Prints
what it checked; exits non-zero at the first mismatch.
"""

import argparse
import os
import queue
import signal
import subprocess
import sys
import tempfile
import threading

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.http as httpclient
from tritonclient.utils import InferenceServerException

from model_file import write_safetensors

INPUT, HIDDEN, LAYERS = 6, 10, 2
# Outputs agree with `run` within float32 rounding: the server batches requests into rounds,
# whose kernels tile the rows differently from a lone forward's.
ATOL, RTOL = 2e-5, 2e-5


def lstm_weights(rng):
    t, k = {}, 1 / np.sqrt(HIDDEN)
    for layer in range(LAYERS):
        i = INPUT if layer == 0 else HIDDEN
        t[f"weight_ih_l{layer}"] = rng.uniform(-k, k, (4 * HIDDEN, i))
        t[f"weight_hh_l{layer}"] = rng.uniform(-k, k, (4 * HIDDEN, HIDDEN))
        t[f"bias_ih_l{layer}"] = rng.uniform(-k, k, (4 * HIDDEN,))
        t[f"bias_hh_l{layer}"] = rng.uniform(-k, k, (4 * HIDDEN,))
    return t


class Reference:
    """The library's own results: `wgpu-lstm run` on the model file."""

    def __init__(self, binary, model, tmp):
        self.binary, self.model, self.tmp, self.n = binary, model, tmp, 0

    def __call__(self, x, h0=None, c0=None):
        self.n += 1
        p = lambda name: os.path.join(self.tmp, f"ref{self.n}_{name}.npy")
        np.save(p("x"), x.astype(np.float32))
        cmd = [self.binary, "run", "--device", "cpu", "--weights", self.model, "--input", p("x"),
               "--output", p("y"), "--hn", p("hn"), "--cn", p("cn")]
        for name, a in (("h0", h0), ("c0", c0)):
            if a is not None:
                np.save(p(name), a.astype(np.float32))
                cmd += [f"--{name}", p(name)]
        subprocess.run(cmd, check=True, capture_output=True)
        return {"y": np.load(p("y")), "h_n": np.load(p("hn")), "c_n": np.load(p("cn"))}


def check(what, got, want):
    if got.shape != want.shape:
        sys.exit(f"FAIL {what}: shape {got.shape}, expected {want.shape}")
    if not np.allclose(got, want, atol=ATOL, rtol=RTOL):
        worst = np.max(np.abs(got - want))
        sys.exit(f"FAIL {what}: worst |difference| {worst:.3g}")


def start_server(binary, model):
    proc = subprocess.Popen(
        [binary, "serve", "--device", "cpu", "--model", f"lstm={model}", "--http", "127.0.0.1:0",
         "--grpc", "127.0.0.1:0", "--max-sequences", "128"],
        stderr=subprocess.PIPE, text=True)
    for line in proc.stderr:
        if line.startswith("listening:"):
            fields = dict(f.split("=", 1) for f in line.split()[1:])
            # Keep draining stderr so that the server never blocks on a full pipe.
            threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
            return proc, fields["http"], fields["grpc"]
    sys.exit(f"FAIL the server did not start (exit {proc.wait()})")


def check_metadata(client, grpc):
    assert client.is_server_live() and client.is_server_ready()
    assert client.is_model_ready("lstm")
    meta = client.get_server_metadata()
    meta = meta if isinstance(meta, dict) else {"name": meta.name, "extensions": list(meta.extensions)}
    assert meta["name"] == "wgpu-lstm" and "sequence" in meta["extensions"], meta
    m = client.get_model_metadata("lstm")
    shape = list(m["inputs"][0]["shape"]) if isinstance(m, dict) else list(m.inputs[0].shape)
    assert shape == [-1, INPUT], shape
    if not grpc:
        config = client.get_model_config("lstm")
        assert "sequence_batching" in config, config
    try:
        client.get_model_metadata("nope")
        sys.exit("FAIL an unknown model was answered")
    except InferenceServerException as e:
        assert "unknown model" in str(e), e


def one_shot(client, mod, ref, rng, binary):
    t = int(rng.integers(1, 60))
    x = rng.uniform(-1, 1, (t, INPUT)).astype(np.float32)
    h0 = rng.uniform(-0.5, 0.5, (LAYERS, HIDDEN)).astype(np.float32)
    inputs = [mod.InferInput("x", list(x.shape), "FP32"), mod.InferInput("h0", list(h0.shape), "FP32")]
    kw = {} if mod is grpcclient else {"binary_data": binary}
    inputs[0].set_data_from_numpy(x, **kw)
    inputs[1].set_data_from_numpy(h0, **kw)
    outputs = [mod.InferRequestedOutput(n, **kw) for n in ("y", "h_n", "c_n")]
    r = client.infer("lstm", inputs, outputs=outputs, request_id="one")
    want = ref(x, h0=h0)
    for n in ("y", "h_n", "c_n"):
        check(f"{mod.__name__} infer (binary={binary}) {n}", r.as_numpy(n), want[n])


def chunk_inputs(mod, x):
    i = mod.InferInput("x", list(x.shape), "FP32")
    i.set_data_from_numpy(x)
    return [i]


def sequences_http(client, ref, rng, count):
    """`count` sequences, their chunks interleaved, each with start and end."""
    xs = [rng.uniform(-1, 1, (int(rng.integers(2, 40)), INPUT)).astype(np.float32) for _ in range(count)]
    at, ys, last = [0] * count, [[] for _ in range(count)], [None] * count
    while any(a < len(x) for a, x in zip(at, xs)):
        for k, x in enumerate(xs):
            if at[k] == len(x):
                continue
            n = min(int(rng.integers(1, 8)), len(x) - at[k])
            r = client.infer("lstm", chunk_inputs(httpclient, x[at[k]:at[k] + n]),
                             sequence_id=1000 + k, sequence_start=at[k] == 0,
                             sequence_end=at[k] + n == len(x))
            ys[k].append(r.as_numpy("y"))
            last[k] = r
            at[k] += n
    for k, x in enumerate(xs):
        want = ref(x)
        check(f"http sequence {k} y", np.concatenate(ys[k]), want["y"])
        check(f"http sequence {k} h_n", last[k].as_numpy("h_n"), want["h_n"])
        check(f"http sequence {k} c_n", last[k].as_numpy("c_n"), want["c_n"])


def sequences_grpc_stream(client, ref, rng, count):
    """`count` sequences (string ids) interleaved on one gRPC stream."""
    answers = queue.Queue()
    client.start_stream(callback=lambda result, error: answers.put((result, error)))
    xs = [rng.uniform(-1, 1, (int(rng.integers(2, 40)), INPUT)).astype(np.float32) for _ in range(count)]
    sent, at = [], [0] * count
    while any(a < len(x) for a, x in zip(at, xs)):
        for k, x in enumerate(xs):
            if at[k] == len(x):
                continue
            n = min(int(rng.integers(1, 8)), len(x) - at[k])
            client.async_stream_infer("lstm", chunk_inputs(grpcclient, x[at[k]:at[k] + n]),
                                      request_id=f"{k}:{len(sent)}", sequence_id=f"utt-{k}",
                                      sequence_start=at[k] == 0, sequence_end=at[k] + n == len(x))
            sent.append(k)
            at[k] += n
    ys, last = [[] for _ in range(count)], [None] * count
    for _ in sent:
        result, error = answers.get(timeout=60)
        if error is not None:
            sys.exit(f"FAIL grpc stream: {error}")
        k, order = map(int, result.get_response().id.split(":"))
        ys[k].append((order, result.as_numpy("y")))
        if last[k] is None or order > last[k][0]:
            last[k] = (order, result)
    client.stop_stream()
    for k, x in enumerate(xs):
        want = ref(x)
        y = np.concatenate([y for _, y in sorted(ys[k], key=lambda p: p[0])])
        check(f"grpc stream sequence {k} y", y, want["y"])
        check(f"grpc stream sequence {k} c_n", last[k][1].as_numpy("c_n"), want["c_n"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/debug/wgpu-lstm")
    ap.add_argument("--seed", type=int, default=int(os.environ.get("WGPU_LSTM_SEED", "5")))
    args = ap.parse_args()
    print(f"seed {args.seed} (rerun with --seed {args.seed})")
    rng = np.random.default_rng(args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "m.safetensors")
        write_safetensors(model, lstm_weights(rng), {"cell": "lstm"})
        ref = Reference(os.path.abspath(args.bin), model, tmp)
        proc, http_addr, grpc_addr = start_server(os.path.abspath(args.bin), model)
        try:
            h = httpclient.InferenceServerClient(http_addr)
            g = grpcclient.InferenceServerClient(grpc_addr)
            check_metadata(h, grpc=False)
            check_metadata(g, grpc=True)
            print("metadata, health, config: ok (HTTP and gRPC)")
            for binary in (False, True):
                for _ in range(3):
                    one_shot(h, httpclient, ref, rng, binary)
            for _ in range(3):
                one_shot(g, grpcclient, ref, rng, True)
            print("infer: ok (HTTP JSON, HTTP binary, gRPC), 9 requests")
            sequences_http(h, ref, rng, 32)
            print("32 interleaved sequences over HTTP: ok")
            sequences_grpc_stream(g, ref, rng, 32)
            print("32 interleaved sequences on one gRPC stream: ok")
            try:
                h.infer("lstm", chunk_inputs(httpclient, np.zeros((2, INPUT), np.float32)),
                        sequence_id=424242, sequence_start=False)
                sys.exit("FAIL a sequence continued without its start was answered")
            except InferenceServerException as e:
                assert "not open" in str(e), e
            print("errors: ok")
            print(f"{ref.n} results compared with `wgpu-lstm run`")
        finally:
            proc.send_signal(signal.SIGTERM)
            code = proc.wait(timeout=60)
        if code != 0:
            sys.exit(f"FAIL the server exited {code} after SIGTERM")
        print("SIGTERM: exit 0")


if __name__ == "__main__":
    main()
