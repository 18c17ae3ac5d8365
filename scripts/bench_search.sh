#!/usr/bin/env bash
# PHO against its baseline, per shared model: (1) each proxy's Spearman rank correlation with
# perplexity over N random configurations (crepe search --correlate); (2) PHO (CMA-ES on the
# proxy) and coordinate hill climbing on real perplexity, with their wall times; (3) the perplexity
# of PHO's configuration, the hill-climbed one, plain RIA (alpha = beta = 1, gamma = 0) and crepe's
# defaults, evaluated as bench_prune.sh evaluates. Writes $OUT/search-<model>.json and prints tables.
# Environment: BUILD_DIR, CREPE_SHARED_DIR, OUT (bench-results/search), MODELS, SPARSITY (0.6),
# SAMPLES (40), NSAMPLES (64), HILL_BUDGET (40), PHO_BUDGET (400), EVAL_WINDOWS (per model as in
# bench_prune.sh; the search's held-out slice is the first SEARCH_WINDOWS (64) windows).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
SHARED=${CREPE_SHARED_DIR:-../shared}
OUT=${OUT:-bench-results/search}
MODELS=${MODELS:-"stories260k mini-llama-6m"}
SPARSITY=${SPARSITY:-0.6}
SAMPLES=${SAMPLES:-40}
NSAMPLES=${NSAMPLES:-64}
HILL_BUDGET=${HILL_BUDGET:-40}
PHO_BUDGET=${PHO_BUDGET:-400}
SEARCH_WINDOWS=${SEARCH_WINDOWS:-64}
CREPE="$BUILD/crepe"
mkdir -p "$OUT/data"
python3 - "$SHARED/data/tinystories-val.txt" "$OUT/data" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
cut = text.index("\n\n", len(text) // 2)
open(sys.argv[2] + "/tinystories-first-half.txt", "w", encoding="utf-8").write(text[:cut])
open(sys.argv[2] + "/tinystories-second-half.txt", "w", encoding="utf-8").write(text[cut + 2:])
PY
calib_of() { [ "$1" = stories260k ] && echo "$OUT/data/tinystories-first-half.txt" || echo "$SHARED/data/tinystories-val.txt"; }
eval_of() { [ "$1" = stories260k ] && echo "$OUT/data/tinystories-second-half.txt" || echo "$SHARED/data/wikitext2-test.txt"; }
windows_of() { [ "$1" = stories260k ] && echo 0 || echo 420; }

ppl_of_config() {  # MODEL CONFIG_OR_EMPTY EXTRA_ARGS... -> perplexity on the model's evaluation text
  local model=$1 config=$2
  shift 2
  local cfg=()
  [ -n "$config" ] && cfg=(--config "$config")
  "$CREPE" prune --model "$SHARED/models/$model" --out "$OUT/tmp-pruned" --force -q "${cfg[@]}" "$@" \
    --sparsity "$SPARSITY" --calib-data "$(calib_of "$model")" --nsamples 128 --seqlen 256 > /dev/null
  "$CREPE" eval --model "$OUT/tmp-pruned" --data "$(eval_of "$model")" --seqlen 256 --max-windows "$(windows_of "$model")" \
    -q --json | python3 -c 'import json,sys; print(json.load(sys.stdin)["perplexity"])'
}

for model in $MODELS; do
  common=(--model "$SHARED/models/$model" --calib-data "$(calib_of "$model")" --nsamples "$NSAMPLES" --seqlen 256
          --sparsity "$SPARSITY" --stats "$OUT/stats-$model.safetensors" -q)
  "$CREPE" search "${common[@]}" --correlate "$SAMPLES" --eval-data "$(eval_of "$model")" \
    --eval-windows "$SEARCH_WINDOWS" --out "$OUT/correlate-$model.json" > /dev/null
  t0=$(date +%s.%N)
  "$CREPE" search "${common[@]}" --budget "$PHO_BUDGET" --out "$OUT/pho-$model.json" > /dev/null
  t1=$(date +%s.%N)
  "$CREPE" search "${common[@]}" --objective ppl --budget "$HILL_BUDGET" --eval-data "$(eval_of "$model")" \
    --eval-windows "$SEARCH_WINDOWS" --out "$OUT/hill-$model.json" > /dev/null
  t2=$(date +%s.%N)
  pho=$(ppl_of_config "$model" "$OUT/pho-$model.json")
  hill=$(ppl_of_config "$model" "$OUT/hill-$model.json")
  ria=$(ppl_of_config "$model" "" --method ria)
  default=$(ppl_of_config "$model" "" --method crepe)
  python3 - "$OUT" "$model" "$t0" "$t1" "$t2" "$pho" "$hill" "$ria" "$default" "$SPARSITY" <<'PY'
import json, sys
out, model, t0, t1, t2, pho, hill, ria, default, sparsity = sys.argv[1:]
corr = json.load(open("%s/correlate-%s.json" % (out, model)))
rec = {"model": model, "sparsity": float(sparsity), "spearman": corr["spearman"], "samples": len(corr["samples"]),
       "pho_seconds": float(t1) - float(t0), "hill_seconds": float(t2) - float(t1),
       "perplexity": {"pho": float(pho), "hill_climbing": float(hill), "ria": float(ria), "crepe_defaults": float(default)},
       "pho_config": {k: v for k, v in json.load(open("%s/pho-%s.json" % (out, model))).items() if not k.startswith("_")},
       "hill_config": {k: v for k, v in json.load(open("%s/hill-%s.json" % (out, model))).items() if not k.startswith("_")}}
json.dump(rec, open("%s/search-%s.json" % (out, model), "w"), indent=1)
print("## %s, %.0f%% unstructured" % (model, 100 * rec["sparsity"]))
print("| proxy | Spearman rho with perplexity (%d random configurations) |" % rec["samples"])
print("|---|---|")
for name, rho in corr["spearman"].items():
    print("| %s | %+.3f |" % (name, rho))
print()
print("| configuration | perplexity | search time |")
print("|---|---|---|")
p = rec["perplexity"]
print("| PHO (CMA-ES on recon_diag) | %.3f | %.1f s |" % (p["pho"], rec["pho_seconds"]))
print("| hill climbing on perplexity | %.3f | %.1f s |" % (p["hill_climbing"], rec["hill_seconds"]))
print("| plain RIA | %.3f | — |" % p["ria"])
print("| crepe defaults | %.3f | — |" % p["crepe_defaults"])
PY
done
rm -rf "$OUT/tmp-pruned"
