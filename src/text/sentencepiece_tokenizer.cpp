// SentencePiece `tokenizer.model` behind the Tokenizer interface, run by crepe's own BPE encoder
// (see include/crepe/text/sentencepiece_model.hpp for why not the library, and
// tests/spm_differential for the proof that the ids are the library's).
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/text/sentencepiece_model.hpp"
#include "crepe/text/tokenizer.hpp"

namespace crepe::text {
namespace {

class SentencePieceTokenizer : public Tokenizer {
 public:
  SentencePieceTokenizer(SentencePieceBpe bpe, std::string path, int32_t bos, int32_t eos, bool add_bos)
      : bpe_(std::move(bpe)), path_(std::move(path)), bos_(bos), eos_(eos), add_bos_(add_bos) {}

  std::vector<int32_t> encode(const std::string& text) const override { return bpe_.encode(text); }

  std::string decode(const std::vector<int32_t>& ids) const override {
    const int32_t n = vocab_size();
    for (int32_t id : ids) {
      // Ids may come from a model whose embedding is larger than the tokenizer's vocabulary.
      if (id < 0 || id >= n) {
        throw_input_error(path_, "token id " + std::to_string(id) + " is outside the vocabulary (" +
                                     std::to_string(n) + " tokens)");
      }
    }
    return bpe_.decode(ids);
  }

  int32_t vocab_size() const override { return static_cast<int32_t>(bpe_.model().pieces.size()); }
  int32_t bos_id() const override { return bos_; }
  int32_t eos_id() const override { return eos_; }
  // A model without a BOS piece cannot prepend one, whatever the config asks.
  bool adds_bos() const override { return add_bos_ && bos_ >= 0; }
  std::string describe() const override {
    const std::string name = std::filesystem::path(path_).filename().string();
    return "sentencepiece " + name + " (" + std::to_string(vocab_size()) + " tokens)";
  }

 private:
  SentencePieceBpe bpe_;
  std::string path_;
  int32_t bos_;
  int32_t eos_;
  bool add_bos_;
};

// Id of a special token named by tokenizer_config.json, or the model's own id when none is named.
int32_t special_id(const SentencePieceBpe& bpe, const std::string& token, int model_id, const std::string& path,
                   const char* role) {
  if (token.empty()) return model_id;
  const int32_t id = bpe.piece_id(token);
  if (id < 0) throw_input_error(path, std::string(role) + " \"" + token + "\" from tokenizer_config.json is not in the model");
  return id;
}

}  // namespace

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path, const TokenizerSettings& settings) {
  // Checked first so that a missing file gets a plainer message than a parse failure.
  if (!std::filesystem::exists(model_path)) throw_input_error(model_path, "no such file");
  if (!std::filesystem::is_regular_file(model_path)) throw_input_error(model_path, "is not a regular file");
  SentencePieceBpe bpe(SentencePieceModel::load(model_path), model_path);
  const int32_t bos = special_id(bpe, settings.bos_token, bpe.model().bos_id, model_path, "bos_token");
  const int32_t eos = special_id(bpe, settings.eos_token, bpe.model().eos_id, model_path, "eos_token");
  return std::make_unique<SentencePieceTokenizer>(std::move(bpe), model_path, bos, eos, settings.add_bos);
}

std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path, bool add_bos) {
  TokenizerSettings settings;
  settings.add_bos = add_bos;
  return load_sentencepiece(model_path, settings);
}

}  // namespace crepe::text
