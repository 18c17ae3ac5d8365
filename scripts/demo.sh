#!/usr/bin/env bash
# The main job on the embedded default model: set up, build, then run crepe on models/mini-llama-6m.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
build/crepe inspect --model models/mini-llama-6m
# Until `crepe prune` lands, the main job is a perplexity evaluation on the model's own tokenizer data.
build/crepe eval --model models/mini-llama-6m --data models/mini-llama-6m/README.md --seqlen 256
