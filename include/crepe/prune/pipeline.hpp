#pragma once
// Sequential, streamed pruning of a whole model, as SparseGPT, Wanda and RIA do it.
//
// For each decoder block in order: run the calibration states through the *dense* block with an
// observer that accumulates each linear input's statistics; score, select and apply a mask to each
// of the seven linear layers (q, k, v, o, gate, up, down; never embeddings or lm_head); round the
// result to the checkpoint's stored dtype; run the block again so that the *pruned* outputs feed
// the next block; hand the pruned block to the sink; drop it.
//
// Metrics that use no activations (magnitude, ri) skip the forward passes entirely.
#include <ATen/core/Tensor.h>

#include <functional>
#include <string>
#include <vector>

#include "crepe/engine/runner.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/sparsegpt.hpp"
#include "crepe/prune/stats.hpp"

namespace crepe::prune {

struct PruneConfig {
  Metric metric = Metric::Crepe;
  CrepeParams crepe;
  MaskSpec mask;
  SparseGptOptions sparsegpt;
};

// InputError naming the option for out-of-range values.
void validate(const PruneConfig& config);

struct LayerOutcome {
  std::string tensor;  // Hugging Face weight name
  int64_t numel = 0;
  int64_t pruned = 0;  // weights removed by the mask
  double seconds = 0;  // scoring, selection and (SparseGPT) update
};

struct PruneOutcome {
  std::vector<LayerOutcome> layers;
  int64_t total = 0;
  int64_t pruned = 0;
  double statistics_seconds = 0;  // dense passes with observers
  double pruning_seconds = 0;     // scoring, selection, updates
  double forward_seconds = 0;     // pruned passes feeding the next block
  double seconds = 0;
  double sparsity() const { return total ? static_cast<double>(pruned) / static_cast<double>(total) : 0.0; }
};

// Prunes one weight ([out, in], any dtype) given its input statistics; returns the new weight in
// float32 with pruned entries zero, and the keep-mask in `mask_out` when given.
at::Tensor prune_linear(const at::Tensor& weight, const InputStats& stats, const PruneConfig& config,
                        at::Tensor* mask_out = nullptr);

using PrunedBlockSink = std::function<void(int64_t block, const model::BlockWeights& pruned)>;

// calibration_ids: int64 [nsamples, seqlen] (unused, may be undefined, for magnitude and ri).
PruneOutcome prune_model(const io::Checkpoint& checkpoint, const at::Tensor& calibration_ids, const PruneConfig& config,
                         const engine::RunnerOptions& options, const PrunedBlockSink& sink);

}  // namespace crepe::prune
