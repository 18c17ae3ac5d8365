#pragma once
// Tokenizers: text <-> token ids, behind one interface.
//
// Implementations: SentencePiece `tokenizer.model` (sentencepiece_model.hpp) and Hugging Face
// `tokenizer.json` BPE (hf_tokenizer.hpp); load_tokenizer picks one for a model directory.
// BOS handling follows the model directory's tokenizer_config.json (`add_bos_token`, default true
// for LLaMA tokenizers) and can be overridden by the caller.
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

namespace crepe::text {

class Tokenizer {
 public:
  virtual ~Tokenizer() = default;
  // Token ids of `text`, without BOS/EOS. Must be safe to call from several threads at once
  // (corpora are tokenized document-parallel).
  virtual std::vector<int32_t> encode(const std::string& text) const = 0;
  virtual std::string decode(const std::vector<int32_t>& ids) const = 0;
  virtual int32_t vocab_size() const = 0;
  virtual int32_t bos_id() const = 0;  // -1 if none
  virtual int32_t eos_id() const = 0;  // -1 if none
  // Whether sequences start with BOS by default (tokenizer_config.json's add_bos_token).
  virtual bool adds_bos() const = 0;
  // Short description for logs and reports, e.g. "sentencepiece tokenizer.model (4096 tokens)".
  virtual std::string describe() const = 0;

  // encode() with BOS prepended when adds_bos() (or add_bos when given).
  std::vector<int32_t> encode_with_specials(const std::string& text) const;
  std::vector<int32_t> encode_with_specials(const std::string& text, bool add_bos) const;
};

// What a model directory's tokenizer_config.json says about special tokens. An empty token string
// means "as the tokenizer file defines it".
struct TokenizerSettings {
  bool add_bos = true;
  bool add_bos_set = false;  // whether the file sets add_bos_token (else add_bos is the default)
  std::string bos_token;
  std::string eos_token;
};

// Reads DIR/tokenizer_config.json; defaults when the file is absent. `bos_token`/`eos_token` may be
// a string or an object with "content", as transformers writes them. Throws InputError naming the
// file when it is malformed.
TokenizerSettings read_tokenizer_config(const std::string& dir);

// Which file to load from a model directory.
enum class TokenizerKind { Auto, SentencePiece, HuggingFaceJson };

// "auto", "json" (tokenizer.json) or "model" (tokenizer.model); anything else is an InputError
// naming `option` (e.g. "--kind").
TokenizerKind parse_tokenizer_kind(const std::string& text, const std::string& option);

// Loads the tokenizer of a model directory (or a directory holding only tokenizer files). Auto
// prefers tokenizer.json when both files are present, as transformers' fast tokenizers do; the
// other kinds insist on their file. Throws InputError naming the directory when the file is missing.
std::unique_ptr<Tokenizer> load_tokenizer(const std::string& dir, TokenizerKind kind = TokenizerKind::Auto);

// Loads one tokenizer file, with the tokenizer_config.json beside it when there is one. Auto reads
// a file whose name ends in ".json" as tokenizer.json and anything else as a SentencePiece model.
std::unique_ptr<Tokenizer> load_tokenizer_file(const std::string& path, TokenizerKind kind = TokenizerKind::Auto);

// Loads a SentencePiece model file directly; `add_bos` defaults to true as in LLaMA.
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path, bool add_bos = true);
// Same, with BOS/EOS taken from `settings` (a named token must be a piece of the model).
std::unique_ptr<Tokenizer> load_sentencepiece(const std::string& model_path, const TokenizerSettings& settings);

}  // namespace crepe::text
