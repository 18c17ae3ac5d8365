#!/usr/bin/env bash
# Peak memory against depth: synthetic LLaMA-shaped models of width 1024 (MLP 2816, bf16) with 8, 16
# and 32 blocks, pruned with wanda (calibration 16 x 128 tokens). With the streaming engine the peak
# resident set should stay flat as depth grows (one block + activations), while the checkpoint grows
# linearly. The search's kl proxy holds every block by design: its peak should grow by about the
# checkpoint's size (the weights, once, as stored), not more, with --weights resident; with
# --weights stream it holds none of them and should stay near prune's peak (the seconds are for a
# search of 2 evaluations, its statistics pass included). Prints a table and writes
# $OUT/memory.json.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
SHARED=${CREPE_SHARED_DIR:-../shared}
OUT=${OUT:-bench-results}
WORK=${WORK:-$(mktemp -d)}
DEPTHS=${DEPTHS:-"8 16 32"}
mkdir -p "$OUT"
echo "| blocks | checkpoint MiB | prune: peak RSS MiB | prune s | search kl, resident: peak RSS MiB | s | streamed: peak RSS MiB | s |"
echo "|---|---|---|---|---|---|---|---|"
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
  # The search reports no memory of its own: read the child's peak resident set (one python per
  # search, since ru_maxrss of RUSAGE_CHILDREN is the largest child's).
  search() {  # search WEIGHTS -> "peak-RSS-MiB seconds"
    python3 - "$BUILD/crepe" "$model" "$SHARED/data/tinystories-val.txt" "$WORK/found-$depth.json" "$1" <<'PY'
import resource, subprocess, sys, time
crepe, model, data, out, weights = sys.argv[1:]
start = time.time()
subprocess.run([crepe, "search", "--model", model, "--sparsity", "0.5", "--calib-data", data, "--nsamples", "16",
                "--seqlen", "128", "--proxy", "kl", "--budget", "14", "--kernels", "3", "--groups", "layer",
                "--weights", weights, "--out", out, "-q"], check=True, stdout=subprocess.DEVNULL)
print("%.0f %.1f" % (resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss / 1024, time.time() - start))
PY
  }
  read -r resident_rss resident_secs <<< "$(search resident)"
  read -r stream_rss stream_secs <<< "$(search stream)"
  echo "| $depth | $size | $rss | $secs | $resident_rss | $resident_secs | $stream_rss | $stream_secs |"
  rows+=("{\"blocks\": $depth, \"checkpoint_mib\": $size, \"peak_rss_mib\": $rss, \"seconds\": $secs, \"search_kl_peak_rss_mib\": $resident_rss, \"search_kl_seconds\": $resident_secs, \"search_kl_stream_peak_rss_mib\": $stream_rss, \"search_kl_stream_seconds\": $stream_secs}")
  rm -rf "$model" "$WORK/pruned-$depth" "$WORK/found-$depth.json" "$WORK/found-$depth.json.trace.json"
done
(IFS=,; echo "[${rows[*]}]") > "$OUT/memory.json"
