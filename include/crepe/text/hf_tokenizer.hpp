#pragma once
// Hugging Face `tokenizer.json` files with a BPE model, read and run by crepe itself, exact to the
// token against the `tokenizers` library on the files LLaMA-family checkpoints ship.
//
// Supported, in the two families those files come in:
// - byte-level BPE (LLaMA-3, Qwen2, GPT-2): pre_tokenizer `Split` (a regex or a string, every
//   behaviour, invert) and `ByteLevel` (add_prefix_space, use_regex: the GPT-2 regex), in a
//   `Sequence` or alone; `ignore_merges`; decoder `ByteLevel`.
// - SentencePiece-style BPE (Mistral, LLaMA-2 "fast" files): normalizers `Prepend` and `Replace`
//   (in a `Sequence` or alone) or pre_tokenizer `Metaspace` (prepend_scheme first/always/never,
//   split); `byte_fallback` (<0xXX> tokens), `unk_token`, `fuse_unk`; decoders `Replace`,
//   `ByteFallback`, `Fuse`, `Strip`, `Metaspace`.
// Both: merges as "a b" strings or ["a", "b"] lists, applied by rank; `added_tokens` found in the
// raw text before the model (longest first at the leftmost position; lstrip, rstrip, single_word,
// and normalized=true tokens matched after the normalizer); post_processor `TemplateProcessing`
// (its `single` template's leading special token is the BOS), `ByteLevel`, `RobertaProcessing`
// (these two add nothing here) and `Sequence` of them.
// The `NFC` normalizer is accepted and applied as the identity: exact for text already in NFC,
// which is what real text almost always is (WikiText-2 is); decomposed input may differ.
// Anything else (another model type, normalizer, pre-tokenizer, decoder or post-processor type,
// BPE dropout, subword prefixes/suffixes) is refused with an InputError naming the file and the
// type.
//
// Input that is not valid UTF-8 is read as Python would with errors="replace" (each maximal
// ill-formed subpart becomes U+FFFD); Hugging Face's tokenizers accept only str.
#include <cstdint>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include "crepe/text/tokenizer.hpp"

namespace crepe::text {

class HfTokenizer : public Tokenizer {
 public:
  // Parses the tokenizer.json at `path`. BOS/EOS: tokenizer_config.json's `settings` (bos_token,
  // eos_token; add_bos when the file sets add_bos_token, or when it is false) over what the
  // post_processor's template says; with neither saying whether to add BOS, BOS is added when a
  // bos_token is known (LLaMA-3's file has no template: its BOS comes from tokenizer_config.json).
  static std::unique_ptr<HfTokenizer> load(const std::string& path, const TokenizerSettings& settings);
  ~HfTokenizer() override;

  std::vector<int32_t> encode(const std::string& text) const override;
  // Runs the file's decoder, special tokens included (as transformers' decode with
  // skip_special_tokens=False, without clean_up_tokenization_spaces). Throws InputError for an id
  // outside the vocabulary.
  std::string decode(const std::vector<int32_t>& ids) const override;
  int32_t vocab_size() const override;  // largest id + 1, added tokens included
  int32_t bos_id() const override;
  int32_t eos_id() const override;
  bool adds_bos() const override;
  std::string describe() const override;

  // Id of a vocabulary or added token as the file spells it (byte-level tokens in the GPT-2
  // alphabet, e.g. "Ġworld"); -1 if absent.
  int32_t token_id(std::string_view token) const;
  // The token of an id as the file spells it; "" for an id no token has (or outside the vocabulary).
  std::string token(int32_t id) const;
  // The pre-tokens the BPE model sees, added tokens left out: for diagnosis and tests. Byte-level
  // pre-tokens are raw bytes (not the GPT-2 alphabet).
  std::vector<std::string> pre_tokens(const std::string& text) const;

 private:
  struct Impl;
  explicit HfTokenizer(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

// HfTokenizer::load behind the Tokenizer interface.
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path, const TokenizerSettings& settings);
// Same, with the settings of the tokenizer_config.json beside the file (defaults when absent).
std::unique_ptr<Tokenizer> load_hf_tokenizer(const std::string& json_path);

}  // namespace crepe::text
