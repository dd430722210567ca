#!/usr/bin/env bash
# The quick suite under AddressSanitizer and UndefinedBehaviorSanitizer (preset "sanitize": clang, -O1 with
# assertions, LibTorch left out; the same tree holds the fuzz targets of scripts/fuzz.sh). Every report halts the test that made it (ASAN_OPTIONS and UBSAN_OPTIONS in the test preset),
# and LeakSanitizer is on, with suppressions for third-party code only (tests/sanitizer/lsan.supp).
# Run scripts/setup.sh first on a new machine (scripts/test.sh does).
set -euo pipefail
cd "$(dirname "$0")/.."
echo "sanitize: configuring (CMake preset 'sanitize') and building with $(nproc) jobs"
cmake --preset sanitize >/dev/null
cmake --build --preset sanitize -j "$(nproc)"
ctest --preset sanitize -j "$(nproc)"
