#include "crepe/prune/metric.hpp"

#include <ATen/ATen.h>

#include "crepe/core/error.hpp"

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

CrepeParams ria_params(double act_power) {
  CrepeParams p;
  p.kernel_size = 1;
  p.alpha = 1.0;
  p.beta = 1.0;
  p.gamma = 0.0;
  p.act_power = act_power;
  return p;
}

void validate(const CrepeParams& p) {
  require(p.kernel_size >= 1 && p.kernel_size % 2 == 1, "--kernel-size",
          "must be an odd positive integer, got " + std::to_string(p.kernel_size));
  require(p.alpha >= 0, "--alpha", "must be >= 0, got " + std::to_string(p.alpha));
  require(p.beta >= 0, "--beta", "must be >= 0, got " + std::to_string(p.beta));
  require(p.gamma >= 0, "--gamma", "must be >= 0, got " + std::to_string(p.gamma));
  require(p.alpha + p.beta + p.gamma > 0, "--alpha/--beta/--gamma", "at least one coefficient must be positive");
  require(p.act_power >= 0 && p.act_power <= 1, "--act-power", "must be in [0, 1], got " + std::to_string(p.act_power));
}

at::Tensor box_sum(const at::Tensor& x, int64_t kernel_size) {
  if (kernel_size == 1) return x.to(at::kDouble);
  const at::Tensor x64 = x.to(at::kDouble);
  return box_sum_1d(box_sum_1d(x64, 1, kernel_size), 0, kernel_size);
}

at::Tensor magnitude_score(const at::Tensor& weight) { return weight.to(at::kFloat).abs(); }

at::Tensor wanda_score(const at::Tensor& weight, const at::Tensor& act_norm) {
  return magnitude_score(weight) * act_norm.to(at::kFloat).view({1, -1});
}

at::Tensor ri_score(const at::Tensor& weight) {
  // RIA without the activation factor (a = 0): the same code path, so the formula lives once.
  return crepe_score(weight, at::Tensor(), ria_params(0.0));
}

at::Tensor crepe_score(const at::Tensor& weight, const at::Tensor& act_norm, const CrepeParams& p) {
  const at::Tensor A = magnitude_score(weight);
  at::Tensor relative = p.alpha * safe_ratio(A, A.sum(1, true)) + p.beta * safe_ratio(A, A.sum(0, true));
  if (p.gamma != 0.0) {
    // The window ratio is formed in float64 and rounded once.
    const at::Tensor window = box_sum(A, p.kernel_size);
    relative = relative + p.gamma * safe_ratio(A.to(at::kDouble), window).to(at::kFloat);
  }
  if (p.act_power == 0.0) return relative;
  return relative * act_norm.to(at::kFloat).pow(p.act_power).view({1, -1});
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
