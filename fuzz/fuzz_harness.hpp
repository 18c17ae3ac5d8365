#pragma once
// crepe's fuzz harnesses: each runs one input through a parser of untrusted files the way the CLI
// does. Accepted input and crepe::InputError return normally; any other exception escapes (and is a
// finding, as it would be exit code 1 in the CLI), as does a crash or a sanitizer report.
//
// Each fuzz/fuzz_*.cpp defines one harness and, unless CREPE_FUZZ_NO_MAIN is defined, its libFuzzer
// entry point. tests/fuzz/test_fuzz_regressions.cpp links the harnesses without entry points to
// replay tests/data/bad/fuzz-regressions/ in the ordinary test suite.
#include <sys/mman.h>
#include <unistd.h>

#include <cstddef>
#include <cstdint>
#include <stdexcept>
#include <string>

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

}  // namespace crepe::fuzz
