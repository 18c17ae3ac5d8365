#pragma once
// Calibration text sampled from the model itself, for pruning with no calibration file.
//
// Each sequence starts with BOS; every next token is drawn from the model's own next-token
// distribution (temperature 1, no truncation) with crepe's seeded Rng, so a seed gives the same
// sequences. Generation needs every block at every step, so unlike the streaming engine it holds
// all blocks' weights resident (in the compute dtype) plus a KV cache; sequences are generated in
// batches.
#include <ATen/core/Tensor.h>

#include <cstdint>

#include "crepe/core/device.hpp"
#include "crepe/io/checkpoint.hpp"

namespace crepe::engine {

struct GenerationOptions {
  int64_t count = 128;
  int64_t length = 2048;
  int64_t bos_id = 1;
  uint64_t seed = 0;
  int64_t batch_size = 32;
  bool progress = true;
};

// int64 [count, length] token ids on the CPU.
at::Tensor generate_calibration(const io::Checkpoint& checkpoint, const Placement& placement,
                                const GenerationOptions& options);

}  // namespace crepe::engine
