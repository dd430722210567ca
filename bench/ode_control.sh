#!/usr/bin/env bash
# The probability-flow ODE on eight_gaussians (VP, eps = 1e-3, rtol = atol = 1e-5 unless given), side by side:
# scoresde's dopri5 under --ode-control chunk, batched and sample, and the reference's own sampler (score_sde_pytorch's
# get_ode_sampler, SciPy RK45, through bench/reference_ode_sampler.py) when --reference names its checkout. Prints a
# Markdown table: NFE per sample (mean / max), score calls, best wall time of --repeats runs after one warm-up (the
# sidecar's result.wall_seconds for scoresde: the sampling alone), with the load average before and after.
#
#   bench/ode_control.sh [--binary build/release/scoresde] [--reference DIR] [--repeats 5] [-n 10000] [--threads 1]
#                        [--tolerance 1e-5]
set -euo pipefail
root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
binary=$root/build/release/scoresde
reference=
repeats=5
n=10000
threads=1
tolerance=1e-5
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary=$2; shift 2 ;;
    --reference) reference=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    -n) n=$2; shift 2 ;;
    --threads) threads=$2; shift 2 ;;
    --tolerance) tolerance=$2; shift 2 ;;
    -h|--help) sed -n '2,9p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "ode_control.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
python=/usr/bin/python3
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(lscpu | sed -n 's/^Model name: *//p'); n = $n, threads = $threads, tolerance $tolerance"
echo
echo "| solver | step control | NFE per sample (mean / max) | score calls | best wall time (s) |"
echo "|---|---|---:|---:|---:|"
for control in chunk batched sample; do
  for ((r = 0; r <= repeats; ++r)); do
    "$binary" sample --data eight_gaussians --sde vp --sampler ode --ode-method dopri5 --rtol "$tolerance" \
      --atol "$tolerance" --ode-control "$control" -n "$n" --threads "$threads" --quiet --out "$out/$control-$r.npy"
  done
  "$python" - "$out" "$control" "$repeats" <<'EOF'
import json, sys
out, control, repeats = sys.argv[1], sys.argv[2], int(sys.argv[3])
runs = [json.load(open(f"{out}/{control}-{r}.npy.json"))["result"] for r in range(1, repeats + 1)]
m = runs[0]
print(f"| scoresde dopri5 | {control} | {m['nfe']:.1f} / {m['nfe_max']:.0f} | {m['score_calls']} | "
      f"{min(r['wall_seconds'] for r in runs):.3f} |")
EOF
done
if [[ -n $reference ]]; then
  "$python" "$root/bench/reference_ode_sampler.py" --reference "$reference" -n "$n" --threads "$threads" \
    --tolerance "$tolerance" --repeats "$repeats" | tail -1 | "$python" -c '
import json, sys
m = json.loads(sys.stdin.read())
nfe, best = m["nfe"], m["best_wall_seconds"]
print(f"| score_sde_pytorch RK45 | one controller for the batch (RMS norm) | {nfe} / {nfe} | {nfe} | {best:.3f} |")'
fi
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
