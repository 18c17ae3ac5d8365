#include "crepe/cli/shared_steps.hpp"

#include <spdlog/spdlog.h>

#include <cmath>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/core/host_memory.hpp"
#include "crepe/prune/mask.hpp"

namespace crepe::cli {

int64_t capped_seqlen(int64_t requested, const io::Checkpoint& checkpoint, const char* option) {
  const int64_t context = checkpoint.config().max_position_embeddings;
  if (requested <= context) return requested;
  spdlog::info("{} {} exceeds the model's context; using {}", option, requested, context);
  return context;
}

double target_sparsity(const prune::Pattern& pattern, double sparsity) {
  if (pattern.structured()) return static_cast<double>(pattern.n) / static_cast<double>(pattern.m);
  return sparsity == 0 ? 0.0 : sparsity;
}

void check_pattern_sparsity(const std::string& pattern, double sparsity, bool sparsity_given) {
  const prune::Pattern p = prune::parse_pattern(pattern);
  if (!p.structured() || !sparsity_given) return;
  const double implied = static_cast<double>(p.n) / static_cast<double>(p.m);
  require(std::abs(sparsity - implied) < 1e-9, "--sparsity",
          fmt::format("{} contradicts --pattern {}, which prunes exactly {} of every {} ({}); give one of them", sparsity,
                      p.str(), p.n, p.m, implied));
}

void check_pattern_fits(const prune::Pattern& p, const io::Checkpoint& checkpoint) {
  if (!p.structured()) return;
  const model::ModelConfig& c = checkpoint.config();
  const std::pair<const char*, int64_t> inputs[] = {
      {"q/k/v_proj, gate_proj and up_proj", c.hidden_size}, {"o_proj", c.q_size()}, {"down_proj", c.intermediate_size}};
  for (const auto& [layers, width] : inputs) {
    require(prune::n_of_m_pruned_per_row(width, p.n, p.m) > 0, "--pattern",
            fmt::format("{} prunes nothing in {} of {}: their rows have {} inputs, too few for groups of {}; choose a smaller M",
                        p.str(), layers, checkpoint.dir(), width, p.m));
  }
}

void check_calibration_fits(int64_t nsamples, int64_t seqlen, const io::Checkpoint& checkpoint,
                            c10::ScalarType compute_dtype) {
  const std::optional<int64_t> available = available_host_memory();
  if (!available) return;
  const double per_token = 8.0 + static_cast<double>(checkpoint.config().hidden_size) *
                                     static_cast<double>(c10::elementSize(compute_dtype));
  const double needed = static_cast<double>(nsamples) * static_cast<double>(seqlen) * per_token;
  constexpr double kGiB = 1024.0 * 1024.0 * 1024.0;
  require(needed <= static_cast<double>(*available), "--nsamples",
          fmt::format("{} windows of {} tokens need {:.1f} GiB for their hidden states, and {:.1f} GiB of memory is "
                      "available: use fewer windows or a shorter --seqlen",
                      nsamples, seqlen, needed / kGiB, static_cast<double>(*available) / kGiB));
}

namespace {

// The model's tokenizer, checked against its embedding: an id past the embedding's rows would be
// an internal error deep in the forward pass. Ids are checked as text is encoded, not by the
// tokenizer's size: special tokens added past vocab_size (a <pad> some fine-tunes append) are
// harmless as long as the text never produces them.
class EmbeddingCheckedTokenizer final : public text::Tokenizer {
 public:
  EmbeddingCheckedTokenizer(std::unique_ptr<text::Tokenizer> inner, std::string model_dir, int64_t rows)
      : inner_(std::move(inner)), model_dir_(std::move(model_dir)), rows_(rows) {}

  std::vector<int32_t> encode(const std::string& text) const override {
    std::vector<int32_t> ids = inner_->encode(text);
    for (int32_t id : ids) {
      require(id < rows_, model_dir_,
              "its tokenizer (" + inner_->describe() + ") produced token id " + std::to_string(id) + ", but the model has " +
                  std::to_string(rows_) + " embedding rows (config.json vocab_size): they do not belong together");
    }
    return ids;
  }
  std::string decode(const std::vector<int32_t>& ids) const override { return inner_->decode(ids); }
  int32_t vocab_size() const override { return inner_->vocab_size(); }
  int32_t bos_id() const override { return inner_->bos_id(); }
  int32_t eos_id() const override { return inner_->eos_id(); }
  bool adds_bos() const override { return inner_->adds_bos(); }
  std::string describe() const override { return inner_->describe(); }

 private:
  std::unique_ptr<text::Tokenizer> inner_;
  std::string model_dir_;
  int64_t rows_;
};

}  // namespace

std::unique_ptr<text::Tokenizer> model_tokenizer(const io::Checkpoint& checkpoint, const std::string& kind) {
  auto tokenizer = text::load_tokenizer(checkpoint.dir(), text::parse_tokenizer_kind(kind, "--tokenizer-kind"));
  const int64_t rows = checkpoint.config().vocab_size;
  require(tokenizer->bos_id() < rows, checkpoint.dir(),
          "its tokenizer's BOS id " + std::to_string(tokenizer->bos_id()) + " is past the model's " + std::to_string(rows) +
              " embedding rows (config.json vocab_size): they do not belong together");
  return std::make_unique<EmbeddingCheckedTokenizer>(std::move(tokenizer), checkpoint.dir(), rows);
}

text::EvalWindows held_out_windows(const text::Tokenizer& tokenizer, const std::string& data, int64_t seqlen,
                                   int64_t max_windows) {
  text::EvalWindows windows = text::eval_windows(text::read_text_file(data), tokenizer, seqlen, max_windows, data);
  spdlog::info("eval: {} windows of {} tokens from {} ({} tokens in the file), {}", windows.ids.size(0), seqlen, data,
               windows.total_tokens, tokenizer.describe());
  return windows;
}

}  // namespace crepe::cli
