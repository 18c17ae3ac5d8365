#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include "crepe/prune/sparsegpt.hpp"
#include "crepe/prune/stats.hpp"

namespace crepe::prune {
namespace {

struct Layer {
  at::Tensor W, X, gram;
};

// Correlated inputs, as real activations are: that is where the OBS update pays.
Layer correlated_layer(int64_t out, int64_t in, int64_t tokens, uint64_t seed) {
  at::manual_seed(seed);
  Layer l;
  const at::Tensor mixing = at::randn({in, in}) / std::sqrt(static_cast<double>(in)) + at::eye(in);
  l.X = at::matmul(at::randn({tokens, in}), mixing);
  l.W = at::randn({out, in});
  l.gram = at::matmul(l.X.t(), l.X);
  return l;
}

double output_error(const Layer& l, const at::Tensor& W_hat) {
  return (at::matmul(l.X, (l.W - W_hat).t())).pow(2).sum().item<double>();
}

TEST(SparseGpt, UpdateReducesOutputErrorVersusTheSameMaskWithoutUpdate) {
  const Layer l = correlated_layer(32, 256, 1024, 1);
  for (const char* pattern : {"unstructured", "2:4"}) {
    MaskSpec spec;
    spec.sparsity = 0.5;
    spec.pattern = parse_pattern(pattern);
    at::Tensor mask;
    const at::Tensor W_hat = sparsegpt_prune(l.W, l.gram, 1024, spec, {}, at::Tensor(), &mask);
    const double with_update = output_error(l, W_hat);
    const double mask_only = output_error(l, l.W * mask);
    EXPECT_LT(with_update, 0.8 * mask_only) << pattern;
    EXPECT_EQ((W_hat.masked_select(mask.logical_not()) != 0).sum().item<int64_t>(), 0);
  }
}

TEST(SparseGpt, MasksHaveTheRequestedShapeAndCounts) {
  const Layer l = correlated_layer(16, 384, 512, 2);
  MaskSpec spec;
  spec.sparsity = 0.6;
  at::Tensor mask;
  sparsegpt_prune(l.W, l.gram, 512, spec, {}, at::Tensor(), &mask);
  // Adaptive per 128-column block: each block prunes floor(0.6 * 16 * 128).
  for (int64_t b = 0; b < 3; ++b) {
    EXPECT_EQ((~mask.narrow(1, b * 128, 128)).sum().item<int64_t>(), pruned_count(0.6, 16 * 128));
  }
  spec.pattern = parse_pattern("4:8");
  sparsegpt_prune(l.W, l.gram, 512, spec, {}, at::Tensor(), &mask);
  EXPECT_TRUE(((~mask).view({16, 48, 8}).sum(-1) == 4).all().item<bool>());
}

TEST(SparseGpt, FixedMaskIsKeptAndDeadInputsAreZeroed) {
  Layer l = correlated_layer(8, 128, 256, 3);
  l.X.select(1, 5).zero_();
  l.gram = at::matmul(l.X.t(), l.X);
  at::manual_seed(9);
  const at::Tensor given = at::rand({8, 128}) > 0.5;
  at::Tensor mask;
  const at::Tensor W_hat = sparsegpt_prune(l.W, l.gram, 256, MaskSpec{}, {}, given, &mask);
  EXPECT_TRUE(at::equal(mask, given));
  EXPECT_EQ(W_hat.select(1, 5).abs().sum().item<double>(), 0.0);
  EXPECT_LT(output_error(l, W_hat), output_error(l, l.W * given));
}

}  // namespace
}  // namespace crepe::prune
