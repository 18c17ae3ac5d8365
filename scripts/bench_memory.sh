#!/usr/bin/env bash
# Peak memory against depth: synthetic LLaMA-shaped models of width 1024 (MLP 2816, bf16) with 8, 16
# and 32 blocks, pruned with wanda (calibration 16 x 128 tokens). With the streaming engine the peak
# resident set should stay flat as depth grows (one block + activations), while the checkpoint grows
# linearly. Prints a table and writes $OUT/memory.json.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
SHARED=${CREPE_SHARED_DIR:-../shared}
OUT=${OUT:-bench-results}
WORK=${WORK:-$(mktemp -d)}
DEPTHS=${DEPTHS:-"8 16 32"}
mkdir -p "$OUT"
echo "| blocks | checkpoint MiB | peak RSS MiB | prune seconds |"
echo "|---|---|---|---|"
rows=()
for depth in $DEPTHS; do
  model="$WORK/synthetic-$depth"
  "$BUILD/crepe_make_synthetic" --out "$model" --tokenizer-from "$SHARED/models/mini-llama-6m" --layers "$depth" \
    --hidden 1024 --intermediate 2816 --heads 16 --kv-heads 16 --vocab 4096 > /dev/null
  size=$(du -m "$model/model.safetensors" | cut -f1)
  report=$("$BUILD/crepe" prune --model "$model" --out "$WORK/pruned-$depth" --force -q --json --method wanda \
    --calib-data "$SHARED/data/tinystories-val.txt" --nsamples 16 --seqlen 128)
  rss=$(python3 -c 'import json,sys; print("%.0f" % json.loads(sys.argv[1])["peak_rss_mib"])' "$report")
  secs=$(python3 -c 'import json,sys; print("%.1f" % json.loads(sys.argv[1])["seconds"]["total"])' "$report")
  echo "| $depth | $size | $rss | $secs |"
  rows+=("{\"blocks\": $depth, \"checkpoint_mib\": $size, \"peak_rss_mib\": $rss, \"seconds\": $secs}")
  rm -rf "$model" "$WORK/pruned-$depth"
done
(IFS=,; echo "[${rows[*]}]") > "$OUT/memory.json"
