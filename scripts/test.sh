#!/usr/bin/env bash
# The whole test suite on a fresh Debian machine: install packages, build, run CTest; then the same
# sources built with AddressSanitizer + UndefinedBehaviorSanitizer, running the fast tests there.
# CREPE_SANITIZER_TESTS=0 skips the sanitizer part. Measured on a clean, cold clone on a quiet 2-core
# machine: 21m22s once (sanitizer part 11m20s); 34m23s on a slower day (2026-12-08: build 8m, suite
# 7m34s, sanitizer build 9m, sanitizer tests 10m; the suite before that day's changes also took 7m25s).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
scripts/build.sh
ctest --test-dir "${BUILD_DIR:-build}" --output-on-failure -j "$(nproc)" --timeout 900

[ "${CREPE_SANITIZER_TESTS:-1}" = 0 ] && exit 0

# ---- ASan + UBSan -----------------------------------------------------------------------------------
# Built in build-asan with CREPE_SANITIZE=ON at -O0 -g1: it compiles about 2.4x faster than -O1 and
# reports still give file:line. The heavy lifting is LibTorch's, which is not instrumented and runs at
# full speed either way.
#
# The fast tests run in a few processes rather than one per test as CTest runs them (starting a
# sanitized process that loads LibTorch costs about a second): each test executable in two gtest
# shards, $(nproc) processes at a time. Left out here, covered by the run above (each takes from
# 15 s to minutes under the sanitizers; keep this list up to date when adding slow tests):
slow_tests=(
  'PruneCli.SameCommandTwiceGivesByteIdenticalOutput'            # two prunes of mini-llama-6m
  'PruneCli.WritesAMirroredCheckpointWithExactSparsityAndAReport' # prune of mini-llama-6m, every tensor compared
  'PruneCli.SparsityZeroIsAByteIdenticalRoundTrip'               # prune of mini-llama-6m
  'StopPoints/ResumeAfterInterruption.*'    # four prunes each, interrupted and resumed
  'SharedModels/EvalEndToEnd.*'             # WikiText-2 perplexity of both shared models
  'SearchCli.*'                             # a PHO search
  'TokenizeCli.*'                           # each loads LLaMA-3's 9 MB tokenizer.json in a new process
  '*SentencePieceDifferential.*'            # whole-WikiText tokenizer comparisons
  'Cmaes.ConvergesOnRosenbrock10D'          # 20 s of plain arithmetic
)
#
# A sanitizer report fails the run whether or not the test noticed it. ASan and LSan reports of
# every process (the test executables and the crepe binaries the CLI tests start) go to files in
# $reports/, and any file there is a failure. UBSan (GCC's, run inside the ASan runtime) ignores
# log_path and reports on stderr: it is made to stop the process at its first report (exit code 1,
# which no test expects of crepe), and a "runtime error:" in a test log is a failure too.
# No suppressions: nothing has been reported from inside LibTorch or OpenBLAS (ASan and LSan see
# their allocations through the interposed malloc, and found nothing to report in them). Should that
# change, a suppression belongs here, with the evidence, never one matching crepe's own frames.
asan_dir=${ASAN_BUILD_DIR:-build-asan}
generator=()
command -v ninja >/dev/null && generator=(-G Ninja)
reports=$(realpath -m "$asan_dir/sanitizer-reports")
logs=$(realpath -m "$asan_dir/test-logs")
rm -rf "$reports" "$logs"
mkdir -p "$reports" "$logs"
export ASAN_OPTIONS="log_path=$reports/asan:halt_on_error=1:abort_on_error=0:detect_leaks=1:check_initialization_order=1"
export UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1"
cmake -S . -B "$asan_dir" "${generator[@]}" -DCMAKE_BUILD_TYPE=Debug -DCMAKE_CXX_FLAGS_DEBUG="-O0 -g1" \
  -DCREPE_SANITIZE=ON > "$logs/configure.log" || { cat "$logs/configure.log"; exit 1; }
cmake --build "$asan_dir" --target all_tests -j "$(nproc)"  # no benchmarks

filter="-$(IFS=:; echo "${slow_tests[*]}")"
shards=2
run_one() {  # one shard of one test executable, in the executable's directory as CTest runs it
  local exe=$1 shard=$2 name log
  name=$(basename "$exe")
  log="$logs/$name.$shard.log"
  if (cd "$(dirname "$exe")" && GTEST_TOTAL_SHARDS=$shards GTEST_SHARD_INDEX=$shard \
      timeout 1800 "./$name" --gtest_filter="$filter" --gtest_brief=1) > "$log" 2>&1; then
    echo "sanitizers: $name shard $shard passed ($(grep -m1 -oE '[0-9]+ tests? from [0-9]+ test suites? ran' "$log" || echo 'no tests'))"
  else
    echo "sanitizers: $name shard $shard FAILED (log: $log)"
    return 1
  fi
}
export -f run_one
export filter logs shards
mapfile -t executables < <(find "$asan_dir" -maxdepth 2 -type f -executable -name 'test_*' | sort)
status=0
for exe in "${executables[@]}"; do
  for ((shard = 0; shard < shards; shard++)); do echo "$exe $shard"; done
done | xargs -P "$(nproc)" -L 1 bash -c 'run_one "$0" "$1"' || status=1

for log in "$logs"/test_*.log; do
  grep -q -E '^\[  FAILED  \]|(Failure|FAILED TEST)' "$log" && { echo "---- $log"; tail -n 60 "$log"; }
done
if grep -l -E 'runtime error:|ERROR: (Address|Leak|UndefinedBehavior)Sanitizer' "$logs"/test_*.log; then
  echo "sanitizers: reports in the test logs above"
  status=1
fi
if compgen -G "$reports/*" > /dev/null; then
  echo "sanitizers: reports in $reports:"
  for report in "$reports"/*; do echo "---- $report"; head -n 80 "$report"; done
  status=1
fi
((status == 0)) && echo "sanitizers: all fast tests passed with no ASan/UBSan/LSan report"
exit "$status"
