#pragma once
// Importance scores: one function per formula, higher = more important. W is [out, in], A = |W|,
// act_norm[j] = ||X_j||_2 over the calibration tokens (see stats.hpp). Scores are float32 [out, in]
// on W's device.
//
//   magnitude  A
//   wanda      A_ij * ||X_j||
//   ri         A_ij / sum_k A_ik + A_ij / sum_k A_kj                  (row sum over inputs, column sum over outputs)
//   ria        ri_ij * ||X_j||^a                                        (a = 0.5)
//   crepe      (alpha A_ij/sum_k A_ik + beta A_ij/sum_k A_kj + gamma A_ij/sum_{(p,q) in window_k(i,j)} A_pq) * ||X_j||^a
//
// window_k(i,j) is the k x k window centred on (i, j), clipped at the border (sums over the cells
// that exist). ria is crepe with alpha = beta = 1, gamma = 0, computed by the same code, so the two
// agree bit for bit. A ratio whose denominator is zero (an all-zero row, column or window) is 0.
// crepe's scores are the formula's divided by max(alpha, beta, gamma): masks depend only on the
// coefficients' ratios, and so scaled the terms stay within float32's range whatever the scale the
// coefficients are given in (1e39 overflows it; 1e-45 is a denormal). RIA's 1, 1, 0 and crepe's
// defaults have a largest coefficient of 1: their scores are the formula's exactly.
#include <ATen/core/Tensor.h>

#include <string>

namespace crepe::prune {

enum class Metric { Magnitude, Wanda, RI, RIA, Crepe, SparseGPT };

// "magnitude", "wanda", "ri", "ria", "crepe", "sparsegpt"; InputError naming `option` otherwise.
Metric parse_metric(const std::string& name, const std::string& option = "--method");
const char* metric_name(Metric metric);
bool needs_activations(Metric metric);  // every metric but magnitude and ri

// The largest window: past twice a matrix's width every window is the whole matrix, and no model's
// matrices come near 2^19 (a bound that a value CLI11 saturated at INT64_MAX cannot pass).
inline constexpr int64_t kMaxKernelSize = (int64_t{1} << 20) - 1;

struct CrepeParams {
  int64_t kernel_size = 3;  // k, odd
  double alpha = 1.0;       // row term
  double beta = 1.0;        // column term
  double gamma = 0.0;       // neighbourhood term
  double act_power = 0.5;   // a
};
// RIA's hyperparameters in CRePE's form.
CrepeParams ria_params(double act_power = 0.5);
// crepe prune's defaults for --method crepe (configs/crepe-default.json; a test keeps them equal):
// k = 3, alpha = beta = 1, gamma = 0.25, a = 0.5. Also where search's hill climbing starts.
CrepeParams crepe_defaults();
// InputError naming `option` unless k is odd and in [1, kMaxKernelSize].
void check_kernel_size(int64_t kernel_size, const std::string& option);
// InputError naming the option when out of range (k odd >= 1, coefficients >= 0, a in [0, 1]).
void validate(const CrepeParams& params);

at::Tensor magnitude_score(const at::Tensor& weight);
at::Tensor wanda_score(const at::Tensor& weight, const at::Tensor& act_norm);
at::Tensor ri_score(const at::Tensor& weight);
at::Tensor ria_score(const at::Tensor& weight, const at::Tensor& act_norm, double act_power = 0.5);
// Auto: a fused single-pass kernel on the CPU, whole-tensor ops elsewhere (CUDA). Both compute the
// same formula; they may differ in the last float32 bit, never in meaning (tests compare them).
// The tensor-op path scores a slab of rows at a time (rows_per_slab; 0 = as many rows as make
// about kScoreSlabElements weights), so its float64 window sums need a bounded amount of device
// memory whatever the matrix. Slabs change no score's meaning, at most its last float32 bit.
enum class ScoreKernel { Auto, Fused, TensorOps };
inline constexpr int64_t kScoreSlabElements = int64_t{1} << 22;
at::Tensor crepe_score(const at::Tensor& weight, const at::Tensor& act_norm, const CrepeParams& params,
                       ScoreKernel kernel = ScoreKernel::Auto, int64_t rows_per_slab = 0);

// Sum of x over the k x k window centred on each cell, clipped at the border. O(rows * cols)
// whatever k: separable running sums in float64, so large matrices lose no precision.
at::Tensor box_sum(const at::Tensor& x, int64_t kernel_size);

// The score of `metric` (SparseGPT has no standalone score: its selection lives in sparsegpt.hpp).
at::Tensor score(Metric metric, const at::Tensor& weight, const at::Tensor& act_norm, const CrepeParams& params);

}  // namespace crepe::prune
