#pragma once
// The streaming block-by-block engine.
//
// All sequences' hidden states go through block 0, then block 1, and so on. Only the current
// block's weights are resident: they are read from the checkpoint's memory map, moved to the
// device, used, and dropped. Peak memory is one block plus the activations, flat in depth.
// Pruning plugs in through the BlockVisitor, which receives each block's weights and the states
// entering it, and decides what to run (observe, modify weights, run again).
#include <ATen/core/Tensor.h>

#include <functional>

#include "crepe/core/device.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/model/block.hpp"

namespace crepe::engine {

struct RunnerOptions {
  Placement placement;
  int64_t batch_size = 0;  // sequences per forward call; 0 picks one from a memory budget
  // Hidden states of all sequences larger than this stay in host memory (pinned when the device is
  // CUDA and worth_pinning(), so each batch's upload is a plain DMA copy) and travel to the device a
  // batch at a time; smaller ones live on the device. Long calibrations of big models need the
  // host: 1024 x 2048 tokens of a 8192-wide model are 32 GiB in bf16.
  int64_t max_device_activation_bytes = int64_t{16} << 30;
  // Stage block b+1 (read out of the memory map, into pinned memory on CUDA) on a second thread
  // while block b computes. Costs one more block of host memory; on by default where it pays, on
  // CUDA (the CLI's choice; see cli::runner_options).
  bool prefetch = false;
  bool progress = true;
  std::string progress_label = "blocks";
};

// Whether `bytes` of host states are pinned. LibTorch's pinned-memory allocator rounds every request
// up to a power of two (and caches the block), so pinning 20 GiB of states would lock 32 GiB of
// host memory: states pin only when that rounding wastes at most a quarter of them, and otherwise
// stay pageable (uploads are then slower, host memory is not doubled).
bool worth_pinning(int64_t bytes);

class BlockRunner {
 public:
  BlockRunner(const io::Checkpoint& checkpoint, RunnerOptions options);

  // ids int64 [N, T] -> hidden states [N, T, hidden] in the compute dtype, on the device or, past
  // max_device_activation_bytes, in host memory (see RunnerOptions).
  at::Tensor embed(const at::Tensor& ids) const;

  // states <- block(states), batch by batch; the observer sees every batch's linear inputs.
  void forward(const model::BlockWeights& weights, at::Tensor& states,
               const model::InputObserver* observer = nullptr) const;

  // Runs the block over all states batch by batch for the observer only; states are left unchanged.
  void observe(const model::BlockWeights& weights, const at::Tensor& states, const model::InputObserver& observer) const;

  // Runs forward() through every block with no hooks.
  void forward_all(at::Tensor& states) const;

  // For each block in order: load its weights (prefetched when options().prefetch), call
  // visitor(b, weights, states), drop the weights.
  // The visitor must leave in `states` the input of block b+1 (typically by calling forward()).
  // Stops before block `end` when given (callers that need only the first blocks load no others).
  using BlockVisitor = std::function<void(int64_t block, model::BlockWeights& weights, at::Tensor& states)>;
  void for_each_block(at::Tensor& states, const BlockVisitor& visitor, int64_t end = -1) const;

  // Sequences per batch for sequences of length seqlen.
  int64_t batch_size(int64_t seqlen) const;

  const io::Checkpoint& checkpoint() const { return checkpoint_; }
  const RunnerOptions& options() const { return options_; }

 private:
  void run_batches(const model::BlockWeights& weights, const at::Tensor& states, const model::InputObserver* observer,
                   bool write_back) const;

  const io::Checkpoint& checkpoint_;
  RunnerOptions options_;
};

}  // namespace crepe::engine
