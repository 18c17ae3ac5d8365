#!/usr/bin/env bash
# Lays out, on this (Debian) machine, what scripts/gpu-check.sh needs on a GPU machine that has a
# CUDA LibTorch but no Debian -dev packages and no network: the header-only dependencies (and
# GoogleTest's source, PCRE2's header and library) in the layout cmake/Dependencies.cmake reads, and
# a copy of ../shared. Everything goes to one ignored folder, .device/, so that one directory travels
# with the working tree:
#   scripts/gpu-prepare.sh && <on the GPU machine> bash scripts/gpu-check.sh OUT_DIR
# gpu-check.sh picks .device/ up by itself. Run scripts/setup.sh first (it installs the packages
# whose files are copied).
set -euo pipefail
cd "$(dirname "$0")/.."
DEST=.device
SHARED=${SHARED:-../shared}

need() { [ -e "$1" ] || { echo "gpu-prepare: $1 is missing (run scripts/setup.sh)" >&2; exit 2; }; }
for path in /usr/include/CLI/CLI.hpp /usr/include/nlohmann/json.hpp /usr/include/spdlog/spdlog.h \
            /usr/include/fmt/core.h /usr/src/googletest/CMakeLists.txt /usr/include/pcre2.h "$SHARED/README.md"; do
  need "$path"
done

rm -rf "$DEST"
tp=$DEST/third_party
mkdir -p "$tp"/{CLI11,nlohmann_json,spdlog,fmt}/include "$tp"/pcre2/{include,lib}
cp -r /usr/include/CLI "$tp/CLI11/include/"
cp -r /usr/include/nlohmann "$tp/nlohmann_json/include/"
cp -r /usr/include/spdlog "$tp/spdlog/include/"   # Debian's: SPDLOG_FMT_EXTERNAL, hence fmt below
cp -r /usr/include/fmt "$tp/fmt/include/"
cp -r /usr/src/googletest "$tp/googletest"
cp /usr/include/pcre2.h "$tp/pcre2/include/"
# The shared library itself, under its soname: a machine without libpcre2-8 still links and runs.
cp -L "$(ldconfig -p | awk '/libpcre2-8.so.0 .*x86-64/ {print $NF; exit}')" "$tp/pcre2/lib/libpcre2-8.so.0"
cp -r "$SHARED" "$DEST/shared"

grep -qx '/.device/' .gitignore || { echo "gpu-prepare: .device/ must be ignored by .gitignore" >&2; exit 2; }
echo "gpu-prepare: $(du -sh "$DEST" | cut -f1) in $DEST (third_party + shared); the working tree that travels:"
echo "  $(git ls-files -z | du -ch --files0-from=- 2>/dev/null | tail -1 | cut -f1) tracked + $(du -sh "$DEST" | cut -f1) carried"
