// Linear sum assignment: optimal against brute force over all permutations (n = 1..7, many seeds,
// real and integer costs with ties, negative values), minimise and maximise, rectangular shapes,
// degenerate inputs, and the tensor overload.
#include <ATen/ATen.h>
#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <numeric>
#include <random>
#include <vector>

#include "crepe/prune/assignment.hpp"

namespace crepe::prune {
namespace {

// Best total over every way of giving each of the min(rows, cols) smaller-side items a distinct
// partner on the larger side.
double brute_force(const std::vector<double>& cost, int64_t rows, int64_t cols, bool maximize) {
  const bool wide = rows <= cols;
  const int64_t small = wide ? rows : cols, large = wide ? cols : rows;
  std::vector<int64_t> order(static_cast<size_t>(large));
  std::iota(order.begin(), order.end(), 0);
  double best = maximize ? -std::numeric_limits<double>::infinity() : std::numeric_limits<double>::infinity();
  do {
    double total = 0.0;
    for (int64_t k = 0; k < small; ++k) total += wide ? cost[k * cols + order[k]] : cost[order[k] * cols + k];
    best = maximize ? std::max(best, total) : std::min(best, total);
  } while (std::next_permutation(order.begin(), order.end()));
  return best;
}

// Every row has at most one column, every column at most one row, min(rows, cols) pairs in all.
void expect_valid(const std::vector<int64_t>& assignment, int64_t rows, int64_t cols) {
  ASSERT_EQ(static_cast<int64_t>(assignment.size()), rows);
  std::vector<int> used(static_cast<size_t>(cols), 0);
  int64_t assigned = 0;
  for (int64_t c : assignment) {
    if (c < 0) continue;
    ASSERT_LT(c, cols);
    EXPECT_EQ(used[c]++, 0) << "column " << c << " used twice";
    ++assigned;
  }
  EXPECT_EQ(assigned, std::min(rows, cols));
}

std::vector<double> random_real(std::mt19937& rng, int64_t count, double lo, double hi) {
  std::uniform_real_distribution<double> dist(lo, hi);
  std::vector<double> out(static_cast<size_t>(count));
  for (double& v : out) v = dist(rng);
  return out;
}

std::vector<double> random_int(std::mt19937& rng, int64_t count, int lo, int hi) {
  std::uniform_int_distribution<int> dist(lo, hi);
  std::vector<double> out(static_cast<size_t>(count));
  for (double& v : out) v = dist(rng);
  return out;
}

void check_against_brute_force(const std::vector<double>& cost, int64_t rows, int64_t cols, double tolerance) {
  for (bool maximize : {false, true}) {
    const std::vector<int64_t> a = linear_sum_assignment(cost, rows, cols, maximize);
    expect_valid(a, rows, cols);
    EXPECT_NEAR(assignment_cost(cost, rows, cols, a), brute_force(cost, rows, cols, maximize), tolerance)
        << rows << "x" << cols << (maximize ? " maximize" : " minimize");
  }
}

TEST(Assignment, HandChecked) {
  // Rows 0, 1, 2 -> columns 1, 0, 2: 1 + 2 + 2 = 5 is the minimum; the maximum is 3 + 5 + 3 = 11.
  const std::vector<double> cost = {4, 1, 3, 2, 0, 5, 3, 2, 2};
  EXPECT_EQ(linear_sum_assignment(cost, 3, 3), (std::vector<int64_t>{1, 0, 2}));
  EXPECT_EQ(assignment_cost(cost, 3, 3, linear_sum_assignment(cost, 3, 3)), 5.0);
  EXPECT_EQ(assignment_cost(cost, 3, 3, linear_sum_assignment(cost, 3, 3, true)), 11.0);
}

TEST(Assignment, RealCostsMatchBruteForce) {
  std::mt19937 rng(20240501);
  for (int64_t n = 1; n <= 7; ++n) {
    const int seeds = n <= 5 ? 200 : (n == 6 ? 60 : 20);
    for (int seed = 0; seed < seeds; ++seed) check_against_brute_force(random_real(rng, n * n, -5.0, 5.0), n, n, 1e-9);
  }
}

TEST(Assignment, IntegerCostsWithTiesAreExact) {
  // Few distinct values: many optimal assignments, many tied reduced costs along the way.
  std::mt19937 rng(7);
  for (int64_t n = 1; n <= 7; ++n) {
    const int seeds = n <= 5 ? 200 : (n == 6 ? 60 : 20);
    for (int seed = 0; seed < seeds; ++seed) {
      check_against_brute_force(random_int(rng, n * n, 0, 2), n, n, 0.0);
      check_against_brute_force(random_int(rng, n * n, -3, 3), n, n, 0.0);
    }
  }
}

TEST(Assignment, NegativeAndLargeMagnitudeCosts) {
  std::mt19937 rng(99);
  for (int64_t n = 1; n <= 7; ++n) {
    for (int seed = 0; seed < 20; ++seed) {
      check_against_brute_force(random_real(rng, n * n, -1000.0, -900.0), n, n, 1e-7);
      check_against_brute_force(random_int(rng, n * n, -1000000, 1000000), n, n, 0.0);
    }
  }
}

TEST(Assignment, EqualRowsAndConstantMatrices) {
  for (int64_t n = 1; n <= 7; ++n) {
    // Every row the same: every assignment costs the sum of the row.
    std::vector<double> equal_rows(static_cast<size_t>(n * n));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < n; ++c) equal_rows[r * n + c] = static_cast<double>((c * 7) % 5) - 2.0;
    check_against_brute_force(equal_rows, n, n, 0.0);
    // Every column the same.
    std::vector<double> equal_cols(static_cast<size_t>(n * n));
    for (int64_t r = 0; r < n; ++r)
      for (int64_t c = 0; c < n; ++c) equal_cols[r * n + c] = static_cast<double>(r) * -1.5;
    check_against_brute_force(equal_cols, n, n, 1e-12);
    const std::vector<double> constant(static_cast<size_t>(n * n), -4.0);
    check_against_brute_force(constant, n, n, 0.0);
    // Deterministic: the same matrix, the same answer.
    EXPECT_EQ(linear_sum_assignment(constant, n, n), linear_sum_assignment(constant, n, n));
  }
}

TEST(Assignment, RectangularMatchesBruteForce) {
  std::mt19937 rng(3);
  for (int64_t rows = 1; rows <= 6; ++rows) {
    for (int64_t cols = 1; cols <= 6; ++cols) {
      for (int seed = 0; seed < 10; ++seed) {
        check_against_brute_force(random_real(rng, rows * cols, -2.0, 3.0), rows, cols, 1e-9);
        check_against_brute_force(random_int(rng, rows * cols, -1, 1), rows, cols, 0.0);
      }
    }
  }
}

TEST(Assignment, LargeMatrixIsPairwiseOptimal) {
  // No brute force at n = 150: check that no exchange of two rows' columns improves the total.
  std::mt19937 rng(5);
  const int64_t n = 150;
  for (bool integer : {false, true}) {
    const std::vector<double> cost = integer ? random_int(rng, n * n, -4, 4) : random_real(rng, n * n, -1.0, 1.0);
    const std::vector<int64_t> a = linear_sum_assignment(cost, n, n);
    expect_valid(a, n, n);
    for (int64_t i = 0; i < n; ++i) {
      for (int64_t j = i + 1; j < n; ++j) {
        const double now = cost[i * n + a[i]] + cost[j * n + a[j]];
        const double swapped = cost[i * n + a[j]] + cost[j * n + a[i]];
        ASSERT_LE(now, swapped + 1e-9) << i << " " << j;
      }
    }
    std::vector<int64_t> identity(static_cast<size_t>(n));
    std::iota(identity.begin(), identity.end(), 0);
    EXPECT_LE(assignment_cost(cost, n, n, a), assignment_cost(cost, n, n, identity));
  }
}

TEST(Assignment, TensorOverloadAgrees) {
  at::manual_seed(1);
  const at::Tensor cost = at::randn({6, 6}, at::kFloat);
  const at::Tensor c = cost.to(at::kDouble).contiguous();
  const std::vector<double> values(c.data_ptr<double>(), c.data_ptr<double>() + 36);
  for (bool maximize : {false, true}) {
    const at::Tensor a = linear_sum_assignment(cost, maximize);
    ASSERT_EQ(a.scalar_type(), at::kLong);
    const std::vector<int64_t> expected = linear_sum_assignment(values, 6, 6, maximize);
    EXPECT_EQ(std::vector<int64_t>(a.data_ptr<int64_t>(), a.data_ptr<int64_t>() + 6), expected);
  }
  // Integer dtype and a rectangular shape.
  const at::Tensor wide = at::tensor({3, 1, 2, 9, 9, 0}, at::kInt).view({2, 3});
  const at::Tensor a = linear_sum_assignment(wide);
  EXPECT_EQ(a[0].item<int64_t>(), 1);
  EXPECT_EQ(a[1].item<int64_t>(), 2);
}

TEST(Assignment, DegenerateInputs) {
  EXPECT_TRUE(linear_sum_assignment(std::vector<double>{}, 0, 0).empty());
  EXPECT_EQ(linear_sum_assignment(std::vector<double>{}, 2, 0), (std::vector<int64_t>{-1, -1}));
  EXPECT_THROW(linear_sum_assignment(std::vector<double>{1.0, std::nan("")}, 1, 2), c10::Error);
  EXPECT_THROW(linear_sum_assignment(std::vector<double>{1.0, std::numeric_limits<double>::infinity()}, 2, 1),
               c10::Error);
  EXPECT_THROW(linear_sum_assignment(std::vector<double>{1.0, 2.0, 3.0}, 2, 2), c10::Error);
}

}  // namespace
}  // namespace crepe::prune
