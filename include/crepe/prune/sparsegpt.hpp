#pragma once
// SparseGPT (Frantar & Alistarh, 2023): prune by the OBS criterion and update the kept weights to
// compensate, column block by column block, from the layer's input Gram matrix.
//
//   H = 2 X^T X / N, dead inputs (H_jj = 0) zeroed in W, H += 0.01 * mean(diag H) * I,
//   U = upper Cholesky factor of H^-1; for each block of 128 columns: choose the block's mask from
//   w^2 / U_jj^2 (adaptive per block; N:M per M columns), then for each column zero the pruned
//   weights, spread the error (w - q) / U_jj over the block's remaining columns, and after the block
//   apply its accumulated error to all later columns at once (lazy batch update).
//
// Unlike the score-based metrics it changes the kept weights, not only the mask. The same routine
// with a given mask is SparseGPT's reconstruction for any metric's mask (`--reconstruct`).
#include <ATen/core/Tensor.h>

#include <optional>

#include "crepe/prune/mask.hpp"

namespace crepe::prune {

struct SparseGptOptions {
  int64_t block_size = 128;
  double dampening = 0.01;  // fraction of mean(diag H) added to the diagonal
};

// weight: [out, in] (any float dtype; computed in float32). gram: X^T X summed over `tokens`.
// With `fixed_mask` the mask is taken as given (true = kept) and only the update runs.
// Returns the updated weight (float32) with pruned entries exactly zero; `mask_out` receives the mask.
at::Tensor sparsegpt_prune(const at::Tensor& weight, const at::Tensor& gram, int64_t tokens, const MaskSpec& spec,
                           const SparseGptOptions& options = {}, const at::Tensor& fixed_mask = at::Tensor(),
                           at::Tensor* mask_out = nullptr);

}  // namespace crepe::prune
