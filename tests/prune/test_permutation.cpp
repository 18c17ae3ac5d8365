// Channel permutation for N:M: validity of the permutation and of the mask in both column orders,
// kept score never below plain N:M nor below the snake deal, a hand-checked case, blocks, tails,
// determinism, and the gain on a real weight matrix.
#include <ATen/ATen.h>
#include <ATen/Parallel.h>
#include <gtest/gtest.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <limits>
#include <numeric>
#include <string>
#include <tuple>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/permutation.hpp"
#include "test_support.hpp"

namespace crepe::prune {
namespace {

void expect_permutation(const at::Tensor& perm, int64_t in) {
  ASSERT_TRUE(perm.defined());
  ASSERT_EQ(perm.scalar_type(), at::kLong);
  ASSERT_EQ(perm.dim(), 1);
  ASSERT_EQ(perm.size(0), in);
  EXPECT_TRUE(at::equal(std::get<0>(perm.sort()), at::arange(in, at::kLong)));
}

std::vector<int64_t> to_vector(const at::Tensor& t) {
  const at::Tensor c = t.contiguous();
  return std::vector<int64_t>(c.data_ptr<int64_t>(), c.data_ptr<int64_t>() + c.numel());
}

// The full set of checks on one score matrix: the permutation, the mask in permuted and original
// order, the counts, the kept scores and the report.
void check_permuted_mask(const at::Tensor& scores, int64_t n, int64_t m, const PermutationOptions& options) {
  SCOPED_TRACE(std::to_string(scores.size(0)) + "x" + std::to_string(scores.size(1)) + " " + std::to_string(n) + ":" +
               std::to_string(m) + " blocks " + std::to_string(options.blocks));
  const int64_t out = scores.size(0), in = scores.size(1), full = (in / m) * m;
  PermutationReport report;
  const at::Tensor perm = nm_channel_permutation(scores, n, m, options, &report);
  expect_permutation(perm, in);
  // The tail stays in place.
  if (full < in) EXPECT_TRUE(at::equal(perm.narrow(0, full, in - full), at::arange(full, in, at::kLong)));

  const at::Tensor mask = permuted_nm_mask(scores, n, m, options);
  ASSERT_EQ(mask.scalar_type(), at::kBool);
  ASSERT_EQ(mask.sizes(), scores.sizes());
  // In permuted order: every group of m columns prunes exactly n in every row; the tail follows
  // prune_n_of_m's rule.
  const at::Tensor permuted = mask.index_select(1, perm);
  EXPECT_TRUE(at::equal(report.order, perm));
  EXPECT_TRUE(at::equal(permute_columns(mask, perm), permuted));
  EXPECT_TRUE(at::equal(unpermute_columns(permuted, perm), mask));
  // A per-column vector permutes like the columns: position j takes column perm[j].
  EXPECT_TRUE(at::equal(permute_columns(at::arange(in, at::kLong), perm), perm));
  if (full > 0) {
    const at::Tensor pruned_per_group = permuted.narrow(1, 0, full).logical_not().reshape({out, full / m, m}).sum(2);
    EXPECT_TRUE((pruned_per_group == n).all().item<bool>());
  }
  EXPECT_TRUE(at::equal(permuted, prune_n_of_m(scores.index_select(1, perm), n, m)));
  // Back in the original order: the same count per row as plain N:M.
  const at::Tensor plain = prune_n_of_m(scores, n, m);
  EXPECT_TRUE(at::equal(mask.logical_not().sum(1), plain.logical_not().sum(1)));
  EXPECT_TRUE((mask.logical_not().sum(1) == n_of_m_pruned_per_row(in, n, m)).all().item<bool>());

  // Kept scores: the mask's, the report's and nm_kept_score's agree, and never fall below plain N:M.
  const at::Tensor s = scores.to(at::kDouble);
  const double kept_mask = s.masked_fill(mask.logical_not(), 0.0).sum().item<double>();
  const double kept_plain = s.masked_fill(plain.logical_not(), 0.0).sum().item<double>();
  const double tolerance = 1e-9 * (std::abs(kept_plain) + 1.0);
  EXPECT_NEAR(report.kept_after, kept_mask, tolerance);
  EXPECT_NEAR(report.kept_before, kept_plain, tolerance);
  EXPECT_NEAR(nm_kept_score(scores, perm, n, m), kept_mask, tolerance);
  EXPECT_NEAR(nm_kept_score(scores, at::Tensor(), n, m), kept_plain, tolerance);
  EXPECT_GE(report.kept_after, report.kept_before);
  EXPECT_NEAR(report.total, s.sum().item<double>(), tolerance);
  // And never below the snake deal it started from (unless it fell back to the identity, which is
  // then better still).
  EXPECT_GE(report.kept_after + tolerance, nm_kept_score(scores, nm_snake_permutation(scores, m), n, m));
}

const std::vector<std::pair<int64_t, int64_t>> kPatterns = {{2, 4}, {1, 4}, {3, 4}, {4, 8}, {2, 8}, {1, 2}};

TEST(Permutation, ValidOnRandomScores) {
  at::manual_seed(17);
  for (auto [n, m] : kPatterns) {
    check_permuted_mask(at::rand({24, 64}), n, m, {});
    check_permuted_mask(at::rand({5, 48}).pow(4), n, m, {});  // heavy-tailed
  }
}

TEST(Permutation, HandCheckedAdjacentBigColumns) {
  // Columns 0..3 are big, 4..7 small, in every row. Plain 2:4 keeps 10, 9 of group {0..3} and 4, 3 of
  // {4..7}: 26 per row. Sorted ascending by column sum: 4 5 6 7 3 2 1 0; the snake deal puts
  // position 0 <- (4, 5), position 1 <- (7, 6) reversed, position 2 <- (3, 2), position 3 <- (1, 0)
  // reversed: groups {4, 7, 3, 0} and {5, 6, 2, 1}, each holding two big columns, so all four big
  // ones survive: 10 + 9 + 8 + 7 = 34 per row.
  const at::Tensor row = at::tensor({10.0f, 9.0f, 8.0f, 7.0f, 1.0f, 2.0f, 3.0f, 4.0f});
  const at::Tensor scores = row.repeat({3, 1});
  EXPECT_EQ(to_vector(nm_snake_permutation(scores, 4)), (std::vector<int64_t>{4, 7, 3, 0, 5, 6, 2, 1}));
  PermutationReport report;
  const at::Tensor perm = nm_channel_permutation(scores, 2, 4, {}, &report);
  EXPECT_EQ(to_vector(perm), (std::vector<int64_t>{4, 7, 3, 0, 5, 6, 2, 1}));  // already optimal: no reassignment
  EXPECT_EQ(report.reassignments, 0);
  EXPECT_DOUBLE_EQ(report.kept_before, 3 * 26.0);
  EXPECT_DOUBLE_EQ(report.kept_after, 3 * 34.0);
  EXPECT_FALSE(report.identity);
  const at::Tensor expected = at::tensor({1, 1, 1, 1, 0, 0, 0, 0}).to(at::kBool).repeat({3, 1});
  EXPECT_TRUE(at::equal(permuted_nm_mask(scores, 2, 4, {}), expected));
  EXPECT_TRUE(at::equal(prune_n_of_m(scores, 2, 4).logical_not().sum(1), expected.logical_not().sum(1)));
}

TEST(Permutation, HandCheckedRefinementFixesTheSnakeDeal) {
  // Nothing to gain. Columns (row 0, row 1):
  //   c0 (5, 0)  c1 (5, 0)  c2 (0, 5)  c3 (0, 5)  c4..c7 (1, 1)
  // Each row keeps 4 scores under 2:4 over 8 columns, at best 5 + 5 + 1 + 1 = 12, and the natural
  // order {0, 1, 2, 3}, {4..7} already gets 12 in both rows: 24. The snake deal (groups {4, 7, 0, 3}
  // and {5, 6, 1, 2}) also keeps 24, so no reassignment can gain and the identity is kept.
  const at::Tensor scores = at::tensor({5.0f, 5.0f, 0.0f, 0.0f, 1.0f, 1.0f, 1.0f, 1.0f,  //
                                        0.0f, 0.0f, 5.0f, 5.0f, 1.0f, 1.0f, 1.0f, 1.0f})
                                .view({2, 8});
  PermutationReport report;
  const at::Tensor perm = nm_channel_permutation(scores, 2, 4, {}, &report);
  EXPECT_DOUBLE_EQ(report.kept_before, 24.0);
  EXPECT_DOUBLE_EQ(report.kept_after, 24.0);
  EXPECT_EQ(report.reassignments, 0);
  EXPECT_TRUE(report.identity);  // no gain: the original order is kept
  EXPECT_TRUE(at::equal(perm, at::arange(8, at::kLong)));

  // Now 1:4 (keep 3 of 4) on columns whose sums mislead the snake deal. Row 0 / row 1:
  //   c0 (4, 0)  c1 (4, 0)  c2 (0, 4)  c3 (0, 4)  c4 (3, 3)  c5 (3, 0)  c6 (0, 3)  c7 (0.5, 0.5)
  // Sums: c7 1; c5, c6 3; c0..c3 4; c4 6. Sorted: 7 5 6 0 1 2 3 4. Snake with 2 groups:
  //   position 0 <- (7, 5), position 1 <- (0, 6) reversed, position 2 <- (1, 2), position 3 <- (4, 3)
  //   reversed: groups {7, 0, 1, 4} and {5, 6, 2, 3}.
  // Group {7, 0, 1, 4}: row 0 keeps 4 + 4 + 3 = 11, row 1 keeps 0.5 + 0 + 3 = 3.5 (drops a 0).
  // Group {5, 6, 2, 3}: row 0 keeps 3 + 0 + 0 = 3, row 1 keeps 3 + 4 + 4 = 11. Total 28.5.
  // Position 0 swapped (c5 <-> c7): {5, 0, 1, 4} row 0 4 + 4 + 3 = 11, row 1 0 + 0 + 3 = 3;
  // {7, 6, 2, 3} row 0 0.5 + 0 + 0 = 0.5, row 1 3 + 4 + 4 = 11: 25.5, worse. Position 3 swapped
  // (c4 <-> c3): {7, 0, 1, 3} row 0 8.5, row 1 4.5 (0.5 + 4, drops 0s) = 13; {5, 6, 2, 4} row 0 3 + 3 = 6,
  // row 1 3 + 4 + 3 = 10: 29 > 28.5. So the refinement must move at least once and keep >= 29.
  const at::Tensor tricky = at::tensor({4.0f, 4.0f, 0.0f, 0.0f, 3.0f, 3.0f, 0.0f, 0.5f,  //
                                        0.0f, 0.0f, 4.0f, 4.0f, 3.0f, 0.0f, 3.0f, 0.5f})
                                .view({2, 8});
  EXPECT_EQ(to_vector(nm_snake_permutation(tricky, 4)), (std::vector<int64_t>{7, 0, 1, 4, 5, 6, 2, 3}));
  EXPECT_DOUBLE_EQ(nm_kept_score(tricky, nm_snake_permutation(tricky, 4), 1, 4), 28.5);
  PermutationReport refined;
  nm_channel_permutation(tricky, 1, 4, {}, &refined);
  EXPECT_GE(refined.reassignments, 1);
  EXPECT_GE(refined.kept_after, 29.0);
  check_permuted_mask(tricky, 1, 4, {});
}

TEST(Permutation, RefinementNeverLosesToTheSnakeDeal) {
  // Kept score is non-decreasing in the number of sweeps (0 = snake deal alone), and the refinement
  // does strictly improve on the snake deal for most random matrices.
  at::manual_seed(23);
  int improved = 0, cases = 0;
  for (int trial = 0; trial < 12; ++trial) {
    for (auto [n, m] : kPatterns) {
      const at::Tensor scores = at::rand({16, 8 * m}).pow(1 + trial % 3);
      const double snake = nm_kept_score(scores, nm_snake_permutation(scores, m), n, m);
      double previous = -1.0;
      for (int64_t sweeps = 0; sweeps <= 4; ++sweeps) {
        PermutationOptions options;
        options.max_sweeps = sweeps;
        const double kept = nm_kept_score(scores, nm_channel_permutation(scores, n, m, options), n, m);
        EXPECT_GE(kept + 1e-9, snake) << n << ":" << m << " sweeps " << sweeps;
        EXPECT_GE(kept + 1e-9, previous) << n << ":" << m << " sweeps " << sweeps;
        previous = kept;
      }
      ++cases;
      if (previous > snake + 1e-9) ++improved;
    }
  }
  EXPECT_GT(improved, cases / 2) << improved << " of " << cases;
}

TEST(Permutation, NeverBelowPlainNM) {
  at::manual_seed(29);
  for (int trial = 0; trial < 20; ++trial) {
    for (auto [n, m] : kPatterns) {
      const at::Tensor scores = at::rand({8, 4 * m + trial % m});
      PermutationReport report;
      nm_channel_permutation(scores, n, m, {}, &report);
      EXPECT_GE(report.kept_after, report.kept_before);
    }
  }
}

TEST(Permutation, BlocksGiveValidResults) {
  at::manual_seed(31);
  const at::Tensor scores = at::rand({12, 96});
  for (int64_t blocks : {1, 2, 3, 5, 24, 100}) {
    PermutationOptions options;
    options.blocks = blocks;
    check_permuted_mask(scores, 2, 4, options);
    check_permuted_mask(scores, 4, 8, options);
  }
  // One block per group leaves nothing to reassign: the snake deal (or the identity) is the answer.
  PermutationOptions per_group;
  per_group.blocks = 24;
  PermutationReport report;
  nm_channel_permutation(scores, 2, 4, per_group, &report);
  EXPECT_EQ(report.reassignments, 0);
  EXPECT_NEAR(report.kept_after,
              std::max(report.kept_before, nm_kept_score(scores, nm_snake_permutation(scores, 4), 2, 4)), 1e-9);
}

TEST(Permutation, TailStaysInPlace) {
  at::manual_seed(37);
  for (auto [n, m] : kPatterns) {
    for (int64_t tail = 1; tail < m; ++tail) {
      const at::Tensor scores = at::rand({9, 5 * m + tail});
      check_permuted_mask(scores, n, m, {});
      // The tail's mask is plain N:M's tail.
      const int64_t full = 5 * m;
      const at::Tensor mask = permuted_nm_mask(scores, n, m, {});
      EXPECT_TRUE(at::equal(mask.narrow(1, full, tail), prune_n_of_m(scores, n, m).narrow(1, full, tail)));
    }
  }
  // Fewer columns than M: nothing to permute.
  const at::Tensor narrow = at::rand({4, 3});
  EXPECT_TRUE(at::equal(nm_channel_permutation(narrow, 2, 4, {}), at::arange(3, at::kLong)));
  check_permuted_mask(narrow, 2, 4, {});
}

TEST(Permutation, TiesAndConstantScores) {
  // All equal: no arrangement helps, the identity is kept.
  const at::Tensor equal = at::ones({4, 16});
  PermutationReport report;
  EXPECT_TRUE(at::equal(nm_channel_permutation(equal, 2, 4, {}, &report), at::arange(16, at::kLong)));
  EXPECT_TRUE(report.identity);
  EXPECT_TRUE(at::equal(permuted_nm_mask(equal, 2, 4, {}), prune_n_of_m(equal, 2, 4)));
  // Integer-valued scores with many ties.
  at::manual_seed(41);
  for (auto [n, m] : kPatterns) check_permuted_mask(at::randint(0, 3, {10, 40}).to(at::kFloat), n, m, {});
}

TEST(Permutation, Deterministic) {
  at::manual_seed(43);
  const at::Tensor scores = at::rand({64, 256});
  PermutationOptions options;
  options.blocks = 2;
  const at::Tensor first = nm_channel_permutation(scores, 2, 4, options);
  EXPECT_TRUE(at::equal(first, nm_channel_permutation(scores, 2, 4, options)));
  EXPECT_TRUE(at::equal(first, nm_channel_permutation(scores.clone(), 2, 4, options)));
  // Independent of the thread count.
  const int threads = at::get_num_threads();
  at::set_num_threads(1);
  const at::Tensor single = nm_channel_permutation(scores, 2, 4, options);
  at::set_num_threads(threads);
  EXPECT_TRUE(at::equal(first, single));
  EXPECT_TRUE(at::equal(permuted_nm_mask(scores, 2, 4, options), permuted_nm_mask(scores, 2, 4, options)));
}

TEST(Permutation, AutoBlocksHoldAtMost512GroupsEach) {
  const PermutationOptions automatic;  // blocks = 0
  EXPECT_EQ(permutation_blocks(automatic, 43), 1);     // stories260k down_proj at 4:8
  EXPECT_EQ(permutation_blocks(automatic, 512), 1);
  EXPECT_EQ(permutation_blocks(automatic, 513), 2);
  EXPECT_EQ(permutation_blocks(automatic, 1024), 2);   // 7B q/k/v/o/gate/up at 2:4
  EXPECT_EQ(permutation_blocks(automatic, 2752), 6);   // 7B down_proj at 2:4
  PermutationOptions four;
  four.blocks = 4;
  EXPECT_EQ(permutation_blocks(four, 2752), 4);
  // Auto is the same permutation as the block count it picks.
  at::manual_seed(8);
  const at::Tensor scores = at::rand({16, 4 * 600});  // 600 groups: 2 blocks
  PermutationOptions two;
  two.blocks = 2;
  EXPECT_TRUE(at::equal(nm_channel_permutation(scores, 2, 4, automatic), nm_channel_permutation(scores, 2, 4, two)));
}

TEST(Permutation, RejectsBadArguments) {
  const at::Tensor scores = at::rand({4, 8});
  PermutationOptions options;
  options.blocks = -1;
  EXPECT_THROW(nm_channel_permutation(scores, 2, 4, options), InputError);
  options.blocks = 1;
  options.max_sweeps = -1;
  EXPECT_THROW(nm_channel_permutation(scores, 2, 4, options), InputError);
  EXPECT_THROW(nm_channel_permutation(scores, 4, 4, {}), c10::Error);
  EXPECT_THROW(nm_channel_permutation(at::rand({8}), 2, 4, {}), c10::Error);
  EXPECT_THROW(nm_kept_score(scores, at::zeros({8}, at::kLong), 2, 4), c10::Error);  // not a permutation
  at::Tensor bad = scores.clone();
  bad[1][3] = std::numeric_limits<float>::quiet_NaN();
  EXPECT_THROW(nm_channel_permutation(bad, 2, 4, {}), c10::Error);
}

// The gain on real RIA scores: layer 0's up_proj ([704, 256], 256 inputs) and down_proj ([256, 704],
// 704 inputs) of the shared mini LLaMA, with unit activation norms.
TEST(Permutation, RealWeightGain) {
  const std::string dir = test::shared_path("models/mini-llama-6m");
  if (!std::filesystem::exists(dir + "/config.json")) GTEST_SKIP() << "no " << dir;
  const io::Checkpoint checkpoint = io::Checkpoint::open(dir);
  for (const std::string name : {"model.layers.0.mlp.up_proj.weight", "model.layers.0.mlp.down_proj.weight"}) {
    const at::Tensor weight = checkpoint.tensors().load(name).to(at::kFloat);
    const at::Tensor scores = ria_score(weight, at::ones({weight.size(1)}));
    for (auto [n, m] : std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {4, 8}}) {
      for (int64_t blocks : {1, 4}) {
        PermutationOptions options;
        options.blocks = blocks;
        PermutationReport report;
        const auto start = std::chrono::steady_clock::now();
        const at::Tensor mask = permuted_nm_mask(scores, n, m, options, &report);
        const double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
        const double snake = nm_kept_score(scores, nm_snake_permutation(scores, m), n, m);
        const double gain = (report.kept_after - report.kept_before) / report.kept_before;
        char line[512];
        std::snprintf(line, sizeof line,
                      "%s [%lld, %lld] %lld:%lld blocks %lld: kept %.6f -> %.6f (snake %.6f) of %.6f, gain %+.3f%% "
                      "(%.2f%% -> %.2f%% of total), %lld sweeps, %lld reassignments, %.3f s",
                      name.c_str(), static_cast<long long>(scores.size(0)), static_cast<long long>(scores.size(1)),
                      static_cast<long long>(n), static_cast<long long>(m), static_cast<long long>(blocks),
                      report.kept_before, report.kept_after, snake, report.total, 100.0 * gain,
                      100.0 * report.kept_before / report.total, 100.0 * report.kept_after / report.total,
                      static_cast<long long>(report.sweeps), static_cast<long long>(report.reassignments), seconds);
        std::cout << "[ gain     ] " << line << std::endl;
        RecordProperty(name.substr(15) + "_" + std::to_string(n) + "of" + std::to_string(m) + "_b" +
                           std::to_string(blocks),
                       line);
        EXPECT_GT(report.kept_after, report.kept_before);
        EXPECT_GE(report.kept_after + 1e-9, snake);
        EXPECT_TRUE(at::equal(mask.logical_not().sum(1), prune_n_of_m(scores, n, m).logical_not().sum(1)));
      }
    }
  }
}

}  // namespace
}  // namespace crepe::prune
