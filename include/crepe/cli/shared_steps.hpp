#pragma once
// Steps that several commands take the same way, written once so they cannot drift apart.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

#include "crepe/io/checkpoint.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/text/corpus.hpp"
#include "crepe/text/tokenizer.hpp"

namespace crepe::cli {

// A window length from an option such as --seqlen, capped at the model's context (and saying so).
int64_t capped_seqlen(int64_t requested, const io::Checkpoint& checkpoint, const char* option);

// An N:M pattern fixes the sparsity at N/M; a --sparsity that was given (on the command line or in a
// config file) and says otherwise is a contradiction, refused rather than silently ignored.
void check_pattern_sparsity(const std::string& pattern, double sparsity, bool sparsity_given);

// The fraction pruned: N/M for an N:M pattern, else --sparsity (where "-0" is 0, and written so).
double target_sparsity(const prune::Pattern& pattern, double sparsity);

// An N:M pattern must prune something in every layer it is given: rows narrower than a group
// (--pattern 1:1000 on 64 inputs) would keep every weight, a 0% layer that looks like a result.
void check_pattern_fits(const prune::Pattern& pattern, const io::Checkpoint& checkpoint);

// `nsamples` windows of `seqlen` tokens keep their token ids and one hidden state per token (in the
// compute dtype) for the whole run: refused, naming --nsamples, when that is more than the memory
// the system has available now (a failed allocation deep in LibTorch would be an internal error).
void check_calibration_fits(int64_t nsamples, int64_t seqlen, const io::Checkpoint& checkpoint,
                            c10::ScalarType compute_dtype);

// The model directory's tokenizer; `kind` is the --tokenizer-kind text (auto, json, model).
// Its encode() raises an InputError naming the model when the text yields an id past the model's
// embedding rows (config.json's vocab_size): such a tokenizer belongs to another model.
std::unique_ptr<text::Tokenizer> model_tokenizer(const io::Checkpoint& checkpoint, const std::string& kind = "auto");

// Held-out windows of `data` (WikiText-2 protocol, see text/corpus.hpp), logged as eval does.
text::EvalWindows held_out_windows(const text::Tokenizer& tokenizer, const std::string& data, int64_t seqlen,
                                   int64_t max_windows);

}  // namespace crepe::cli
