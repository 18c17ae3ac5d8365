// Mask selection: hand-checked small cases, exact counts, N:M validity, determinism of ties.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <limits>
#include <utility>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/prune/metric.hpp"

namespace crepe::prune {
namespace {

at::Tensor bools(std::vector<std::vector<int>> rows) {
  at::Tensor t = at::zeros({static_cast<int64_t>(rows.size()), static_cast<int64_t>(rows[0].size())}, at::kBool);
  for (size_t i = 0; i < rows.size(); ++i)
    for (size_t j = 0; j < rows[i].size(); ++j) t[i][j] = rows[i][j] != 0;
  return t;
}

// The definition, by a stable sort: the `count` lowest of each row, ties to the lower column, NaN
// above everything.
at::Tensor lowest_by_sort(const at::Tensor& s, int64_t count) {
  const at::Tensor order = std::get<1>(s.sort(/*stable=*/true, 1, /*descending=*/false));
  at::Tensor keep = at::ones_like(s, at::kBool);
  keep.scatter_(1, order.narrow(1, 0, count), false);
  return keep;
}

// Scores with the awkward cases: heavy ties, negatives, -0 beside +0, infinities.
at::Tensor awkward_scores(int64_t rows, int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  at::Tensor s = at::randint(-3, 40, {rows, cols}).to(at::kFloat) / 4;
  s.masked_fill_(at::rand({rows, cols}) < 0.05, -0.0);
  s.masked_fill_(at::rand({rows, cols}) < 0.001, std::numeric_limits<float>::infinity());
  s.masked_fill_(at::rand({rows, cols}) < 0.001, -std::numeric_limits<float>::infinity());
  s.masked_fill_(at::rand({rows, cols}) < 0.01, std::numeric_limits<float>::denorm_min());
  return s;
}

// N:M by the definition: each full run of m columns, and the tail, sorted stably on its own.
at::Tensor n_of_m_by_sort(const at::Tensor& s, int64_t n, int64_t m) {
  const int64_t rows = s.size(0), full = s.size(1) / m * m, tail = s.size(1) - full;
  std::vector<at::Tensor> parts{lowest_by_sort(s.narrow(1, 0, full).reshape({-1, m}), n).view({rows, full})};
  if (tail > 0) parts.push_back(lowest_by_sort(s.narrow(1, full, tail), n * tail / m));
  return at::cat(parts, 1);
}

TEST(Mask, BothKernelsSelectWhatAStableSortSelects) {
  for (MaskKernel kernel : {MaskKernel::Fused, MaskKernel::TensorOps}) {
    const at::Tensor rows = awkward_scores(37, 301, 1);
    for (int64_t count : {1, 7, 150, 300}) {
      EXPECT_TRUE(at::equal(prune_lowest_per_row(rows, count, kernel), lowest_by_sort(rows, count))) << count;
    }
    // One long row goes through radix selection (kernels alike), ties straddling every threshold.
    const at::Tensor flat = awkward_scores(1, 200003, 2);
    for (int64_t count : {1, 4999, 100001, 200002}) {
      EXPECT_TRUE(at::equal(prune_lowest(flat, count, kernel), lowest_by_sort(flat, count))) << count;
    }
    const at::Tensor matrix = awkward_scores(300, 700, 3);
    EXPECT_TRUE(at::equal(prune_lowest(matrix, 105000, kernel),
                          lowest_by_sort(matrix.view({1, -1}), 105000).view(matrix.sizes())));
    // NaN, which the pipeline never lets through, is refused rather than ordered somehow.
    for (int64_t cols : {301, 70001}) {
      at::Tensor with_nan = awkward_scores(1, cols, 4);
      with_nan[0][cols / 2] = std::numeric_limits<float>::quiet_NaN();
      EXPECT_THROW(prune_lowest_per_row(with_nan, 10, kernel), c10::Error) << cols;
      EXPECT_THROW(prune_n_of_m(with_nan, 2, 4, kernel), c10::Error) << cols;
    }
  }
}

TEST(Mask, BothKernelsSelectNOfMAsAStableSortDoes) {
  const at::Tensor s = awkward_scores(64, 203, 5);  // 203 = 50 runs of 4 + a tail of 3
  // Groups of up to 16 are ranked pairwise; 10:20 and 16:40 go through the per-row radix path.
  for (const auto& [n, m] : std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {4, 8}, {1, 3}, {10, 20}, {16, 40}}) {
    const at::Tensor expected = n_of_m_by_sort(s, n, m);
    for (MaskKernel kernel : {MaskKernel::Fused, MaskKernel::TensorOps}) {
      EXPECT_TRUE(at::equal(prune_n_of_m(s, n, m, kernel), expected)) << n << ":" << m;
    }
  }
}

TEST(Mask, WandaPerRowHandChecked) {
  // W = [[4, -1, 2, 0.5], [1, 1, -3, 2]], ||X|| = [1, 4, 1, 2]  =>  wanda = [[4, 4, 2, 1], [1, 4, 3, 4]].
  const at::Tensor W = at::tensor({4.0f, -1.0f, 2.0f, 0.5f, 1.0f, 1.0f, -3.0f, 2.0f}).view({2, 4});
  const at::Tensor norm = at::tensor({1.0f, 4.0f, 1.0f, 2.0f});
  MaskSpec spec;
  spec.sparsity = 0.5;
  spec.group = Group::Row;
  // Row 0 prunes 1 and 2 (cols 3, 2); row 1 prunes 1 and 3 (cols 0, 2).
  EXPECT_TRUE(at::equal(select_mask(wanda_score(W, norm), spec), bools({{1, 1, 0, 0}, {0, 1, 0, 1}})));
  // Per layer, the 4 lowest of {4,4,2,1,1,4,3,4} are 1 (col 3), 1 (row 1 col 0), 2, 3.
  spec.group = Group::Layer;
  EXPECT_TRUE(at::equal(select_mask(wanda_score(W, norm), spec), bools({{1, 1, 0, 0}, {0, 1, 0, 1}})));
}

TEST(Mask, RiaPerLayerHandChecked) {
  // A = [[1, 3], [2, 2]]: row sums 4, 4; column sums 3, 5.
  // ri = [[1/4 + 1/3, 3/4 + 3/5], [2/4 + 2/3, 2/4 + 2/5]] = [[0.583, 1.35], [1.167, 0.9]]; act 1.
  const at::Tensor W = at::tensor({1.0f, -3.0f, 2.0f, 2.0f}).view({2, 2});
  MaskSpec spec;
  spec.sparsity = 0.5;
  const at::Tensor mask = select_mask(ria_score(W, at::ones({2})), spec);
  EXPECT_TRUE(at::equal(mask, bools({{0, 1}, {1, 0}})));
}

TEST(Mask, UnstructuredCountsAreExact) {
  at::manual_seed(11);
  for (double sparsity : {0.0, 0.1, 0.5, 0.7, 0.8, 0.999}) {
    const at::Tensor s = at::rand({37, 53});
    MaskSpec spec;
    spec.sparsity = sparsity;
    const int64_t pruned_layer = (~select_mask(s, spec)).sum().item<int64_t>();
    EXPECT_EQ(pruned_layer, pruned_count(sparsity, 37 * 53)) << sparsity;
    spec.group = Group::Row;
    const at::Tensor row_pruned = (~select_mask(s, spec)).sum(1);
    EXPECT_TRUE((row_pruned == pruned_count(sparsity, 53)).all().item<bool>()) << sparsity;
  }
  EXPECT_EQ(pruned_count(0.7, 10), 7);  // not 6 from 6.9999...
}

TEST(Mask, TiesArePrunedInIndexOrderWithExactCounts) {
  const at::Tensor equal = at::ones({3, 4});
  EXPECT_TRUE(at::equal(prune_lowest(equal, 5), bools({{0, 0, 0, 0}, {0, 1, 1, 1}, {1, 1, 1, 1}})));
  EXPECT_TRUE(at::equal(prune_lowest_per_row(equal, 1), bools({{0, 1, 1, 1}, {0, 1, 1, 1}, {0, 1, 1, 1}})));
  // Ties at the threshold with strictly lower values elsewhere.
  const at::Tensor s = at::tensor({0.5f, 2.0f, 1.0f, 1.0f, 1.0f, 3.0f}).view({1, 6});
  EXPECT_TRUE(at::equal(prune_lowest(s, 3), bools({{0, 1, 0, 0, 1, 1}})));
}

TEST(Mask, NofMPrunesExactlyNInEveryGroup) {
  at::manual_seed(12);
  const at::Tensor s = at::rand({16, 64});
  for (auto [n, m] : std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {4, 8}, {1, 4}, {3, 4}}) {
    const at::Tensor keep = prune_n_of_m(s, n, m);
    const at::Tensor pruned_per_group = (~keep).view({16, 64 / m, m}).sum(-1);
    EXPECT_TRUE((pruned_per_group == n).all().item<bool>()) << n << ":" << m;
    // The pruned ones are the lowest of their group.
    const at::Tensor groups = s.view({16, 64 / m, m});
    const at::Tensor max_pruned = groups.masked_fill(keep.view({16, 64 / m, m}), -1).amax(-1);
    const at::Tensor min_kept = groups.masked_fill(~keep.view({16, 64 / m, m}), 2).amin(-1);
    EXPECT_TRUE((max_pruned < min_kept).all().item<bool>());
  }
}

TEST(Mask, NofMTailGroupPrunesProportionallyRoundedDown) {
  // stories260k's down_proj has 172 inputs: 172 = 21 * 8 + 4. For 4:8 the tail of 4 prunes 2;
  // for 2:4 there is no tail; for 1:8 (not used in practice) the tail of 4 prunes 0.
  const at::Tensor s = at::rand({3, 172});
  EXPECT_EQ(n_of_m_pruned_per_row(172, 4, 8), 21 * 4 + 2);
  EXPECT_EQ(n_of_m_pruned_per_row(172, 2, 4), 86);
  EXPECT_EQ(n_of_m_pruned_per_row(172, 1, 8), 21);
  const at::Tensor keep = prune_n_of_m(s, 4, 8);
  EXPECT_TRUE(((~keep).sum(1) == 86).all().item<bool>());
  EXPECT_TRUE(((~keep).narrow(1, 168, 4).sum(1) == 2).all().item<bool>());
  const at::Tensor one_column_tail = at::rand({2, 9});
  EXPECT_TRUE(prune_n_of_m(one_column_tail, 2, 4).select(1, 8).all().item<bool>());  // floor(2/4) = 0
}

TEST(Mask, NofMSparsityCheckAcceptsWhatPruneNofMLeavesAndNothingDenser) {
  at::manual_seed(14);
  for (int64_t in : {64, 172, 9}) {  // no tail, a tail of 4 (4:8), a tail of 1
    for (auto [n, m] : std::vector<std::pair<int64_t, int64_t>>{{2, 4}, {4, 8}}) {
      const at::Tensor w = at::randn({5, in}) + 10;  // no zero by chance
      EXPECT_FALSE(is_n_of_m_sparse(w, n, m)) << in << " " << n << ":" << m;
      const at::Tensor pruned = w * prune_n_of_m(w.abs(), n, m);
      EXPECT_TRUE(is_n_of_m_sparse(pruned, n, m)) << in << " " << n << ":" << m;
      // One weight brought back in row 3's first group: no longer N:M.
      at::Tensor revived = pruned.clone();
      const int64_t col = (pruned.select(0, 3).narrow(0, 0, m) == 0).to(at::kFloat).argmax().item<int64_t>();
      revived.index_put_({3, col}, 1.0);
      EXPECT_FALSE(is_n_of_m_sparse(revived, n, m)) << in << " " << n << ":" << m;
    }
  }
  // The tail rule: 172 = 21 * 8 + 4, whose tail needs floor(4 * 4 / 8) = 2 zeros per row.
  at::Tensor w = at::ones({1, 172});
  for (int64_t g = 0; g < 21; ++g) w.narrow(1, 8 * g, 4).zero_();
  EXPECT_FALSE(is_n_of_m_sparse(w, 4, 8));
  w.narrow(1, 168, 2).zero_();
  EXPECT_TRUE(is_n_of_m_sparse(w, 4, 8));
  EXPECT_TRUE(is_n_of_m_sparse(at::zeros({2, 8}), 2, 4));  // more zeros than needed is still N:M
  // Narrower than M: the whole row is a tail, 3 columns of 2:4 need floor(2 * 3 / 4) = 1 zero.
  EXPECT_FALSE(is_n_of_m_sparse(at::ones({2, 3}), 2, 4));
  EXPECT_TRUE(is_n_of_m_sparse(at::tensor({1.0f, 0.0f, 1.0f}).view({1, 3}), 2, 4));
}

TEST(Mask, PatternAndGroupParsing) {
  EXPECT_FALSE(parse_pattern("unstructured").structured());
  const Pattern p = parse_pattern("2:4");
  EXPECT_EQ(p.n, 2);
  EXPECT_EQ(p.m, 4);
  EXPECT_EQ(p.str(), "2:4");
  for (const char* bad : {"4:4", "5:4", "0:4", "2:", "a:b", "2:4x", "24"}) {
    EXPECT_THROW(parse_pattern(bad), InputError) << bad;
  }
  EXPECT_EQ(parse_group("row"), Group::Row);
  EXPECT_THROW(parse_group("column"), InputError);
}

}  // namespace
}  // namespace crepe::prune
