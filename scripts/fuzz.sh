#!/usr/bin/env bash
# Builds the libFuzzer targets of the file parsers (in the tree of the CMake preset sanitize: clang, ASan, UBSan;
# tests/fuzz/) and runs each for a number of executions, one target after the other.
#
#   scripts/fuzz.sh [--ci] [--runs N] [TARGET ...]
#
#   --runs N   executions per target (default 1000000)
#   --ci       a short run for continuous integration: 20000 executions per target, from a fixed random seed
#              (-seed=1), so that a CI run is repeatable
#   TARGET     fuzz_npy, npy, ...: build and run only these (default: every fuzz_* target)
#
# Each target starts from its seed corpus tests/fuzz/corpus/NAME (read only) and keeps what it finds in
# build/sanitize/fuzz-runs/NAME/corpus, so a later run goes on from there. A crash, a sanitizer report, an escaping
# exception that is not the project's (tests/fuzz/fuzz_input.hpp), a hang (-timeout=10 s) or an allocation beyond
# 2048 MB is a finding: the script says which target and where libFuzzer left the reproducer, and exits 1 once all
# targets have run. Rerun one input with: build/sanitize/tests/fuzz/fuzz_NAME REPRODUCER
set -euo pipefail
cd "$(dirname "$0")/.."

runs=1000000
seed_options=()
targets=()
while (($#)); do
  case "$1" in
    --ci)
      runs=20000
      seed_options=(-seed=1)
      ;;
    --runs)
      runs="${2:?--runs needs a number}"
      shift
      ;;
    -h | --help)
      sed -n '2,17p' "$0" | sed 's/^# \{0,1\}//'
      exit 0
      ;;
    *) targets+=("fuzz_${1#fuzz_}") ;;
  esac
  shift
done
[[ "$runs" =~ ^[0-9]+$ ]] || { echo "fuzz: --runs $runs: expected a number of executions" >&2; exit 2; }

# Named targets are built alone: those of the parsers need 15 of the library's files, not the whole of it.
build_targets=(--target fuzz_targets)
((${#targets[@]})) && build_targets=(--target "${targets[@]}")
echo "fuzz: configuring (CMake preset 'sanitize') and building the targets with ${JOBS:-2} jobs"
cmake --preset sanitize >/dev/null
nice cmake --build --preset sanitize -j "${JOBS:-2}" "${build_targets[@]}" >build/sanitize/fuzz-build.log 2>&1 ||
  { tail -n 40 build/sanitize/fuzz-build.log >&2; echo "fuzz: the build failed (build/sanitize/fuzz-build.log)" >&2; exit 2; }

bin=build/sanitize/tests/fuzz
if ((${#targets[@]} == 0)); then
  for source in tests/fuzz/fuzz_*.cpp; do targets+=("$(basename "$source" .cpp)"); done
fi

export UBSAN_OPTIONS="${UBSAN_OPTIONS:-print_stacktrace=1:halt_on_error=1}"
failed=()
printf '%-20s %10s %9s %8s %8s  %s\n' target executions exec/s cov ft result
for target in "${targets[@]}"; do
  name="${target#fuzz_}"
  [[ -x "$bin/$target" ]] || { echo "fuzz: no target $target (tests/fuzz/$target.cpp)" >&2; exit 2; }
  # Absolute paths: a target may change its working directory (fuzz_study_ini works in its scratch directory), and
  # libFuzzer reads the corpus and writes what it finds after the first input has run.
  work="$PWD/build/sanitize/fuzz-runs/$name"
  mkdir -p "$work/corpus" "$work/artifacts"
  options=(-runs="$runs" -rss_limit_mb=2048 -malloc_limit_mb=2048 -timeout=10 -print_final_stats=1
           -artifact_prefix="$work/artifacts/" "${seed_options[@]}")
  [[ -f "tests/fuzz/$name.dict" ]] && options+=(-dict="$PWD/tests/fuzz/$name.dict")
  start=$(date +%s)
  status=0
  nice "$bin/$target" "${options[@]}" "$work/corpus" "$PWD/tests/fuzz/corpus/$name" >"$work/log" 2>&1 || status=$?
  seconds=$(($(date +%s) - start))
  # The last status line: "#N DONE cov: C ft: F corp: ..." (or the last "#N ..." line before a finding); -a: the
  # log holds raw bytes of the dictionary entries.
  last=$(grep -aE '^#[0-9]+' "$work/log" | tail -n 1 || true)
  executions=$(grep -aoE 'stat::number_of_executed_units: *[0-9]+' "$work/log" | grep -oE '[0-9]+$' || true)
  [[ -n "$executions" ]] || executions=$(sed -E 's/^#([0-9]+).*/\1/' <<<"$last")
  cov=$(grep -aoE 'cov: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)
  ft=$(grep -aoE 'ft: [0-9]+' <<<"$last" | grep -oE '[0-9]+' || echo -)
  rate=$(grep -aoE 'stat::average_exec_per_sec: *[0-9]+' "$work/log" | grep -oE '[0-9]+$' || echo -)
  if ((status == 0)); then
    result="ok (${seconds} s)"
  else
    reproducer=$(grep -aoE "Test unit written to [^ ]+" "$work/log" | tail -n 1 | sed 's/Test unit written to //' || true)
    result="FINDING: ${reproducer:-see $work/log}"
    failed+=("$target: ${reproducer:-no reproducer written}; log $work/log")
  fi
  printf '%-20s %10s %9s %8s %8s  %s\n' "$target" "${executions:--}" "$rate" "$cov" "$ft" "$result"
done

if ((${#failed[@]})); then
  echo "fuzz: ${#failed[@]} target(s) found a problem:" >&2
  printf '  %s\n' "${failed[@]}" >&2
  echo "fuzz: rerun one with build/sanitize/tests/fuzz/TARGET REPRODUCER" >&2
  exit 1
fi
echo "fuzz: no findings in ${#targets[@]} target(s), $runs executions each"
