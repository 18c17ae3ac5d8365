#!/usr/bin/env bash
# Pruning quality and speed on the shared models: every metric at 50/60/70/80% unstructured, 2:4
# and 4:8, plus the composition options (permutation, OWL/AlphaPruning/DLP, DSnoT, reconstruction)
# and self-generated versus real calibration. 128 calibration windows of 256 tokens, seed 0;
# perplexity with 256-token windows.
#   mini-llama-6m: calibrate on tinystories-val.txt, evaluate on wikitext2-test.txt
#   stories260k:   calibrate on the first half of tinystories-val.txt, evaluate on the second half
# Writes $OUT/prune.jsonl (one record per run), then scripts/bench_report.py turns it into
# $OUT/prune.md, $OUT/prune.json and perplexity-vs-sparsity plots (PNG, with gnuplot if installed).
#
# Environment: BUILD_DIR (build), CREPE_SHARED_DIR (../shared), OUT (bench-results/prune),
# MODELS, METHODS, TARGETS, EVAL_WINDOWS (windows evaluated per model, 0 = the whole text; default:
# all of stories260k's half, the first 420 windows = first quarter of WikiText-2 for mini-llama-6m,
# as its model card reports), NSAMPLES (128), SECTIONS
# ("baseline composition calibration"). Reruns skip records already in prune.jsonl.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
SHARED=${CREPE_SHARED_DIR:-../shared}
OUT=${OUT:-bench-results/prune}
MODELS=${MODELS:-"stories260k mini-llama-6m"}
METHODS=${METHODS:-"magnitude wanda ri ria crepe sparsegpt"}
TARGETS=${TARGETS:-"0.5 0.6 0.7 0.8 2:4 4:8"}
NSAMPLES=${NSAMPLES:-128}
SECTIONS=${SECTIONS:-"baseline composition calibration"}
CREPE="$BUILD/crepe"
mkdir -p "$OUT/tmp"
RESULTS="$OUT/prune.jsonl"
touch "$RESULTS"

DATA_DIR="$OUT/data"
source scripts/bench_common.sh
split_tinystories

# run_case MODEL LABEL CALIB(file|self) ARGS... : prune, evaluate, append one JSON record.
run_case() {
  local model=$1 label=$2 calib=$3
  shift 3
  if grep -qF "\"model\": \"$model\", \"label\": \"$label\"," "$RESULTS"; then return; fi
  local out="$OUT/tmp/$model"
  local calib_args=(--calib-data "$(calib_of "$model")")
  [ "$calib" = self ] && calib_args=()
  "$CREPE" prune --model "$SHARED/models/$model" --out "$out" --force -q --json --nsamples "$NSAMPLES" --seqlen 256 \
    --seed 0 "${calib_args[@]}" "$@" > "$OUT/tmp/report.json"
  eval_json "$model" "$out" > "$OUT/tmp/eval.json"
  python3 - "$model" "$label" "$OUT/tmp/report.json" "$OUT/tmp/eval.json" >> "$RESULTS" <<'PY'
import json, sys
model, label, report, ev = sys.argv[1], sys.argv[2], json.load(open(sys.argv[3])), json.load(open(sys.argv[4]))
rec = {"model": model, "label": label, "hyperparameters": report["hyperparameters"],
       "calibration": report["calibration"].get("source"), "sparsity": report["sparsity"]["overall"],
       "perplexity": ev["perplexity"], "eval_windows": ev["windows"], "seconds": report["seconds"],
       "peak_rss_mib": report["peak_rss_mib"]}
if "permutation" in report: rec["permutation"] = report["permutation"]
print(json.dumps(rec))  # "model" and "label" first: the skip check above greps for them
PY
  echo "$model | $label | $(tail -1 "$RESULTS" | python3 -c 'import json,sys; r=json.load(sys.stdin); print("%.3f" % r["perplexity"])')"
}

pattern_args() { case $1 in *:*) echo "--pattern $1";; *) echo "--sparsity $1";; esac; }

for model in $MODELS; do
  if ! grep -qF "\"model\": \"$model\", \"label\": \"dense\"," "$RESULTS"; then
    eval_json "$model" "$SHARED/models/$model" > "$OUT/tmp/eval.json"
    python3 -c 'import json,sys; e=json.load(open(sys.argv[2])); print(json.dumps({"model": sys.argv[1], "label": "dense", "perplexity": e["perplexity"], "eval_windows": e["windows"], "tokens_per_second": e["tokens_per_second"]}))' \
      "$model" "$OUT/tmp/eval.json" >> "$RESULTS"
  fi
  for section in $SECTIONS; do
    case $section in
      baseline)
        for method in $METHODS; do
          for target in $TARGETS; do
            # shellcheck disable=SC2046
            run_case "$model" "$method $target" file --method "$method" $(pattern_args "$target")
          done
        done ;;
      composition)
        for method in crepe ria wanda; do
          for nm in 2:4 4:8; do
            run_case "$model" "$method $nm permute" file --method "$method" --pattern "$nm" --permute
            run_case "$model" "$method $nm permute+dsnot" file --method "$method" --pattern "$nm" --permute --reprune dsnot
          done
          for s in 0.6 0.7; do
            for alloc in owl alpha dlp; do run_case "$model" "$method $s $alloc" file --method "$method" --sparsity "$s" --allocation "$alloc"; done
            run_case "$model" "$method $s dsnot" file --method "$method" --sparsity "$s" --reprune dsnot
            run_case "$model" "$method $s dsnot-all" file --method "$method" --sparsity "$s" --reprune dsnot --dsnot-skip none
            run_case "$model" "$method $s reconstruct" file --method "$method" --sparsity "$s" --reconstruct
          done
        done ;;
      calibration)
        for method in wanda ria crepe; do
          for target in 0.6 2:4; do
            # shellcheck disable=SC2046
            run_case "$model" "$method $target self-calibrated" self --method "$method" $(pattern_args "$target")
          done
        done ;;
    esac
  done
done
rm -rf "$OUT/tmp"
python3 scripts/bench_report.py "$OUT"
