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
  encode_and_decode_sample(*tokenizer);
}

}  // namespace crepe::fuzz

CREPE_FUZZ_ENTRY_POINT(crepe::fuzz::sentencepiece_model)
