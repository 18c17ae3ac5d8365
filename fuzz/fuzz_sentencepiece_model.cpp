// Fuzzes crepe's own SentencePiece tokenizer.model reader (the protobuf wire format, pieces, trainer
// and normaliser specs) through load_sentencepiece as the CLI calls it, and, when a model is
// accepted, encodes a fixed text and decodes the ids back.
#include "crepe/core/error.hpp"
#include "crepe/text/tokenizer.hpp"
#include "fuzz_harness.hpp"

namespace crepe::fuzz {

void sentencepiece_model(const uint8_t* data, size_t size) {
  const MemoryFile file(data, size);
  const auto tokenizer = text::load_sentencepiece(file.path(), text::TokenizerSettings{});
  static const std::string kText = "Hello  world!\n\n  It's 2024: caf\xC3\xA9, \xE6\x97\xA5\xE6\x9C\xAC, \xF0\x9F\x99\x82 \xFF<s></s>";
  const std::vector<int32_t> ids = tokenizer->encode_with_specials(kText);
  for (int32_t id : ids) {
    if (id < 0 || id >= tokenizer->vocab_size()) throw std::logic_error("encode gave an id outside the vocabulary");
  }
  tokenizer->decode(ids);
  tokenizer->describe();
}

}  // namespace crepe::fuzz

#ifndef CREPE_FUZZ_NO_MAIN
extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  try {
    crepe::fuzz::sentencepiece_model(data, size);
  } catch (const crepe::InputError&) {
  }
  return 0;
}
#endif
