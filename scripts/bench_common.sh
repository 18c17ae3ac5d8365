# Sourced by the benchmark scripts: where each shared model calibrates and is evaluated.
#   mini-llama-6m: calibrate on tinystories-val.txt, evaluate on the first 420 windows of wikitext2-test.txt
#   stories260k:   calibrate on the first half of tinystories-val.txt, evaluate on the whole second half
# Needs SHARED (the shared data folder) and DATA_DIR (where the halves are written) set by the caller.

# The two halves of TinyStories-val, cut at the paragraph break nearest the middle.
split_tinystories() {
  mkdir -p "$DATA_DIR"
  python3 - "$SHARED/data/tinystories-val.txt" "$DATA_DIR" <<'PY'
import sys
text = open(sys.argv[1], encoding="utf-8").read()
cut = text.index("\n\n", len(text) // 2)
open(sys.argv[2] + "/tinystories-first-half.txt", "w", encoding="utf-8").write(text[:cut])
open(sys.argv[2] + "/tinystories-second-half.txt", "w", encoding="utf-8").write(text[cut + 2:])
PY
}

calib_of() { [ "$1" = stories260k ] && echo "$DATA_DIR/tinystories-first-half.txt" || echo "$SHARED/data/tinystories-val.txt"; }
eval_of() { [ "$1" = stories260k ] && echo "$DATA_DIR/tinystories-second-half.txt" || echo "$SHARED/data/wikitext2-test.txt"; }
# Windows evaluated (0 = the whole text); EVAL_WINDOWS overrides for every model.
eval_windows_of() { [ -n "${EVAL_WINDOWS:-}" ] && echo "$EVAL_WINDOWS" || { [ "$1" = stories260k ] && echo 0 || echo 420; }; }

# eval_json MODEL DIR: crepe eval's JSON for the model directory DIR on MODEL's evaluation text, with
# the windows every benchmark uses (256 tokens). Needs CREPE (the binary) set by the caller.
eval_json() {
  "$CREPE" eval --model "$2" --data "$(eval_of "$1")" --seqlen 256 --max-windows "$(eval_windows_of "$1")" -q --json
}
