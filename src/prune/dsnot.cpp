#include "crepe/prune/dsnot.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <sstream>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "crepe/core/error.hpp"

namespace crepe::prune {
namespace {

constexpr float kInf = std::numeric_limits<float>::infinity();
// Variances below this count as this (a constant channel would otherwise divide by zero).
constexpr double kVarianceFloor = 1e-12;
// Rows are re-pruned in chunks of about this many weights, which bounds the temporaries.
constexpr int64_t kChunkElements = int64_t{1} << 22;

std::string number(double value) {
  std::ostringstream out;
  out << value;
  return out.str();
}

// The columns of the k smallest entries of each row of v ([rows, cols], k < cols), ties at the
// cut-off going to the lower columns: k-th value, then a prefix count over the tied entries.
at::Tensor exact_smallest_columns(const at::Tensor& v, int64_t k) {
  const at::Tensor threshold = std::get<0>(v.kthvalue(k, 1, /*keepdim=*/true));
  const at::Tensor below = v < threshold;
  const at::Tensor tied = v == threshold;
  const at::Tensor remaining = k - below.sum(1, /*keepdim=*/true);
  const at::Tensor chosen = below.logical_or(tied.logical_and(tied.to(at::kLong).cumsum(1) <= remaining));
  return chosen.nonzero().select(1, 1).view({v.size(0), k});
}

// The k smallest entries of each row of v ([rows, cols], 1 <= k <= cols) in the order (value,
// column). Entries of +inf are "none": which of them fill a row short of finite entries is left
// open, the finite ones are chosen exactly. Returns (values [rows, k], columns [rows, k]).
std::pair<at::Tensor, at::Tensor> smallest_k(const at::Tensor& v, int64_t k) {
  const int64_t rows = v.size(0), cols = v.size(1);
  at::Tensor columns;
  if (k >= cols) {
    columns = at::arange(cols, v.options().dtype(at::kLong)).expand({rows, cols});
  } else {
    // topk is fast but leaves open which of several entries tied at the cut-off it takes: redo
    // the rows where that matters exactly.
    auto top = at::topk(v, k, 1, /*largest=*/false, /*sorted=*/false);
    const at::Tensor& values = std::get<0>(top);
    columns = std::get<1>(top);
    const at::Tensor cut = values.amax(1, /*keepdim=*/true);
    const at::Tensor ambiguous =
        cut.squeeze(1).isfinite().logical_and((v == cut).sum(1) > (values == cut).sum(1));
    if (ambiguous.any().item<bool>()) {
      const at::Tensor r = ambiguous.nonzero().squeeze(1);
      columns.index_copy_(0, r, exact_smallest_columns(v.index_select(0, r), k));
    }
    columns = std::get<0>(columns.sort(1));
  }
  auto sorted = v.gather(1, columns).sort(/*stable=*/true, /*dim=*/1, /*descending=*/false);
  return {std::get<0>(sorted), columns.gather(1, std::get<1>(sorted))};
}

// DSnoT on a chunk of rows; returns the chunk's new keep-mask.
//
// The swaps of a row come in a fixed order: the t-th swap regrows the t-th regrowth candidate
// and prunes the t-th pruning candidate (unstructured), or, for N:M, takes the t-th best regrowth
// candidate over all groups paired with the next pruning candidate of its own group (the merge of
// the groups' lists: what picking the best group head cycle after cycle yields). A row stops at
// its first refused swap, so the accepted swaps are a prefix found with one cumulative sum: no
// loop over cycles at all.
at::Tensor reprune_rows(const at::Tensor& weight, const at::Tensor& keep, const at::Tensor& scores,
                        const at::Tensor& mean, const at::Tensor& inv_var_pow, const DsnotOptions& options) {
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const at::Tensor c = weight.to(at::kFloat) * mean;                             // c_ij = W_ij mu_j
  const at::Tensor error = c.masked_fill(keep, 0).sum(1, false, at::kDouble);    // e_i
  const at::Tensor sign = error.sign();
  const at::Tensor aligned = c * sign.to(at::kFloat).unsqueeze(1);              // > 0: regrowing j cuts |e_i|
  const at::Tensor regrowable = keep.logical_not().logical_and(aligned > 0);
  const at::Tensor prunable = keep.logical_and(aligned <= 0);
  // Ascending keys, +inf = not a candidate: regrowth by descending priority, pruning by score.
  at::Tensor regrow_key = (-(aligned * inv_var_pow)).masked_fill(regrowable.logical_not(), kInf);
  at::Tensor prune_key = scores.to(at::kFloat).masked_fill(prunable.logical_not(), kInf);

  int64_t width = cols;  // columns, padded to whole groups for N:M
  at::Tensor order_key, regrow_col, prune_col;
  if (options.m == 0) {
    const int64_t k = std::min(options.cycles, cols);
    auto [rk, rc] = smallest_k(regrow_key, k);
    auto [pk, pc] = smallest_k(prune_key, k);
    order_key = rk.masked_fill(pk == kInf, kInf);  // the t-th swap needs both t-th candidates
    regrow_col = rc;
    prune_col = pc;
  } else {
    const int64_t m = options.m, groups = (cols + m - 1) / m;
    width = groups * m;
    if (width > cols) {
      regrow_key = at::constant_pad_nd(regrow_key, {0, width - cols}, kInf);
      prune_key = at::constant_pad_nd(prune_key, {0, width - cols}, kInf);
    }
    // Each group's two lists; their t-th entries pair up while both exist.
    auto [rk, rpos] = regrow_key.view({rows * groups, m}).sort(/*stable=*/true, 1, false);
    auto [pk, ppos] = prune_key.view({rows * groups, m}).sort(/*stable=*/true, 1, false);
    const at::Tensor base = (at::arange(groups, rpos.options()) * m).view({1, groups, 1});
    const at::Tensor pair_key = rk.masked_fill(pk == kInf, kInf).view({rows, width});
    const at::Tensor pair_regrow = (rpos.view({rows, groups, m}) + base).view({rows, width});
    const at::Tensor pair_prune = (ppos.view({rows, groups, m}) + base).view({rows, width});
    // Merged over the groups: ascending key, ties to the lower group, then the earlier pair.
    auto [key, position] = smallest_k(pair_key, std::min(options.cycles, width));
    order_key = key;
    regrow_col = pair_regrow.gather(1, position);
    prune_col = pair_prune.gather(1, position);
  }

  const at::Tensor valid = order_key != kInf;
  const at::Tensor c_wide = width > cols ? at::constant_pad_nd(c, {0, width - cols}, 0) : c;
  const at::Tensor delta = c_wide.gather(1, regrow_col).to(at::kDouble) - c_wide.gather(1, prune_col).to(at::kDouble);
  const at::Tensor after = error.unsqueeze(1) - delta.cumsum(1);  // e after the t-th swap
  const at::Tensor before = at::cat({error.unsqueeze(1), after.narrow(1, 0, after.size(1) - 1)}, 1);
  const at::Tensor ok = valid.logical_and(before.abs() > options.threshold)
                            .logical_and(after * sign.unsqueeze(1) >= 0);  // no overshoot (0 allowed)
  const at::Tensor accepted = ok.to(at::kLong).cumprod(1).to(at::kBool);   // up to the first refusal
  // Within a row the regrowth columns are distinct, and so are the pruning columns.
  const auto flags = keep.options().dtype(at::kBool);
  const at::Tensor grow = at::zeros({rows, width}, flags).scatter_(1, regrow_col, accepted);
  const at::Tensor cut = at::zeros({rows, width}, flags).scatter_(1, prune_col, accepted);
  return keep.logical_or(grow.narrow(1, 0, cols)).logical_and(cut.narrow(1, 0, cols).logical_not());
}

}  // namespace

void validate(const DsnotOptions& o) {
  require(o.cycles >= 0, "--dsnot-cycles", "must be a finite number >= 0, got " + std::to_string(o.cycles));
  require(std::isfinite(o.threshold) && o.threshold >= 0, "--dsnot-threshold",
          "must be a finite number >= 0, got " + number(o.threshold));
  require(std::isfinite(o.var_power) && o.var_power >= 0, "--dsnot-var-power",
          "must be a finite number >= 0, got " + number(o.var_power));
  require((o.n == 0 && o.m == 0) || (o.n > 0 && o.m > 0 && o.n < o.m), "--pattern",
          "DSnoT needs unstructured or N:M with 0 < N < M, got " + std::to_string(o.n) + ":" + std::to_string(o.m));
}

at::Tensor dsnot_error(const at::Tensor& weight, const at::Tensor& keep_mask, const at::Tensor& mean) {
  TORCH_CHECK(weight.dim() == 2 && keep_mask.sizes() == weight.sizes(), "dsnot_error: weight and mask shapes differ");
  TORCH_CHECK(mean.numel() == weight.size(1), "dsnot_error: mean has ", mean.numel(), " entries for ", weight.size(1),
              " columns");
  const at::Tensor c = weight.to(at::kDouble) * mean.to(weight.device(), at::kDouble).reshape({1, -1});
  return c.masked_fill(keep_mask.to(at::kBool), 0).sum(1);
}

at::Tensor dsnot_reprune(const at::Tensor& weight, const at::Tensor& keep_mask, const at::Tensor& scores,
                         const at::Tensor& mean, const at::Tensor& variance, const DsnotOptions& options) {
  validate(options);
  TORCH_CHECK(weight.dim() == 2, "dsnot_reprune expects a 2-D weight");
  TORCH_CHECK(keep_mask.sizes() == weight.sizes() && scores.sizes() == weight.sizes(),
              "dsnot_reprune: weight, mask and scores must have the same shape");
  const int64_t rows = weight.size(0), cols = weight.size(1);
  TORCH_CHECK(mean.numel() == cols && variance.numel() == cols, "dsnot_reprune: mean and variance need ", cols,
              " entries");
  const at::Tensor keep = keep_mask.to(weight.device(), at::kBool);
  if (options.cycles == 0 || rows == 0 || cols == 0) return keep.clone();
  // Candidate keys are float32 (like the scores), errors float64.
  const at::Tensor mu = mean.to(weight.device(), at::kFloat).reshape({1, cols});
  const at::Tensor inv_var_pow = variance.to(weight.device(), at::kDouble)
                                     .reshape({1, cols})
                                     .clamp_min(kVarianceFloor)
                                     .pow(-options.var_power)
                                     .to(at::kFloat);

  const int64_t chunk = std::max<int64_t>(1, kChunkElements / cols);
  std::vector<at::Tensor> parts;
  for (int64_t start = 0; start < rows; start += chunk) {
    const int64_t len = std::min(chunk, rows - start);
    parts.push_back(reprune_rows(weight.narrow(0, start, len), keep.narrow(0, start, len),
                                 scores.narrow(0, start, len).to(weight.device()), mu, inv_var_pow, options));
  }
  return parts.size() == 1 ? parts[0] : at::cat(parts, 0);
}

}  // namespace crepe::prune
