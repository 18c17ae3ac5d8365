#!/usr/bin/env bash
# Times `crepe tokenize` on the WikiText-2 test text with the LLaMA-3 and Mistral tokenizer.json
# files and LLaMA-2's tokenizer.model: best of 3 runs each, one thread, whole command (process start,
# loading the tokenizer, tokenizing, printing ids): wall seconds, and CPU seconds (user + system),
# which a busy machine inflates less. Builds nothing.
#
# Usage: scripts/bench_tokenizer.sh [BUILD_DIR]   (default: build)
# Prints a markdown table and writes ${OUT:-bench-results}/tokenizer.json.
set -euo pipefail
cd "$(dirname "$0")/.."
build_dir=${1:-build}
crepe="$build_dir/crepe"
shared=${CREPE_SHARED_DIR:-../shared}
text="$shared/data/wikitext2-test.txt"
out_dir=${OUT:-bench-results}
runs=3

[ -x "$crepe" ] || { echo "bench_tokenizer: $crepe not found (build first: scripts/build.sh)" >&2; exit 2; }
[ -f "$text" ] || { echo "bench_tokenizer: $text not found" >&2; exit 2; }
mkdir -p "$out_dir"
export OMP_NUM_THREADS=1 MKL_NUM_THREADS=1 OPENBLAS_NUM_THREADS=1

bytes=$(wc -c < "$text")
names=(llama3 mistral llama2)
files=("$shared/tokenizers/llama3/tokenizer.json" "$shared/tokenizers/mistral/tokenizer.json"
       "$shared/tokenizers/llama2/tokenizer.model")
scratch=$(mktemp -d)
trap 'rm -rf "$scratch"' EXIT

echo "| tokenizer | file | tokens | seconds (best of $runs) | CPU seconds | MB/s |"
echo "|---|---|---:|---:|---:|---:|"
json_rows=()
for i in "${!names[@]}"; do
  name=${names[$i]}
  file=${files[$i]}
  best="" best_cpu=""
  for _ in $(seq "$runs"); do
    # bash's time keyword: wall, user and system seconds of the command.
    TIMEFORMAT='%3R %3U %3S'
    { time "$crepe" tokenize --tokenizer "$file" --no-bos < "$text" > "$scratch/ids" ; } 2> "$scratch/time"
    read -r wall user sys < <(tail -n 1 "$scratch/time")
    cpu=$(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", u + s }')
    if [ -z "$best" ] || awk -v s="$wall" -v b="$best" 'BEGIN { exit !(s < b) }'; then best=$wall; fi
    if [ -z "$best_cpu" ] || awk -v s="$cpu" -v b="$best_cpu" 'BEGIN { exit !(s < b) }'; then best_cpu=$cpu; fi
  done
  tokens=$(wc -w < "$scratch/ids")
  mbps=$(awk -v n="$bytes" -v s="$best" 'BEGIN { printf "%.2f", n / 1e6 / s }')
  echo "| $name | $(basename "$file") | $tokens | $best | $best_cpu | $mbps |"
  json_rows+=("{\"tokenizer\": \"$name\", \"file\": \"$(basename "$file")\", \"tokens\": $tokens, \"seconds\": $best, \"cpu_seconds\": $best_cpu, \"mb_per_s\": $mbps}")
done

{
  echo "{"
  echo "  \"text\": \"wikitext2-test.txt\","
  echo "  \"bytes\": $bytes,"
  echo "  \"runs\": $runs,"
  echo "  \"threads\": 1,"
  echo "  \"what\": \"seconds (wall) and cpu_seconds (user + system) of the whole crepe tokenize command: start, load, tokenize, print; MB/s from wall\","
  echo "  \"results\": ["
  for j in "${!json_rows[@]}"; do
    sep=","
    [ "$j" -eq $((${#json_rows[@]} - 1)) ] && sep=""
    echo "    ${json_rows[$j]}$sep"
  done
  echo "  ]"
  echo "}"
} > "$out_dir/tokenizer.json"
echo
echo "wrote $out_dir/tokenizer.json"
