#!/usr/bin/env bash
# README command 1: set up, build, and run the default study: eight_gaussians with its exact score, VP and VE,
# every built-in sampler (euler_maruyama, reverse_diffusion, ancestral, pc with langevin, ode with rk4 and
# dopri5) from 10 to 1000 steps, 3 seeds; then its report. Leaves runs/default/ with results.csv, results.json,
# study.ini, report.md and figures/*.png. A second run continues an interrupted study (--resume) and redraws.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
out=runs/default
resume=()
[[ -f $out/results.json ]] && resume=(--resume)
echo "default study: scoresde study --out $out ${resume[*]}"
build/release/scoresde study --out "$out" --threads "$(nproc)" "${resume[@]}"
build/release/scoresde report "$out"
echo "default study: open $out/report.md (figures in $out/figures/)"
