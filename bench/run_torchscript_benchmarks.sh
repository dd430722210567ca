#!/usr/bin/env bash
# One score evaluation of a TorchScript module through scoresde (bench/bench_torchscript) next to the same module
# called from Python (bench/reference_torchscript.py), side by side in one run, and a Markdown report on stdout for
# docs/benchmarks.md, section "TorchScript models". Modules: a 2-128-128-2 MLP and a small U-Net on 1 x 8 x 8
# points, and a module that copies its input (the cost around a module call), written by reference_torchscript.py
# --write-modules; batches 512 and 10000; one and two threads.
#
# Usage: bench/run_torchscript_benchmarks.sh [--build-dir DIR] [--rounds R] [--repeats K] [--out-dir DIR]
#   --build-dir DIR  build tree with bench/bench_torchscript (default build/release; built here)
#   --rounds R       rounds (default 3): each runs scoresde, then Python, over every case; the report takes
#                    each case's best over all rounds, so that both programs see the same spells of load
#   --repeats K      timed calls per case and round, after a warm-up (default 10)
#   --out-dir DIR    raw results (default BUILD_DIR/bench-results-torchscript)
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
invocation="bench/run_torchscript_benchmarks.sh${*:+ $*}"
build_dir=build/release
rounds=3
repeats=10
out_dir=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --rounds) rounds=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    -h|--help) sed -n '2,13p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_torchscript_benchmarks.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
out_dir=${out_dir:-$build_dir/bench-results-torchscript}
python=/usr/bin/python3
log() { echo "[run_torchscript_benchmarks] $*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

cmake --build "$build_dir" --target bench_torchscript >&2
bench_bin=$build_dir/bench/bench_torchscript
mkdir -p "$out_dir"
rm -f "$out_dir"/results.jsonl "$out_dir"/loads.txt
"$python" bench/reference_torchscript.py --write-modules "$out_dir"
models=("mlp=$out_dir/mlp.pt" "unet=$out_dir/unet.pt" "copy=$out_dir/copy.pt")
date_start=$(date -u '+%Y-%m-%d %H:%M UTC')
for round in $(seq 1 "$rounds"); do
  echo "round $round: scoresde, load $(load)" >>"$out_dir/loads.txt"
  log "round $round/$rounds: $bench_bin --repeats $repeats ${models[*]}"
  "$bench_bin" --repeats "$repeats" --json "$out_dir/results.jsonl" "${models[@]}" >&2
  echo "round $round: pytorch, load $(load)" >>"$out_dir/loads.txt"
  log "round $round/$rounds: $python bench/reference_torchscript.py --repeats $repeats ${models[*]}"
  "$python" bench/reference_torchscript.py --repeats "$repeats" --json "$out_dir/results.jsonl" "${models[@]}" >&2
done
echo "end: load $(load)" >>"$out_dir/loads.txt"

OUT_DIR=$out_dir DATE_START=$date_start INVOCATION=$invocation "$python" - <<'PY'
import json, os, subprocess
out = os.environ["OUT_DIR"]
rows = [json.loads(l) for l in open(os.path.join(out, "results.jsonl"))]
best = {}
for r in rows:
    key = (r["net"], r["batch"], r["threads"], r["program"])
    best[key] = min(best.get(key, float("inf")), r["ms"])
lscpu = subprocess.run(["lscpu"], capture_output=True, text=True).stdout
field = lambda name: next((l.split(":", 1)[1].strip() for l in lscpu.splitlines() if l.startswith(name + ":")), "?")
flags = field("Flags").split()
isa = ", ".join(f for f in ("avx2", "fma", "avx512f", "avx512_bf16", "amx_tile") if f in flags)
torch_version = next((r["torch"] for r in rows if "torch" in r), "?")
print(f"Run {os.environ['DATE_START']}; {field('Model name')}, {field('CPU(s)')} CPUs, ISA {isa}; "
      f"PyTorch/LibTorch {torch_version}. Command: `{os.environ['INVOCATION']}`. Load average (1, 5, 15 min) per "
      "round: " + "; ".join(l.strip() for l in open(os.path.join(out, "loads.txt"))) + ".\n")
print("| module | batch | threads | PyTorch, ms | scoresde, ms | scoresde / PyTorch |")
print("|---|---:|---:|---:|---:|---:|")
for net in ("mlp", "unet", "copy"):
    for batch in (512, 10000):
        for threads in (1, 2):
            p, s = best.get((net, batch, threads, "pytorch")), best.get((net, batch, threads, "scoresde"))
            if p is None or s is None:
                continue
            print(f"| {net} | {batch} | {threads} | {p:.3f} | {s:.3f} | {s / p:.3f} |")
PY
