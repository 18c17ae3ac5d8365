#include "crepe/prune/mask.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <functional>
#include <mutex>
#include <vector>

#include "crepe/core/error.hpp"

// The radix keys rely on -0 + 0 giving +0 and the NaN checks on NaN != NaN: fast-math drops both.
#if defined(__FAST_MATH__)
#error "src/prune/mask.cpp must not be compiled with -ffast-math"
#endif

namespace crepe::prune {
namespace {

// Weights and statistics are checked finite before anything is scored (pipeline.cpp): NaN here
// would be a bug, and no order of NaN gives a meaningful mask.
constexpr const char* kNanScores = "mask selection: the scores contain NaN";

// A single row this long is selected by a parallel radix pass (65536 counters per thread).
constexpr int64_t kRadixMin = int64_t{1} << 16;
// Rows this short (N:M groups) are ranked by pairwise comparison.
constexpr int64_t kShortRow = 16;

// Keys whose unsigned order is the order of the (non-NaN) scores: positive floats gain the sign
// bit, negative ones have every bit flipped; -0 is +0 first, as the comparisons see them equal.
// The top 16 bits make 65536 buckets in value order.
inline uint32_t order_key(float f) {
  f += 0.0f;
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u ^ (static_cast<uint32_t>(static_cast<int32_t>(u) >> 31) | 0x80000000u);
}

// Marks `n` scores of which the count-th smallest is `threshold`: entries below it pruned, and of
// those equal to it the first `ties_to_prune` (none when `all_ties` says every tie goes, the
// common case, which needs no running count).
void mark(const float* a, int64_t n, float threshold, int64_t ties_to_prune, bool all_ties, bool* keep) {
  if (all_ties) {
    for (int64_t j = 0; j < n; ++j) keep[j] = a[j] > threshold;
    return;
  }
  for (int64_t j = 0; j < n; ++j) {
    keep[j] = a[j] > threshold || (a[j] == threshold && ties_to_prune-- <= 0);
  }
}

// CPU, short rows (the groups of N:M): an entry is pruned when fewer than `count` entries of its
// row come before it (smaller, or equal at a lower column), the stable-sort rule in cols^2 compares.
template <int64_t Cols>
void rank_short_rows(const float* scores, int64_t first, int64_t last, int64_t cols, int64_t count, bool* keep) {
  const int64_t n = Cols > 0 ? Cols : cols;  // a compile-time width for the usual M = 4 and 8
  bool nan = false;
  for (int64_t r = first; r < last; ++r) {
    const float* a = scores + r * n;
    for (int64_t i = 0; i < n; ++i) {
      int64_t before = 0;
      for (int64_t j = 0; j < n; ++j) before += (a[j] < a[i]) | ((a[j] == a[i]) & (j < i));
      keep[r * n + i] = before >= count;
      nan |= a[i] != a[i];
    }
  }
  TORCH_CHECK(!nan, kNanScores);
}

void prune_lowest_short_rows(const float* scores, int64_t rows, int64_t cols, int64_t count, bool* keep) {
  at::parallel_for(0, rows, 4096, [&](int64_t first, int64_t last) {
    if (cols == 4) return rank_short_rows<4>(scores, first, last, cols, count, keep);
    if (cols == 8) return rank_short_rows<8>(scores, first, last, cols, count, keep);
    rank_short_rows<0>(scores, first, last, cols, count, keep);
  });
}

// The count-th smallest of a row of scores by radix: a histogram of the keys' top 11 bits picks
// the bucket that holds it, nth_element finishes inside that bucket (a few percent of the row).
// `histogram` and `inside` are the caller's scratch space.
float row_threshold(const float* a, int64_t n, int64_t count, std::vector<int64_t>& histogram, std::vector<float>& inside) {
  constexpr int kShift = 21;
  histogram.assign(size_t{1} << (32 - kShift), 0);
  bool nan = false;
  for (int64_t j = 0; j < n; ++j) ++histogram[order_key(a[j]) >> kShift], nan |= a[j] != a[j];
  TORCH_CHECK(!nan, kNanScores);  // before nth_element, whose ordering NaN would break
  uint32_t bucket = 0;
  int64_t smaller = 0;  // entries in the buckets below
  while (smaller + histogram[bucket] < count) smaller += histogram[bucket++];
  inside.clear();
  for (int64_t j = 0; j < n; ++j) {
    if ((order_key(a[j]) >> kShift) == bucket) inside.push_back(a[j]);
  }
  std::nth_element(inside.begin(), inside.begin() + (count - smaller - 1), inside.end());
  return inside[count - smaller - 1];
}

// CPU, many rows: each row's count-th smallest, then one marking pass.
void prune_lowest_rows_fused(const float* scores, int64_t rows, int64_t cols, int64_t count, bool* keep) {
  at::parallel_for(0, rows, std::max<int64_t>(1, 16384 / cols), [&](int64_t first, int64_t last) {
    std::vector<int64_t> histogram;
    std::vector<float> inside;
    for (int64_t r = first; r < last; ++r) {
      const float* a = scores + r * cols;
      const float threshold = row_threshold(a, cols, count, histogram, inside);
      int64_t below = 0, ties = 0;
      for (int64_t j = 0; j < cols; ++j) below += a[j] < threshold, ties += a[j] == threshold;
      mark(a, cols, threshold, count - below, below + ties == count, keep + r * cols);
    }
  });
}

// CPU, one long row (a whole matrix): radix selection. A histogram of the keys' top 16 bits finds
// the bucket holding the count-th smallest; nth_element finishes inside it; marking runs in
// parallel chunks (when ties straddle the threshold, each told how many ties precede it).
void prune_lowest_flat_fused(const float* a, int64_t n, int64_t count, bool* keep) {
  constexpr int64_t kBuckets = 65536, kChunk = int64_t{1} << 16;
  const int64_t chunks = (n + kChunk - 1) / kChunk;
  auto each_chunk = [&](const std::function<void(int64_t begin, int64_t end, int64_t chunk)>& work) {
    at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
      for (int64_t c = first; c < last; ++c) work(c * kChunk, std::min(n, (c + 1) * kChunk), c);
    });
  };
  std::vector<int64_t> histogram(kBuckets, 0);
  int64_t nans = 0;
  std::mutex merge;
  at::parallel_for(0, chunks, 1, [&](int64_t first, int64_t last) {
    std::vector<int64_t> local(kBuckets, 0);
    int64_t local_nans = 0;
    for (int64_t i = first * kChunk; i < std::min(n, last * kChunk); ++i) {
      ++local[order_key(a[i]) >> 16];
      local_nans += a[i] != a[i];
    }
    std::lock_guard<std::mutex> lock(merge);
    for (int64_t b = 0; b < kBuckets; ++b) histogram[b] += local[b];
    nans += local_nans;
  });
  TORCH_CHECK(nans == 0, kNanScores);
  uint32_t bucket = 0;
  int64_t smaller = 0;  // entries in the buckets below
  while (smaller + histogram[bucket] < count) smaller += histogram[bucket++];
  std::vector<float> inside;
  inside.reserve(histogram[bucket]);
  each_chunk([&](int64_t begin, int64_t end, int64_t) {
    std::vector<float> local;
    for (int64_t i = begin; i < end; ++i) {
      if ((order_key(a[i]) >> 16) == bucket) local.push_back(a[i]);
    }
    std::lock_guard<std::mutex> lock(merge);
    inside.insert(inside.end(), local.begin(), local.end());
  });
  std::nth_element(inside.begin(), inside.begin() + (count - smaller - 1), inside.end());
  const float threshold = inside[count - smaller - 1];
  int64_t below = smaller, ties = 0;
  for (float v : inside) below += v < threshold, ties += v == threshold;
  const int64_t ties_to_prune = count - below;
  if (below + ties == count) {
    each_chunk([&](int64_t begin, int64_t end, int64_t) { mark(a + begin, end - begin, threshold, 0, true, keep + begin); });
    return;
  }
  std::vector<int64_t> ties_before(chunks + 1, 0);
  each_chunk([&](int64_t begin, int64_t end, int64_t c) {
    ties_before[c + 1] = std::count(a + begin, a + end, threshold);
  });
  for (int64_t c = 0; c < chunks; ++c) ties_before[c + 1] += ties_before[c];
  each_chunk([&](int64_t begin, int64_t end, int64_t c) {
    mark(a + begin, end - begin, threshold, ties_to_prune - ties_before[c], false, keep + begin);
  });
}

// The count-th smallest (1-based) of one long float32 row, exactly, with whole-tensor ops that run
// in parallel on a GPU (where kthvalue gives one row to one thread block): the same radix
// selection as the CPU kernel. Non-negative scores only need no key flip, but negative ones work.
at::Tensor kth_smallest_radix(const at::Tensor& row, int64_t k) {
  const at::Tensor bits = row.contiguous().view(at::kInt);
  // Signed-integer order of the bits is the float order for positives and reversed for negatives.
  const at::Tensor keys = at::where(bits < 0, bits.bitwise_xor(0x7fffffff), bits);
  const at::Tensor bucket = keys.__rshift__(16).add_(32768);  // [0, 65536), in value order
  const at::Tensor before = bucket.bincount({}, 65536).cumsum(0);
  const int64_t b = (before < k).sum().item<int64_t>();  // the first bucket reaching k
  const int64_t skipped = b > 0 ? before[b - 1].item<int64_t>() : 0;
  return std::get<0>(row.masked_select(bucket == b).kthvalue(k - skipped));
}

// For each row of `scores` ([rows, cols]), a mask pruning exactly `count` lowest entries, ties to
// the lower column, with whole-tensor ops: k-th value selection plus a prefix count over the tied
// entries, O(rows * cols), no full sort.
at::Tensor prune_lowest_rows_tensor_ops(const at::Tensor& s, int64_t count) {
  const at::Tensor threshold = s.size(0) == 1 && s.size(1) >= kRadixMin
                                   ? kth_smallest_radix(s.view({-1}), count).view({1, 1})
                                   : std::get<0>(s.kthvalue(count, 1, /*keepdim=*/true));
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

at::Tensor prune_lowest_rows(const at::Tensor& scores, int64_t count, MaskKernel kernel) {
  const int64_t rows = scores.size(0), cols = scores.size(1);
  at::Tensor keep = at::ones({rows, cols}, scores.options().dtype(at::kBool));
  if (count <= 0) return keep;
  if (count >= cols) return keep.fill_(false);
  const at::Tensor s = scores.to(at::kFloat).contiguous();
  const bool fused = kernel == MaskKernel::Fused || (kernel == MaskKernel::Auto && s.device().is_cpu());
  TORCH_CHECK(!fused || s.device().is_cpu(), "the fused mask kernel runs on the CPU only");
  if (!fused) {
    TORCH_CHECK(!at::isnan(s).any().item<bool>(), kNanScores);  // one cheap pass on a GPU
    return prune_lowest_rows_tensor_ops(s, count);
  }
  if (rows == 1 && cols >= kRadixMin) {
    prune_lowest_flat_fused(s.data_ptr<float>(), cols, count, keep.data_ptr<bool>());
  } else if (cols <= kShortRow) {
    prune_lowest_short_rows(s.data_ptr<float>(), rows, cols, count, keep.data_ptr<bool>());
  } else {
    prune_lowest_rows_fused(s.data_ptr<float>(), rows, cols, count, keep.data_ptr<bool>());
  }
  return keep;
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

at::Tensor prune_lowest(const at::Tensor& scores, int64_t count, MaskKernel kernel) {
  return prune_lowest_rows(scores.reshape({1, -1}), count, kernel).view(scores.sizes());
}

at::Tensor prune_lowest_per_row(const at::Tensor& scores, int64_t per_row, MaskKernel kernel) {
  return prune_lowest_rows(scores, per_row, kernel);
}

int64_t n_of_m_pruned_per_row(int64_t in, int64_t n, int64_t m) {
  const int64_t tail = in % m;
  return (in / m) * n + n_of_m_tail_pruned(tail, n, m);
}

bool is_n_of_m_sparse(const at::Tensor& weight, int64_t n, int64_t m) {
  TORCH_CHECK(weight.dim() == 2 && 0 < n && n < m, "is_n_of_m_sparse expects a 2-D weight and 0 < n < m");
  const int64_t rows = weight.size(0), cols = weight.size(1);
  const int64_t full = (cols / m) * m, tail = cols - full;
  const at::Tensor zero = weight == 0;
  if (full > 0 && !(zero.narrow(1, 0, full).reshape({rows, full / m, m}).sum(-1) >= n).all().item<bool>()) return false;
  return tail == 0 || (zero.narrow(1, full, tail).sum(1) >= n_of_m_tail_pruned(tail, n, m)).all().item<bool>();
}

at::Tensor prune_n_of_m(const at::Tensor& scores, int64_t n, int64_t m, MaskKernel kernel) {
  const int64_t rows = scores.size(0), cols = scores.size(1);
  const int64_t full = (cols / m) * m, tail = cols - full;
  std::vector<at::Tensor> parts;
  if (full > 0) {
    // Each run of m columns becomes a row of its own.
    const at::Tensor groups = scores.narrow(1, 0, full).reshape({rows * (full / m), m});
    parts.push_back(prune_lowest_rows(groups, n, kernel).view({rows, full}));
  }
  if (tail > 0) parts.push_back(prune_lowest_rows(scores.narrow(1, full, tail).contiguous(), n_of_m_tail_pruned(tail, n, m), kernel));
  return parts.size() == 1 ? parts[0] : at::cat(parts, 1);
}

at::Tensor select_mask(const at::Tensor& scores, const MaskSpec& spec, MaskKernel kernel) {
  TORCH_CHECK(scores.dim() == 2, "select_mask expects a 2-D score matrix");
  if (spec.pattern.structured()) return prune_n_of_m(scores, spec.pattern.n, spec.pattern.m, kernel);
  if (spec.group == Group::Row) {
    return prune_lowest_per_row(scores, pruned_count(spec.sparsity, scores.size(1)), kernel);
  }
  return prune_lowest(scores, pruned_count(spec.sparsity, scores.numel()), kernel);
}

}  // namespace crepe::prune
