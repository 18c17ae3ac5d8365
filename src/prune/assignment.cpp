#include "crepe/prune/assignment.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>

namespace crepe::prune {
namespace {

// Minimum-cost assignment of every row of a rows x cols matrix (rows <= cols), row-major.
//
// Rows enter one at a time. For each new row a shortest path (in reduced costs
// cost[i][j] - u[i] - v[j], which the potentials keep non-negative along matched edges) is grown
// over the columns until it reaches a free column; the potentials are then updated so that the
// matched edges stay tight, and the path is flipped. Indices below are 1-based for the columns, with
// column 0 a virtual column that holds the entering row, so that the search has a uniform start.
std::vector<int64_t> solve_rows_le_cols(const std::vector<double>& cost, int64_t rows, int64_t cols) {
  const double inf = std::numeric_limits<double>::infinity();
  std::vector<double> row_potential(static_cast<size_t>(rows) + 1, 0.0);
  std::vector<double> col_potential(static_cast<size_t>(cols) + 1, 0.0);
  std::vector<int64_t> owner(static_cast<size_t>(cols) + 1, 0);  // owner[j]: 1-based row on column j, 0 = free
  std::vector<int64_t> came_from(static_cast<size_t>(cols) + 1, 0);  // previous column on the shortest path
  std::vector<double> distance(static_cast<size_t>(cols) + 1);
  std::vector<char> settled(static_cast<size_t>(cols) + 1);

  for (int64_t entering = 1; entering <= rows; ++entering) {
    owner[0] = entering;
    int64_t current = 0;  // the column whose owner we expand next
    std::fill(distance.begin(), distance.end(), inf);
    std::fill(settled.begin(), settled.end(), 0);
    do {
      settled[current] = 1;
      const int64_t row = owner[current];
      const double* costs = cost.data() + (row - 1) * cols;
      const double base = row_potential[row];
      double step = inf;
      int64_t next = 0;
      for (int64_t j = 1; j <= cols; ++j) {
        if (settled[j]) continue;
        const double reduced = costs[j - 1] - base - col_potential[j];
        if (reduced < distance[j]) {
          distance[j] = reduced;
          came_from[j] = current;
        }
        if (distance[j] < step) {  // strict: the lowest column wins a tie
          step = distance[j];
          next = j;
        }
      }
      for (int64_t j = 0; j <= cols; ++j) {
        if (settled[j]) {
          row_potential[owner[j]] += step;
          col_potential[j] -= step;
        } else {
          distance[j] -= step;
        }
      }
      current = next;
    } while (owner[current] != 0);
    // Flip the augmenting path back to the virtual column.
    while (current != 0) {
      const int64_t previous = came_from[current];
      owner[current] = owner[previous];
      current = previous;
    }
  }

  std::vector<int64_t> assignment(static_cast<size_t>(rows), -1);
  for (int64_t j = 1; j <= cols; ++j) {
    if (owner[j] != 0) assignment[owner[j] - 1] = j - 1;
  }
  return assignment;
}

}  // namespace

std::vector<int64_t> linear_sum_assignment(const std::vector<double>& cost, int64_t rows, int64_t cols,
                                           bool maximize) {
  TORCH_CHECK(rows >= 0 && cols >= 0, "linear_sum_assignment: negative shape");
  TORCH_CHECK(static_cast<int64_t>(cost.size()) == rows * cols, "linear_sum_assignment: expected ", rows * cols,
              " costs, got ", cost.size());
  for (double c : cost) TORCH_CHECK(std::isfinite(c), "linear_sum_assignment: costs must be finite");
  if (rows == 0 || cols == 0) return std::vector<int64_t>(static_cast<size_t>(rows), -1);

  const double sign = maximize ? -1.0 : 1.0;
  if (rows <= cols) {
    std::vector<double> work(cost.size());
    for (size_t k = 0; k < cost.size(); ++k) work[k] = sign * cost[k];
    return solve_rows_le_cols(work, rows, cols);
  }
  // More rows than columns: assign every column to a row in the transposed problem.
  std::vector<double> transposed(cost.size());
  for (int64_t r = 0; r < rows; ++r)
    for (int64_t c = 0; c < cols; ++c) transposed[c * rows + r] = sign * cost[r * cols + c];
  const std::vector<int64_t> col_to_row = solve_rows_le_cols(transposed, cols, rows);
  std::vector<int64_t> assignment(static_cast<size_t>(rows), -1);
  for (int64_t c = 0; c < cols; ++c) assignment[col_to_row[c]] = c;
  return assignment;
}

at::Tensor linear_sum_assignment(const at::Tensor& cost, bool maximize) {
  TORCH_CHECK(cost.dim() == 2, "linear_sum_assignment expects a 2-D cost matrix");
  const at::Tensor c = cost.to(at::kCPU, at::kDouble).contiguous();
  const int64_t rows = c.size(0), cols = c.size(1);
  const double* data = c.data_ptr<double>();
  const std::vector<double> values(data, data + rows * cols);
  const std::vector<int64_t> assignment = linear_sum_assignment(values, rows, cols, maximize);
  at::Tensor out = at::empty({rows}, at::kLong);
  std::copy(assignment.begin(), assignment.end(), out.data_ptr<int64_t>());
  return out;
}

double assignment_cost(const std::vector<double>& cost, int64_t rows, int64_t cols,
                       const std::vector<int64_t>& assignment) {
  TORCH_CHECK(static_cast<int64_t>(assignment.size()) == rows, "assignment_cost: one entry per row expected");
  double total = 0.0;
  for (int64_t r = 0; r < rows; ++r) {
    const int64_t c = assignment[r];
    if (c < 0) continue;
    TORCH_CHECK(c < cols, "assignment_cost: column out of range");
    total += cost[r * cols + c];
  }
  return total;
}

}  // namespace crepe::prune
