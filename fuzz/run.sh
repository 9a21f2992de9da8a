#!/usr/bin/env bash
# Fuzzes the .npy reader, the safetensors loader, the ONNX loader, the `run` argument handling and
# the server's HTTP and gRPC request decoders with
# libFuzzer (cargo fuzz), each for SECONDS (default 600), two targets at a time.
#   fuzz/run.sh [SECONDS] [TARGET...]
# Needs cargo-fuzz (`cargo install cargo-fuzz`). On a stable toolchain RUSTC_BOOTSTRAP=1
# lets cargo fuzz pass its sanitizer flags. Crashes land in fuzz/artifacts/TARGET/; each one
# fixed is kept in tests/fuzz_regressions/TARGET/ and replayed by `cargo test`.
set -euo pipefail
cd "$(dirname "$0")"
secs="${1:-600}"
shift || true
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(npy safetensors onnx run_args serve_http serve_grpc)
export RUSTC_BOOTSTRAP=1
cargo fuzz build -O
run_one() {
  local t="$1"
  local corpus="$PWD/corpus/$t" # absolute: the run_args target changes its directory
  mkdir -p "$corpus"
  cp -n seeds/"$t"/* "$corpus/" 2>/dev/null || true
  # The onnx target runs models on the CPU engine's threads: LeakSanitizer reports glibc's
  # per-thread destructor record (32 bytes) as a leak there, so leaks are not checked for it.
  local extra=()
  [ "$t" = onnx ] && extra=(-detect_leaks=0)
  cargo fuzz run -O "$t" "$corpus" -- -max_total_time="$secs" -rss_limit_mb=4096 \
    -max_len=65536 -print_final_stats=1 ${extra[@]+"${extra[@]}"} >"$t.log" 2>&1
  echo "$t: $(grep -E '^stat::number_of_executed_units' "$t.log" | awk '{print $2}') runs, corpus $(ls "corpus/$t" | wc -l) inputs"
}
pids=()
for t in "${targets[@]}"; do
  run_one "$t" &
  pids+=($!)
  if [ ${#pids[@]} -ge 2 ]; then wait "${pids[0]}"; pids=("${pids[@]:1}"); fi
done
wait
