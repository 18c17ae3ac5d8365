#!/usr/bin/env bash
# The main job on a fresh clone: set up, build, then prune the embedded default model to 50% with
# CRePE (calibrating on sequences the model samples itself, as no calibration file is given) and
# compare dense and pruned perplexity on a held-out text.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build/crepe inspect --model models/mini-llama-6m
eval_text=../shared/data/wikitext2-test.txt
[ -f "$eval_text" ] || eval_text=LICENSE  # a fresh clone without the shared data still runs end to end
build/crepe prune --model models/mini-llama-6m --out out/mini-llama-6m-crepe50 --force \
  --sparsity 0.5 --eval "$eval_text" --eval-seqlen 256 --eval-max-windows 64
