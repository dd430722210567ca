#!/usr/bin/env bash
# Side by side, in one sitting: score_sde_pytorch's own samplers (imported from its checkout by
# bench/reference_score_sde.py) against scoresde's bench_sampling, on the exact eight_gaussians score, for
# Euler-Maruyama and PC (reverse diffusion + Langevin, snr 0.16), N = 1000, n = 10,000, float64, and scoresde on one
# and two threads from each build tree given (by default the native build/release and the AVX2 build/release-avx2,
# presets release and release-avx2). Prints a Markdown report on stdout (CPU model, ISA of each build, load average
# before and after each program, the commands, the table); progress on stderr; raw results in --out-dir.
#
# Usage: bench/run_reference_comparison.sh REFERENCE_CHECKOUT [--builds "build/release build/release-avx2"]
#                                          [--repeats R] [--out-dir DIR] [--build]
#   REFERENCE_CHECKOUT  a score_sde_pytorch checkout (git clone https://github.com/yang-song/score_sde_pytorch)
#   --builds DIRS       the scoresde build trees to measure (each needs bench/bench_sampling)
#   --repeats R         timed runs per job on both sides, best reported (default 3, after one warm-up)
#   --out-dir DIR       raw results (default /tmp/scoresde-reference-comparison)
#   --build             configure and build the presets release and release-avx2 first
# The reference runs once per job on one thread (its two-thread runs gain nothing on this job; docs/benchmarks.md).
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
invocation="bench/run_reference_comparison.sh${*:+ $*}"
reference=
builds="build/release build/release-avx2"
repeats=3
out_dir=/tmp/scoresde-reference-comparison
build=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --builds) builds=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    --build) build=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    -*) echo "run_reference_comparison.sh: unknown option $1 (see --help)" >&2; exit 2 ;;
    *) reference=$1; shift ;;
  esac
done
if [[ -z $reference || ! -f $reference/sampling.py || ! -f $reference/sde_lib.py ]]; then
  echo "run_reference_comparison.sh: give the path of a score_sde_pytorch checkout (with sampling.py and sde_lib.py);" \
       "got '${reference}'" >&2
  exit 2
fi
[[ $repeats =~ ^[1-9][0-9]*$ ]] || { echo "run_reference_comparison.sh: --repeats must be >= 1, got $repeats" >&2; exit 2; }
log() { echo "[run_reference_comparison] $*" >&2; }
load() { cut -d' ' -f1-3 /proc/loadavg; }

if [[ $build == 1 ]]; then
  for preset in release release-avx2; do
    cmake --preset "$preset" >&2
    cmake --build --preset "$preset" --target bench_sampling >&2
  done
fi
for b in $builds; do
  [[ -x $b/bench/bench_sampling ]] || { echo "run_reference_comparison.sh: $b/bench/bench_sampling not found (--build)" >&2; exit 1; }
done
mkdir -p "$out_dir"
rm -f "$out_dir"/reference.jsonl "$out_dir"/loads.txt

date_start=$(date -u '+%Y-%m-%d %H:%M UTC')
log "score_sde_pytorch ($reference): em and pc, float64, 1 thread"
before=$(load)
/usr/bin/python3 bench/reference_score_sde.py --reference "$reference" --sampler em pc --dtype float64 --threads 1 \
  --repeats "$repeats" > "$out_dir/reference.jsonl"
echo "reference|$before|$(load)" >> "$out_dir/loads.txt"
i=0
for b in $builds; do
  log "scoresde $b: em and pc, 1 and 2 threads"
  before=$(load)
  "$b/bench/bench_sampling" --benchmark_filter='^BM_Sample/(em|pc)/' --benchmark_repetitions="$repeats" \
    --benchmark_report_aggregates_only=true --benchmark_out="$out_dir/gbench.$i.json" \
    --benchmark_out_format=json >&2
  echo "$b|$before|$(load)" >> "$out_dir/loads.txt"
  i=$((i + 1))
done

/usr/bin/python3 - "$out_dir" "$invocation" "$date_start" "$reference" $builds <<'EOF'
import json, subprocess, sys
out_dir, invocation, date_start, reference, builds = sys.argv[1], sys.argv[2], sys.argv[3], sys.argv[4], sys.argv[5:]
ref = {r["sampler"]: r for r in map(json.loads, open(f"{out_dir}/reference.jsonl"))}
loads = dict(line.strip().split("|", 1) for line in open(f"{out_dir}/loads.txt"))
cpu = next((l.split(":", 1)[1].strip() for l in subprocess.run(["lscpu"], capture_output=True, text=True).stdout
            .splitlines() if l.startswith("Model name")), "?")
flags = open("/proc/cpuinfo").read()
print(f"Run {date_start}; {cpu}, {subprocess.run(['nproc'], capture_output=True, text=True).stdout.strip()} CPUs, "
      f"{'AVX-512' if 'avx512f' in flags else 'AVX2' if 'avx2' in flags else 'no AVX2'}; score_sde_pytorch "
      f"{ref['em']['reference_commit']} ({reference}), torch {ref['em']['torch']}, Python {ref['em']['python']}.\n")
print(f"Command: `{invocation}`.\n")
print("Load average (1, 5, 15 min) before | after each program: " + "; ".join(
    f"{k}: {v.replace('|', ' | ')}" for k, v in loads.items()) + ".\n")
names = {"em": "Euler–Maruyama, N = 1000", "pc": "PC: reverse diffusion + Langevin, snr 0.16, N = 1000"}
print("| job | build (ISA) | threads | score_sde_pytorch, 1 thread | scoresde | ratio | scoresde 1 → 2 threads |")
print("|---|---|---:|---:|---:|---:|---:|")
for i, b in enumerate(builds):
    g = json.load(open(f"{out_dir}/gbench.{i}.json"))
    ctx = g["context"]
    isa = "(" + ctx.get("scoresde_simd", "?") + ")"
    best = {}
    for r in g["benchmarks"]:
        if r.get("aggregate_name") != "min":
            continue
        job, threads = r["run_name"].split("/")[1], int(r["run_name"].split("threads:")[1].split("/")[0])
        unit = {"ns": 1e-9, "us": 1e-6, "ms": 1e-3, "s": 1.0}[r["time_unit"]]
        best[(job, threads)] = r["real_time"] * unit
    for job in ("em", "pc"):
        for threads in (1, 2):
            t = best[(job, threads)]
            scale = f"{best[(job, 1)] / t:.2f}×" if threads == 2 else ""
            print(f"| {names[job]} | `{b}` {isa} | {threads} | {ref[job]['best_s']:.3f} s | {t:.4f} s | "
                  f"{ref[job]['best_s'] / t:.1f}× | {scale} |")
EOF
