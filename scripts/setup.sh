#!/usr/bin/env bash
# Installs what is missing (Debian 12 packages), then configures and builds scoresde with the release preset.
# Safe to run again: it installs nothing that is already there and rebuilds only what changed.
set -euo pipefail
cd "$(dirname "$0")/.."

packages=(
  g++ cmake ninja-build git pkg-config
  libeigen3-dev libboost-dev libboost-program-options-dev libxtensor-dev libfmt-dev
  doctest-dev librandom123-dev nlohmann-json3-dev libbenchmark-dev libssl-dev
  python3-numpy python3-matplotlib
  # Fashion-MNIST (gzipped IDX files) and zlib to read them; SciPy for the independent check of fd_fmnist in the tests.
  dataset-fashion-mnist zlib1g-dev python3-scipy
  # LibTorch for TorchScript score models (--model FILE.pt; SCORESDE_WITH_TORCH=AUTO finds it), and PyTorch for the
  # Python helper scripts/scoresde_torch.py and the modules of tests/test_torchscript.cpp.
  libtorch-dev python3-torch
  # The sanitized tree (preset sanitize: scripts/sanitize.sh, and the fuzz targets of scripts/fuzz.sh): clang with
  # libFuzzer and the sanitizer runtimes, and clang's OpenMP runtime.
  clang libclang-rt-14-dev libomp-dev
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  sudo=""
  if [[ $(id -u) -ne 0 ]]; then
    command -v sudo >/dev/null || { echo "setup: not root and no sudo; install: ${missing[*]}" >&2; exit 1; }
    sudo="sudo"
  fi
  echo "setup: installing ${missing[*]} with apt-get"
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
else
  echo "setup: all build dependencies are installed"
fi

echo "setup: configuring (CMake preset 'release') and building with $(nproc) jobs"
cmake --preset release >/dev/null
cmake --build --preset release -j "$(nproc)"
echo "setup: built build/release/scoresde"
