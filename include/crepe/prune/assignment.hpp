#pragma once
// Linear sum assignment: given a rows x cols cost matrix, pick at most one column per row and one
// row per column, min(rows, cols) pairs in all, minimising (or maximising) the summed cost.
//
// Shortest augmenting paths with row and column potentials (the Hungarian method in the
// Jonker-Volgenant form): one Dijkstra-like search per row, O(rows^2 * cols) for rows <= cols; a
// matrix with more rows than columns is solved transposed. Costs may be any finite doubles
// (negative included); NaN or infinity is rejected. Exact for integer costs; ties are resolved
// deterministically (the lowest column wins a tie within a search), so the same matrix always gives
// the same assignment.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <vector>

namespace crepe::prune {

// `cost` is row-major, rows * cols values. Returns, for each row, its column, or -1 for a row left
// unassigned (only when rows > cols).
std::vector<int64_t> linear_sum_assignment(const std::vector<double>& cost, int64_t rows, int64_t cols,
                                           bool maximize = false);

// The same on a 2-D tensor of any floating or integer dtype, on any device (solved on the CPU in
// float64). Returns int64 [rows] on the CPU.
at::Tensor linear_sum_assignment(const at::Tensor& cost, bool maximize = false);

// Sum of cost[r][assignment[r]] over the assigned rows.
double assignment_cost(const std::vector<double>& cost, int64_t rows, int64_t cols,
                       const std::vector<int64_t>& assignment);

}  // namespace crepe::prune
