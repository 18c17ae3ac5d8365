#!/usr/bin/env bash
# The CUDA check, for a machine with a GPU and a CUDA LibTorch 2.x (a PyTorch wheel's is fine) but no
# Debian -dev packages: builds crepe against that LibTorch with header-only dependencies from
# THIRD_PARTY (see cmake/Dependencies.cmake), runs the test suite with the GPU tests enabled, then a
# short benchmark; everything within ~8 minutes. Logs and a JSON summary go to the folder given
# (default gpu-check/).
#   usage: scripts/gpu-check.sh [OUT_DIR]      env: THIRD_PARTY, TORCH_PREFIX, SHARED
set -uo pipefail
cd "$(dirname "$0")/.."
OUT=${1:-gpu-check}
mkdir -p "$OUT"
TORCH_PREFIX=${TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)')}
SHARED=${SHARED:-../shared}
start=$(date +%s)
status() { echo "{\"step\": \"$1\", \"ok\": $2, \"seconds\": $(( $(date +%s) - start ))}"; }
summary=()

timeout 300 cmake -S . -B build-gpu -G Ninja -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DCREPE_THIRD_PARTY_DIR="${THIRD_PARTY:-third_party}" -DCREPE_SHARED_DIR="$SHARED" > "$OUT/configure.log" 2>&1 &&
  timeout 300 cmake --build build-gpu -j "$(nproc)" > "$OUT/build.log" 2>&1
built=$?
summary+=("$(status build $([ $built = 0 ] && echo true || echo false))")

if [ $built = 0 ]; then
  CREPE_SHARED_DIR="$SHARED" timeout 240 ctest --test-dir build-gpu -j 4 --output-on-failure > "$OUT/tests.log" 2>&1
  summary+=("$(status tests $([ $? = 0 ] && echo true || echo false))")
  build-gpu/crepe_bench_scores --device cuda --json "$OUT/scores-cuda.json" > "$OUT/scores-cuda.md" 2>&1
  build-gpu/crepe_make_synthetic --out /tmp/crepe-7b-shape --tokenizer-from "$SHARED/models/mini-llama-6m" --layers 4 \
    --hidden 4096 --intermediate 11008 --heads 32 --kv-heads 32 --vocab 4096 > /dev/null 2>&1
  for dtype in bf16 fp32; do
    timeout 120 build-gpu/crepe prune --model /tmp/crepe-7b-shape --out /tmp/crepe-7b-pruned --force -q --json \
      --device cuda --dtype "$dtype" --calib-data "$SHARED/data/tinystories-val.txt" --nsamples 32 --seqlen 2048 \
      > "$OUT/prune-7b-shape-$dtype.json" 2> "$OUT/prune-7b-shape-$dtype.log"
  done
  # The same with every hidden state in pinned host memory (what long calibrations of big models do).
  timeout 120 build-gpu/crepe prune --model /tmp/crepe-7b-shape --out /tmp/crepe-7b-pruned --force -q --json \
    --device cuda --dtype bf16 --max-device-activations 0 --calib-data "$SHARED/data/tinystories-val.txt" --nsamples 32 \
    --seqlen 2048 > "$OUT/prune-7b-shape-bf16-host-activations.json" 2> "$OUT/prune-7b-shape-bf16-host-activations.log"
  nvidia-smi --query-gpu=name,memory.used,memory.total --format=csv > "$OUT/nvidia-smi.csv" 2>&1
  summary+=("$(status benchmark true)")
fi
(IFS=,; echo "[${summary[*]}]") > "$OUT/summary.json"
cat "$OUT/summary.json"
