#pragma once
// DSnoT ("Dynamic Sparse No Training"): training-free re-pruning of an initial mask.
//
// W is [out, in], keep-masks are bool with true = kept (see mask.hpp). With mu_j the expected input
// summed over one calibration sequence (E[x_j] times the tokens per sequence, DSnoT's unit; the
// pipeline passes InputStats::sequence_sum) and c_ij = W_ij mu_j, the expected output error of row i
// under a mask, summed over a sequence, is
//   e_i = sum_{j pruned} c_ij        (dense output minus pruned output, in expectation).
// Each cycle, every row whose |e_i| is still above `threshold` tries one swap, all rows at once:
//   regrow  the next pruned weight j (of the initial mask) with sign(c_ij) = sign(e_i), by
//           descending |c_ij| / Var[x_j]^var_power: the largest cut of the error for the least
//           added variance (DSnoT's criterion);
//   prune   the next kept weight k (of the initial mask) with c_ik of the opposite sign or zero, so
//           that its removal does not push e_i away from zero, by ascending `scores`. Unstructured,
//           the pipeline passes Wanda's |W|·||x|| there, as DSnoT prunes by it whatever made the
//           mask; N:M, the metric that made the mask, as DSnoT. N:M (m > 0) takes the pruned weight
//           from the regrown weight's own group of m consecutive columns (the tail group included,
//           see mask.hpp), so every group keeps its count; the regrown weight is the best one among
//           the groups that have a prunable weight of the right sign;
//   accept  when the new error e_i - c_ij + c_ik keeps the sign of e_i or is exactly zero (no
//           overshoot), so |e_i| strictly falls.
// A refused swap, or candidates used up, stops the row for good; so does |e_i| <= threshold. Every
// swap regrows one pruned weight and prunes one kept weight: the kept count of each row (and of
// each N:M group) never changes, and |e_i| never increases. Ties go to the lower column (and,
// across N:M groups, to the lower group). Candidate keys are float32 (like the scores), errors
// float64; variances below 1e-12 count as 1e-12.
//
// Where crepe differs from DSnoT's code, on purpose:
// - Unstructured, DSnoT's loop as it runs by default (its --without_same_sign is declared with
//   type=bool, so it is always on) takes every swap, overshoots included, and draws from the other
//   sign's candidates after a flip. Measured on stories260k (crepe, 60%, perplexity 76.9 unpruned
//   by DSnoT): that gave 102 re-pruning the attention projections and 509 re-pruning every layer,
//   where stopping at the overshoot, as DSnoT's N:M loop does, gives 65.3 and 69.5 (README).
// - N:M, DSnoT prunes the lowest-score kept weight of the group whatever its sign, which can raise
//   |e_i|, and refuses a swap that lands exactly on e = 0.
// - DSnoT's cursors walk on into other candidates once a row's are used up; crepe stops the row.
// Like DSnoT, crepe takes Var[x_j] within each calibration sequence, averaged over them
// (InputStats::sequence_variance), and measures e over one sequence, so `threshold` means what
// DSnoT's --update_threshold means (at a given sequence length: 0.1 at 2048 tokens asks for a
// per-token error below 0.1 / 2048). Which layers are re-pruned at all is the pipeline's choice
// (DsnotOptions::skip; DSnoT's default re-prunes the attention projections only).
//
// Cost: O(rows * in) to build the candidate lists (plus a sort of each N:M group), then at most
// `cycles` steps over all rows at once, in row chunks that bound memory.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>

namespace crepe::prune {

// Which linear layers keep their initial mask (DSnoT's --skip_layer, whose default skips the MLP).
enum class DsnotSkip { None, Mlp, Attention };
DsnotSkip parse_dsnot_skip(const std::string& name, const std::string& option = "--dsnot-skip");
const char* dsnot_skip_name(DsnotSkip skip);

struct DsnotOptions {
  int64_t cycles = 50;      // --dsnot-cycles: at most this many swaps per row; >= 0
  double threshold = 0.1;   // --dsnot-threshold: a row stops once |e_i| <= threshold (per sequence); >= 0
  int64_t n = 0, m = 0;     // N:M pattern of the initial mask (0, 0 = unstructured)
  double var_power = 1.0;   // regrowth divides |c_ij| by Var[x_j]^var_power (DSnoT's default 1)
  DsnotSkip skip = DsnotSkip::Mlp;  // --dsnot-skip: read by the pipeline, not by dsnot_reprune
};
// InputError naming the option when out of range.
void validate(const DsnotOptions& options);

// e_i = sum_{j pruned} W_ij mean_j for every row, float64 [out].
at::Tensor dsnot_error(const at::Tensor& weight, const at::Tensor& keep_mask, const at::Tensor& mean);

// The re-pruned keep-mask (bool, shaped like the weight, on its device). weight [out, in] any
// floating dtype; keep_mask bool [out, in]; scores [out, in], the pruning order (higher = more
// important; see above for which); mean and variance [in] (InputStats::sequence_sum(),
// InputStats::sequence_variance()).
at::Tensor dsnot_reprune(const at::Tensor& weight, const at::Tensor& keep_mask, const at::Tensor& scores,
                         const at::Tensor& mean, const at::Tensor& variance, const DsnotOptions& options = {});

}  // namespace crepe::prune
