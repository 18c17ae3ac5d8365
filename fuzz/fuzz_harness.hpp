#pragma once
// crepe's fuzz harnesses: each runs one input through a parser of untrusted files the way the CLI
// does. Accepted input and crepe::InputError return normally; any other exception escapes (and is a
// finding, as it would be exit code 1 in the CLI), as does a crash or a sanitizer report.
//
// Each fuzz/fuzz_*.cpp defines one harness and, unless CREPE_FUZZ_NO_MAIN is defined, its libFuzzer
// entry point (CREPE_FUZZ_ENTRY_POINT below). tests/fuzz/test_fuzz_regressions.cpp links the
// harnesses without entry points to replay tests/data/bad/fuzz-regressions/ in the ordinary test suite.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>
#include <vector>

#include "crepe/core/error.hpp"

namespace crepe::fuzz {

void safetensors_header(const uint8_t* data, size_t size);
void tokenizer_json(const uint8_t* data, size_t size);
void sentencepiece_model(const uint8_t* data, size_t size);
void config_json(const uint8_t* data, size_t size);

// The parsers read files by path. An anonymous in-memory file, reachable as /proc/self/fd/N, gives
// them one without touching the disk (fast, and nothing is left behind when a run is killed).
class MemoryFile {
 public:
  MemoryFile(const uint8_t* data, size_t size) {
    fd_ = ::memfd_create("crepe-fuzz", MFD_CLOEXEC);
    if (fd_ < 0) throw std::runtime_error("memfd_create failed");
    size_t written = 0;
    while (written < size) {
      const ssize_t n = ::write(fd_, data + written, size - written);
      if (n <= 0) throw std::runtime_error("write to memfd failed");
      written += static_cast<size_t>(n);
    }
    path_ = "/proc/self/fd/" + std::to_string(fd_);
  }
  ~MemoryFile() { ::close(fd_); }
  MemoryFile(const MemoryFile&) = delete;
  MemoryFile& operator=(const MemoryFile&) = delete;
  const std::string& path() const { return path_; }

 private:
  int fd_ = -1;
  std::string path_;
};

// What both tokenizer harnesses do with a tokenizer they loaded: encode a fixed text that touches
// every path (ASCII, whitespace runs, digits, multi-byte UTF-8, an invalid byte, special-token
// text), check the ids, then decode them back. A template, so that this header needs no text/
// headers: the safetensors and config targets are built without the text module.
template <typename Tokenizer>
void encode_and_decode_sample(const Tokenizer& tokenizer) {
  static const std::string kText = "Hello  world!\n\n  It's 2024: caf\xC3\xA9, \xE6\x97\xA5\xE6\x9C\xAC, \xF0\x9F\x99\x82 \xFF<s></s>";
  const std::vector<int32_t> ids = tokenizer.encode_with_specials(kText);
  for (int32_t id : ids) {
    if (id < 0 || id >= tokenizer.vocab_size()) throw std::logic_error("encode gave an id outside the vocabulary");
  }
  tokenizer.decode(ids);
  tokenizer.describe();
}

// libFuzzer's handling of one input: a refusal (InputError) is the parser doing its job, not a
// finding; anything else escapes to libFuzzer.
inline int run_fuzz_input(void (*harness)(const uint8_t*, size_t), const uint8_t* data, size_t size) {
  try {
    harness(data, size);
  } catch (const InputError&) {
  }
  return 0;
}

}  // namespace crepe::fuzz

// The libFuzzer entry point for `harness`, one per fuzz target; nothing under CREPE_FUZZ_NO_MAIN,
// where test_fuzz_regressions links all four harnesses into one executable.
#ifdef CREPE_FUZZ_NO_MAIN
#define CREPE_FUZZ_ENTRY_POINT(harness)
#else
#define CREPE_FUZZ_ENTRY_POINT(harness)                                      \
  extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) { \
    return crepe::fuzz::run_fuzz_input(harness, data, size);                \
  }
#endif
