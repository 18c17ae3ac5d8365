#pragma once
// Text corpora for calibration and evaluation.
//
// Calibration (the SparseGPT/Wanda/RIA protocol): `nsamples` windows of `seqlen` tokens; each
// window is a uniformly random window of a uniformly random document whose token count exceeds
// seqlen. Documents shorter than that are joined with their successors (in file order, separated by
// "\n\n") until the joined document is long enough, so that no text is thrown away. Sampling is
// driven by crepe's own seeded generator (not std:: distributions) and is reproducible across
// platforms for a given seed.
//
// Each document is tokenized as Hugging Face's tokenizer(doc) does (with a leading BOS when the
// tokenizer adds one), so a window starts with BOS only when it starts at the document's start.
//
// Evaluation (the WikiText-2 protocol): the whole file tokenized once (one leading BOS when the
// tokenizer adds one), split into non-overlapping windows of seqlen tokens; a trailing partial
// window is dropped, as the literature does.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <vector>

#include "crepe/core/rng.hpp"
#include "crepe/text/tokenizer.hpp"

namespace crepe::text {

// Documents of a text file: JSONL (one JSON object per line with a string field "text", the C4
// format; chosen when the file name ends in .jsonl or .json) or plain text (documents separated
// by one or more blank lines). Throws InputError naming the file and line on malformed JSONL.
std::vector<std::string> read_documents(const std::string& path);

// Whole file contents. Throws InputError naming the file if it cannot be read, or is not UTF-8
// text: compressed (gzip, zstd, bzip2, xz, zip), a UTF-16 byte-order mark, or more than 1% of its
// bytes NUL or outside well-formed UTF-8 (a stray byte or two, as real corpora have, passes).
std::string read_text_file(const std::string& path);

struct CalibrationSet {
  at::Tensor ids;             // int64 [nsamples, seqlen]
  int64_t documents = 0;      // documents after joining short ones (a short tail included)
  int64_t eligible_documents = 0;  // of those, the ones with more than seqlen tokens (sampled from)
  int64_t corpus_tokens = 0;  // tokens in the whole corpus
};

// Throws InputError naming `source` when no (joined) document has more than seqlen tokens.
CalibrationSet sample_calibration(const std::vector<std::string>& documents, const Tokenizer& tokenizer,
                                  int64_t nsamples, int64_t seqlen, uint64_t seed,
                                  const std::string& source);

struct EvalWindows {
  at::Tensor ids;             // int64 [windows, seqlen]
  int64_t total_tokens = 0;   // tokens of the whole text (including a leading BOS if added)
};

// Tokenizes `text` once (a leading BOS when the tokenizer adds one, as HF's tokenizer(text) does),
// and cuts non-overlapping windows of seqlen; at most max_windows when > 0.
// Throws InputError naming `source` when the text has fewer than seqlen tokens.
EvalWindows eval_windows(const std::string& text, const Tokenizer& tokenizer, int64_t seqlen,
                         int64_t max_windows, const std::string& source);


}  // namespace crepe::text
