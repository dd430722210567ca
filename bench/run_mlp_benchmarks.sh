#!/usr/bin/env bash
# Builds scoresde (Release), runs the Google Benchmark program bench/bench_mlp and the PyTorch baseline
# bench/reference_mlp_pytorch.py on the same networks, batches and thread counts, and prints a Markdown report
# (machine, load, commands, tables) on stdout for docs/benchmarks.md, section "MLP score network". Progress goes
# to stderr; raw results stay in the output directory.
#
# Usage: bench/run_mlp_benchmarks.sh [--build-dir DIR] [--no-build] [--skip-pytorch] [--threads "1 2"]
#                                    [--pin CPU] [--openblas DIR] [--repeats R] [--out-dir DIR] [--report-only]
#   --build-dir DIR  build tree (default build/release, configured with `cmake --preset release`)
#   --no-build       use the binaries already in the build tree
#   --skip-pytorch   scoresde only
#   --threads LIST   thread counts to run (default "1 2")
#   --pin CPU        run the 1-thread measurements under `taskset -c CPU` (both programs)
#   --openblas DIR   also run PyTorch with the libblas.so.3 of DIR first on LD_LIBRARY_PATH (default:
#                    /usr/lib/x86_64-linux-gnu/openblas-pthread when it exists, as Debian's libopenblas0-pthread
#                    installs it); PyTorch also runs on one thread with the BLAS the system resolves
#   --repeats R      timed PyTorch repetitions, best reported (default 3, after a warm-up; Google Benchmark
#                    always runs 3 repetitions after a warm-up)
#   --out-dir DIR    where raw results go (default BUILD_DIR/bench-results-mlp)
#   --report-only    print the report again from the raw results in --out-dir, running nothing
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
invocation="bench/run_mlp_benchmarks.sh${*:+ $*}"
build_dir=build/release
build=1
pytorch=1
report_only=0
repeats=3
threads_list="1 2"
pin=
openblas=/usr/lib/x86_64-linux-gnu/openblas-pthread
out_dir=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --skip-pytorch) pytorch=0; shift ;;
    --threads) threads_list=$2; shift 2 ;;
    --pin) pin=$2; shift 2 ;;
    --openblas) openblas=$2; shift 2 ;;
    --repeats) repeats=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    --report-only) report_only=1; shift ;;
    -h|--help) sed -n '2,21p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_mlp_benchmarks.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
out_dir=${out_dir:-$build_dir/bench-results-mlp}
python=/usr/bin/python3
log() { echo "[run_mlp_benchmarks] $*" >&2; }
pinned() {  # pinned THREADS CMD...: the command, under taskset for one thread when --pin is given
  local threads=$1; shift
  if [[ $threads == 1 && -n $pin ]]; then taskset -c "$pin" "$@"; else "$@"; fi
}
load() { cut -d' ' -f1-3 /proc/loadavg; }

run_all() {
if [[ $build == 1 ]]; then
  if [[ $build_dir == build/release ]]; then
    log "cmake --preset release && cmake --build build/release --target bench_mlp"
    cmake --preset release >&2
  else
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
  fi
  cmake --build "$build_dir" --target bench_mlp >&2
fi
bench_bin=$build_dir/bench/bench_mlp
[[ -x $bench_bin ]] || { echo "run_mlp_benchmarks.sh: $bench_bin not found; build it or check libbenchmark-dev" >&2; exit 1; }
mkdir -p "$out_dir"
rm -f "$out_dir"/gbench-*.json "$out_dir"/pytorch.jsonl "$out_dir"/loads.jsonl
date_start=$(date -u '+%Y-%m-%d %H:%M UTC')

for threads in $threads_list; do
  # sgemm, forward and score are single-threaded; they run with the 1-thread set.
  filter="/threads:$threads/"
  [[ $threads == 1 ]] && filter="^(sgemm|forward|score)/|/threads:1/"
  before=$(load)
  log "Google Benchmark, $threads thread(s): $bench_bin --benchmark_filter='$filter'"
  pinned "$threads" "$bench_bin" --benchmark_filter="$filter" \
    --benchmark_out="$out_dir/gbench-$threads.json" --benchmark_out_format=json >&2
  echo "{\"program\": \"scoresde\", \"threads\": $threads, \"before\": \"$before\", \"after\": \"$(load)\"}" \
    >>"$out_dir/loads.jsonl"
  if [[ $pytorch == 1 ]]; then
    # The system's BLAS (Debian's reference BLAS unless an optimised one is installed) on one thread only: it
    # is slow, and the second column of the table.
    blas_runs=()
    [[ -n $openblas && -e $openblas/libblas.so.3 ]] && blas_runs+=("$openblas")
    [[ $threads == 1 ]] && blas_runs+=(system)
    for blas in "${blas_runs[@]}"; do
      before=$(load)
      log "PyTorch, $threads thread(s), BLAS $blas"
      if [[ $blas == system ]]; then
        pinned "$threads" "$python" bench/reference_mlp_pytorch.py --threads "$threads" --repeats "$repeats" \
          --json "$out_dir/pytorch.jsonl" >&2
      else
        LD_LIBRARY_PATH=$blas${LD_LIBRARY_PATH:+:$LD_LIBRARY_PATH} OPENBLAS_NUM_THREADS=$threads \
          pinned "$threads" "$python" bench/reference_mlp_pytorch.py --threads "$threads" --repeats "$repeats" \
          --json "$out_dir/pytorch.jsonl" >&2
      fi
      echo "{\"program\": \"pytorch $blas\", \"threads\": $threads, \"before\": \"$before\", \"after\": \"$(load)\"}" \
        >>"$out_dir/loads.jsonl"
    done
  fi
done

"$python" -c 'import json, sys
keys = ["date_start", "date_end", "head", "cpu_model", "cpus", "memory_gib", "command", "pin", "repeats"]
json.dump(dict(zip(keys, sys.argv[2:])), open(sys.argv[1], "w"), indent=1)' "$out_dir/run.json" \
  "$date_start" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
  "$(lscpu | sed -n 's/^Model name: *//p')" "$(nproc)" "$(free -g | awk '/^Mem:/ {print $2}')" "$invocation" \
  "${pin:-none}" "$repeats"
if [[ $pytorch == 1 ]]; then
  "$python" bench/reference_mlp_pytorch.py --show-config >"$out_dir/torch-config.txt" 2>&1 || true
fi
}

[[ $report_only == 1 ]] || run_all

OUT_DIR=$out_dir "$python" - <<'PY'
import glob, json, os, re

out = os.environ["OUT_DIR"]
run = json.load(open(os.path.join(out, "run.json")))
nets = {0: "2-128-128-2", 1: "2-256-256-256-2"}
sd, ctx = {}, {}
for path in sorted(glob.glob(os.path.join(out, "gbench-*.json"))):
    gb = json.load(open(path))
    ctx = gb["context"]
    per = {}
    for b in gb["benchmarks"]:
        if b.get("run_type") != "iteration":
            continue
        m = re.match(r"(\w+)/net:(\d)/batch:(\d+)(?:/threads:(\d))?", b["name"])
        job, net, batch, threads = m.group(1), nets[int(m.group(2))], int(m.group(3)), int(m.group(4) or 1)
        assert b["time_unit"] == "ms"
        key = (job, net, batch, threads)
        # The best repetition by time, with its own counters.
        if key not in per or b["real_time"] < per[key]["real_time"]:
            per[key] = b
    sd.update(per)
rows = [json.loads(l) for l in open(os.path.join(out, "pytorch.jsonl"))] if os.path.exists(
    os.path.join(out, "pytorch.jsonl")) else []
pt = {}
for r in rows:
    blas = "openblas" if "openblas" in r["blas"] else "system"
    pt[(blas, r["job"], r["net"], r["batch"], r["threads"])] = r
loads = [json.loads(l) for l in open(os.path.join(out, "loads.jsonl"))] if os.path.exists(
    os.path.join(out, "loads.jsonl")) else []
torch_version = rows[0]["torch"] if rows else "not run"
blas_paths = sorted({r["blas"] for r in rows})

print(f"Run {run['date_start']} to {run['date_end']}; scoresde {ctx.get('scoresde_git_revision', '?')} "
      f"(HEAD {run['head']}); {run['cpu_model']}, {run['cpus']} CPUs, {run['memory_gib']} GiB; "
      f"{ctx.get('scoresde_compiler', '?')}, {ctx.get('scoresde_build_type', '?')} -O3 -march=native; "
      f"Eigen {ctx.get('scoresde_eigen', '?')}; PyTorch {torch_version}; 1-thread runs pinned to CPU {run['pin']}.\n")
print(f"Command: `{run['command']}`. PyTorch BLAS libraries seen: " + "; ".join(f"`{p}`" for p in blas_paths) + ".\n")
print("Load average (1, 5, 15 min) around each program's runs: " +
      "; ".join(f"{l['program']}, {l['threads']} thread(s): {l['before']} before, {l['after']} after" for l in loads)
      + ".\n")

def rate(job, b):
    if b is None:
        return None
    return b.get("iterations_per_s") if job == "train" else b.get("sample_evals_per_s")

def sgemm_best(net, batch):
    """The machine's sgemm rate on these shapes: the better of the sgemm benchmark and the in-process
    calibration behind the fraction_of_sgemm counters."""
    rates = [b["sgemm_GFLOPs"] for k, b in sd.items() if k[1] == net and k[2] == batch]
    if ("sgemm", net, batch, 1) in sd:
        rates.append(sd[("sgemm", net, batch, 1)]["GFLOPs"])
    return max(rates) if rates else None

def sd_rate(key):
    b = sd.get(key)
    if b is None:
        return None, None, None
    sg = sgemm_best(key[1], key[2])
    # A fraction of the one-thread sgemm rate means nothing for a two-thread run.
    return rate(key[0], b), b["GFLOPs"], b["GFLOPs"] / sg if sg and key[3] == 1 else None

def f(x, digits=3):
    return "—" if x is None else f"{x:.{digits}g}"

def ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.2f}×"

labels = {"train": "training, iterations/s", "sample": "EM sampling, sample-evals/s",
          "forward": "forward, sample-evals/s"}
print("| job | network | batch | threads | PyTorch (OpenBLAS) | PyTorch (system BLAS) | scoresde | speed-up vs "
      "OpenBLAS | speed-up vs system BLAS | scoresde GFLOP/s | fraction of sgemm |")
print("|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for job in ("train", "sample", "forward"):
    for net in nets.values():
        for batch in (512, 10000):
            for threads in (1, 2):
                if job == "forward" and threads == 2:
                    continue
                s, g, frac = sd_rate((job, net, batch, threads))
                po = rate(job, pt.get(("openblas", job, net, batch, threads)))
                ps = rate(job, pt.get(("system", job, net, batch, threads)))
                if s is None and po is None and ps is None:
                    continue
                print(f"| {labels[job]} | {net} | {batch} | {threads} | {f(po)} | {f(ps)} | {f(s)} | {ratio(s, po)} "
                      f"| {ratio(s, ps)} | {f(g)} | {f(frac, 2)} |")
print("\nscoresde alone, one thread (GFLOP/s counts 2 m n k per product; sgemm = Eigen on the network's products "
      "W_l H_l, no bias or activation, best of the sgemm benchmark and the in-process calibration):\n")
print("| benchmark | network | batch | time per call | GFLOP/s | sgemm GFLOP/s | fraction of sgemm |")
print("|---|---|---:|---:|---:|---:|---:|")
for job in ("sgemm", "forward", "score", "sample", "train"):
    for net in nets.values():
        for batch in (512, 10000):
            b = sd.get((job, net, batch, 1))
            if b is None:
                continue
            sg = sgemm_best(net, batch)
            print(f"| {job} | {net} | {batch} | {b['real_time']:.3f} ms | {b['GFLOPs']:.1f} | {sg:.1f} "
                  f"| {b['GFLOPs'] / sg:.2f} |")
PY
