#pragma once
// Calibration statistics of one linear layer's input, accumulated over all calibration tokens.
//
// Conventions for all of prune/: a weight W is [out, in] as stored by Hugging Face; row i is an
// output neuron, column j an input channel; every statistic here is per input channel j. Nothing in
// prune/ ever transposes a weight silently.
//
// Everything is accumulated in float32 whatever the activations' dtype, on the activations' device.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace crepe::prune {

struct StatsRequest {
  bool gram = false;     // X^T X, [in, in]: SparseGPT, reconstruction, the search proxies
  bool moments = false;  // sum of X and deviations within sequences: per-channel mean and variance (DSnoT)
};

struct InputStats {
  at::Tensor sq_sum;  // [in]  sum over tokens of x_j^2  (so ||X_j||_2 = sqrt(sq_sum))
  at::Tensor sum;     // [in]  sum over tokens of x_j (only with moments)
  // [in] sum over sequences s and their tokens t of (x_tj - mean_s(x_j))^2: each sequence's spread
  // about its own mean (only with moments)
  at::Tensor within_sequence_sq_dev;
  at::Tensor gram;    // [in, in] sum over tokens of x x^T (only with gram)
  int64_t tokens = 0;
  int64_t sequences = 0;  // calibration sequences the tokens came in (0 where not recorded)

  at::Tensor norm() const;      // ||X_j||_2
  at::Tensor mean() const;      // E[x_j]     (needs moments)
  // Var[x_j] within a calibration sequence, averaged over the sequences (weighted by their tokens):
  // DSnoT's variance, which leaves out how sequences' means differ (needs moments). Computed about
  // each sequence's mean, so a small spread under a large mean survives float32.
  at::Tensor sequence_variance() const;
  // E[x_j] times the tokens per calibration sequence: the expected input summed over one sequence,
  // the unit of DSnoT's error and threshold (needs moments and sequences).
  at::Tensor sequence_sum() const;
};

// The same statistics in host memory (a copy only where they were on a device).
InputStats to_host(InputStats stats);

// Stops a run whose activations met NaN or Inf: scores computed from them would be meaningless, and
// the checkpoint written from them would look complete. NumericalInputError naming `model_dir` and
// `what` ("the calibration activations entering block 2's down_proj") unless `values` is finite,
// with the likely cause: an fp16 forward pass that overflowed (`compute_dtype`), or non-finite
// weights upstream.
void require_finite_activations(const at::Tensor& values, const std::string& model_dir, const std::string& what,
                                c10::ScalarType compute_dtype);
// The same for the statistics of block `block`'s input `input` (model::input_name).
void require_finite(const InputStats& stats, const std::string& model_dir, int64_t block, const char* input,
                    c10::ScalarType compute_dtype);

class StatsAccumulator {
 public:
  explicit StatsAccumulator(StatsRequest request = {}) : request_(request) {}
  // x: [sequences, seq, in] (or [tokens, in]: one sequence); every leading index is one token.
  void add(const at::Tensor& x);
  const InputStats& stats() const { return stats_; }
  InputStats take() { return std::move(stats_); }

 private:
  StatsRequest request_;
  InputStats stats_;
};

}  // namespace crepe::prune
