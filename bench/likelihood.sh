#!/usr/bin/env bash
# Times `scoresde likelihood` on n eight_gaussians points (VP, rtol = atol = 1e-5 unless given) in several
# configurations and prints a Markdown table: NFE, score calls, best-of-R wall time of the solve (the sidecar's
# result.wall_seconds), bits/dim with its standard error, and the paired difference from the exact log p_eps.
#
#   bench/likelihood.sh [--binary build/release/scoresde] [--repeats 10] [-n 1000]
set -euo pipefail

binary=build/release/scoresde
repeats=10
n=1000
while [[ $# -gt 0 ]]; do
  case "$1" in
    --binary) binary="$2"; shift 2 ;;
    --repeats) repeats="$2"; shift 2 ;;
    -n) n="$2"; shift 2 ;;
    *) echo "usage: $0 [--binary PATH] [--repeats R] [-n N]" >&2; exit 2 ;;
  esac
done
[[ -x "$binary" ]] || { echo "$0: $binary not found; build it first (cmake --build --preset release)" >&2; exit 2; }

work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT

echo "load average before: $(cut -d' ' -f1-3 /proc/loadavg); $(nproc) CPUs; $("$binary" version)"
echo
echo "| divergence | step control | threads | NFE (mean / max) | score calls | best time (s) | bits/dim | paired difference from exact log p_eps (nats) |"
echo "|---|---|---:|---:|---:|---:|---:|---:|"
run() {
  local divergence="$1" control="$2" threads="$3"; shift 3
  local best=""
  for _ in $(seq "$repeats"); do
    "$binary" likelihood --points eight_gaussians -n "$n" --seed 0 --divergence "$divergence" --ode-control "$control" \
      --threads "$threads" --quiet --out "$work/logp.npy" "$@"
    best=$(python3 -c 'import json, sys
w = json.load(open(sys.argv[1]))["result"]["wall_seconds"]
print(w if sys.argv[2] == "" else min(w, float(sys.argv[2])))' "$work/logp.npy.json" "$best")
  done
  python3 - "$work/logp.npy.json" "$best" "$divergence${*:+ $*}" "$control" "$threads" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))
r, e = m["result"], m["exact"]["error"]
print(f"| {sys.argv[3]} | {sys.argv[4]} | {sys.argv[5]} | {r['nfe']:.1f} / {r['nfe_max']:.0f} | {r['score_calls']} | "
      f"{float(sys.argv[2]):.4f} | {r['bits_per_dim']:.4f} ± {r['bits_per_dim_se']:.4f} | {e['mean']:+.2e} ± {e['se']:.1e} |")
PY
}
for threads in 1 2; do
  run hutchinson chunk "$threads"
  run hutchinson sample "$threads"
  run exact chunk "$threads"
  run exact sample "$threads"
done
run hutchinson chunk 1 --probes 4
run hutchinson chunk 1 --probe-dist gaussian
echo
echo "load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
