#!/usr/bin/env bash
# README command 2: set up, build, and run the whole test suite (quick and slow tests). Pass --quick to skip the
# tests labelled "slow".
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if [[ "${1:-}" == "--quick" ]]; then
  ctest --preset quick -j "$(nproc)"
else
  ctest --preset release -j "$(nproc)"
fi
