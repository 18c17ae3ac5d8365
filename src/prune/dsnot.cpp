#include "crepe/prune/dsnot.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cmath>
#include <limits>
#include <optional>
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

// A row's candidate list: its first entries (ascending key, then column; +inf = no candidate) and
// a cursor per row into it. For N:M the entries are swaps: `col` regrows, `partner` prunes.
struct CandidateList {
  at::Tensor key, col, partner;  // [rows, k]; partner undefined for single columns
  at::Tensor next;               // [rows] int64: the entry to take next

  CandidateList(at::Tensor keys, at::Tensor columns, at::Tensor partners = {})
      : key(std::move(keys)), col(std::move(columns)), partner(std::move(partners)),
        next(at::zeros({key.size(0)}, col.options())) {}
  // The k best of `keys` ([rows, cols]).
  static CandidateList best(const at::Tensor& keys, int64_t k) {
    auto [key, col] = smallest_k(keys, k);
    return {key, col};
  }

  struct Head {
    at::Tensor key, col, partner;  // [rows]; key +inf once the list is used up
  };
  Head head() const {
    const at::Tensor cursor = next.clamp_max(key.size(1) - 1).unsqueeze(1);
    auto at_cursor = [&](const at::Tensor& t) { return t.defined() ? t.gather(1, cursor).squeeze(1) : t; };
    return {at_cursor(key).masked_fill(next >= key.size(1), kInf), at_cursor(col), at_cursor(partner)};
  }
  void advance(const at::Tensor& rows) { next += rows.to(at::kLong); }
};

// Sets flags[i][col[i]] where set[i], leaving the other entries as they are.
void set_where(at::Tensor& flags, const at::Tensor& col, const at::Tensor& set) {
  const at::Tensor index = col.unsqueeze(1);
  flags.scatter_(1, index, flags.gather(1, index).logical_or(set.unsqueeze(1)));
}

// The N:M swaps of each row in the order they are tried: each group pairs its regrowth candidates
// (pruned, c of the error's sign, most |c| / Var^p first) with its pruning candidates (kept, c of
// the other sign or zero, lowest score first) while both last; the groups' pairs merged by the
// regrowth key (ties to the lower group, then the earlier pair). This is what taking the best
// regrowth among the groups that still have a partner, cycle after cycle, yields.
CandidateList n_of_m_swaps(const at::Tensor& regrow_key, const at::Tensor& prune_key, int64_t m, int64_t cycles) {
  const int64_t rows = regrow_key.size(0), cols = regrow_key.size(1);
  const int64_t groups = (cols + m - 1) / m, width = groups * m;
  auto padded = [&](const at::Tensor& t) { return width > cols ? at::constant_pad_nd(t, {0, width - cols}, kInf) : t; };
  auto [rk, rpos] = padded(regrow_key).view({rows * groups, m}).sort(/*stable=*/true, 1, false);
  auto [pk, ppos] = padded(prune_key).view({rows * groups, m}).sort(/*stable=*/true, 1, false);
  const at::Tensor base = (at::arange(groups, rpos.options()) * m).view({1, groups, 1});
  const at::Tensor pair_key = rk.masked_fill(pk == kInf, kInf).view({rows, width});
  const at::Tensor pair_regrow = (rpos.view({rows, groups, m}) + base).view({rows, width});
  const at::Tensor pair_prune = (ppos.view({rows, groups, m}) + base).view({rows, width});
  auto [key, position] = smallest_k(pair_key, std::min(cycles, width));
  return {key, pair_regrow.gather(1, position), pair_prune.gather(1, position)};
}

// DSnoT on a chunk of rows, one cycle at a time for all rows at once; returns the chunk's new
// keep-mask. See the header for the rules.
at::Tensor reprune_rows(const at::Tensor& weight, const at::Tensor& keep, const at::Tensor& scores,
                        const at::Tensor& mean, const at::Tensor& inv_var_pow, const DsnotOptions& options) {
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const at::Tensor c = weight.to(at::kFloat) * mean;  // c_ij = W_ij mu_j
  at::Tensor error = c.masked_fill(keep, 0).sum(1, false, at::kDouble);  // e_i
  const at::Tensor sign = error.sign();
  // A row's error keeps its sign (a swap that would flip it is refused), so its candidates are
  // fixed from the start: regrow pruned weights with c of e's sign, most |c| / Var^p first; prune
  // kept weights with c of the other sign or zero, lowest score first.
  const at::Tensor aligned = c * sign.to(at::kFloat).unsqueeze(1);
  const at::Tensor regrow_key = (-(aligned * inv_var_pow)).masked_fill(keep.logical_or(aligned <= 0), kInf);
  const at::Tensor prune_key = scores.to(at::kFloat).masked_fill(keep.logical_not().logical_or(aligned > 0), kInf);
  const int64_t k = std::min(options.cycles, cols);
  std::optional<CandidateList> regrow, prune;  // unstructured
  std::optional<CandidateList> swaps;          // N:M: (regrow, prune) pairs
  if (options.m > 0) {
    swaps.emplace(n_of_m_swaps(regrow_key, prune_key, options.m, options.cycles));
  } else {
    regrow.emplace(CandidateList::best(regrow_key, k));
    prune.emplace(CandidateList::best(prune_key, k));
  }

  const int64_t width = options.m > 0 ? (cols + options.m - 1) / options.m * options.m : cols;  // N:M: whole groups
  const at::Tensor c_wide = width > cols ? at::constant_pad_nd(c, {0, width - cols}, 0) : c;
  const auto flags = keep.options().dtype(at::kBool);
  at::Tensor grown = at::zeros({rows, width}, flags), cut = at::zeros({rows, width}, flags);
  at::Tensor active = at::ones({rows}, flags);
  for (int64_t cycle = 0; cycle < options.cycles; ++cycle) {
    active = active.logical_and(error.abs() > options.threshold);
    if (!active.any().item<bool>()) break;
    at::Tensor found, regrow_col, prune_col;
    if (swaps) {
      const CandidateList::Head swap = swaps->head();
      found = swap.key != kInf;
      regrow_col = swap.col;
      prune_col = swap.partner;
    } else {
      const CandidateList::Head r = regrow->head(), p = prune->head();
      found = (r.key != kInf).logical_and(p.key != kInf);
      regrow_col = r.col;
      prune_col = p.col;
    }
    auto c_at = [&](const at::Tensor& col) { return c_wide.gather(1, col.unsqueeze(1)).squeeze(1).to(at::kDouble); };
    const at::Tensor after = error - c_at(regrow_col) + c_at(prune_col);
    const at::Tensor take = active.logical_and(found).logical_and(after * sign >= 0);  // no overshoot
    set_where(grown, regrow_col, take);
    set_where(cut, prune_col, take);
    for (auto* list : {&swaps, &regrow, &prune}) {
      if (*list) (*list)->advance(take);
    }
    error = at::where(take, after, error);
    active = take;  // a refused swap, or candidates used up, stops the row for good
  }
  return keep.logical_or(grown.narrow(1, 0, cols)).logical_and(cut.narrow(1, 0, cols).logical_not());
}

}  // namespace

DsnotSkip parse_dsnot_skip(const std::string& name, const std::string& option) {
  if (name == "none") return DsnotSkip::None;
  if (name == "mlp") return DsnotSkip::Mlp;
  if (name == "attention") return DsnotSkip::Attention;
  throw_input_error(option, "unknown layer kind '" + name + "' (expected mlp, attention or none)");
}

const char* dsnot_skip_name(DsnotSkip skip) {
  switch (skip) {
    case DsnotSkip::None: return "none";
    case DsnotSkip::Mlp: return "mlp";
    case DsnotSkip::Attention: return "attention";
  }
  return "?";
}

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
