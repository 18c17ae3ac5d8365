// Fuzzes the safetensors reader: the header (length, JSON, dtypes, shapes, offsets, overlaps) as
// SafetensorsFile::open validates it, then every tensor the file claims, read the two ways crepe
// reads them (load() as evaluation and --check-finite do, raw() as the prune writer's passthrough).
// If open() accepts a file, nothing after it may read outside the mapping or throw anything else.
#include <ATen/core/Tensor.h>

#include "crepe/core/error.hpp"
#include "crepe/io/safetensors.hpp"
#include "fuzz_harness.hpp"

namespace crepe::fuzz {

void safetensors_header(const uint8_t* data, size_t size) {
  const MemoryFile file(data, size);
  const auto st = io::SafetensorsFile::open(file.path());
  uint64_t checksum = 0;
  for (const io::TensorInfo& info : st->tensors()) {
    const at::Tensor tensor = st->load(info.name);
    if (tensor.numel() != info.numel() || tensor.nbytes() != info.nbytes())
      throw std::logic_error("loaded tensor '" + info.name + "' disagrees with its header entry");
    const uint8_t* raw = st->raw(info.name);
    if (info.nbytes() > 0) checksum += raw[0] + raw[info.nbytes() - 1];  // first and last byte are readable
  }
  for (const auto& [key, value] : st->metadata()) checksum += key.size() + value.size();
  static volatile uint64_t sink;
  sink = checksum;  // keeps the reads from being optimised away
}

}  // namespace crepe::fuzz

CREPE_FUZZ_ENTRY_POINT(crepe::fuzz::safetensors_header)
