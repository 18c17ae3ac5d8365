#!/usr/bin/env bash
# Fuzzes crepe's parsers of untrusted files with libFuzzer + ASan + UBSan (fuzz/fuzz_*.cpp):
# safetensors headers, tokenizer.json, tokenizer.model and config.json.
#
# Usage: scripts/fuzz.sh [SECONDS_PER_TARGET]   (default 60)
#
# Configures and builds the fuzz build (build-fuzz, clang: CREPE_FUZZ=ON), seeds each target from
# real files (the shared checkpoints' safetensors header regions, config.json, tokenizer.model files,
# the shared tokenizer.json files cut down to a few hundred tokens with every other section kept) and
# from tests/data/bad/, runs each target for the given time, prints a table and writes
# ${OUT:-bench-results}/fuzz.json. The corpus each target grows is kept in build-fuzz/corpus/ and
# reused by the next run.
#
# Every input that crashes, trips a sanitizer, throws anything but crepe::InputError, times out (10 s)
# or runs out of memory (2 GB) is copied to tests/data/bad/fuzz-regressions/<target>/, where
# tests/fuzz/test_fuzz_regressions.cpp replays it in the normal test suite; a target is restarted
# after each finding until its time is used up. Exit status 1 when anything was found.
set -euo pipefail
cd "$(dirname "$0")/.."
seconds=${1:-60}
[[ "$seconds" =~ ^[0-9]+$ ]] && ((seconds > 0)) || { echo "fuzz.sh: SECONDS_PER_TARGET must be a positive integer" >&2; exit 2; }
build_dir=build-fuzz
shared=${CREPE_SHARED_DIR:-../shared}
out_dir=${OUT:-bench-results}
regressions=tests/data/bad/fuzz-regressions
targets=(safetensors_header tokenizer_json sentencepiece_model config_json)
max_findings=5  # per target and run
declare -A max_len=([safetensors_header]=16384 [tokenizer_json]=65536 [sentencepiece_model]=32768 [config_json]=8192)

command -v clang++ >/dev/null || { echo "fuzz.sh: clang++ not found (apt-get install clang)" >&2; exit 2; }
command -v python3 >/dev/null || { echo "fuzz.sh: python3 is needed to cut the seeds down" >&2; exit 2; }

# ---- build ----------------------------------------------------------------------------------------
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
mkdir -p "$build_dir"
CC=clang CXX=clang++ cmake -S . -B "$build_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DCREPE_FUZZ=ON -DCREPE_BUILD_TESTS=OFF -DCREPE_PCH=OFF > "$build_dir/configure.log" 2>&1 \
  || { cat "$build_dir/configure.log" >&2; exit 1; }
cmake --build "$build_dir" --target fuzzers -j "$(nproc)"

# ---- seeds ----------------------------------------------------------------------------------------
seeds=$build_dir/seeds
rm -rf "$seeds"
for t in "${targets[@]}"; do mkdir -p "$seeds/$t" "$build_dir/corpus/$t" "$build_dir/artifacts/$t"; done
python3 - "$shared" "$seeds" tests/data/bad <<'PY'
import json, os, shutil, struct, sys
shared, seeds, bad = sys.argv[1:4]

def put(target, name, data):
    with open(os.path.join(seeds, target, name), "wb") as f:
        f.write(data)

def files(root, predicate):
    for dirpath, _, names in os.walk(root):
        if "fuzz-regressions" in dirpath:
            continue
        for n in sorted(names):
            if predicate(n):
                yield os.path.join(dirpath, n)

def tag(path):
    return os.path.relpath(path, "/").replace("/", "_")

# safetensors: the header region of each shared checkpoint (length + JSON, no data), the same with
# the first 1 KB of data, and a small valid file built here.
for path in files(os.path.join(shared, "models"), lambda n: n.endswith(".safetensors")):
    raw = open(path, "rb").read(1 << 20)
    n = struct.unpack("<Q", raw[:8])[0]
    put("safetensors_header", tag(path) + ".header", raw[:8 + n])
    put("safetensors_header", tag(path) + ".header+1k", raw[:8 + n + 1024])
header = json.dumps({"__metadata__": {"format": "pt"},
                     "a": {"dtype": "F32", "shape": [2, 2], "data_offsets": [0, 16]},
                     "b": {"dtype": "BF16", "shape": [3], "data_offsets": [16, 22]},
                     "c": {"dtype": "F16", "shape": [], "data_offsets": [22, 24]},
                     "d": {"dtype": "F32", "shape": [0, 5], "data_offsets": [24, 24]}}).encode()
header += b" " * (-len(header) % 8)
put("safetensors_header", "valid-small", struct.pack("<Q", len(header)) + header + bytes(range(24)))

# config.json of every shared model.
for path in files(os.path.join(shared, "models"), lambda n: n == "config.json"):
    put("config_json", tag(path), open(path, "rb").read())

# tokenizer.json: each shared file cut to its first 400 tokens and the merges among them; normalizer,
# pre-tokenizer, decoder, post-processor and added tokens kept whole.
for path in files(os.path.join(shared, "tokenizers"), lambda n: n == "tokenizer.json"):
    spec = json.load(open(path, encoding="utf-8"))
    model = spec["model"]
    vocab = dict(sorted(model["vocab"].items(), key=lambda kv: kv[1])[:400])
    def parts(m):
        return m.split(" ", 1) if isinstance(m, str) else m
    model["merges"] = [m for m in model.get("merges", [])
                       if len(parts(m)) == 2 and all(p in vocab for p in parts(m)) and "".join(parts(m)) in vocab]
    model["vocab"] = vocab
    spec["added_tokens"] = spec.get("added_tokens", [])[:8]
    put("tokenizer_json", tag(path), json.dumps(spec, ensure_ascii=False).encode())

# tokenizer.model: protobuf ModelProto; field 1 (pieces) cut to the first 400, everything else kept.
def varint(data, i):
    shift = value = 0
    while True:
        b = data[i]; i += 1
        value |= (b & 0x7F) << shift; shift += 7
        if b < 0x80:
            return value, i
def cut_pieces(data, keep=400):
    out, i, pieces = bytearray(), 0, 0
    while i < len(data):
        start = i
        key, i = varint(data, i)
        wire = key & 7
        if wire == 0: _, i = varint(data, i)
        elif wire == 1: i += 8
        elif wire == 5: i += 4
        elif wire == 2:
            n, i = varint(data, i); i += n
        else:
            return data
        if key >> 3 == 1:
            pieces += 1
            if pieces > keep: continue
        out += data[start:i]
    return bytes(out)
for path in list(files(os.path.join(shared, "models"), lambda n: n == "tokenizer.model")) + \
            list(files(os.path.join(shared, "tokenizers"), lambda n: n == "tokenizer.model")):
    put("sentencepiece_model", tag(path), cut_pieces(open(path, "rb").read()))

# The hand-made bad corpus, each file to the target that parses it.
kinds = {".safetensors": "safetensors_header"}
for path in files(bad, lambda n: True):
    name = os.path.basename(path)
    target = kinds.get(os.path.splitext(name)[1]) or {"tokenizer.json": "tokenizer_json",
        "tokenizer.model": "sentencepiece_model", "config.json": "config_json"}.get(name)
    if target:
        put(target, tag(os.path.abspath(path)), open(path, "rb").read())
PY
for t in "${targets[@]}"; do
  [ -d "$regressions/$t" ] && cp "$regressions/$t"/* "$seeds/$t/" 2>/dev/null || true
done

# ---- run ------------------------------------------------------------------------------------------
mkdir -p "$out_dir"
logs=$build_dir/logs
mkdir -p "$logs"
declare -A executions crashes found_files
for t in "${targets[@]}"; do
  executions[$t]=0
  crashes[$t]=0
  found_files[$t]=""
  left=$seconds
  round=0
  echo "fuzz_$t: ${seconds}s ($(ls "$seeds/$t" | wc -l) seeds)" >&2
  while ((left > 0)); do
    if ((crashes[$t] >= max_findings)); then
      echo "  stopping fuzz_$t after $max_findings findings: fix those first" >&2
      break
    fi
    round=$((round + 1))
    # An input that crashed once is not fed again (a crashing seed would end every round at once);
    # artifacts are named after the SHA-1 of their content, as corpus files are.
    for artifact in "$build_dir/artifacts/$t"/*; do
      [ -e "$artifact" ] || continue
      sum=${artifact##*-}
      rm -f "$build_dir/corpus/$t/$sum"
      for seed in "$seeds/$t"/*; do
        [ "$(sha1sum < "$seed" | cut -d' ' -f1)" = "$sum" ] && rm -f "$seed"
      done
    done
    log=$logs/$t.$round.log
    start=$(date +%s)
    before=$(ls "$build_dir/artifacts/$t" | sort)
    set +e
    "$build_dir/fuzz_$t" "$build_dir/corpus/$t" "$seeds/$t" -max_total_time="$left" -timeout=10 \
      -rss_limit_mb=2048 -max_len="${max_len[$t]}" -print_final_stats=1 \
      -artifact_prefix="$build_dir/artifacts/$t/" > "$log" 2>&1
    status=$?
    set -e
    n=$(sed -n 's/^stat::number_of_executed_units: *//p' "$log" | tail -n 1)
    [ -n "$n" ] || n=$(grep -oE '^#[0-9]+' "$log" | tail -n 1 | tr -d '#')
    executions[$t]=$((executions[$t] + ${n:-0}))
    new=$(comm -13 <(echo "$before") <(ls "$build_dir/artifacts/$t" | sort) | sed '/^$/d')
    if [ -n "$new" ]; then
      mkdir -p "$regressions/$t"
      while read -r artifact; do
        cp "$build_dir/artifacts/$t/$artifact" "$regressions/$t/$artifact"
        crashes[$t]=$((crashes[$t] + 1))
        found_files[$t]+="$regressions/$t/$artifact "
        echo "  finding: $regressions/$t/$artifact (log: $log)" >&2
        grep -m 3 -E 'ERROR: |runtime error|terminate called|what\(\)' "$log" | sed 's/^/    /' >&2 || true
      done <<< "$new"
    elif ((status != 0)); then
      echo "fuzz.sh: fuzz_$t exited with $status and left no artifact; see $log" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    left=$((left - ($(date +%s) - start)))
    ((status == 0)) && break
  done
done

# ---- report ---------------------------------------------------------------------------------------
echo
echo "| target | executions | crashes |"
echo "|---|---:|---:|"
rows=()
total=0
for t in "${targets[@]}"; do
  echo "| fuzz_$t | ${executions[$t]} | ${crashes[$t]} |"
  list=""
  for f in ${found_files[$t]}; do list+="${list:+, }\"$f\""; done
  rows+=("    {\"target\": \"fuzz_$t\", \"seconds\": $seconds, \"executions\": ${executions[$t]}, \"crashes\": ${crashes[$t]}, \"corpus\": $(ls "$build_dir/corpus/$t" | wc -l), \"regression_files\": [$list]}")
  total=$((total + crashes[$t]))
done
{
  echo "{"
  echo "  \"what\": \"libFuzzer with ASan+UBSan (clang $(clang++ -dumpversion)); crashes: inputs that crashed, tripped a sanitizer, threw anything but crepe::InputError, timed out or ran out of memory\","
  echo "  \"seconds_per_target\": $seconds,"
  echo "  \"targets\": ["
  for i in "${!rows[@]}"; do
    sep=","
    [ "$i" -eq $((${#rows[@]} - 1)) ] && sep=""
    echo "${rows[$i]}$sep"
  done
  echo "  ]"
  echo "}"
} > "$out_dir/fuzz.json"
echo
echo "wrote $out_dir/fuzz.json"
((total == 0))
