#include "crepe/prune/metric.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <utility>
#include <vector>

#include "crepe/core/error.hpp"
#include "crepe/core/parse.hpp"

namespace crepe::prune {
namespace {

// x / denominator, with 0 where the denominator is 0 (an all-zero row, column or window: every
// numerator there is 0 too, and such weights carry no importance).
at::Tensor safe_ratio(const at::Tensor& x, const at::Tensor& denominator) {
  return at::where(denominator > 0, x / denominator, at::zeros_like(x));
}

// Running sum of width k (centred, clipped) along one dimension, in float64.
at::Tensor box_sum_1d(const at::Tensor& x64, int64_t dim, int64_t k) {
  const int64_t half = k / 2, n = x64.size(dim);
  std::vector<int64_t> zeros_shape = x64.sizes().vec();
  zeros_shape[dim] = 1;
  // prefix[t] = sum of x[0..t-1]; window (clipped) of cell t = prefix[min(t+half+1, n)] - prefix[max(t-half, 0)].
  at::Tensor prefix = at::cat({at::zeros(zeros_shape, x64.options()), x64.cumsum(dim)}, dim);
  const auto idx = at::TensorOptions().dtype(at::kLong).device(x64.device());
  at::Tensor upper = (at::arange(n, idx) + half + 1).clamp_max(n);
  at::Tensor lower = (at::arange(n, idx) - half).clamp_min(0);
  return prefix.index_select(dim, upper) - prefix.index_select(dim, lower);
}

}  // namespace

Metric parse_metric(const std::string& name, const std::string& option) {
  if (name == "magnitude") return Metric::Magnitude;
  if (name == "wanda") return Metric::Wanda;
  if (name == "ri") return Metric::RI;
  if (name == "ria") return Metric::RIA;
  if (name == "crepe") return Metric::Crepe;
  if (name == "sparsegpt") return Metric::SparseGPT;
  throw_input_error(option, "unknown method '" + name + "' (expected magnitude, wanda, ri, ria, crepe or sparsegpt)");
}

const char* metric_name(Metric metric) {
  switch (metric) {
    case Metric::Magnitude: return "magnitude";
    case Metric::Wanda: return "wanda";
    case Metric::RI: return "ri";
    case Metric::RIA: return "ria";
    case Metric::Crepe: return "crepe";
    case Metric::SparseGPT: return "sparsegpt";
  }
  return "";
}

bool needs_activations(Metric metric) { return metric != Metric::Magnitude && metric != Metric::RI; }

CrepeParams crepe_defaults() {
  CrepeParams p;
  p.kernel_size = 3;
  p.alpha = 1.0;
  p.beta = 1.0;
  p.gamma = 0.25;
  p.act_power = 0.5;
  return p;
}

CrepeParams ria_params(double act_power) {
  CrepeParams p;
  p.kernel_size = 1;
  p.alpha = 1.0;
  p.beta = 1.0;
  p.gamma = 0.0;
  p.act_power = act_power;
  return p;
}

void check_kernel_size(int64_t kernel_size, const std::string& option) {
  require(kernel_size >= 1 && kernel_size % 2 == 1 && kernel_size <= kMaxKernelSize, option,
          "must be an odd integer from 1 to " + std::to_string(kMaxKernelSize) + ", got " + std::to_string(kernel_size));
}

void validate(const CrepeParams& p) {
  check_kernel_size(p.kernel_size, "--kernel-size");
  for (const auto& [option, value] : {std::pair<const char*, double>{"--alpha", p.alpha}, {"--beta", p.beta}, {"--gamma", p.gamma}}) {
    require(std::isfinite(value) && value >= 0, option, "must be a finite number >= 0, got " + number_text(value));
  }
  require(p.alpha + p.beta + p.gamma > 0, "--alpha/--beta/--gamma", "at least one coefficient must be positive");
  require(p.act_power >= 0 && p.act_power <= 1, "--act-power", "must be in [0, 1], got " + number_text(p.act_power));
}

at::Tensor box_sum(const at::Tensor& x, int64_t kernel_size) {
  if (kernel_size == 1) return x.to(at::kDouble);
  const at::Tensor x64 = x.to(at::kDouble);
  return box_sum_1d(box_sum_1d(x64, 1, kernel_size), 0, kernel_size);
}

at::Tensor magnitude_score(const at::Tensor& weight) { return weight.to(at::kFloat).abs(); }

at::Tensor wanda_score(const at::Tensor& weight, const at::Tensor& act_norm) {
  return magnitude_score(weight) * act_norm.to(weight.device(), at::kFloat).view({1, -1});
}

at::Tensor ri_score(const at::Tensor& weight) {
  // RIA without the activation factor (a = 0): the same code path, so the formula lives once.
  return crepe_score(weight, at::Tensor(), ria_params(0.0));
}

namespace {

// 1/x where x > 0, else 0, times `scale` (small vectors: row sums, column sums).
at::Tensor scaled_safe_reciprocal(const at::Tensor& x, double scale) {
  return at::where(x > 0, scale / x, at::zeros_like(x));
}

struct ScoreTerms {
  at::Tensor A;         // |W|, float32 contiguous [out, in]
  at::Tensor row_term;  // alpha / sum_k A_ik, [out]
  at::Tensor col_term;  // beta / sum_k A_kj, [in]
  at::Tensor act;       // ||X_j||^a, [in]
};

ScoreTerms score_terms(const at::Tensor& weight, const at::Tensor& act_norm, const CrepeParams& p) {
  ScoreTerms t;
  t.A = magnitude_score(weight).contiguous();
  t.row_term = scaled_safe_reciprocal(t.A.sum(1), p.alpha);
  t.col_term = scaled_safe_reciprocal(t.A.sum(0), p.beta);
  t.act = p.act_power == 0.0 ? at::ones({t.A.size(1)}, t.A.options())
                             : act_norm.to(t.A.device(), at::kFloat).pow(p.act_power).contiguous();
  return t;
}

// The neighbourhood term gamma * A / window for rows [first, last): the window sums come from a
// slab of A widened by the window's half height on each side (clipped at the matrix border), so
// each row sees exactly the rows its window covers.
at::Tensor neighbourhood_term(const at::Tensor& A, int64_t first, int64_t last, const CrepeParams& p) {
  const int64_t half = p.kernel_size / 2;
  const int64_t slab_first = std::max<int64_t>(0, first - half);
  const int64_t slab_last = std::min(A.size(0), last + half);
  const at::Tensor window =
      box_sum(A.slice(0, slab_first, slab_last), p.kernel_size).slice(0, first - slab_first, last - slab_first);
  return (p.gamma * safe_ratio(A.slice(0, first, last).to(at::kDouble), window)).to(at::kFloat);
}

// Device-agnostic path: whole-tensor ops, window sums by float64 running sums (box_sum), a slab
// of rows at a time so that the float64 temporaries (about fifty bytes per weight, measured) stay
// near kScoreSlabElements weights, ~0.2 GB: a 70B down_proj (8192 x 28672) would otherwise need
// ~12 GB of them on the GPU.
at::Tensor crepe_score_tensor_ops(const ScoreTerms& t, const CrepeParams& p, int64_t rows_per_slab) {
  const int64_t rows = t.A.size(0), cols = t.A.size(1);
  if (rows_per_slab <= 0) rows_per_slab = std::max<int64_t>(1, kScoreSlabElements / std::max<int64_t>(1, cols));
  at::Tensor out = at::empty_like(t.A);
  for (int64_t first = 0; first < rows; first += rows_per_slab) {
    const int64_t last = std::min(rows, first + rows_per_slab);
    const at::Tensor A = t.A.slice(0, first, last);
    at::Tensor relative = A * (t.row_term.slice(0, first, last).view({-1, 1}) + t.col_term.view({1, -1}));
    if (p.gamma != 0.0) relative.add_(neighbourhood_term(t.A, first, last, p));
    out.slice(0, first, last).copy_(relative.mul_(t.act.view({1, -1})));
  }
  return out;
}

// CPU path: one fused pass. Each row keeps the column sums of its k-row window (float64, slid from
// row to row) and slides a float64 sum of k of those along the row: every score costs O(1) whatever
// k, and the matrix is read about twice instead of the dozen passes the tensor-op path makes.
at::Tensor crepe_score_fused_cpu(const ScoreTerms& t, const CrepeParams& p) {
  const int64_t rows = t.A.size(0), cols = t.A.size(1), half = p.kernel_size / 2;
  at::Tensor out = at::empty_like(t.A);
  const float* A = t.A.data_ptr<float>();
  const float* row_term = t.row_term.data_ptr<float>();
  const float* col_term = t.col_term.data_ptr<float>();
  const float* act = t.act.data_ptr<float>();
  float* score = out.data_ptr<float>();
  const bool neighbourhood = p.gamma != 0.0;
  const double gamma = p.gamma;

  auto score_rows = [&](int64_t first, int64_t last, std::vector<double>& window_cols) {
    std::fill(window_cols.begin(), window_cols.end(), 0.0);
    auto add_row = [&](int64_t r, double sign) {
      const float* a = A + r * cols;
      for (int64_t j = 0; j < cols; ++j) window_cols[j] += sign * a[j];
    };
    if (neighbourhood) {
      for (int64_t r = std::max<int64_t>(0, first - half); r <= std::min(rows - 1, first + half); ++r) add_row(r, 1.0);
    }
    for (int64_t i = first; i < last; ++i) {
      const float* a = A + i * cols;
      float* s = score + i * cols;
      if (!neighbourhood) {
        for (int64_t j = 0; j < cols; ++j) s[j] = a[j] * (row_term[i] + col_term[j]) * act[j];
        continue;
      }
      double window = 0.0;
      for (int64_t j = 0; j <= std::min(half, cols - 1); ++j) window += window_cols[j];
      for (int64_t j = 0; j < cols; ++j) {
        float relative = a[j] * (row_term[i] + col_term[j]);
        if (window > 0.0) relative += static_cast<float>(gamma * (a[j] / window));
        s[j] = relative * act[j];
        if (j + half + 1 < cols) window += window_cols[j + half + 1];
        if (j - half >= 0) window -= window_cols[j - half];
      }
      if (i + half + 1 < rows) add_row(i + half + 1, 1.0);
      if (i - half >= 0) add_row(i - half, -1.0);
    }
  };
  // The window's column sums restart at fixed blocks of rows, not at each thread's first row: the
  // sliding sums (and so the last bits of the scores) are the same whatever the thread count.
  constexpr int64_t kRowBlock = 256;
  at::parallel_for(0, (rows + kRowBlock - 1) / kRowBlock, 1, [&](int64_t first_block, int64_t last_block) {
    std::vector<double> window_cols(neighbourhood ? cols : 0, 0.0);
    for (int64_t block = first_block; block < last_block; ++block) {
      score_rows(block * kRowBlock, std::min(rows, (block + 1) * kRowBlock), window_cols);
    }
  });
  return out;
}

// The coefficients scaled so that the largest is 1 (see metric.hpp).
CrepeParams unit_scaled(CrepeParams p) {
  const double largest = std::max({p.alpha, p.beta, p.gamma});
  if (largest > 0 && largest != 1.0) {
    p.alpha /= largest;
    p.beta /= largest;
    p.gamma /= largest;
  }
  return p;
}

}  // namespace

at::Tensor crepe_score(const at::Tensor& weight, const at::Tensor& act_norm, const CrepeParams& params, ScoreKernel kernel,
                       int64_t rows_per_slab) {
  const CrepeParams p = unit_scaled(params);
  const ScoreTerms terms = score_terms(weight, act_norm, p);
  const bool fused = kernel == ScoreKernel::Fused || (kernel == ScoreKernel::Auto && terms.A.device().is_cpu());
  TORCH_CHECK(!fused || terms.A.device().is_cpu(), "the fused CRePE kernel runs on the CPU only");
  return fused ? crepe_score_fused_cpu(terms, p) : crepe_score_tensor_ops(terms, p, rows_per_slab);
}

at::Tensor ria_score(const at::Tensor& weight, const at::Tensor& act_norm, double act_power) {
  return crepe_score(weight, act_norm, ria_params(act_power));
}

at::Tensor score(Metric metric, const at::Tensor& weight, const at::Tensor& act_norm, const CrepeParams& params) {
  switch (metric) {
    case Metric::Magnitude: return magnitude_score(weight);
    case Metric::Wanda: return wanda_score(weight, act_norm);
    case Metric::RI: return ri_score(weight);
    case Metric::RIA: return ria_score(weight, act_norm, params.act_power);
    case Metric::Crepe: return crepe_score(weight, act_norm, params);
    case Metric::SparseGPT: break;
  }
  throw std::logic_error("score(): sparsegpt selects its mask inside its own update");
}

}  // namespace crepe::prune
