// Each metric against a direct, slow reference written from the formula, on random inputs.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "crepe/core/error.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/stats.hpp"

namespace crepe::prune {
namespace {

struct Fixture {
  at::Tensor W;         // [out, in]
  at::Tensor act_norm;  // [in]
};

Fixture random_layer(int64_t out, int64_t in, uint64_t seed) {
  at::manual_seed(seed);
  Fixture f;
  f.W = at::randn({out, in});
  f.act_norm = at::rand({in}) * 3 + 0.1;
  return f;
}

// Slow references: plain loops over accessors, in double.
double row_sum(const at::Tensor& A, int64_t i) {
  double s = 0;
  for (int64_t k = 0; k < A.size(1); ++k) s += std::abs(A[i][k].item<double>());
  return s;
}
double col_sum(const at::Tensor& A, int64_t j) {
  double s = 0;
  for (int64_t k = 0; k < A.size(0); ++k) s += std::abs(A[k][j].item<double>());
  return s;
}
double window_sum(const at::Tensor& A, int64_t i, int64_t j, int64_t k) {
  double s = 0;
  for (int64_t p = i - k / 2; p <= i + k / 2; ++p) {
    for (int64_t q = j - k / 2; q <= j + k / 2; ++q) {
      if (p >= 0 && p < A.size(0) && q >= 0 && q < A.size(1)) s += std::abs(A[p][q].item<double>());
    }
  }
  return s;
}

double crepe_reference(const Fixture& f, int64_t i, int64_t j, const CrepeParams& p) {
  const double a = std::abs(f.W[i][j].item<double>());
  double relative = p.alpha * a / row_sum(f.W, i) + p.beta * a / col_sum(f.W, j);
  if (p.gamma != 0) relative += p.gamma * a / window_sum(f.W, i, j, p.kernel_size);
  // crepe_score divides by the largest coefficient (metric.hpp): the same ranking, within float32.
  return relative * std::pow(f.act_norm[j].item<double>(), p.act_power) / std::max({p.alpha, p.beta, p.gamma});
}

void expect_close_everywhere(const at::Tensor& got, const std::function<double(int64_t, int64_t)>& expected) {
  ASSERT_EQ(got.scalar_type(), at::kFloat);
  for (int64_t i = 0; i < got.size(0); ++i) {
    for (int64_t j = 0; j < got.size(1); ++j) {
      const double want = expected(i, j);
      ASSERT_NEAR(got[i][j].item<double>(), want, 2e-6 * std::abs(want) + 1e-9) << "(" << i << ", " << j << ")";
    }
  }
}

TEST(Metric, MagnitudeAndWandaMatchTheFormula) {
  const Fixture f = random_layer(7, 9, 1);
  expect_close_everywhere(magnitude_score(f.W), [&](int64_t i, int64_t j) { return std::abs(f.W[i][j].item<double>()); });
  expect_close_everywhere(wanda_score(f.W, f.act_norm), [&](int64_t i, int64_t j) {
    return std::abs(f.W[i][j].item<double>()) * f.act_norm[j].item<double>();
  });
}

TEST(Metric, RiAndRiaMatchTheFormula) {
  const Fixture f = random_layer(6, 11, 2);
  CrepeParams ri = ria_params(0.0);
  expect_close_everywhere(ri_score(f.W), [&](int64_t i, int64_t j) { return crepe_reference(f, i, j, ri); });
  const CrepeParams ria = ria_params(0.5);
  expect_close_everywhere(ria_score(f.W, f.act_norm), [&](int64_t i, int64_t j) { return crepe_reference(f, i, j, ria); });
}

TEST(Metric, CrepeMatchesTheFormulaForSeveralKernels) {
  const Fixture f = random_layer(9, 13, 3);
  for (int64_t k : {1, 3, 5, 7, 31}) {  // 31: a window larger than the matrix, clipped everywhere
    CrepeParams p;
    p.kernel_size = k;
    p.alpha = 0.7;
    p.beta = 1.3;
    p.gamma = 0.4;
    p.act_power = 0.3;
    for (ScoreKernel kernel : {ScoreKernel::Fused, ScoreKernel::TensorOps}) {
      expect_close_everywhere(crepe_score(f.W, f.act_norm, p, kernel),
                              [&](int64_t i, int64_t j) { return crepe_reference(f, i, j, p); });
    }
  }
}

TEST(Metric, CoefficientsGiveTheSameScoresAtAnyScale) {
  // Only the coefficients' ratios matter: 1e39 would overflow float32 and 1e-45 is a denormal, but
  // scaled by their largest the scores are those of the same ratios at scale 1.
  const Fixture f = random_layer(17, 23, 8);
  CrepeParams p;
  p.alpha = 0.7;
  p.beta = 1.3;
  p.gamma = 0.4;
  for (ScoreKernel kernel : {ScoreKernel::Fused, ScoreKernel::TensorOps}) {
    const at::Tensor unit = crepe_score(f.W, f.act_norm, p, kernel);
    for (double scale : {1e39, 1e300, 1e-45, 1e-300}) {
      CrepeParams scaled = p;
      scaled.alpha *= scale;
      scaled.beta *= scale;
      scaled.gamma *= scale;
      const at::Tensor got = crepe_score(f.W, f.act_norm, scaled, kernel);
      ASSERT_TRUE(at::isfinite(got).all().item<bool>()) << "scale " << scale;
      EXPECT_TRUE(at::allclose(got, unit, 1e-6, 0)) << "scale " << scale << " max diff " << (got - unit).abs().max().item<double>();
    }
  }
}

TEST(Metric, FusedAndTensorOpKernelsAgreeOnLargerMatrices) {
  const Fixture f = random_layer(300, 517, 6);
  at::Tensor W = f.W.clone();
  W.narrow(0, 10, 3).zero_();  // zero rows and columns exercise the zero-denominator rule
  W.narrow(1, 40, 2).zero_();
  for (int64_t k : {1, 3, 7, 15}) {
    CrepeParams p;
    p.kernel_size = k;
    p.gamma = 0.8;
    const at::Tensor fused = crepe_score(W, f.act_norm, p, ScoreKernel::Fused);
    const at::Tensor ops = crepe_score(W, f.act_norm, p, ScoreKernel::TensorOps);
    EXPECT_TRUE(at::allclose(fused, ops, 1e-5, 1e-12)) << "k=" << k << " max diff " << (fused - ops).abs().max().item<double>();
  }
}

TEST(Metric, TensorOpScoresDoNotDependOnTheSlabHeight) {
  // Slabs thinner than the window (1 row, k = 15) and ones that do not divide the row count: each
  // row's window must still see every row it covers, and the matrix border must still clip it.
  const Fixture f = random_layer(97, 61, 22);
  at::Tensor W = f.W.clone();
  W.narrow(0, 50, 2).zero_();
  for (int64_t k : {1, 3, 15}) {
    CrepeParams p;
    p.kernel_size = k;
    p.gamma = 0.6;
    const at::Tensor fused = crepe_score(W, f.act_norm, p, ScoreKernel::Fused);
    for (int64_t slab : {1, 4, 7, 96, 97, 500}) {
      const at::Tensor ops = crepe_score(W, f.act_norm, p, ScoreKernel::TensorOps, slab);
      EXPECT_TRUE(at::allclose(fused, ops, 1e-6, 1e-12))
          << "k=" << k << " slab=" << slab << " max diff " << (fused - ops).abs().max().item<double>();
    }
  }
}

TEST(Metric, FusedScoresAreTheSameBitsWhateverTheThreadCount) {
  // The window sums restart at fixed row blocks, not at each thread's share of the rows.
  const Fixture f = random_layer(1000, 300, 21);
  CrepeParams p;
  p.kernel_size = 7;
  p.gamma = 0.5;
  const int before = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor one = crepe_score(f.W, f.act_norm, p, ScoreKernel::Fused);
  at::set_num_threads(2);
  const at::Tensor two = crepe_score(f.W, f.act_norm, p, ScoreKernel::Fused);
  at::set_num_threads(before);
  EXPECT_TRUE(at::equal(one, two));
}

TEST(Metric, CrepeWithRiaCoefficientsEqualsRiaBitForBit) {
  const Fixture f = random_layer(64, 96, 4);
  for (int64_t k : {1, 3, 7}) {
    CrepeParams p = ria_params(0.5);
    p.kernel_size = k;
    EXPECT_TRUE(at::equal(crepe_score(f.W, f.act_norm, p), ria_score(f.W, f.act_norm))) << "k=" << k;
  }
}

TEST(Metric, BoxSumIsExactAndClippedAtTheBorder) {
  const at::Tensor ones = at::ones({4, 5});
  const at::Tensor s = box_sum(ones, 3);
  EXPECT_EQ(s[0][0].item<double>(), 4);  // corner: 2 x 2 cells exist
  EXPECT_EQ(s[0][2].item<double>(), 6);  // edge: 2 x 3
  EXPECT_EQ(s[1][2].item<double>(), 9);  // interior
  // Large values far from zero: float64 running sums keep small windows exact.
  const at::Tensor big = at::full({3, 2000}, 1e6, at::kFloat);
  big[1][1000] = 1.0;
  EXPECT_EQ(box_sum(big, 1)[1][1000].item<double>(), 1.0);
  EXPECT_EQ(box_sum(big, 3)[1][1000].item<double>(), 8e6 + 1.0);
}

TEST(Metric, ZeroRowsAndColumnsScoreZeroNotNaN) {
  at::Tensor W = at::randn({4, 4});
  W[1].zero_();
  W.select(1, 2).zero_();
  CrepeParams p;
  p.gamma = 1.0;
  const at::Tensor s = crepe_score(W, at::ones({4}), p);
  EXPECT_FALSE(s.isnan().any().item<bool>());
  EXPECT_EQ(s[1].abs().sum().item<double>(), 0.0);
}

TEST(Metric, ParsingAndValidation) {
  EXPECT_EQ(parse_metric("crepe"), Metric::Crepe);
  EXPECT_EQ(parse_metric("sparsegpt"), Metric::SparseGPT);
  EXPECT_THROW(parse_metric("obs"), InputError);
  CrepeParams p;
  p.kernel_size = 4;
  EXPECT_THROW(validate(p), InputError);
  p.kernel_size = 3;
  p.act_power = 1.5;
  EXPECT_THROW(validate(p), InputError);
  p.act_power = 0.5;
  p.gamma = -1;
  EXPECT_THROW(validate(p), InputError);
}

TEST(Stats, AccumulatesNormsMomentsAndGramOverBatches) {
  at::manual_seed(5);
  const at::Tensor x = at::randn({3, 10, 6});
  StatsAccumulator acc({/*gram=*/true, /*moments=*/true});
  acc.add(x.narrow(0, 0, 2));
  acc.add(x.narrow(0, 2, 1));
  const InputStats& s = acc.stats();
  const at::Tensor flat = x.reshape({30, 6}).to(at::kDouble);
  EXPECT_EQ(s.tokens, 30);
  EXPECT_TRUE(at::allclose(s.norm().to(at::kDouble), flat.pow(2).sum(0).sqrt(), 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(s.mean().to(at::kDouble), flat.mean(0), 1e-5, 1e-6));
  // DSnoT's variance: each sequence's own, averaged (all sequences have 10 tokens here).
  const at::Tensor per_sequence_variance = x.to(at::kDouble).var(1, /*unbiased=*/false).mean(0);
  EXPECT_TRUE(at::allclose(s.sequence_variance().to(at::kDouble), per_sequence_variance, 1e-4, 1e-5));
  EXPECT_FALSE(at::allclose(per_sequence_variance, flat.var(0, /*unbiased=*/false), 1e-3, 1e-3));
  EXPECT_TRUE(at::allclose(s.gram.to(at::kDouble), flat.t().matmul(flat), 1e-5, 1e-5));
}

TEST(Stats, CountsSequencesForPerSequenceSums) {
  at::manual_seed(6);
  const at::Tensor x = at::randn({3, 10, 6});
  StatsAccumulator acc({/*gram=*/false, /*moments=*/true});
  acc.add(x.narrow(0, 0, 2));
  acc.add(x.narrow(0, 2, 1));
  const InputStats& s = acc.stats();
  EXPECT_EQ(s.sequences, 3);
  // DSnoT's unit: the input summed over a sequence, on average (10 tokens per sequence here).
  const at::Tensor per_sequence = x.to(at::kDouble).sum(1).mean(0);
  EXPECT_TRUE(at::allclose(s.sequence_sum().to(at::kDouble), per_sequence, 1e-5, 1e-6));
  EXPECT_TRUE(at::allclose(s.sequence_sum(), s.mean() * 10, 1e-5, 1e-6));
  StatsAccumulator flat;  // [tokens, in] is one sequence
  flat.add(x.select(0, 0));
  EXPECT_EQ(flat.stats().sequences, 1);
  EXPECT_THROW(InputStats{}.sequence_sum(), c10::Error);
}

TEST(Stats, SequenceVarianceKeepsASmallSpreadUnderALargeMean) {
  // E[x^2] - E[x]^2 would cancel to rounding noise for channel 1 (mean 1000, spread 0.01: float32
  // resolves E[x^2] = 1e6 only to ~0.1); each sequence's variance about its own mean does not.
  // A constant channel has variance exactly 0 (DSnoT's own floor then applies).
  at::manual_seed(7);
  const at::Tensor noise = at::randn({2, 4096});
  const at::Tensor x = at::stack({at::full_like(noise, 1000.0), noise * 0.01 + 1000.0, noise}, -1);  // [2, 4096, 3]
  StatsAccumulator acc({/*gram=*/false, /*moments=*/true});
  acc.add(x);
  const at::Tensor var = acc.stats().sequence_variance().to(at::kDouble);
  const double noise_variance = noise.to(at::kDouble).var(1, /*unbiased=*/false).mean().item<double>();
  EXPECT_EQ(var[0].item<double>(), 0.0);
  EXPECT_NEAR(var[1].item<double>(), 1e-4 * noise_variance, 1e-6);
  EXPECT_NEAR(var[2].item<double>(), noise_variance, 1e-4);
}

TEST(Stats, NonFiniteActivationsStopTheRunAndSayWhy) {
  StatsAccumulator finite, overflowed;
  finite.add(at::tensor({1.0f, 65504.0f}).view({1, 2}));
  overflowed.add(at::tensor({1.0f, std::numeric_limits<float>::infinity()}).view({1, 2}));
  EXPECT_NO_THROW(require_finite(finite.stats(), "M", 0, "o_proj", at::kHalf));
  const InputStats s = overflowed.take();
  for (c10::ScalarType dtype : {at::kHalf, at::kBFloat16}) {
    try {
      require_finite(s, "M", 3, "o_proj", dtype);
      ADD_FAILURE() << "no error";
    } catch (const NumericalInputError& e) {
      const std::string message = e.what();
      EXPECT_EQ(message.rfind("M: the calibration activations entering block 3's o_proj are not finite", 0), 0u) << message;
      const bool blames_fp16 = message.find("fp16's range") != std::string::npos;
      EXPECT_EQ(blames_fp16, dtype == at::kHalf) << message;
      EXPECT_EQ(message.find("--check-finite") != std::string::npos, dtype != at::kHalf) << message;
    }
  }
}

}  // namespace
}  // namespace crepe::prune
