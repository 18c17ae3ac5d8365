#!/usr/bin/env bash
# PHO against its baseline, per shared model:
#  (1) each proxy's Spearman rank correlation with perplexity over SAMPLES random configurations
#      (crepe search --correlate);
#  (2) PHO (CMA-ES on the default proxy, and on recon_diag, the best statistics-only proxy; for
#      mini-llama-6m, whose evaluation text is not its calibration text, also kl on a few windows of
#      WikiText-2's last quarter, disjoint from the evaluated windows) and coordinate hill climbing on
#      real perplexity, with their wall times;
#  (3) the perplexity of each found configuration, plain RIA (alpha = beta = 1, gamma = 0) and
#      crepe's defaults, evaluated as bench_prune.sh evaluates (128 calibration windows);
#  (4) transfer: each model's PHO configuration applied to the other model.
# Caveat kept on purpose: hill climbing's held-out slice (the first SEARCH_WINDOWS windows of the
# evaluation text) lies inside the evaluated windows, which favours the baseline, not PHO.
# Writes $OUT/search-<model>.json and $OUT/transfer.json, prints markdown tables.
# Environment: BUILD_DIR, CREPE_SHARED_DIR, OUT (bench-results/search), MODELS, SPARSITY_<model>
# (stories260k 0.6, mini-llama-6m 0.7: where methods separate), SAMPLES (40), NSAMPLES (64),
# HILL_BUDGET (40), PHO_BUDGET (crepe search's default per proxy), SEARCH_WINDOWS (64: the searches'
# held-out slice).
# Reruns reuse finished correlation files, searches (their JSON records their time) and statistics caches.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
SHARED=${CREPE_SHARED_DIR:-../shared}
OUT=${OUT:-bench-results/search}
MODELS=${MODELS:-"stories260k mini-llama-6m"}
SAMPLES=${SAMPLES:-40}
NSAMPLES=${NSAMPLES:-64}
HILL_BUDGET=${HILL_BUDGET:-40}
PHO_BUDGET=${PHO_BUDGET:-0}  # 0: crepe search's default
SEARCH_WINDOWS=${SEARCH_WINDOWS:-64}
CREPE="$BUILD/crepe"
DATA_DIR="$OUT/data"
source scripts/bench_common.sh
split_tinystories

# Text from the evaluation's domain for the network proxies, where it differs from the calibration's.
proxy_data_of() {
  [ "$1" = mini-llama-6m ] || return 0
  python3 - "$SHARED/data/wikitext2-test.txt" "$DATA_DIR/wikitext2-last-quarter.txt" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
cut = text.index("\n", int(len(text) * 0.75))
open(sys.argv[2], "w", encoding="utf-8").write(text[cut + 1:])
PY
  echo "$DATA_DIR/wikitext2-last-quarter.txt"
}

sparsity_of() { case $1 in stories260k) echo "${SPARSITY_stories260k:-0.6}";; *) echo "${SPARSITY_mini_llama_6m:-0.7}";; esac; }

ppl_of_config() {  # MODEL SPARSITY CONFIG_OR_EMPTY EXTRA_ARGS... -> perplexity on the model's evaluation text
  local model=$1 sparsity=$2 config=$3
  shift 3
  local cfg=()
  [ -n "$config" ] && cfg=(--config "$config")
  rm -rf "$OUT/tmp-pruned"  # a failed prune must not leave the previous model to be evaluated
  "$CREPE" prune --model "$SHARED/models/$model" --out "$OUT/tmp-pruned" --force -q "${cfg[@]}" "$@" \
    --sparsity "$sparsity" --calib-data "$(calib_of "$model")" --nsamples 128 --seqlen 256 > /dev/null
  eval_json "$model" "$OUT/tmp-pruned" | python3 -c 'import json,sys; print(json.load(sys.stdin)["perplexity"])'
}

search_once() {  # OUT_JSON ARGS...: runs crepe search unless OUT_JSON exists (found.json records its own time)
  local out=$1
  shift
  [ -s "$out" ] || "$CREPE" search "$@" --out "$out" > /dev/null
}

for model in $MODELS; do
  sparsity=$(sparsity_of "$model")
  base=(--model "$SHARED/models/$model" --calib-data "$(calib_of "$model")" --nsamples "$NSAMPLES" --seqlen 256
        --sparsity "$sparsity" -q)
  common=("${base[@]}" --stats "$OUT/stats-$model.safetensors")
  held_out=(--eval-data "$(eval_of "$model")" --eval-windows "$SEARCH_WINDOWS")
  [ -s "$OUT/correlate-$model.json" ] || "$CREPE" search "${common[@]}" --correlate "$SAMPLES" "${held_out[@]}" \
    --out "$OUT/correlate-$model.json" > /dev/null
  search_once "$OUT/pho-$model.json" "${common[@]}" --budget "$PHO_BUDGET"
  search_once "$OUT/pho-diag-$model.json" "${common[@]}" --proxy recon_diag --budget "$PHO_BUDGET"
  search_once "$OUT/hill-$model.json" "${common[@]}" --objective ppl --budget "$HILL_BUDGET" "${held_out[@]}"
  names=(pho pho-diag hill)
  domain=$(proxy_data_of "$model")
  if [ -n "$domain" ]; then
    domain_common=("${base[@]}" --stats "$OUT/stats-$model-domain.safetensors")  # its own cache: another subsample
    search_once "$OUT/pho-domain-$model.json" "${domain_common[@]}" --budget "$PHO_BUDGET" --proxy-data "$domain"
    [ -s "$OUT/correlate-domain-$model.json" ] || "$CREPE" search "${domain_common[@]}" --proxy-data "$domain" \
      --correlate-from "$OUT/correlate-$model.json" --out "$OUT/correlate-domain-$model.json" > /dev/null
    names+=(pho-domain)
  fi
  for name in "${names[@]}"; do ppl_of_config "$model" "$sparsity" "$OUT/$name-$model.json" > "$OUT/ppl-$name-$model.txt"; done
  ppl_of_config "$model" "$sparsity" "" --method ria > "$OUT/ppl-ria-$model.txt"
  ppl_of_config "$model" "$sparsity" "" --method crepe > "$OUT/ppl-defaults-$model.txt"
  python3 - "$OUT" "$model" "$sparsity" <<'PY'
import json, os, sys
out, model, sparsity = sys.argv[1:]
load = lambda name: json.load(open("%s/%s-%s.json" % (out, name, model)))
ppl = lambda name: float(open("%s/ppl-%s-%s.txt" % (out, name, model)).read())
corr = load("correlate")
runs = [("pho", "PHO, CMA-ES on %s" % load("pho")["_search"]["proxy"]),
        ("pho-diag", "PHO, CMA-ES on recon_diag"),
        ("pho-domain", "PHO, CMA-ES on kl, subsample from the evaluation's domain"),
        ("hill", "hill climbing on perplexity")]
runs = [(name, label) for name, label in runs if os.path.exists("%s/%s-%s.json" % (out, name, model))]
rec = {"model": model, "sparsity": float(sparsity), "spearman": corr["spearman"], "samples": len(corr["samples"]),
       "runs": {name: {"label": label, "perplexity": ppl(name), "seconds": load(name)["_seconds"],
                       "evaluations": load(name)["_search"]["evaluations"],
                       "seconds_to_best": load(name)["_search"].get("seconds_to_best"),
                       "evaluations_to_best": load(name)["_search"].get("evaluations_to_best"),
                       "config": {k: v for k, v in load(name).items() if not k.startswith("_")}} for name, label in runs},
       "perplexity": {"ria": ppl("ria"), "crepe_defaults": ppl("defaults")}}
if os.path.exists("%s/correlate-domain-%s.json" % (out, model)):
    rec["spearman_domain_subsample"] = load("correlate-domain")["spearman"]
json.dump(rec, open("%s/search-%s.json" % (out, model), "w"), indent=1)
print("## %s, %.0f%% unstructured" % (model, 100 * rec["sparsity"]))
domain = rec.get("spearman_domain_subsample", {})
print("| proxy | Spearman rho with perplexity (%d random configurations) |%s" % (rec["samples"], " subsample from the evaluation's domain |" if domain else ""))
print("|---|---|%s" % ("---|" if domain else ""))
for name, rho in corr["spearman"].items():
    print("| %s | %+.3f |%s" % (name, rho, (" %+.3f |" % domain[name]) if domain else ""))
print()
to_best = lambda r: ("%.1f s (evaluation %d)" % (r["seconds_to_best"], r["evaluations_to_best"])) if r.get("seconds_to_best") is not None else "—"
print("| configuration | perplexity | time to best | whole search | evaluations |")
print("|---|---|---|---|---|")
for name, r in rec["runs"].items():
    print("| %s | %.3f | %s | %.1f s | %d |" % (r["label"], r["perplexity"], to_best(r), r["seconds"], r["evaluations"]))
print("| plain RIA | %.3f | — | — | — |" % rec["perplexity"]["ria"])
print("| crepe defaults | %.3f | — | — | — |" % rec["perplexity"]["crepe_defaults"])
print()
PY
done

# Transfer: the configuration PHO found on one model, used to prune the other.
set -- $MODELS
if [ $# -eq 2 ]; then
  a_on_b=$(ppl_of_config "$2" "$(sparsity_of "$2")" "$OUT/pho-$1.json")
  b_on_a=$(ppl_of_config "$1" "$(sparsity_of "$1")" "$OUT/pho-$2.json")
  python3 - "$OUT" "$1" "$2" "$a_on_b" "$b_on_a" <<'PY'
import json, sys
out, a, b, a_on_b, b_on_a = sys.argv[1:]
own = {m: json.load(open("%s/search-%s.json" % (out, m)))["runs"]["pho"]["perplexity"] for m in (a, b)}
rec = [{"config_from": a, "pruned": b, "perplexity": float(a_on_b), "own_search": own[b]},
       {"config_from": b, "pruned": a, "perplexity": float(b_on_a), "own_search": own[a]}]
json.dump(rec, open("%s/transfer.json" % out, "w"), indent=1)
print("| pruned model | config from | perplexity | with its own PHO config |")
print("|---|---|---|---|")
for r in rec:
    print("| %s | %s | %.3f | %.3f |" % (r["pruned"], r["config_from"], r["perplexity"], r["own_search"]))
PY
fi
rm -rf "$OUT/tmp-pruned"
