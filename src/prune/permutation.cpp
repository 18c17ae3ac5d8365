#include "crepe/prune/permutation.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <functional>
#include <numeric>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/prune/assignment.hpp"
#include "crepe/prune/mask.hpp"

namespace crepe::prune {
namespace {

void check_args(const at::Tensor& scores, int64_t n, int64_t m) {
  TORCH_CHECK(scores.dim() == 2, "N:M permutation expects a 2-D score matrix");
  TORCH_CHECK(n > 0 && m > 0 && n < m, "N:M permutation needs 0 < N < M, got ", n, ":", m);
}

// The scores as a float32 matrix on the CPU, stored column by column (the transpose, contiguous):
// everything below reads whole columns, and a column is then one contiguous run of `rows` values.
struct Matrix {
  at::Tensor storage;  // [cols, rows]
  const float* data = nullptr;
  int64_t rows = 0, cols = 0;
  const float* column(int64_t c) const { return data + c * rows; }
};

Matrix to_matrix(const at::Tensor& scores) {
  Matrix out;
  out.storage = scores.to(at::kCPU, at::kFloat).t().contiguous();
  out.data = out.storage.data_ptr<float>();
  out.rows = out.storage.size(1);
  out.cols = out.storage.size(0);
  return out;
}

// Puts the `keep` largest of v[0..len) first, the keep-th largest at v[keep - 1]. Insertion sort for
// the small groups of N:M, selection otherwise.
inline void select_largest(float* v, int64_t len, int64_t keep) {
  if (len <= 16) {
    for (int64_t i = 1; i < len; ++i) {
      const float key = v[i];
      int64_t j = i - 1;
      for (; j >= 0 && v[j] < key; --j) v[j + 1] = v[j];
      v[j + 1] = key;
    }
  } else {
    std::nth_element(v, v + (keep - 1), v + len, std::greater<float>());
  }
}

// Sum of the scores that prune_n_of_m keeps in `perm`'s column order, in float64: per run of m
// columns (and the tail run, with prune_n_of_m's tail rule), the m - n largest of every row. Which of
// several tied scores is kept does not change the sum. Each run is summed over rows in order and the
// runs are added in order, so the result does not depend on the thread count.
double kept_score(const Matrix& s, const std::vector<int64_t>& perm, int64_t n, int64_t m) {
  const int64_t groups = s.cols / m, tail = s.cols - groups * m, runs = groups + (tail > 0 ? 1 : 0);
  std::vector<double> per_run(static_cast<size_t>(runs), 0.0);
  at::parallel_for(0, runs, 16, [&](int64_t begin, int64_t end) {
    std::vector<float> values(static_cast<size_t>(m));
    std::vector<const float*> cols(static_cast<size_t>(m));
    for (int64_t run = begin; run < end; ++run) {
      const int64_t len = run < groups ? m : tail;
      const int64_t keep = run < groups ? m - n : tail - n_of_m_tail_pruned(tail, n, m);
      if (keep <= 0) continue;
      for (int64_t q = 0; q < len; ++q) cols[q] = s.column(perm[run * m + q]);
      double total = 0.0;
      for (int64_t r = 0; r < s.rows; ++r) {
        for (int64_t q = 0; q < len; ++q) values[q] = cols[q][r];
        select_largest(values.data(), len, keep);
        for (int64_t q = 0; q < keep; ++q) total += values[q];
      }
      per_run[run] = total;
    }
  });
  return std::accumulate(per_run.begin(), per_run.end(), 0.0);
}

// Steps 1-2: sort the non-tail columns by total score and deal them into groups in snake order.
std::vector<int64_t> snake_deal(const Matrix& s, int64_t m) {
  const int64_t groups = s.cols / m, body = groups * m;
  std::vector<double> column_sum(static_cast<size_t>(body), 0.0);
  for (int64_t c = 0; c < body; ++c) {
    const float* col = s.column(c);
    double sum = 0.0;
    for (int64_t r = 0; r < s.rows; ++r) sum += col[r];
    column_sum[c] = sum;
  }
  std::vector<int64_t> order(static_cast<size_t>(body));
  std::iota(order.begin(), order.end(), 0);
  std::stable_sort(order.begin(), order.end(), [&](int64_t a, int64_t b) { return column_sum[a] < column_sum[b]; });

  std::vector<int64_t> perm(static_cast<size_t>(s.cols));
  std::iota(perm.begin(), perm.end(), 0);  // the tail maps to itself
  for (int64_t p = 0; p < m; ++p) {
    for (int64_t g = 0; g < groups; ++g) {
      const int64_t rank = p * groups + (p % 2 == 0 ? g : groups - 1 - g);
      perm[g * m + p] = order[rank];
    }
  }
  return perm;
}

// Step 3 for one position of one block (groups [g0, g0 + count)): re-deal the columns at position p
// among the groups. Returns true when the kept score rose (and `perm` was changed).
//
// For a row, let the group's other m - 1 scores sorted descending be o_1 >= ... >= o_{m-1}, and
// K = m - n kept. Adding x, the kept score is (o_1 + ... + o_{K-1}) + max(x, o_K): the first term does
// not depend on which column goes to position p, so the value of column c in group g is
// sum over rows of max(x_c, o_K(g)), up to a per-group constant that every assignment pays once.
// The value matrix only guides the assignment (it is summed in float32 over runs of rows); whether
// the proposal is taken is decided by the kept score of the groups it changes, summed in float64, so
// the kept score never goes down.
bool refine_position(const Matrix& s, std::vector<int64_t>& perm, int64_t n, int64_t m, int64_t p, int64_t g0,
                     int64_t count) {
  const int64_t rows = s.rows, keep = m - n;
  // x[r][c]: the score of the column now at position p of group g0 + c; kth[r][g]: o_K of group g0 + g.
  std::vector<float> x(static_cast<size_t>(rows * count)), kth(static_cast<size_t>(rows * count));
  // Chunks of rows, groups within a chunk: reads whole runs of columns, and the chunk's rows of x
  // and kth stay in cache while every group writes its entry.
  constexpr int64_t kRowChunk = 64;
  at::parallel_for(0, (rows + kRowChunk - 1) / kRowChunk, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> others(static_cast<size_t>(m - 1));
    std::vector<const float*> cols(static_cast<size_t>(m - 1));
    for (int64_t chunk = begin; chunk < end; ++chunk) {
      const int64_t r0 = chunk * kRowChunk, r1 = std::min(rows, r0 + kRowChunk);
      for (int64_t g = 0; g < count; ++g) {
        const int64_t base = (g0 + g) * m;
        for (int64_t q = 0, k = 0; q < m; ++q) {
          if (q != p) cols[k++] = s.column(perm[base + q]);
        }
        const float* own = s.column(perm[base + p]);
        for (int64_t r = r0; r < r1; ++r) {
          for (int64_t k = 0; k < m - 1; ++k) others[k] = cols[k][r];
          select_largest(others.data(), m - 1, keep);
          kth[r * count + g] = others[keep - 1];
          x[r * count + g] = own[r];
        }
      }
    }
  });

  // value[c][g] = sum_r max(x[r][c], kth[r][g]): float32 partial sums over runs of kChunk rows, added
  // into float64. Each tile of kTile columns is one task with a fixed summation order, so the result
  // does not depend on the thread count.
  std::vector<double> value(static_cast<size_t>(count * count), 0.0);
  constexpr int64_t kTile = 8, kChunk = 128;
  at::parallel_for(0, (count + kTile - 1) / kTile, 1, [&](int64_t begin, int64_t end) {
    std::vector<float> partial(static_cast<size_t>(kTile * count));
    for (int64_t tile = begin; tile < end; ++tile) {
      const int64_t c0 = tile * kTile, c1 = std::min(count, c0 + kTile);
      for (int64_t r0 = 0; r0 < rows; r0 += kChunk) {
        std::fill(partial.begin(), partial.end(), 0.0f);
        for (int64_t r = r0; r < std::min(rows, r0 + kChunk); ++r) {
          const float* kr = kth.data() + r * count;
          for (int64_t c = c0; c < c1; ++c) {
            const float xv = x[r * count + c];
            float* out = partial.data() + (c - c0) * count;
            for (int64_t g = 0; g < count; ++g) out[g] += std::max(xv, kr[g]);
          }
        }
        for (int64_t c = c0; c < c1; ++c) {
          const float* in = partial.data() + (c - c0) * count;
          double* out = value.data() + c * count;
          for (int64_t g = 0; g < count; ++g) out[g] += in[g];
        }
      }
    }
  });

  const std::vector<int64_t> target = linear_sum_assignment(value, count, count, /*maximize=*/true);
  std::vector<int64_t> moved(static_cast<size_t>(count));
  for (int64_t c = 0; c < count; ++c) moved[target[c]] = perm[(g0 + c) * m + p];
  std::vector<int64_t> changed;
  for (int64_t g = 0; g < count; ++g) {
    if (moved[g] != perm[(g0 + g) * m + p]) changed.push_back(g);
  }
  if (changed.empty()) return false;

  // Exact check on the changed groups: the o_1 + ... + o_{K-1} part of a group's kept score does not
  // depend on position p, so the change of the kept score is exactly the change of
  // sum_r max(x, o_K), here in float64, each group summed over rows in order.
  std::vector<int64_t> source(static_cast<size_t>(count));  // the block column each group receives
  for (int64_t c = 0; c < count; ++c) source[target[c]] = c;
  const int64_t k = static_cast<int64_t>(changed.size());
  std::vector<double> before(static_cast<size_t>(k)), after(static_cast<size_t>(k));
  at::parallel_for(0, k, 16, [&](int64_t begin, int64_t end) {
    for (int64_t i = begin; i < end; ++i) {
      const int64_t g = changed[i], c = source[g];
      double old_sum = 0.0, new_sum = 0.0;
      for (int64_t r = 0; r < rows; ++r) {
        const float t = kth[r * count + g];
        old_sum += std::max(x[r * count + g], t);
        new_sum += std::max(x[r * count + c], t);
      }
      before[i] = old_sum;
      after[i] = new_sum;
    }
  });
  double old_total = 0.0, new_total = 0.0;
  for (int64_t i = 0; i < k; ++i) {
    old_total += before[i];
    new_total += after[i];
  }
  // Take only a clear gain: rounding-level "gains" from an equally good assignment would churn.
  if (!(new_total - old_total > 1e-12 * std::abs(old_total))) return false;
  for (int64_t g : changed) perm[(g0 + g) * m + p] = moved[g];
  return true;
}

}  // namespace

int64_t permutation_blocks(const PermutationOptions& options, int64_t groups) {
  if (options.blocks > 0) return options.blocks;
  return std::max<int64_t>(1, (groups + kAutoBlockGroups - 1) / kAutoBlockGroups);
}

void validate(const PermutationOptions& options) {
  require(options.blocks >= 0, "--permute-blocks", "must be 0 (auto) or at least 1, got " + std::to_string(options.blocks));
  require(options.max_sweeps >= 0, "--permute-sweeps", "must be at least 0, got " + std::to_string(options.max_sweeps));
}

at::Tensor nm_snake_permutation(const at::Tensor& scores, int64_t m) {
  TORCH_CHECK(scores.dim() == 2 && m > 0, "nm_snake_permutation expects a 2-D score matrix and m > 0");
  return order_tensor(snake_deal(to_matrix(scores), m));
}

at::Tensor nm_channel_permutation(const at::Tensor& scores, int64_t n, int64_t m, const PermutationOptions& options,
                                  PermutationReport* report) {
  check_args(scores, n, m);
  validate(options);
  TORCH_CHECK(at::isfinite(scores).all().item<bool>(), "N:M permutation: the scores must be finite");
  const Matrix s = to_matrix(scores);
  const int64_t groups = s.cols / m;
  std::vector<int64_t> perm = snake_deal(s, m);

  const int64_t blocks = std::min(permutation_blocks(options, groups), std::max<int64_t>(groups, 1));
  int64_t sweeps = 0, reassignments = 0;
  for (int64_t sweep = 0; sweep < options.max_sweeps && groups > 1; ++sweep) {
    ++sweeps;
    bool changed = false;
    for (int64_t p = 0; p < m; ++p) {
      for (int64_t b = 0; b < blocks; ++b) {
        const int64_t g0 = b * groups / blocks, g1 = (b + 1) * groups / blocks;
        if (g1 - g0 < 2) continue;
        if (refine_position(s, perm, n, m, p, g0, g1 - g0)) {
          changed = true;
          ++reassignments;
        }
      }
    }
    if (!changed) break;
  }

  std::vector<int64_t> identity(static_cast<size_t>(s.cols));
  std::iota(identity.begin(), identity.end(), 0);
  const double before = kept_score(s, identity, n, m);
  double after = kept_score(s, perm, n, m);
  const bool fell_back = !(after > before);
  if (fell_back) {
    perm = identity;
    after = before;
  }
  if (report != nullptr) {
    report->kept_before = before;
    report->kept_after = after;
    double total = 0.0;
    for (int64_t i = 0; i < s.rows * s.cols; ++i) total += s.data[i];
    report->total = total;
    report->sweeps = sweeps;
    report->reassignments = reassignments;
    report->identity = fell_back;
  }
  at::Tensor order = order_tensor(perm);
  if (report != nullptr) report->order = order;
  return order;
}

double nm_kept_score(const at::Tensor& scores, const at::Tensor& permutation, int64_t n, int64_t m) {
  check_args(scores, n, m);
  const int64_t in = scores.size(1);
  std::vector<int64_t> perm(static_cast<size_t>(in));
  if (permutation.defined()) {
    TORCH_CHECK(permutation.dim() == 1 && permutation.size(0) == in && permutation.scalar_type() == at::kLong,
                "nm_kept_score: the permutation must be int64 [", in, "]");
    perm = order_values(permutation);
    TORCH_CHECK(is_permutation(perm, in), "nm_kept_score: not a permutation");
  } else {
    std::iota(perm.begin(), perm.end(), 0);
  }
  return kept_score(to_matrix(scores), perm, n, m);
}

std::vector<int64_t> order_values(const at::Tensor& order) {
  const at::Tensor values = order.to(at::kCPU, at::kLong).contiguous();
  return {values.data_ptr<int64_t>(), values.data_ptr<int64_t>() + values.numel()};
}

at::Tensor order_tensor(const std::vector<int64_t>& values) {
  at::Tensor out = at::empty({static_cast<int64_t>(values.size())}, at::kLong);
  std::copy(values.begin(), values.end(), out.data_ptr<int64_t>());
  return out;
}

bool is_permutation(const std::vector<int64_t>& order, int64_t n) {
  if (static_cast<int64_t>(order.size()) != n) return false;
  std::vector<char> seen(static_cast<size_t>(n), 0);
  for (int64_t c : order) {
    if (c < 0 || c >= n || seen[static_cast<size_t>(c)]) return false;
    seen[static_cast<size_t>(c)] = 1;
  }
  return true;
}

at::Tensor permute_columns(const at::Tensor& t, const at::Tensor& order) {
  return t.index_select(t.dim() - 1, order.to(t.device()));
}

at::Tensor unpermute_columns(const at::Tensor& t, const at::Tensor& order) {
  // Original column order[j] is permuted column j: gather with the inverse permutation.
  const at::Tensor inverse = std::get<1>(order.sort());
  return t.index_select(t.dim() - 1, inverse.to(t.device()));
}

at::Tensor permuted_nm_mask(const at::Tensor& scores, int64_t n, int64_t m, const PermutationOptions& options,
                            PermutationReport* report) {
  const at::Tensor order = nm_channel_permutation(scores, n, m, options, report);
  return unpermute_columns(prune_n_of_m(permute_columns(scores, order), n, m), order);
}

}  // namespace crepe::prune
