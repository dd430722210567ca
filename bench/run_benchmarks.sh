#!/usr/bin/env bash
# Builds scoresde (Release), runs the Google Benchmark program bench/bench_sampling, the PyTorch baseline
# bench/reference_pytorch.py on 1 and 2 threads, and the scoresde command itself, then prints a Markdown report
# (machine, build, commands, results tables) on stdout, ready to paste into docs/benchmarks.md. Progress goes to
# stderr; raw results (Google Benchmark JSON, PyTorch JSON lines, CLI sidecars) stay in the output directory.
# The comparison with score_sde_pytorch's own code (a checkout's path) is bench/run_reference_comparison.sh.
#
# Usage: bench/run_benchmarks.sh [--build-dir DIR] [--no-build] [--skip-pytorch] [--repeats R] [--out-dir DIR]
#                                [--report-only]
#   --build-dir DIR  build tree (default build/release, configured with `cmake --preset release`)
#   --no-build       use the binaries already in the build tree
#   --skip-pytorch   scoresde only (the PyTorch columns show "—")
#   --repeats R      timed PyTorch and CLI runs per job, best reported (default 3, after one warm-up)
#   --out-dir DIR    where raw results go (default BUILD_DIR/bench-results)
#   --report-only    print the report again from the raw results in --out-dir, running nothing
# Set CMAKE_BUILD_PARALLEL_LEVEL=1 to build on one core when others share the machine. A full run takes about
# 5 minutes plus the build on a quiet 2-core machine, almost all of it in PyTorch.
set -euo pipefail

root=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$root"
invocation="bench/run_benchmarks.sh${*:+ $*}"
build_dir=build/release
build=1
pytorch=1
report_only=0
repeats=3
out_dir=
while [[ $# -gt 0 ]]; do
  case "$1" in
    --build-dir) build_dir=$2; shift 2 ;;
    --no-build) build=0; shift ;;
    --skip-pytorch) pytorch=0; shift ;;
    --repeats) repeats=$2; shift 2 ;;
    --out-dir) out_dir=$2; shift 2 ;;
    --report-only) report_only=1; shift ;;
    -h|--help) sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "run_benchmarks.sh: unknown argument $1 (see --help)" >&2; exit 2 ;;
  esac
done
out_dir=${out_dir:-$build_dir/bench-results}
python=/usr/bin/python3
log() { echo "[run_benchmarks] $*" >&2; }

run_all() {
if [[ $build == 1 ]]; then
  if [[ $build_dir == build/release ]]; then
    log "cmake --preset release && cmake --build build/release --target bench_sampling scoresde"
    cmake --preset release >&2
  else
    log "cmake -S . -B $build_dir -G Ninja -DCMAKE_BUILD_TYPE=Release && cmake --build $build_dir ..."
    cmake -S . -B "$build_dir" -G Ninja -DCMAKE_BUILD_TYPE=Release >&2
  fi
  cmake --build "$build_dir" --target bench_sampling scoresde >&2
fi
bench_bin=$build_dir/bench/bench_sampling
cli_bin=$build_dir/scoresde
for f in "$bench_bin" "$cli_bin"; do
  [[ -x $f ]] || { echo "run_benchmarks.sh: $f not found; build it (drop --no-build) or check libbenchmark-dev" >&2; exit 1; }
done
mkdir -p "$out_dir"
rm -f "$out_dir"/pytorch.jsonl "$out_dir"/cli.jsonl
load_before=$(cut -d' ' -f1-3 /proc/loadavg)
date_start=$(date -u '+%Y-%m-%d %H:%M UTC')

log "Google Benchmark: $bench_bin"
"$bench_bin" --benchmark_out="$out_dir/gbench.json" --benchmark_out_format=json >&2

if [[ $pytorch == 1 ]]; then
  for threads in 1 2; do
    log "PyTorch, $threads thread(s): em and pc, float64 and float32"
    "$python" bench/reference_pytorch.py --threads "$threads" --sampler em pc --dtype float64 float32 \
      --repeats "$repeats" --json "$out_dir/pytorch.jsonl" >&2
  done
  log "PyTorch, 1 thread: em and pc, float64, with the broadcast score (a straightforward port)"
  "$python" bench/reference_pytorch.py --threads 1 --sampler em pc --dtype float64 --score broadcast \
    --repeats "$repeats" --json "$out_dir/pytorch.jsonl" >&2
fi

# The command itself, timed from outside (process start to exit: option parsing, sampling, writing the .npy and
# its .json) and from inside (wall_seconds in the sidecar: the sampling alone).
for threads in 1 2; do
  for ((r = 0; r <= repeats; ++r)); do  # r = 0 is the warm-up
    cmd=("$cli_bin" sample --data eight_gaussians --sde vp --sampler euler_maruyama --steps 1000 -n 10000
         --threads "$threads" --quiet --out "$out_dir/cli.npy")
    log "${cmd[*]}"
    start=$(date +%s%N)
    "${cmd[@]}"
    end=$(date +%s%N)
    if ((r > 0)); then
      "$python" -c 'import json, sys
meta = json.load(open(sys.argv[1]))
print(json.dumps({"threads": int(sys.argv[2]), "process_seconds": int(sys.argv[3]) / 1e9,
                  "wall_seconds": meta["result"]["wall_seconds"]}))' \
        "$out_dir/cli.npy.json" "$threads" "$((end - start))" >>"$out_dir/cli.jsonl"
    fi
  done
done
load_after=$(cut -d' ' -f1-3 /proc/loadavg)

# What the report needs about this run besides the results, so that --report-only can print it again later.
"$python" -c 'import json, sys
keys = ["date_start", "date_end", "head", "load_before", "load_after", "repeats", "cpu_model", "cpus",
        "threads_per_core", "memory_gib", "command", "build_dir"]
json.dump(dict(zip(keys, sys.argv[2:])), open(sys.argv[1], "w"), indent=1)' "$out_dir/run.json" \
  "$date_start" "$(date -u '+%Y-%m-%d %H:%M UTC')" "$(git rev-parse --short=12 HEAD 2>/dev/null || echo unknown)" \
  "$load_before" "$load_after" "$repeats" "$(lscpu | sed -n 's/^Model name: *//p')" "$(nproc)" \
  "$(lscpu | sed -n 's/^Thread(s) per core: *//p')" "$(free -g | awk '/^Mem:/ {print $2}')" "$invocation" \
  "$build_dir"
}

[[ $report_only == 1 ]] || run_all

OUT_DIR=$out_dir "$python" - <<'PY'
import json, os, re

out = os.environ["OUT_DIR"]
gb = json.load(open(os.path.join(out, "gbench.json")))
ctx = gb["context"]
run = json.load(open(os.path.join(out, "run.json")))

def read_lines(name):
    path = os.path.join(out, name)
    return [json.loads(l) for l in open(path)] if os.path.exists(path) else []

# scoresde: best repetition per (job, threads), from the "min" aggregate.
sd = {}
for b in gb["benchmarks"]:
    if b.get("aggregate_name") != "min":
        continue
    threads = int(re.search(r"threads:(\d+)", b["name"]).group(1))
    assert b["time_unit"] == "ms"
    sd[(b["label"], threads)] = {"seconds": b["real_time"] / 1e3, "cpu_seconds": b["cpu_time"] / 1e3,
                                 "nfe": b.get("nfe"), "cpu_all": b.get("cpu_all_threads_s")}
torch_rows = read_lines("pytorch.jsonl")
pt = {(r["sampler"], r["dtype"], r["threads"], r["score"]): r["best_seconds"] for r in torch_rows}
pt_cpu = {(r["sampler"], r["dtype"], r["threads"], r["score"]): r.get("best_cpu_seconds") for r in torch_rows}
cli = {}
for r in read_lines("cli.jsonl"):
    c = cli.setdefault(r["threads"], {"process_seconds": [], "wall_seconds": []})
    c["process_seconds"].append(r["process_seconds"])
    c["wall_seconds"].append(r["wall_seconds"])

torch_version = torch_rows[0]["torch"] if torch_rows else "not run"
head = run["head"]
built = ctx.get("scoresde_git_revision", "?")

def fmt_s(x):
    return "—" if x is None else (f"{x:.3f} s" if x < 10 else f"{x:.2f} s")

def ratio(a, b):
    return "—" if a is None or b is None else f"{a / b:.1f}×"

jobs = [  # (label, scoresde job, PyTorch sampler or None, work per sample in steps or None)
    ("Euler–Maruyama, N = 1000", "em", "em", 1000),
    ("PC: reverse diffusion + Langevin, snr 0.16, N = 1000", "pc", "pc", 1000),
    ("probability-flow ODE, dopri5, rtol = atol = 1e-5", "ode_dopri5", None, None),
]
n = 10000
print(f"Run {run['date_start']} to {run['date_end']}; scoresde {built} (HEAD {head}); {run['cpu_model']}, "
      f"{run['cpus']} CPUs ({run['threads_per_core']} thread(s) per core), {run['memory_gib']} GiB; "
      f"{ctx.get('scoresde_compiler', '?')}, {ctx.get('scoresde_build_type', '?')}, -O3 -march=native "
      f"({ctx.get('scoresde_simd', '?')}); Eigen {ctx.get('scoresde_eigen', '?')}; PyTorch {torch_version}; "
      f"load average (1, 5, 15 min) {run['load_before']} before, {run['load_after']} after.\n")
bd = run.get("build_dir", "build/release")
print(f"Commands: `{run.get('command', 'bench/run_benchmarks.sh')}`, which runs `{bd}/bench/bench_sampling`, "
      "`/usr/bin/python3 bench/reference_pytorch.py --threads T --sampler em pc --dtype float64 float32` for T = 1, 2 "
      "and `... --threads 1 --sampler em pc --dtype float64 --score broadcast`, and "
      f"`{bd}/scoresde sample --data eight_gaussians --sde vp --sampler euler_maruyama --steps 1000 -n 10000 "
      "--threads T --quiet --out FILE.npy` for T = 1, 2.\n")
print("n = 10,000 eight_gaussians samples, VP SDE, exact score; scoresde in float64. Wall-clock times, best of "
      f"{run['repeats']} runs after a warm-up for PyTorch and the command, best of 3 repetitions after a "
      "warm-up for Google Benchmark. Speed-up = PyTorch time / scoresde time on the same number of threads.\n")
print("| job | threads | PyTorch float64 | PyTorch float32 | scoresde | speed-up vs float64 | speed-up vs float32 "
      "| scoresde 1 → 2 threads | scoresde CPU, all threads | scoresde samples·steps/s |")
print("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|")
for label, job, sampler, steps in jobs:
    for threads in (1, 2):
        s = sd.get((job, threads), {}).get("seconds")
        s1 = sd.get((job, 1), {}).get("seconds")
        p64 = pt.get((sampler, "float64", threads, "matmul")) if sampler else None
        p32 = pt.get((sampler, "float32", threads, "matmul")) if sampler else None
        scale = ratio(s1, s) if threads == 2 else ""
        rate = f"{n * steps / s:.3g}" if s and steps else f"NFE {sd.get((job, threads), {}).get('nfe', 0):.0f}"
        cpu_all = fmt_s(sd.get((job, threads), {}).get("cpu_all"))
        print(f"| {label} | {threads} | {fmt_s(p64)} | {fmt_s(p32)} | {fmt_s(s)} | {ratio(p64, s)} | {ratio(p32, s)} "
              f"| {scale} | {cpu_all} | {rate} |")
for threads in (1, 2):
    c = cli.get(threads)
    if not c:
        continue
    proc, wall = min(c["process_seconds"]), min(c["wall_seconds"])
    p64 = pt.get(("em", "float64", threads, "matmul"))
    p32 = pt.get(("em", "float32", threads, "matmul"))
    print(f"| `scoresde sample` Euler–Maruyama, whole process (sampling alone: {wall:.3f} s) | {threads} | "
          f"{fmt_s(p64)} | {fmt_s(p32)} | {fmt_s(proc)} | {ratio(p64, proc)} | {ratio(p32, proc)} | "
          f"{ratio(min(cli[1]['process_seconds']), proc) if threads == 2 and 1 in cli else ''} | | |")

print("\nOne thread, CPU time (less sensitive than wall time to other processes on the machine; Google Benchmark "
      "measures the main thread, which on one thread is all the work):\n")
print("| job | PyTorch float64 | PyTorch float32 | scoresde | speed-up vs float64 | speed-up vs float32 |")
print("|---|---:|---:|---:|---:|---:|")
for label, job, sampler, steps in jobs:
    if not sampler:
        continue
    s = sd.get((job, 1), {}).get("cpu_seconds")
    p64, p32 = pt_cpu.get((sampler, "float64", 1, "matmul")), pt_cpu.get((sampler, "float32", 1, "matmul"))
    print(f"| {label} | {fmt_s(p64)} | {fmt_s(p32)} | {fmt_s(s)} | {ratio(p64, s)} | {ratio(p32, s)} |")

print("\nThe issue's target, ≥ 25× on one thread against PyTorch float64 (wall time), against both ways of writing "
      "the score in PyTorch (`--score broadcast` is the straightforward port; the issue quotes about 7 s for EM and "
      "14 s for PC):\n")
print("| job, 1 thread | PyTorch `broadcast` | PyTorch `matmul` | scoresde | speed-up vs broadcast | speed-up vs matmul |")
print("|---|---:|---:|---:|---:|---:|")
verdict = lambda a, b: "—" if a is None or b is None else f"{a / b:.1f}× ({'met' if a / b >= 25 else 'not met'})"
for label, job, sampler, steps in jobs:
    if not sampler:
        continue
    s = sd.get((job, 1), {}).get("seconds")
    bc, mm = pt.get((sampler, "float64", 1, "broadcast")), pt.get((sampler, "float64", 1, "matmul"))
    print(f"| {label} | {fmt_s(bc)} | {fmt_s(mm)} | {fmt_s(s)} | {verdict(bc, s)} | {verdict(mm, s)} |")
if built.removesuffix("-dirty") != head:
    print(f"\nNote: the binaries were configured at {built}, HEAD is now {head}; rebuild (drop --no-build).")
PY
