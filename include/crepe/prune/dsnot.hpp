#pragma once
// DSnoT ("Dynamic Sparse No Training"): training-free re-pruning of an initial mask.
//
// W is [out, in], keep-masks are bool with true = kept (see mask.hpp). With mu_j the expected input
// summed over one calibration sequence (E[x_j] times the tokens per sequence, DSnoT's unit; the
// pipeline passes InputStats::sequence_sum) and c_ij = W_ij mu_j, the expected output error of row i
// under a mask, summed over a sequence, is
//   e_i = sum_{j pruned} c_ij        (dense output minus pruned output, in expectation).
// Each cycle, every row whose |e_i| is still above `threshold` tries one swap, all rows at once:
//   regrow  the pruned weight j (pruned in the initial mask, not regrown yet) with sign(c_ij) =
//           sign(e_i) that maximises |c_ij| / Var[x_j]^var_power — the largest cut of the error for
//           the least added variance (DSnoT's criterion);
//   prune   the kept weight k (kept in the initial mask, not pruned yet) with c_ik of the opposite
//           sign or zero, so that its removal does not move e_i away from zero, that has the lowest
//           pruning score `scores` (the metric that made the initial mask);
//   accept  when the new error e_i - c_ij + c_ik keeps the sign of e_i or is exactly zero (no
//           overshoot), so |e_i| strictly falls; a row whose swap is refused, or that has no
//           candidate left, stops for good (as DSnoT's loop does).
// N:M (m > 0): the pruned weight is chosen in the regrown weight's own group of m consecutive
// columns (the tail group included, see mask.hpp), so every group keeps its count; the regrown
// weight is the best one among the groups that have a prunable weight of the right sign.
// Every accepted swap regrows one pruned weight and prunes one kept weight: the kept count of each
// row (and of each N:M group) never changes, and |e_i| never increases.
// Ties go to the lower column (and, across N:M groups, to the lower group). Candidate keys are
// float32 (like the scores), errors float64; variances below 1e-12 count as 1e-12.
//
// Where DSnoT's code differs: its N:M loop prunes the lowest-score kept weight of the group
// whatever its sign (the sign test then only refuses the swap), its swaps may not land exactly on
// e = 0 (sign 0 differs from the initial sign). Like DSnoT, crepe takes Var[x_j] within each
// calibration sequence, averaged over them (InputStats::sequence_variance), and measures e over one
// sequence, so `threshold` means what DSnoT's --update_threshold means (at a given sequence length:
// 0.1 at 2048 tokens asks for a per-token error below 0.1 / 2048).
//
// Since a row's candidates only ever advance down fixed lists, its t-th swap is known in advance
// (for N:M: the merge of the groups' lists by priority), and the accepted swaps are a prefix found
// with one cumulative sum: all rows and all cycles at once, in row chunks that bound memory, with
// no loop over cycles. Cost O(rows * in) (plus a sort of each N:M group).
#include <ATen/core/Tensor.h>

#include <cstdint>

namespace crepe::prune {

struct DsnotOptions {
  int64_t cycles = 50;      // --dsnot-cycles: at most this many swaps per row; >= 0
  double threshold = 0.1;   // --dsnot-threshold: a row stops once |e_i| <= threshold (per sequence); >= 0
  int64_t n = 0, m = 0;     // N:M pattern of the initial mask (0, 0 = unstructured)
  double var_power = 1.0;   // regrowth divides |c_ij| by Var[x_j]^var_power (DSnoT's default 1)
};
// InputError naming the option when out of range.
void validate(const DsnotOptions& options);

// e_i = sum_{j pruned} W_ij mean_j for every row, float64 [out].
at::Tensor dsnot_error(const at::Tensor& weight, const at::Tensor& keep_mask, const at::Tensor& mean);

// The re-pruned keep-mask (bool, shaped like the weight, on its device). weight [out, in] any
// floating dtype; keep_mask bool [out, in]; scores [out, in] (higher = more important); mean and
// variance [in] (InputStats::sequence_sum(), InputStats::sequence_variance()).
at::Tensor dsnot_reprune(const at::Tensor& weight, const at::Tensor& keep_mask, const at::Tensor& scores,
                         const at::Tensor& mean, const at::Tensor& variance, const DsnotOptions& options = {});

}  // namespace crepe::prune
