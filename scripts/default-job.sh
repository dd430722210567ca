#!/usr/bin/env bash
# README command 1: set up, build, and run the default job: every built-in sampler on eight_gaussians with the
# exact score, side by side (NFE, time, quality). The table is printed and kept in runs/default/compare.md.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
mkdir -p runs/default
build/release/scoresde compare --data eight_gaussians --sdes vp,ve --steps 1000 -n 10000 --threads "$(nproc)" \
  --out runs/default/compare.md
