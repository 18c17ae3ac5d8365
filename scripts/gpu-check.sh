#!/usr/bin/env bash
# The CUDA check (issue #8), for a machine with a GPU and a CUDA LibTorch 2.x (a PyTorch wheel's is
# fine) but no Debian -dev packages and no network. Prepare on a Debian machine first:
#   scripts/gpu-prepare.sh          # .device/: header-only dependencies + a copy of ../shared
# then, on the GPU machine, from the repository root (with .device/ beside it):
#   bash scripts/gpu-check.sh OUT_DIR
# Steps, each under its own time limit so that the whole stays within ~8 minutes and a step that
# hangs still leaves the others' results:
#   1. build against the machine's LibTorch (CMAKE_PREFIX_PATH from python3's torch, or TORCH_PREFIX)
#   2. the test suite with CREPE_TEST_DEVICE=cuda: the device-generic tests and the CLI tests compute
#      on the GPU, the Device.* tests compare GPU with CPU
#   3. benchmarks: scoring time of every metric on a 4096x11008 matrix and the card's matmul rate;
#      calibration throughput on a 7B-shaped synthetic stack (bf16, fp32, states in host memory) and
#      on mini-llama-6m; peak GPU memory of each, from nvidia-smi samples; whether LibTorch's pinned
#      allocator rounds requests up to a power of two (engine::worth_pinning assumes it does);
#      a kl search on the 7B-shaped stack (peak memory, seconds per proxy evaluation), weights
#      resident on the GPU and streamed from the checkpoint
# OUT_DIR (default gpu-check/) receives summary.json and gpu-check.tar.gz (every step's stdout and
# stderr, the raw JSON): two files, as the GPU tool brings few back. Steps past the deadline
# (DEADLINE seconds, 480 by default) are skipped and say so. Exits 1 when any step failed.
# Environment: TORCH_PREFIX, THIRD_PARTY (.device/third_party), SHARED (.device/shared, else ../shared),
# JOBS (nproc), DEADLINE; for a rehearsal on a CPU machine (the bf16 steps then compute in fp32):
# DEVICE=cpu LAYERS_7B=1 NSAMPLES_7B=2 MATMUL=2048 SEARCH_SEQLEN=128 SEARCH_LIMIT=200 DEADLINE=1500
# (each search's 14 kl evaluations take about 100 s on 2 cores, against well under a second each on a GPU).
set -uo pipefail
OUT=$(mkdir -p "${1:-gpu-check}" && cd "${1:-gpu-check}" && pwd)
cd "$(dirname "$0")/.."
TORCH_PREFIX=${TORCH_PREFIX:-$(python3 -c 'import torch; print(torch.utils.cmake_prefix_path)' 2>/dev/null)}
THIRD_PARTY=${THIRD_PARTY:-$PWD/.device/third_party}
if [ -z "${SHARED:-}" ]; then [ -d .device/shared ] && SHARED=$PWD/.device/shared || SHARED=$(cd ../shared && pwd); fi
JOBS=${JOBS:-$(nproc)}
DEADLINE=${DEADLINE:-480}
DEVICE=${DEVICE:-cuda}
LAYERS_7B=${LAYERS_7B:-4}
NSAMPLES_7B=${NSAMPLES_7B:-64}
MATMUL=${MATMUL:-8192}
SEARCH_SEQLEN=${SEARCH_SEQLEN:-2048}
SEARCH_LIMIT=${SEARCH_LIMIT:-90}
HALF=bf16
[ "$DEVICE" = cuda ] || HALF=fp32  # a CPU rehearsal: crepe computes in fp32 there
BUILD=build-gpu
GENERATOR=Ninja
command -v ninja > /dev/null || GENERATOR="Unix Makefiles"
WORK=$(mktemp -d)   # logs and JSON, archived into OUT at the end
SYNTH=$(mktemp -d)  # checkpoints
sampler=""
trap '[ -n "$sampler" ] && kill "$sampler" 2> /dev/null; rm -rf "$WORK" "$SYNTH"' EXIT
start=$(date +%s)
failed=0
steps=()
now() { date +%s.%N; }
step() {  # step NAME LIMIT COMMAND...: stdout to WORK/NAME.out, stderr to WORK/NAME.err; records ok, rc, times
  local name=$1 limit=$2 t0 t1 left rc
  shift 2
  t0=$(now)
  left=$(( start + DEADLINE - ${t0%.*} ))
  if (( left < 15 )); then
    steps+=("{\"step\": \"$name\", \"ok\": false, \"skipped\": \"deadline\"}")
    echo "gpu-check: $name skipped (deadline)"
    failed=1
    return 1
  fi
  timeout $(( limit < left ? limit : left )) "$@" > "$WORK/$name.out" 2> "$WORK/$name.err"
  rc=$?
  t1=$(now)
  steps+=("{\"step\": \"$name\", \"ok\": $([ $rc = 0 ] && echo true || echo false), \"rc\": $rc, \"from\": $t0, \"to\": $t1}")
  echo "gpu-check: $name rc=$rc ($(( ${t1%.*} - start )) s so far)"
  [ $rc = 0 ] || failed=1
  return $rc
}

{ timeout 30 nvidia-smi; python3 -c 'import torch; print("torch", torch.__version__, "cuda", torch.version.cuda)'
  c++ --version; cmake --version; } > "$WORK/environment.txt" 2>&1

# Does LibTorch's pinned allocator round 1.25 GiB up to 2 GiB? CUDA is initialised (and a first
# pinned block taken) before measuring, so that the context's own memory is not counted.
cat > "$WORK/pinned_rounding.py" <<'PY'
import json, torch
def rss():
    return next(int(l.split()[1]) * 1024 for l in open("/proc/self/status") if l.startswith("VmRSS"))
torch.cuda.init()
torch.empty(1, dtype=torch.uint8, pin_memory=True)
before = rss()
x = torch.empty(int(1.25 * 2**30), dtype=torch.uint8, pin_memory=True)
stats = torch.cuda.host_memory_stats() if hasattr(torch.cuda, "host_memory_stats") else {}
print(json.dumps({"requested": x.numel(), "rss_growth": rss() - before, "pinned": x.is_pinned(),
                  "host_stats": {k: v for k, v in stats.items() if "bytes" in k and "current" in k}}))
PY
if [ "$DEVICE" = cuda ]; then step pinned-rounding 60 python3 "$WORK/pinned_rounding.py"; fi

step configure 90 cmake -S . -B "$BUILD" -G "$GENERATOR" -DCMAKE_BUILD_TYPE=Release -DCMAKE_PREFIX_PATH="$TORCH_PREFIX" \
  -DCREPE_THIRD_PARTY_DIR="$THIRD_PARTY" -DCREPE_SHARED_DIR="$SHARED" &&
  step build 300 cmake --build "$BUILD" -j "$JOBS"
built=$?

if [ $built = 0 ]; then
  # Several test processes share the GPU; their CPU side gets 2 threads each.
  (cd "$BUILD" && CREPE_TEST_DEVICE=$DEVICE OMP_NUM_THREADS=2 step tests 180 ctest -j "$(( JOBS > 12 ? 12 : JOBS ))" \
    --output-on-failure --timeout 120; echo "${steps[-1]}" > "$WORK/tests.step")
  steps+=("$(cat "$WORK/tests.step")")
  grep -q '"ok": true' "$WORK/tests.step" || failed=1
  # Device memory in use every 100 ms through the benchmarks; the summary gives each step's peak.
  if command -v nvidia-smi > /dev/null; then
    nvidia-smi --query-gpu=timestamp,memory.used --format=csv,noheader,nounits -lms 100 > "$WORK/memory-samples.txt" 2>&1 &
    sampler=$!
  fi
  step scores 60 "$BUILD/crepe_bench_scores" --device "$DEVICE" --matmul-size "$MATMUL" --json "$WORK/scores.json"
  step synthesize 60 "$BUILD/crepe_make_synthetic" --out "$SYNTH/7b-shape" --tokenizer-from "$SHARED/models/mini-llama-6m" \
    --layers "$LAYERS_7B" --hidden 4096 --intermediate 11008 --heads 32 --kv-heads 32 --vocab 4096
  calibrate() {  # calibrate NAME MODEL ARGS...: a wanda prune whose JSON (NAME.out) times the two passes
    local name=$1 model=$2
    shift 2
    step "$name" 60 "$BUILD/crepe" prune --model "$model" --out "$SYNTH/pruned" --force -q --json --method wanda \
      --device "$DEVICE" --calib-data "$SHARED/data/tinystories-val.txt" "$@"
  }
  calibrate prune-7b-shape-bf16 "$SYNTH/7b-shape" --dtype "$HALF" --nsamples "$NSAMPLES_7B" --seqlen 2048
  calibrate prune-7b-shape-fp32 "$SYNTH/7b-shape" --dtype fp32 --nsamples "$NSAMPLES_7B" --seqlen 2048
  calibrate prune-7b-shape-bf16-host-states "$SYNTH/7b-shape" --dtype "$HALF" --nsamples "$NSAMPLES_7B" --seqlen 2048 \
    --max-device-activations 0
  calibrate prune-mini-llama-6m-fp32 "$SHARED/models/mini-llama-6m" --dtype fp32 --nsamples 128 --seqlen 256
  # PHO with the kl proxy holds every block (as stored) plus one pruned block: its peak memory and
  # the seconds per proxy evaluation (a scoring of every matrix and a forward pass of the subsample).
  # Then the same search with the weights streamed from the checkpoint (--weights stream, what auto
  # picks for a model larger than the card), on the first one's cached statistics.
  search_7b() {  # search_7b NAME LIMIT ARGS...
    local name=$1 limit=$2
    shift 2
    step "$name" "$limit" "$BUILD/crepe" search --model "$SYNTH/7b-shape" --out "$SYNTH/$name.json" -q --json \
      --device "$DEVICE" --dtype "$HALF" --calib-data "$SHARED/data/tinystories-val.txt" --nsamples 8 \
      --seqlen "$SEARCH_SEQLEN" --proxy kl --kernels 3 --groups layer --stats "$SYNTH/search-stats.safetensors" "$@"
  }
  # (--budget 14 with one kernel and group: 2 CMA-ES generations of 7, 14 evaluations.)
  search_7b search-7b-shape-kl "$SEARCH_LIMIT" --budget 14 --weights resident
  search_7b search-7b-shape-kl-stream "$SEARCH_LIMIT" --budget 14 --weights stream
  [ -n "$sampler" ] && kill "$sampler" 2> /dev/null
  sampler=""
fi

python3 - "$WORK" "$SHARED" "$LAYERS_7B" "${steps[@]}" <<'PY'
# summary.json: every step's outcome and whatever numbers the steps that ran produced.
import datetime, json, os, sys, time
out, shared, layers_7b = sys.argv[1], sys.argv[2], int(sys.argv[3])
steps = [json.loads(s) for s in sys.argv[4:]]
summary = {"steps": steps, "problems": []}

def load(name):
    try:
        with open(os.path.join(out, name)) as f:
            return json.load(f)
    except (OSError, ValueError):
        return None

def section(name, work):
    try:
        work()
    except Exception as e:  # a failed step leaves its numbers out, never the whole summary
        summary["problems"].append("%s: %r" % (name, e))

def scoring():
    scores = load("scores.json")
    if not scores:
        return
    s = scores["seconds"]
    summary["scoring_seconds_4096x11008"] = s
    summary["crepe_k5_over_ria"] = s["crepe k=5"] / s["ria"]
    summary["matmul_tflops"] = {"fp32": scores["matmul_gflops"] / 1e3, "bf16": scores.get("matmul_gflops_bf16", 0) / 1e3}

def calibration():
    # Forward FLOPs per token: linear layers 2 x params, causal attention 2 x seqlen x heads x head_dim.
    shapes = {"7b-shape": dict(h=4096, i=11008, L=layers_7b, heads=32, kv=32)}
    with open(os.path.join(shared, "models/mini-llama-6m/config.json")) as f:
        mini = json.load(f)
    shapes["mini-llama-6m"] = dict(h=mini["hidden_size"], i=mini["intermediate_size"], L=mini["num_hidden_layers"],
                                   heads=mini["num_attention_heads"],
                                   kv=mini.get("num_key_value_heads", mini["num_attention_heads"]))
    runs = {}
    for name in sorted(os.listdir(out)):
        report = load(name) if name.startswith("prune-") and name.endswith(".out") else None
        if not report:
            continue
        shape = shapes["7b-shape" if "7b-shape" in name else "mini-llama-6m"]
        h, i, L, heads, kv = shape["h"], shape["i"], shape["L"], shape["heads"], shape["kv"]
        hd = h // heads
        seqlen, tokens = report["calibration"]["seqlen"], report["calibration"]["tokens"]
        flops = L * (2 * (h * heads * hd + 2 * h * kv * hd + heads * hd * h + 3 * h * i) + 2 * seqlen * heads * hd)
        passes = report["seconds"]["statistics"] + report["seconds"]["forward"]  # two passes over every block
        tps = 2 * tokens / passes if passes > 0 else None
        rate = summary.get("matmul_tflops", {}).get("bf16" if "bf16" in name else "fp32", 0)
        achieved = tps * flops / 1e12 if tps else None
        runs[name[:-4]] = {"tokens_per_second_per_pass": tps, "achieved_tflops": achieved,
                           "fraction_of_matmul": achieved / rate if achieved and rate else None,
                           "peak_rss_mib": report.get("peak_rss_mib"), "seconds": report["seconds"]}
    summary["calibration"] = runs

def memory():
    # nvidia-smi's samples ("YYYY/MM/DD HH:MM:SS.mmm, MiB", local time, as `date` keeps it): each
    # benchmark step's peak, from the samples strictly inside its interval.
    samples = []
    with open(os.path.join(out, "memory-samples.txt")) as f:
        for line in f:
            stamp, _, mib = line.partition(",")
            try:
                when = datetime.datetime.strptime(stamp.strip(), "%Y/%m/%d %H:%M:%S.%f")
                samples.append((time.mktime(when.timetuple()) + when.microsecond / 1e6, int(mib)))
            except ValueError:
                pass
    summary["peak_gpu_memory_mib"] = {
        s["step"]: max((m for t, m in samples if s["from"] < t < s["to"]), default=None)
        for s in steps if "from" in s and s["step"] not in ("pinned-rounding", "configure", "build", "tests")}

def search():
    for step, key in (("search-7b-shape-kl", "search_7b_shape_kl"), ("search-7b-shape-kl-stream", "search_7b_shape_kl_stream")):
        found = load(step + ".out")
        if not found:
            continue
        s = found["_search"]
        summary[key] = {"evaluations": s["evaluations"], "search_seconds": s["seconds"], "weights": s.get("weights"),
                        "seconds_per_evaluation": s["seconds"] / max(1, s["evaluations"]),
                        "total_seconds": found.get("_seconds")}

section("scoring", scoring)
section("search", search)
section("calibration", calibration)
section("memory", memory)
summary["pinned_rounding"] = load("pinned-rounding.out")
with open(os.path.join(out, "summary.json"), "w") as f:
    json.dump(summary, f, indent=1)
print(json.dumps(summary, indent=1))
PY
cp "$WORK/summary.json" "$OUT/summary.json" 2> /dev/null
tar -czf "$OUT/gpu-check.tar.gz" -C "$WORK" .
grep -E "tests passed|tests failed|\(Failed\)|\(SEGFAULT\)|\(Timeout\)|Exception" "$WORK/tests.out" 2> /dev/null | tail -25
exit $failed
