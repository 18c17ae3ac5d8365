#include "crepe/engine/runner.hpp"

#include <ATen/ATen.h>

#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <chrono>
#include <future>

#include "crepe/core/host_memory.hpp"
#include "crepe/core/interrupt.hpp"
#include "crepe/core/progress.hpp"
#include "crepe/model/head.hpp"

namespace crepe::engine {
namespace {

// Per-batch scratch budget: attention scores and MLP activations dominate.
constexpr int64_t kBatchBudgetBytes = int64_t{512} << 20;

}  // namespace

bool worth_pinning(int64_t bytes) {
  if (bytes <= 0) return false;
  uint64_t rounded = 1;
  while (rounded < static_cast<uint64_t>(bytes)) rounded <<= 1;
  return rounded - static_cast<uint64_t>(bytes) <= static_cast<uint64_t>(bytes) / 4;
}

BlockRunner::BlockRunner(const io::Checkpoint& checkpoint, RunnerOptions options)
    : checkpoint_(checkpoint), options_(std::move(options)) {}

int64_t BlockRunner::batch_size(int64_t seqlen) const {
  if (options_.batch_size > 0) return options_.batch_size;
  const auto& c = checkpoint_.config();
  const int64_t element = 4;  // float32 sizes: an over-estimate for 16-bit compute (only the softmax is float32 there)
  const int64_t per_sequence =
      element * (c.num_heads * seqlen * seqlen * 2 + seqlen * (3 * c.intermediate_size + 6 * c.hidden_size));
  return std::max<int64_t>(1, kBatchBudgetBytes / std::max<int64_t>(1, per_sequence));
}

at::Tensor BlockRunner::embed(const at::Tensor& ids) const {
  const at::Tensor table = checkpoint_.load_embedding(options_.placement);
  const int64_t count = ids.size(0), seqlen = ids.size(1);
  const int64_t bytes = count * seqlen * table.size(1) * static_cast<int64_t>(table.element_size());
  if (bytes <= options_.max_device_activation_bytes) return model::embed_tokens(table, ids);
  // Embedded a batch at a time, so the device never holds more than one batch of them.
  const bool pin = options_.placement.device.is_cuda() && worth_pinning(bytes);
  at::Tensor host = at::empty({count, seqlen, table.size(1)},
                              at::TensorOptions().dtype(table.scalar_type()).device(at::kCPU).pinned_memory(pin));
  const int64_t batch = batch_size(seqlen);
  for (int64_t start = 0; start < count; start += batch) {
    const int64_t n = std::min(batch, count - start);
    host.narrow(0, start, n).copy_(model::embed_tokens(table, ids.narrow(0, start, n)));
  }
  return host;
}

void BlockRunner::run_batches(const model::BlockWeights& weights, const at::Tensor& states,
                              const model::InputObserver* observer, bool write_back) const {
  const auto& config = checkpoint_.config();
  const int64_t count = states.size(0), seqlen = states.size(1);
  const auto& placement = options_.placement;
  const model::Rope rope = model::make_rope(config, seqlen, placement.device, placement.compute_dtype);
  const int64_t batch = batch_size(seqlen);
  for (int64_t start = 0; start < count; start += batch) {
    // A safe point too: one block of a 7B model over WikiText-2 takes minutes on a CPU, and whoever
    // reads `states` after an interruption (a resume starts from the last saved block) knows that
    // a block interrupted midway is not finished.
    stop_if_interrupted();
    const int64_t n = std::min(batch, count - start);
    at::Tensor slice = states.narrow(0, start, n);
    // non_blocking: from pinned host memory the upload overlaps the work queued before it.
    at::Tensor output = model::block_forward(
        config, weights, slice.to(placement.device, placement.compute_dtype, /*non_blocking=*/true), rope, observer);
    if (write_back) slice.copy_(output);
  }
}

void BlockRunner::forward(const model::BlockWeights& weights, at::Tensor& states,
                          const model::InputObserver* observer) const {
  run_batches(weights, states, observer, /*write_back=*/true);
}

void BlockRunner::observe(const model::BlockWeights& weights, const at::Tensor& states,
                          const model::InputObserver& observer) const {
  run_batches(weights, states, &observer, /*write_back=*/false);
}

void BlockRunner::forward_all(at::Tensor& states) const {
  for_each_block(states, [this](int64_t, model::BlockWeights& weights, at::Tensor& s) { forward(weights, s); });
}

void BlockRunner::for_each_block(at::Tensor& states, const BlockVisitor& visitor, int64_t end) const {
  const int64_t layers = end < 0 ? checkpoint_.num_layers() : std::min(end, checkpoint_.num_layers());
  Progress progress(options_.progress_label, layers, "blocks", options_.progress);
  const Placement& placement = options_.placement;
  auto stage = [this, &placement](int64_t b) {
    return std::async(std::launch::async, [this, &placement, b] {
      c10::InferenceMode inference;  // thread-local: the staging thread needs its own
      return checkpoint_.stage_block(b, placement);
    });
  };
  std::future<model::BlockWeights> next;
  auto last_release = std::chrono::steady_clock::now();
  if (options_.prefetch && layers > 0) next = stage(0);
  for (int64_t b = 0; b < layers; ++b) {
    stop_if_interrupted();  // a safe point of every pass: nothing of block b has happened yet
    model::BlockWeights weights;
    if (options_.prefetch) {
      const model::BlockWeights staged = next.get();  // rethrows the staging thread's errors
      if (b + 1 < layers) next = stage(b + 1);
      weights = io::Checkpoint::upload_block(staged, placement);
    } else {
      weights = checkpoint_.load_block(b, placement);
    }
    visitor(b, weights, states);
    // Freed pages go back to the system between blocks (see host_memory.hpp), at most once a
    // second: the next batch faults its scratch in again (~0.1 s per 512 MiB), which a big model's
    // block hides and a tiny model's would not.
    weights = model::BlockWeights();  // dropped first, so that their pages go back too
    if (std::chrono::steady_clock::now() - last_release > std::chrono::seconds(1)) {
      release_free_host_memory();
      last_release = std::chrono::steady_clock::now();
    }
    progress.advance();
  }
  progress.finish();
}

}  // namespace crepe::engine
