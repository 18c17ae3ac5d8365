#include "crepe/cli/shared_steps.hpp"

#include <spdlog/spdlog.h>

#include <cmath>

#include "crepe/core/error.hpp"
#include "crepe/prune/mask.hpp"

namespace crepe::cli {

int64_t capped_seqlen(int64_t requested, const io::Checkpoint& checkpoint, const char* option) {
  const int64_t context = checkpoint.config().max_position_embeddings;
  if (requested <= context) return requested;
  spdlog::info("{} {} exceeds the model's context; using {}", option, requested, context);
  return context;
}

void check_pattern_sparsity(const std::string& pattern, double sparsity, bool sparsity_given) {
  const prune::Pattern p = prune::parse_pattern(pattern);
  if (!p.structured() || !sparsity_given) return;
  const double implied = static_cast<double>(p.n) / static_cast<double>(p.m);
  require(std::abs(sparsity - implied) < 1e-9, "--sparsity",
          fmt::format("{} contradicts --pattern {}, which prunes exactly {} of every {} ({}); give one of them", sparsity,
                      p.str(), p.n, p.m, implied));
}

std::unique_ptr<text::Tokenizer> model_tokenizer(const io::Checkpoint& checkpoint, const std::string& kind) {
  auto tokenizer = text::load_tokenizer(checkpoint.dir(), text::parse_tokenizer_kind(kind, "--tokenizer-kind"));
  const int64_t rows = checkpoint.config().vocab_size;
  require(tokenizer->vocab_size() <= rows, checkpoint.dir(),
          "its tokenizer (" + tokenizer->describe() + ") has more tokens than the model's " + std::to_string(rows) +
              " embedding rows (config.json vocab_size): they do not belong together");
  return tokenizer;
}

text::EvalWindows held_out_windows(const text::Tokenizer& tokenizer, const std::string& data, int64_t seqlen,
                                   int64_t max_windows) {
  text::EvalWindows windows = text::eval_windows(text::read_text_file(data), tokenizer, seqlen, max_windows, data);
  spdlog::info("eval: {} windows of {} tokens from {} ({} tokens in the file), {}", windows.ids.size(0), seqlen, data,
               windows.total_tokens, tokenizer.describe());
  return windows;
}

}  // namespace crepe::cli
