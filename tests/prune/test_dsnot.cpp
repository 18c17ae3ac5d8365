// DSnoT re-pruning: hand-checked swaps (criterion, overshoot refusal, ties, N:M groups), agreement
// with a one-row-at-a-time definition, and, on random layers, the invariants: kept counts, N:M
// validity, |e| per row never larger.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/prune/dsnot.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/prune/metric.hpp"

namespace crepe::prune {
namespace {

at::Tensor row(std::vector<float> v) {
  return at::tensor(at::ArrayRef<float>(v)).view({1, static_cast<int64_t>(v.size())});
}
at::Tensor vec(std::vector<float> v) { return at::tensor(at::ArrayRef<float>(v)); }
at::Tensor mask_row(std::vector<int> v) {
  at::Tensor t = at::zeros({1, static_cast<int64_t>(v.size())}, at::kBool);
  for (size_t j = 0; j < v.size(); ++j) t[0][j] = v[j] != 0;
  return t;
}

TEST(Dsnot, OneSwapZeroesTheErrorHandChecked) {
  // mean 1 everywhere, so c = W. Kept: cols 0-2; pruned: cols 3-5. e = 3 + 4 - 3.5 = 3.5 > 0.
  // Regrowth (pruned, c > 0): col 3 has priority 3 / Var 1 = 3, col 4 only 4 / Var 16 = 0.25.
  // Pruning (kept, c <= 0): col 1 (score 1) before col 2 (score 3); col 0 has the lowest score but
  // c > 0 would move e away from zero. e' = 3.5 - 3 + (-0.5) = 0: accepted, and the row stops.
  const at::Tensor w = row({1.0f, -0.5f, -2.0f, 3.0f, 4.0f, -3.5f});
  const at::Tensor keep = mask_row({1, 1, 1, 0, 0, 0});
  const at::Tensor scores = row({0.5f, 1.0f, 3.0f, 9.0f, 9.0f, 9.0f});
  const at::Tensor mean = at::ones({6});
  const at::Tensor var = vec({1, 1, 1, 1, 16, 1});
  EXPECT_DOUBLE_EQ(dsnot_error(w, keep, mean).item<double>(), 3.5);
  const at::Tensor out = dsnot_reprune(w, keep, scores, mean, var, {});
  EXPECT_TRUE(at::equal(out, mask_row({1, 0, 1, 1, 0, 0})));
  EXPECT_DOUBLE_EQ(dsnot_error(w, out, mean).item<double>(), 0.0);

  // Without the variance (power 0) col 4 (|c| = 4) is the regrowth choice: e' = 3.5 - 4 - 0.5 = -1
  // overshoots, the swap is refused and the row stops unchanged (DSnoT's code would take it and
  // turn around; see the header).
  DsnotOptions plain;
  plain.var_power = 0;
  EXPECT_TRUE(at::equal(dsnot_reprune(w, keep, scores, mean, var, plain), keep));
}

TEST(Dsnot, TiesGoToTheLowerColumnOverSeveralCycles) {
  // e = 4; regrowth candidates cols 4-7 all of priority 1, pruning candidates cols 0, 1 of equal
  // score. Cycle 1: regrow 4, prune 0 (e = 2); cycle 2: regrow 5, prune 1 (e = 0); stop.
  const at::Tensor w = row({-1, -1, 5, 5, 1, 1, 1, 1});
  const at::Tensor keep = mask_row({1, 1, 1, 1, 0, 0, 0, 0});
  const at::Tensor out = dsnot_reprune(w, keep, at::ones({1, 8}), at::ones({8}), at::ones({8}), {});
  EXPECT_TRUE(at::equal(out, mask_row({0, 0, 1, 1, 1, 1, 0, 0})));
  // One cycle only: the first swap.
  DsnotOptions once;
  once.cycles = 1;
  EXPECT_TRUE(at::equal(dsnot_reprune(w, keep, at::ones({1, 8}), at::ones({8}), at::ones({8}), once),
                        mask_row({0, 1, 1, 1, 1, 0, 0, 0})));
}

TEST(Dsnot, NofMSwapsStayInsideTheGroupHandChecked) {
  // 2:4, groups {0..3} and {4..7}; c = W. e = 3 + 2.5 + 2 - 2 = 5.5.
  // Group 0 has no prunable weight (its kept c are positive), so its regrowth candidates (3, 2.5)
  // are out; group 1 regrows col 6 (2) and prunes col 5 (-1): e = 2.5. Then group 1 has no
  // candidate left (col 7 has c < 0) and the row stops.
  const at::Tensor w = row({5, 6, 3, 2.5, 4, -1, 2, -2});
  const at::Tensor keep = mask_row({1, 1, 0, 0, 1, 1, 0, 0});
  const at::Tensor scores = row({1, 1, 1, 1, 1, 0.5, 1, 1});
  DsnotOptions nm;
  nm.n = 2;
  nm.m = 4;
  const at::Tensor out = dsnot_reprune(w, keep, scores, at::ones({8}), at::ones({8}), nm);
  EXPECT_TRUE(at::equal(out, mask_row({1, 1, 0, 0, 1, 0, 1, 0})));
  // Unstructured, the same row regrows col 2 (3) against col 5: e = 1.5; then no prunable is left.
  EXPECT_TRUE(at::equal(dsnot_reprune(w, keep, scores, at::ones({8}), at::ones({8}), {}),
                        mask_row({1, 1, 1, 0, 1, 0, 0, 0})));
}

struct Layer {
  at::Tensor weight, mean, variance, scores;
};

Layer random_layer(int64_t rows, int64_t cols, uint64_t seed) {
  at::manual_seed(seed);
  Layer l;
  l.weight = at::randn({rows, cols});
  l.mean = at::randn({cols}) * 0.5 + 0.2;  // nonzero means
  l.variance = at::rand({cols}) + 0.05;
  l.scores = wanda_score(l.weight, (l.variance + l.mean * l.mean).sqrt());
  return l;
}

void expect_error_never_grows(const Layer& l, const at::Tensor& before, const at::Tensor& after) {
  const at::Tensor e0 = dsnot_error(l.weight, before, l.mean).abs();
  const at::Tensor e1 = dsnot_error(l.weight, after, l.mean).abs();
  EXPECT_TRUE((e1 <= e0 + 1e-9).all().item<bool>()) << (e1 - e0).max().item<double>();
  // And DSnoT does something: the total error falls clearly.
  EXPECT_LT(e1.sum().item<double>(), 0.5 * e0.sum().item<double>());
}

// DSnoT as the header states it, one row and one cycle at a time, searching all columns afresh
// every cycle (no candidate lists, no merge of N:M groups). Candidate keys in float32 and errors in float64, like the implementation, so that
// the two agree exactly.
at::Tensor sequential_dsnot(const Layer& l, const at::Tensor& keep0, const DsnotOptions& o) {
  const int64_t rows = l.weight.size(0), cols = l.weight.size(1);
  const at::Tensor c_t = (l.weight.to(at::kFloat) * l.mean.to(at::kDouble).to(at::kFloat)).contiguous();
  const at::Tensor inv_t =
      l.variance.to(at::kDouble).clamp_min(1e-12).pow(-o.var_power).to(at::kFloat).contiguous();
  const at::Tensor score_t = l.scores.to(at::kFloat).contiguous();
  const auto c = c_t.accessor<float, 2>();
  const auto inv = inv_t.accessor<float, 1>();
  const auto score = score_t.accessor<float, 2>();
  at::Tensor out = keep0.clone();
  auto keep = out.accessor<bool, 2>();
  const at::Tensor k0_t = keep0.contiguous();
  const auto k0 = k0_t.accessor<bool, 2>();
  const int64_t m = o.m > 0 ? o.m : cols;
  for (int64_t i = 0; i < rows; ++i) {
    double e = 0;
    for (int64_t j = 0; j < cols; ++j)
      if (!k0[i][j]) e += c[i][j];
    const float sign = e > 0 ? 1.0f : (e < 0 ? -1.0f : 0.0f);
    std::vector<bool> used(cols, false);  // regrown or pruned by a swap
    const auto prunable = [&](int64_t k) { return k0[i][k] && !used[k] && c[i][k] * sign <= 0; };
    for (int64_t cycle = 0; cycle < o.cycles && std::abs(e) > o.threshold && sign != 0; ++cycle) {
      int64_t best = -1;
      float best_key = 0;
      for (int64_t j = 0; j < cols; ++j) {
        const float aligned = c[i][j] * sign;
        if (k0[i][j] || used[j] || !(aligned > 0)) continue;
        bool partner = false;
        for (int64_t k = (j / m) * m; k < std::min(cols, (j / m + 1) * m); ++k) partner = partner || prunable(k);
        const float key = -(aligned * inv[j]);
        if (partner && (best < 0 || key < best_key)) {
          best = j;
          best_key = key;
        }
      }
      if (best < 0) break;
      int64_t cut = -1;
      for (int64_t k = (best / m) * m; k < std::min(cols, (best / m + 1) * m); ++k)
        if (prunable(k) && (cut < 0 || score[i][k] < score[i][cut])) cut = k;
      const double after = e - static_cast<double>(c[i][best]) + static_cast<double>(c[i][cut]);
      if (after * sign < 0) break;
      keep[i][best] = true;
      keep[i][cut] = false;
      used[best] = used[cut] = true;
      e = after;
    }
  }
  return out;
}

TEST(Dsnot, MatchesTheSequentialDefinition) {
  for (int64_t cols : {96, 130}) {
    const Layer l = random_layer(48, cols, 25);
    MaskSpec spec;
    spec.sparsity = 0.5;
    spec.group = Group::Row;
    for (int64_t cycles : {1, 3, 50}) {
      DsnotOptions o;
      o.cycles = cycles;
      o.threshold = 0.05;
      const at::Tensor keep = select_mask(l.scores, spec);
      const at::Tensor out = dsnot_reprune(l.weight, keep, l.scores, l.mean, l.variance, o);
      EXPECT_TRUE(at::equal(out, sequential_dsnot(l, keep, o))) << "unstructured " << cols << " " << cycles;
      EXPECT_FALSE(at::equal(out, keep));
      o.n = 2;
      o.m = 4;
      const at::Tensor nm = prune_n_of_m(l.scores, 2, 4);
      EXPECT_TRUE(at::equal(dsnot_reprune(l.weight, nm, l.scores, l.mean, l.variance, o), sequential_dsnot(l, nm, o)))
          << "2:4 " << cols << " " << cycles;
      o.n = 4;
      o.m = 8;
      o.var_power = 0.5;
      const at::Tensor nm8 = prune_n_of_m(l.scores, 4, 8);
      EXPECT_TRUE(at::equal(dsnot_reprune(l.weight, nm8, l.scores, l.mean, l.variance, o), sequential_dsnot(l, nm8, o)))
          << "4:8 " << cols << " " << cycles;
    }
  }
}

TEST(Dsnot, RandomUnstructuredKeepsCountsAndNeverRaisesTheError) {
  const Layer l = random_layer(64, 256, 21);
  for (Group group : {Group::Row, Group::Layer}) {
    MaskSpec spec;
    spec.sparsity = 0.6;
    spec.group = group;
    const at::Tensor keep = select_mask(l.scores, spec);
    DsnotOptions options;
    options.threshold = 0.01;
    const at::Tensor out = dsnot_reprune(l.weight, keep, l.scores, l.mean, l.variance, options);
    EXPECT_EQ(out.scalar_type(), at::kBool);
    EXPECT_TRUE(at::equal(out.sum(1), keep.sum(1))) << group_name(group);
    EXPECT_FALSE(at::equal(out, keep));
    expect_error_never_grows(l, keep, out);
    // At most `cycles` swaps per row: each changes two entries.
    EXPECT_LE((out != keep).sum(1).max().item<int64_t>(), 2 * options.cycles);
  }
}

TEST(Dsnot, RandomTwoFourStaysValid) {
  for (int64_t cols : {256, 258}) {  // 258: a tail group of 2 that prunes 1
    const Layer l = random_layer(64, cols, 22);
    const at::Tensor keep = prune_n_of_m(l.scores, 2, 4);
    DsnotOptions options;
    options.n = 2;
    options.m = 4;
    options.threshold = 0.01;
    const at::Tensor out = dsnot_reprune(l.weight, keep, l.scores, l.mean, l.variance, options);
    const at::Tensor groups = (~out).narrow(1, 0, 256).reshape({64, 64, 4}).sum(-1);
    EXPECT_TRUE((groups == 2).all().item<bool>()) << cols;
    if (cols == 258) EXPECT_TRUE(((~out).narrow(1, 256, 2).sum(1) == 1).all().item<bool>());
    EXPECT_TRUE(at::equal(out.sum(1), keep.sum(1)));
    EXPECT_FALSE(at::equal(out, keep));
    expect_error_never_grows(l, keep, out);
  }
}

TEST(Dsnot, NothingChangesWithAHugeThresholdOrNoCycles) {
  const Layer l = random_layer(32, 128, 23);
  MaskSpec spec;
  spec.group = Group::Row;
  const at::Tensor keep = select_mask(l.scores, spec);
  DsnotOptions huge;
  huge.threshold = 1e30;
  EXPECT_TRUE(at::equal(dsnot_reprune(l.weight, keep, l.scores, l.mean, l.variance, huge), keep));
  DsnotOptions none;
  none.cycles = 0;
  EXPECT_TRUE(at::equal(dsnot_reprune(l.weight, keep, l.scores, l.mean, l.variance, none), keep));
}

TEST(Dsnot, RowsAreIndependentAcrossChunks) {
  // 1100 x 4096 is processed in two row chunks; any split of the rows gives the same rows back.
  const Layer l = random_layer(1100, 4096, 24);
  MaskSpec spec;
  spec.group = Group::Row;
  const at::Tensor keep = select_mask(l.scores, spec);
  const at::Tensor whole = dsnot_reprune(l.weight, keep, l.scores, l.mean, l.variance, {});
  for (int64_t start : {0, 550}) {
    const at::Tensor part = dsnot_reprune(l.weight.narrow(0, start, 550), keep.narrow(0, start, 550),
                                          l.scores.narrow(0, start, 550), l.mean, l.variance, {});
    EXPECT_TRUE(at::equal(part, whole.narrow(0, start, 550))) << start;
  }
  EXPECT_TRUE(at::equal(whole, dsnot_reprune(l.weight, keep, l.scores, l.mean, l.variance, {})));
}

TEST(Dsnot, ValidateNamesTheOption) {
  DsnotOptions o;
  EXPECT_NO_THROW(validate(o));
  o.cycles = -1;
  EXPECT_THROW(validate(o), InputError);
  o = {};
  o.threshold = -0.5;
  EXPECT_THROW(validate(o), InputError);
  o = {};
  o.n = 4;
  o.m = 4;
  EXPECT_THROW(validate(o), InputError);
  o = {};
  o.var_power = -1;
  EXPECT_THROW(validate(o), InputError);
}

}  // namespace
}  // namespace crepe::prune
