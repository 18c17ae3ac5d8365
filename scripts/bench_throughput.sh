#!/usr/bin/env bash
# Calibration throughput against the machine's matmul rate. Prunes with wanda (one dense pass with
# observers, one pruned pass per block) and converts the two passes' time into tokens/s and into
# achieved GFLOP/s with the model's forward FLOPs per token (linear layers 2*params, causal attention
# 2*seqlen*heads*head_dim per layer); the yardstick is an fp32 2048^3 matmul timed by
# crepe_bench_scores in the same conditions. Models: mini-llama-6m and a synthetic 8-block model of
# width 1024 (MLP 2816). Prints a table and writes $OUT/throughput.json.
# Environment: BUILD_DIR, CREPE_SHARED_DIR, OUT (bench-results), NSAMPLES (128), SEQLEN (256).
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD_DIR:-build}
SHARED=${CREPE_SHARED_DIR:-../shared}
OUT=${OUT:-bench-results}
NSAMPLES=${NSAMPLES:-128}
SEQLEN=${SEQLEN:-256}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT
mkdir -p "$OUT"
"$BUILD/crepe_bench_scores" --rows 1024 --cols 1024 --json "$WORK/matmul.json" > /dev/null
"$BUILD/crepe_make_synthetic" --out "$WORK/synthetic-1024" --tokenizer-from "$SHARED/models/mini-llama-6m" --layers 8 \
  --hidden 1024 --intermediate 2816 --heads 16 --kv-heads 16 --vocab 4096 > /dev/null
for model in "$SHARED/models/mini-llama-6m" "$WORK/synthetic-1024"; do
  "$BUILD/crepe" prune --model "$model" --out "$WORK/pruned" --force -q --json --method wanda \
    --calib-data "$SHARED/data/tinystories-val.txt" --nsamples "$NSAMPLES" --seqlen "$SEQLEN" > "$WORK/$(basename "$model").json"
done
python3 - "$WORK" "$OUT/throughput.json" "$SHARED/models/mini-llama-6m" "$WORK/synthetic-1024" <<'PY'
import json, sys
work, out, models = sys.argv[1], sys.argv[2], sys.argv[3:]
matmul = json.load(open(work + "/matmul.json"))["matmul_gflops"]
rows = []
for path in models:
    name = path.rstrip("/").split("/")[-1]
    c = json.load(open(path + "/config.json"))
    report = json.load(open("%s/%s.json" % (work, name)))
    h, i, L = c["hidden_size"], c["intermediate_size"], c["num_hidden_layers"]
    heads = c["num_attention_heads"]
    hd = c.get("head_dim", h // heads)
    kv = c.get("num_key_value_heads", heads)
    seqlen = report["calibration"]["seqlen"]
    linear = h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * i
    flops_per_token = L * (2 * linear + 2 * seqlen * heads * hd)
    tokens = report["calibration"]["tokens"]
    passes = report["seconds"]["statistics"] + report["seconds"]["forward"]  # two passes over every block
    tps = 2 * tokens / passes
    rows.append({"model": name, "tokens": tokens, "seconds_two_passes": passes, "tokens_per_second": tps,
                 "gflops": tps * flops_per_token / 1e9, "matmul_gflops": matmul,
                 "fraction_of_matmul": tps * flops_per_token / 1e9 / matmul})
json.dump(rows, open(out, "w"), indent=1)
print("| model | calibration tokens/s (per pass) | achieved GFLOP/s | fp32 matmul GFLOP/s | fraction |")
print("|---|---|---|---|---|")
for r in rows:
    print("| %s | %.0f | %.1f | %.1f | %.0f%% |" % (r["model"], r["tokens_per_second"], r["gflops"], r["matmul_gflops"], 100 * r["fraction_of_matmul"]))
PY
