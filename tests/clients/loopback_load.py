"""A loopback load test of `wgpu-lstm serve`: 64 concurrent clients, each sending one-shot
requests back to back (lengths uniform in 10..200 steps, `edge`'s model: LSTM 40 → 128) over
HTTP with binary tensors, for a fixed time, against two servers in turn — the cellular
batcher (`--max-batch 64`) and one request per round (`--max-batch 1`). Reports throughput
and p50/p99 latency of each; fails on any error or if the server's resident memory grows
past warm-up.

    python tests/clients/loopback_load.py --bin target/release/wgpu-lstm --seconds 60 \
        [--device cpu|gpu] [--json docs/serve-load.json]

Needs only Python's standard library and numpy.
"""

import argparse
import http.client
import json
import os
import signal
import subprocess
import sys
import tempfile
import threading
import time

import numpy as np

from model_file import write_safetensors

INPUT, HIDDEN = 40, 128
# Resident memory may grow by this share past warm-up (allocator noise), and no more.
RSS_SLACK = 0.15


def write_model(path, rng):
    k = 1 / np.sqrt(HIDDEN)
    t = {
        "weight_ih_l0": rng.uniform(-k, k, (4 * HIDDEN, INPUT)),
        "weight_hh_l0": rng.uniform(-k, k, (4 * HIDDEN, HIDDEN)),
        "bias_ih_l0": rng.uniform(-k, k, (4 * HIDDEN,)),
        "bias_hh_l0": rng.uniform(-k, k, (4 * HIDDEN,)),
    }
    write_safetensors(path, t, {"cell": "lstm"})


def rss_kib(pid):
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def body_for(x):
    header = json.dumps({
        "inputs": [{"name": "x", "datatype": "FP32", "shape": list(x.shape),
                    "parameters": {"binary_data_size": x.nbytes}}],
        "outputs": [{"name": "h_n", "parameters": {"binary_data": True}}],
    }).encode()
    return header + x.tobytes(), len(header)


def client(addr, bodies, seed, stop, latencies, errors):
    host, port = addr.rsplit(":", 1)
    conn = http.client.HTTPConnection(host, int(port), timeout=120)
    rng = np.random.default_rng(seed)
    while not stop.is_set():
        body, hlen = bodies[int(rng.integers(len(bodies)))]
        t0 = time.perf_counter()
        try:
            conn.request("POST", "/v2/models/edge/infer", body=body,
                         headers={"Inference-Header-Content-Length": str(hlen)})
            r = conn.getresponse()
            data = r.read()
            if r.status != 200 or len(data) < HIDDEN * 4:
                errors.append(f"status {r.status}: {data[:200]!r}")
                continue
        except Exception as e:  # a dropped connection is an error of the test
            errors.append(repr(e))
            conn = http.client.HTTPConnection(host, int(port), timeout=120)
            continue
        latencies.append(time.perf_counter() - t0)


def run_server(binary, model, device, max_batch, clients, seconds, bodies):
    proc = subprocess.Popen(
        [binary, "serve", "--device", device, "--model", f"edge={model}", "--http", "127.0.0.1:0",
         "--grpc", "off", "--max-batch", str(max_batch)],
        stderr=subprocess.PIPE, text=True)
    addr = None
    for line in proc.stderr:
        if line.startswith("listening:"):
            addr = line.split()[1].split("=", 1)[1]
            break
    if addr is None:
        sys.exit(f"FAIL the server did not start (exit {proc.wait()})")
    threading.Thread(target=lambda: [None for _ in proc.stderr], daemon=True).start()
    stop, errors = threading.Event(), []
    latencies = [[] for _ in range(clients)]
    threads = [threading.Thread(target=client, args=(addr, bodies, 1000 + k, stop, latencies[k], errors))
               for k in range(clients)]
    for t in threads:
        t.start()
    warmup = min(10.0, seconds / 4)
    time.sleep(warmup)
    counted_from = sum(len(l) for l in latencies)
    rss = []
    t_start = time.perf_counter()
    while time.perf_counter() - t_start < seconds - warmup:
        time.sleep(1.0)
        rss.append(rss_kib(proc.pid))
    elapsed = time.perf_counter() - t_start
    done = sum(len(l) for l in latencies) - counted_from
    stop.set()
    for t in threads:
        t.join()
    proc.send_signal(signal.SIGTERM)
    code = proc.wait(timeout=60)
    all_lat = np.concatenate([np.array(l) for l in latencies if l]) * 1e3
    first = max(rss[: max(1, len(rss) // 4)])
    last = max(rss[-max(1, len(rss) // 4):])
    return {
        "max_batch": max_batch,
        "requests_per_s": done / elapsed,
        "p50_ms": float(np.percentile(all_lat, 50)),
        "p99_ms": float(np.percentile(all_lat, 99)),
        "requests": int(len(all_lat)),
        "errors": len(errors),
        "first_errors": errors[:3],
        "rss_mib_first_quarter": first / 1024,
        "rss_mib_last_quarter": last / 1024,
        "exit": code,
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--bin", default="target/release/wgpu-lstm")
    ap.add_argument("--device", default="cpu", choices=["cpu", "gpu"])
    ap.add_argument("--clients", type=int, default=64)
    ap.add_argument("--seconds", type=float, default=60)
    ap.add_argument("--seed", type=int, default=int(os.environ.get("WGPU_LSTM_SEED", "3")))
    ap.add_argument("--json", help="write the records here")
    args = ap.parse_args()
    print(f"seed {args.seed} (rerun with --seed {args.seed})")
    rng = np.random.default_rng(args.seed)
    bodies = [body_for(rng.uniform(-1, 1, (int(t), INPUT)).astype(np.float32))
              for t in rng.integers(10, 201, 256)]
    failed = []
    with tempfile.TemporaryDirectory() as tmp:
        model = os.path.join(tmp, "edge.safetensors")
        write_model(model, rng)
        records = []
        for max_batch in (64, 1):
            r = run_server(os.path.abspath(args.bin), model, args.device, max_batch, args.clients,
                           args.seconds, bodies)
            records.append(r)
            print(f"--max-batch {max_batch:2}: {r['requests_per_s']:8.1f} req/s, p50 {r['p50_ms']:7.1f} ms, "
                  f"p99 {r['p99_ms']:7.1f} ms, {r['requests']} requests, {r['errors']} errors, "
                  f"RSS {r['rss_mib_first_quarter']:.1f} → {r['rss_mib_last_quarter']:.1f} MiB, exit {r['exit']}")
            if r["errors"]:
                failed.append(f"--max-batch {max_batch}: {r['errors']} errors, e.g. {r['first_errors']}")
            if r["rss_mib_last_quarter"] > r["rss_mib_first_quarter"] * (1 + RSS_SLACK) + 8:
                failed.append(f"--max-batch {max_batch}: resident memory grew")
            if r["exit"] != 0:
                failed.append(f"--max-batch {max_batch}: exit {r['exit']} after SIGTERM")
        ratio = records[0]["requests_per_s"] / records[1]["requests_per_s"]
        print(f"cellular / one per round: {ratio:.2f}× throughput ({args.clients} clients, {args.device})")
        if args.json:
            with open(args.json, "w") as f:
                json.dump({"device": args.device, "clients": args.clients, "seconds": args.seconds,
                           "lengths": "uniform 10..200", "model": "lstm 40 -> 128",
                           "records": records}, f, indent=1)
    if failed:
        sys.exit("FAIL " + "; ".join(failed))


if __name__ == "__main__":
    main()
