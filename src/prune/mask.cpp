#include "crepe/prune/mask.hpp"

#include <ATen/ATen.h>

#include <cmath>

#include "crepe/core/error.hpp"

namespace crepe::prune {
namespace {

// For each row of `scores` ([rows, cols]), a mask pruning exactly counts[r] lowest entries, ties to
// the lower column. k-th value selection plus a prefix count over the tied entries: O(rows * cols),
// no full sort, identical on every device.
at::Tensor prune_lowest_rows(const at::Tensor& scores, int64_t count) {
  const int64_t rows = scores.size(0), cols = scores.size(1);
  at::Tensor keep = at::ones({rows, cols}, scores.options().dtype(at::kBool));
  if (count <= 0) return keep;
  if (count >= cols) return keep.fill_(false);
  const at::Tensor s = scores.to(at::kFloat);
  const at::Tensor threshold = std::get<0>(s.kthvalue(count, 1, /*keepdim=*/true));  // count-th smallest
  const at::Tensor at_or_below = s <= threshold;
  // Usually the threshold value occurs once per row and s <= threshold is exactly the answer.
  if ((at_or_below.sum(1) == count).all().item<bool>()) return at_or_below.logical_not();
  const at::Tensor below = s < threshold;
  const at::Tensor tied = s == threshold;
  // How many tied entries each row still has to prune, and which ones: the first in column order.
  const at::Tensor remaining = count - below.sum(1, /*keepdim=*/true);
  const at::Tensor tie_rank = tied.to(at::kLong).cumsum(1);
  const at::Tensor pruned = below.logical_or(tied.logical_and(tie_rank <= remaining));
  return pruned.logical_not();
}

}  // namespace

int64_t pruned_count(double sparsity, int64_t n) {
  const double exact = sparsity * static_cast<double>(n);
  const double nearest = std::round(exact);
  return static_cast<int64_t>(std::abs(exact - nearest) < 1e-6 ? nearest : std::floor(exact));
}

std::string Pattern::str() const {
  return structured() ? std::to_string(n) + ":" + std::to_string(m) : "unstructured";
}

Pattern parse_pattern(const std::string& text, const std::string& option) {
  if (text == "unstructured") return {};
  const auto colon = text.find(':');
  Pattern p;
  try {
    require(colon != std::string::npos, option, "expected 'unstructured' or N:M (e.g. 2:4), got '" + text + "'");
    size_t used_n = 0, used_m = 0;
    p.n = std::stoll(text.substr(0, colon), &used_n);
    p.m = std::stoll(text.substr(colon + 1), &used_m);
    require(used_n == colon && used_m == text.size() - colon - 1, option, "expected N:M with integers, got '" + text + "'");
  } catch (const std::logic_error&) {
    throw_input_error(option, "expected 'unstructured' or N:M (e.g. 2:4), got '" + text + "'");
  }
  require(p.n > 0 && p.m > 0 && p.n < p.m, option, "N:M needs 0 < N < M, got '" + text + "'");
  return p;
}

Group parse_group(const std::string& text, const std::string& option) {
  if (text == "layer") return Group::Layer;
  if (text == "row") return Group::Row;
  throw_input_error(option, "expected 'layer' or 'row', got '" + text + "'");
}

const char* group_name(Group group) { return group == Group::Layer ? "layer" : "row"; }

at::Tensor prune_lowest(const at::Tensor& scores, int64_t count) {
  return prune_lowest_rows(scores.reshape({1, -1}), count).view(scores.sizes());
}

at::Tensor prune_lowest_per_row(const at::Tensor& scores, int64_t per_row) {
  return prune_lowest_rows(scores, per_row);
}

int64_t n_of_m_pruned_per_row(int64_t in, int64_t n, int64_t m) {
  const int64_t tail = in % m;
  return (in / m) * n + (n * tail) / m;
}

at::Tensor prune_n_of_m(const at::Tensor& scores, int64_t n, int64_t m) {
  const int64_t rows = scores.size(0), cols = scores.size(1);
  const int64_t full = (cols / m) * m, tail = cols - full;
  std::vector<at::Tensor> parts;
  if (full > 0) {
    // Each run of m columns becomes a row of its own.
    const at::Tensor groups = scores.narrow(1, 0, full).reshape({rows * (full / m), m});
    parts.push_back(prune_lowest_rows(groups, n).view({rows, full}));
  }
  if (tail > 0) parts.push_back(prune_lowest_rows(scores.narrow(1, full, tail).contiguous(), (n * tail) / m));
  return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
}

at::Tensor select_mask(const at::Tensor& scores, const MaskSpec& spec) {
  TORCH_CHECK(scores.dim() == 2, "select_mask expects a 2-D score matrix");
  if (spec.pattern.structured()) return prune_n_of_m(scores, spec.pattern.n, spec.pattern.m);
  if (spec.group == Group::Row) {
    return prune_lowest_per_row(scores, pruned_count(spec.sparsity, scores.size(1)));
  }
  return prune_lowest(scores, pruned_count(spec.sparsity, scores.numel()));
}

}  // namespace crepe::prune
