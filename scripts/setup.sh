#!/usr/bin/env bash
# Installs the Debian bookworm packages crepe builds and runs with. Safe to re-run.
set -euo pipefail
packages=(
  build-essential cmake ninja-build pkg-config
  libtorch-dev libopenblas0-pthread   # without OpenBLAS, LibTorch uses the reference BLAS (~35x slower)
  libcli11-dev libspdlog-dev nlohmann-json3-dev libgtest-dev libpcre2-dev
  libsentencepiece-dev                # only for the differential tokenizer test (see tests/spm_differential)
)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if ((${#missing[@]})); then
  SUDO=""
  [ "$(id -u)" -eq 0 ] || SUDO=sudo
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}"
fi
