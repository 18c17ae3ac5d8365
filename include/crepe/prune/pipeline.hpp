#pragma once
// Sequential, streamed pruning of a whole model, as SparseGPT, Wanda and RIA do it.
//
// For each decoder block in order: run the calibration states through the *dense* block with an
// observer that accumulates each linear input's statistics; score, select and apply a mask to each
// of the seven linear layers (q, k, v, o, gate, up, down; never embeddings or lm_head); round the
// result to the checkpoint's stored dtype; run the block again so that the *pruned* outputs feed
// the next block; hand the pruned block to the sink; drop it.
//
// Each layer's scores and kept weights come from the stored values even when the forward pass
// computes in a narrower dtype (bf16 on an fp16 checkpoint); the activations, and the block
// statistics of the OWL/DLP/AlphaPruning allocations, see the compute dtype. Weights and
// activations must be finite (NumericalInputError otherwise: nothing is scored on NaN).
//
// Metrics that use no activations (magnitude, ri) skip the forward passes entirely.
#include <ATen/core/Tensor.h>

#include <array>
#include <functional>
#include <string>
#include <vector>

#include "crepe/engine/runner.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/prune/allocation.hpp"
#include "crepe/prune/dsnot.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/prune/permutation.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/sparsegpt.hpp"
#include "crepe/prune/stats.hpp"

namespace crepe::prune {

enum class Reprune { None, Dsnot };
Reprune parse_reprune(const std::string& name, const std::string& option = "--reprune");

struct PruneConfig {
  Metric metric = Metric::Crepe;
  CrepeParams crepe;
  MaskSpec mask;
  SparseGptOptions sparsegpt;
  // Composition (each works with every score-based metric):
  bool permute = false;  // RIA's channel permutation before N:M selection
  PermutationOptions permutation;
  Allocation allocation = Allocation::Uniform;  // per-block sparsities with the same mean
  AllocationParams allocation_params;
  Reprune reprune = Reprune::None;  // DSnoT swaps after the mask is chosen
  DsnotOptions dsnot;
  bool reconstruct = false;  // SparseGPT's OBS weight update for the chosen mask
};

// InputError naming the option for out-of-range values or combinations that do not compose.
void validate(const PruneConfig& config);

// Whether DSnoT re-prunes this linear layer (config.dsnot.skip: by default, as DSnoT's reference,
// the attention projections only), and the configuration for a layer that keeps its first mask.
bool dsnot_reprunes(const PruneConfig& config, model::Linear linear);
PruneConfig without_reprune(PruneConfig config);

// Whether the configuration reads calibration activations at all (magnitude and ri alone do not).
bool needs_calibration(const PruneConfig& config);

struct LayerOutcome {
  std::string tensor;  // Hugging Face weight name
  int64_t numel = 0;
  int64_t pruned = 0;  // weights removed by the mask
  int64_t zeros = 0;   // zero weights as written: the pruned ones, and any others that are zero
                       // (an input pruned before, inputs SparseGPT found dead, rounding)
  double seconds = 0;  // scoring, selection and (SparseGPT) update
  // --permute: the order of the input columns in which the mask is N:M (int64 [in] on the CPU;
  // position j holds stored column input_permutation[j], so W[:, input_permutation] is N:M);
  // undefined otherwise. And the kept scores of plain and permuted N:M (PermutationReport).
  at::Tensor input_permutation;
  double permutation_kept_before = 0, permutation_kept_after = 0;
};

struct PruneOutcome {
  std::vector<LayerOutcome> layers;
  std::vector<double> block_targets;  // sparsity asked of each block (all equal for uniform allocation)
  std::vector<int64_t> block_pruned, block_total;  // what each block's masks removed, of how many

  double permutation_kept_before = 0;  // sums over the layers' (--permute), restored ones included
  double permutation_kept_after = 0;
  int64_t total = 0;
  int64_t pruned = 0;
  int64_t zeros = 0;
  double statistics_seconds = 0;  // dense passes with observers
  double pruning_seconds = 0;     // scoring, selection, updates
  double forward_seconds = 0;     // pruned passes feeding the next block
  double seconds = 0;
  double sparsity() const { return total ? static_cast<double>(pruned) / static_cast<double>(total) : 0.0; }
  double zero_fraction() const { return total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0; }
  // Block b's achieved sparsity: its target rounded down per comparison group (a row group loses
  // floor(s * cols) per row) and per N:M tail, so at most the target.
  std::vector<double> block_sparsity() const;
};

// Prunes one weight ([out, in], any dtype) given its input statistics; returns the new weight in
// float32 with pruned entries zero, and the keep-mask in `mask_out` when given.
// `sparsity` overrides config.mask.sparsity (per-block allocation); negative keeps it.
at::Tensor prune_linear(const at::Tensor& weight, const InputStats& stats, const PruneConfig& config,
                        at::Tensor* mask_out = nullptr, double sparsity = -1, PermutationReport* permutation = nullptr);

// Dense pass over block b (`weights` as the runner loads them) with observers: the statistics of
// its four distinct linear inputs, in model::LinearInput order. NumericalInputError, naming the
// block and input, unless they are finite (prune::require_finite).
std::array<InputStats, model::kLinearInputCount> collect_block_statistics(const engine::BlockRunner& runner, int64_t b,
                                                                           const model::BlockWeights& weights,
                                                                           const at::Tensor& states, StatsRequest request);

// Per-block target sparsities of config.allocation (uniform: all equal to the target). OWL and DLP
// need one dense pass over the calibration states (a copy is made); AlphaPruning reads weights only.
std::vector<double> allocate_block_sparsity(const engine::BlockRunner& runner, const at::Tensor& calibration_ids,
                                            const PruneConfig& config);

// The pruned block as it is written: its linear weights in the checkpoint's stored dtype, on the
// placement's device; norms and biases as loaded (compute dtype). To run it, convert it first
// (io::Checkpoint::upload_block).
using PrunedBlockSink = std::function<void(int64_t block, const model::BlockWeights& pruned)>;

// Resuming and checkpointing an interrupted run (see io/partial_run.hpp).
struct PruneHooks {
  // True when block b was finished by an earlier run: `weights` then holds its pruned linear
  // weights (as written: the stored dtype, any device) and `layers` its outcomes; the pipeline
  // only runs the calibration states through it instead of pruning it again.
  std::function<bool(int64_t block, model::BlockWeights& weights, std::vector<LayerOutcome>& layers)> restore;
  // After the sink, for every block, with that block's outcomes.
  std::function<void(int64_t block, const model::BlockWeights& weights, const std::vector<LayerOutcome>& layers,
                     bool restored)>
      finished;
};

// calibration_ids: int64 [nsamples, seqlen] (unused, may be undefined, for magnitude and ri).
// Checks for Ctrl-C before every block and throws crepe::Interrupted there (core/interrupt.hpp).
PruneOutcome prune_model(const io::Checkpoint& checkpoint, const at::Tensor& calibration_ids, const PruneConfig& config,
                         const engine::RunnerOptions& options, const PrunedBlockSink& sink, const PruneHooks& hooks = {});

}  // namespace crepe::prune
