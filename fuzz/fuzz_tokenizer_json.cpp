// Fuzzes the Hugging Face tokenizer.json reader (JSON, model, vocabulary, merges, normalizers,
// pre-tokenizers with their regexes, decoders, post-processors, added tokens) and, when a file is
// accepted, runs it: encode a fixed text that touches every path (ASCII, whitespace runs, digits,
// multi-byte UTF-8, an invalid byte), then decode the ids back.
#include "crepe/core/error.hpp"
#include "crepe/text/hf_tokenizer.hpp"
#include "fuzz_harness.hpp"

namespace crepe::fuzz {

void tokenizer_json(const uint8_t* data, size_t size) {
  const MemoryFile file(data, size);
  const auto tokenizer = text::load_hf_tokenizer(file.path(), text::TokenizerSettings{});
  encode_and_decode_sample(*tokenizer);
}

}  // namespace crepe::fuzz

CREPE_FUZZ_ENTRY_POINT(crepe::fuzz::tokenizer_json)
