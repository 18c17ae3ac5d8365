#include "crepe/prune/sparsegpt.hpp"

#include <ATen/ATen.h>

namespace crepe::prune {
namespace {

// Upper Cholesky factor of the damped inverse Hessian; dead inputs get a unit diagonal.
at::Tensor inverse_hessian_factor(const at::Tensor& gram, int64_t tokens, double dampening, at::Tensor& dead) {
  at::Tensor H = gram.to(at::kFloat) * (2.0 / static_cast<double>(std::max<int64_t>(tokens, 1)));
  at::Tensor diag = H.diagonal();
  dead = diag == 0;
  diag.masked_fill_(dead, 1.0);
  const double damp = dampening * diag.mean().item<double>();
  diag.add_(damp);
  const at::Tensor L = at::linalg_cholesky(H);
  const at::Tensor H_inv = at::cholesky_inverse(L);
  return at::linalg_cholesky(H_inv, /*upper=*/true);
}

// Chooses the mask of one block of columns from the OBS saliency w^2 / d^2.
at::Tensor block_mask(const at::Tensor& W1, const at::Tensor& d, const MaskSpec& spec) {
  const at::Tensor saliency = W1.pow(2) / d.pow(2).view({1, -1});
  return select_mask(saliency, spec);
}

}  // namespace

at::Tensor sparsegpt_prune(const at::Tensor& weight, const at::Tensor& gram, int64_t tokens, const MaskSpec& spec,
                           const SparseGptOptions& options, const at::Tensor& fixed_mask, at::Tensor* mask_out) {
  at::Tensor W = weight.to(at::kFloat).clone();
  const int64_t columns = W.size(1);
  at::Tensor dead;
  const at::Tensor U = inverse_hessian_factor(gram, tokens, options.dampening, dead);
  W.masked_fill_(dead.view({1, -1}), 0.0);
  at::Tensor mask = at::ones(W.sizes(), W.options().dtype(at::kBool));
  const bool structured = spec.pattern.structured();
  const int64_t m = spec.pattern.m;
  // An N:M group must not straddle two blocks.
  const int64_t block_size = structured ? std::max(m, options.block_size / m * m) : options.block_size;

  for (int64_t i1 = 0; i1 < columns; i1 += block_size) {
    const int64_t count = std::min(block_size, columns - i1);
    at::Tensor W1 = W.narrow(1, i1, count).clone();
    at::Tensor Err1 = at::zeros_like(W1);
    const at::Tensor U1 = U.narrow(0, i1, count).narrow(1, i1, count);
    const at::Tensor d = U1.diagonal();
    at::Tensor mask1;
    if (fixed_mask.defined()) {
      mask1 = fixed_mask.narrow(1, i1, count).to(W.device());
    } else if (!structured) {
      mask1 = block_mask(W1, d, spec);
    } else {
      mask1 = at::ones(W1.sizes(), mask.options());
    }
    for (int64_t i = 0; i < count; ++i) {
      // N:M groups are chosen when their first column comes up, from the already-updated weights.
      // Groups follow the absolute column index, so the tail rule matches prune_n_of_m.
      if (structured && !fixed_mask.defined() && (i1 + i) % m == 0) {
        const int64_t width = std::min(m, count - i);
        mask1.narrow(1, i, width).copy_(block_mask(W1.narrow(1, i, width), d.narrow(0, i, width), spec));
      }
      const at::Tensor w = W1.select(1, i);
      const at::Tensor q = w * mask1.select(1, i);
      const at::Tensor err = (w - q) / d[i];
      W1.select(1, i).copy_(q);
      // Spread this column's error over the block's later columns.
      if (i + 1 < count) W1.narrow(1, i + 1, count - i - 1).sub_(at::outer(err, U1[i].narrow(0, i + 1, count - i - 1)));
      Err1.select(1, i).copy_(err);
    }
    W.narrow(1, i1, count).copy_(W1);
    mask.narrow(1, i1, count).copy_(mask1);
    if (i1 + count < columns) {
      W.narrow(1, i1 + count, columns - i1 - count).sub_(at::matmul(Err1, U.narrow(0, i1, count).narrow(1, i1 + count, columns - i1 - count)));
    }
  }
  W.masked_fill_(mask.logical_not(), 0.0);
  if (mask_out) *mask_out = mask;
  return W;
}

}  // namespace crepe::prune
