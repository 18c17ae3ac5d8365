#include "crepe/prune/allocation.hpp"

#include <ATen/ATen.h>
#include <ATen/Parallel.h>

#include <algorithm>
#include <cmath>
#include <iterator>
#include <limits>
#include <numeric>

#include "crepe/core/error.hpp"
#include "crepe/core/parse.hpp"

namespace crepe::prune {
namespace {

void check_target(double target) {
  require(std::isfinite(target) && target >= 0 && target < 1, "--sparsity", "must be in [0, 1), got " + number_text(target));
}

// One weight per block: the parameter counts, or 1 each when none are given.
std::vector<double> block_weights(const std::vector<int64_t>& params, size_t blocks) {
  if (params.empty()) return std::vector<double>(blocks, 1.0);
  TORCH_CHECK(params.size() == blocks, "allocation: ", params.size(), " parameter counts for ", blocks, " blocks");
  std::vector<double> w(blocks);
  for (size_t b = 0; b < blocks; ++b) {
    TORCH_CHECK(params[b] > 0, "allocation: block ", b, " has ", params[b], " parameters");
    w[b] = static_cast<double>(params[b]);
  }
  return w;
}

void check_finite(const std::vector<double>& values, const char* what) {
  for (size_t b = 0; b < values.size(); ++b)
    TORCH_CHECK(std::isfinite(values[b]), "allocation: ", what, " of block ", b, " is not finite (", values[b], ")");
}

// d_b = span (v_b - min v) / (max v - min v) - mean(d) + (1 - target); constant (1 - target) when v
// is constant. The densities of OWL and DLP.
std::vector<double> centred_densities(const std::vector<double>& values, double target, double span) {
  const auto [lo, hi] = std::minmax_element(values.begin(), values.end());
  const double min = *lo, range = *hi - *lo;
  std::vector<double> d(values.size(), 0.0);
  if (range > 0) {
    for (size_t b = 0; b < values.size(); ++b) d[b] = span * ((values[b] - min) / range);
  }
  const double mean = std::accumulate(d.begin(), d.end(), 0.0) / static_cast<double>(d.size());
  for (double& x : d) x = x - mean + (1.0 - target);
  return d;
}

std::vector<double> sparsities_from_densities(const std::vector<double>& densities) {
  std::vector<double> s(densities.size());
  for (size_t b = 0; b < s.size(); ++b) s[b] = 1.0 - densities[b];
  return s;
}

}  // namespace

Allocation parse_allocation(const std::string& name, const std::string& option) {
  if (name == "uniform") return Allocation::Uniform;
  if (name == "owl") return Allocation::Owl;
  if (name == "alpha") return Allocation::Alpha;
  if (name == "dlp") return Allocation::Dlp;
  throw_input_error(option, "unknown allocation '" + name + "' (expected uniform, owl, alpha or dlp)");
}

const char* allocation_name(Allocation allocation) {
  switch (allocation) {
    case Allocation::Uniform: return "uniform";
    case Allocation::Owl: return "owl";
    case Allocation::Alpha: return "alpha";
    case Allocation::Dlp: return "dlp";
  }
  return "";
}

namespace {

// OWL's lambda and DLP's alpha spread the block densities over a range of twice their value around
// 1 - S: at 0.5 that range already spans all of [0, 1], and beyond it the spread is only clamping.
void check_spread(double value, const char* option) {
  require(std::isfinite(value) && value >= 0 && value <= 0.5, option,
          "must be in [0, 0.5] (the densities spread over twice it: 0.5 spans all of [0, 1]), got " + number_text(value));
}

}  // namespace

void validate(const AllocationParams& p) {
  require(std::isfinite(p.owl_m) && p.owl_m > 0, "--owl-m", "must be a finite number > 0, got " + number_text(p.owl_m));
  check_spread(p.owl_lambda, "--owl-lambda");
  require(std::isfinite(p.alpha_eps) && p.alpha_eps >= 0 && p.alpha_eps < 1, "--alpha-eps",
          "must be in [0, 1), got " + number_text(p.alpha_eps));
  check_spread(p.dlp_alpha, "--dlp-alpha");
}

double mean_sparsity(const std::vector<double>& sparsities, const std::vector<int64_t>& block_params) {
  if (sparsities.empty()) return 0.0;
  const std::vector<double> w = block_weights(block_params, sparsities.size());
  double num = 0, den = 0;
  for (size_t b = 0; b < w.size(); ++b) {
    num += w[b] * sparsities[b];
    den += w[b];
  }
  return num / den;
}

std::vector<double> match_mean_sparsity(const std::vector<double>& sparsities, double target,
                                        const std::vector<int64_t>& block_params) {
  check_target(target);
  check_finite(sparsities, "sparsity");
  const size_t blocks = sparsities.size();
  if (blocks == 0) return {};
  const std::vector<double> w = block_weights(block_params, blocks);
  const double total = std::accumulate(w.begin(), w.end(), 0.0);
  const double cap = std::max(kMaxBlockSparsity, target);
  if (target <= 0) return std::vector<double>(blocks, 0.0);
  if (target >= cap) return std::vector<double>(blocks, cap);

  // g(t) = sum_b w_b clamp(s_b + t, 0, cap) / total is continuous, nondecreasing and piecewise
  // linear with breakpoints at -s_b and cap - s_b; g = 0 left of all of them and cap right of all.
  const auto g = [&](double t) {
    double sum = 0;
    for (size_t b = 0; b < blocks; ++b) sum += w[b] * std::clamp(sparsities[b] + t, 0.0, cap);
    return sum / total;
  };
  std::vector<double> breaks;
  breaks.reserve(2 * blocks);
  for (double s : sparsities) {
    breaks.push_back(-s);
    breaks.push_back(cap - s);
  }
  std::sort(breaks.begin(), breaks.end());
  // The first breakpoint where g reaches the target closes the segment holding the solution.
  size_t k = 1;
  while (k + 1 < breaks.size() && g(breaks[k]) < target) ++k;
  const double lo = breaks[k - 1], hi = breaks[k], mid = 0.5 * (lo + hi);
  // On (lo, hi) every block is either free (0 < s + t < cap), at 0 or at cap: solve the linear
  // equation over the free ones exactly.
  double free_weight = 0, fixed = 0, free_sum = 0;
  for (size_t b = 0; b < blocks; ++b) {
    const double x = sparsities[b] + mid;
    if (x >= cap) {
      fixed += w[b] * cap;
    } else if (x > 0) {
      free_weight += w[b];
      free_sum += w[b] * sparsities[b];
    }
  }
  const double t = free_weight > 0 ? (target * total - fixed - free_sum) / free_weight : lo;
  std::vector<double> out(blocks);
  for (size_t b = 0; b < blocks; ++b) out[b] = std::clamp(sparsities[b] + t, 0.0, cap);
  return out;
}

// ---- OWL ----

namespace {

void check_owl_m(double m) {
  require(std::isfinite(m) && m > 0, "--owl-m", "must be a finite number > 0, got " + number_text(m));
}

// Float32 or float64 view of a score matrix, and its sum in float64.
at::Tensor as_scores(const at::Tensor& wanda_scores) {
  TORCH_CHECK(wanda_scores.defined() && wanda_scores.numel() > 0, "count_outliers: empty score matrix");
  return wanda_scores.scalar_type() == at::kDouble ? wanda_scores : wanda_scores.to(at::kFloat);
}
double sum_of(const at::Tensor& a) { return at::sum(a, at::kDouble).item<double>(); }

// #{a > threshold}, compared exactly in float64.
int64_t count_above(const at::Tensor& a, double threshold) {
  if (a.scalar_type() == at::kDouble) return a.gt(threshold).sum().item<int64_t>();
  // Exactly `a > threshold` in float64 without a float64 copy: compare with the nearest float.
  const float nearest = static_cast<float>(threshold);
  const at::Tensor hit = static_cast<double>(nearest) > threshold ? a.ge(nearest) : a.gt(nearest);
  return hit.sum().item<int64_t>();
}

}  // namespace

OutlierCount count_outliers(const std::vector<at::Tensor>& layer_scores, double m) {
  check_owl_m(m);
  OutlierCount count;
  double sum = 0;
  for (const at::Tensor& scores : layer_scores) {
    sum += sum_of(as_scores(scores));
    count.numel += scores.numel();
  }
  TORCH_CHECK(count.numel > 0, "count_outliers: no scores");
  const double threshold = m * (sum / static_cast<double>(count.numel));
  for (const at::Tensor& scores : layer_scores) count.outliers += count_above(as_scores(scores), threshold);
  return count;
}

double block_outlier_ratio(const std::vector<at::Tensor>& layer_scores, double m) {
  return count_outliers(layer_scores, m).ratio();
}

std::vector<double> owl_sparsities(const std::vector<double>& outlier_ratios, double target, double lambda,
                                   const std::vector<int64_t>& block_params) {
  check_target(target);
  check_spread(lambda, "--owl-lambda");
  check_finite(outlier_ratios, "outlier ratio");
  if (outlier_ratios.empty()) return {};
  const std::vector<double> d = centred_densities(outlier_ratios, target, 2.0 * lambda);
  return match_mean_sparsity(sparsities_from_densities(d), target, block_params);
}

// ---- AlphaPruning ----

namespace {

// The finite positive values of `values`, ascending.
std::vector<double> positive_sorted(const at::Tensor& values) {
  TORCH_CHECK(values.defined(), "fit_power_law: undefined tensor");
  const at::Tensor v = values.detach().to(at::kCPU, at::kDouble).reshape({-1}).contiguous();
  const double* data = v.data_ptr<double>();
  std::vector<double> x;
  x.reserve(static_cast<size_t>(v.numel()));
  for (int64_t i = 0; i < v.numel(); ++i)
    if (std::isfinite(data[i]) && data[i] > 0) x.push_back(data[i]);
  std::sort(x.begin(), x.end());
  return x;
}

struct TailFit {
  double alpha;
  double ks;
};

// The Hill estimate and KS distance of the tail lx[first..] (logs, ascending) above log_xmin
// (<= lx[first]); log_sum = sum of the tail's logs. The KS scan stops once it exceeds `stop`.
TailFit fit_tail(const std::vector<double>& lx, int64_t first, double log_xmin, double log_sum, double stop) {
  const int64_t n = static_cast<int64_t>(lx.size()) - first;
  const double nd = static_cast<double>(n);
  const double alpha = 1.0 + nd / (log_sum - nd * log_xmin);
  double d = 0;
  for (int64_t k = 0; k < n; ++k) {
    const double fitted = 1.0 - std::exp((1.0 - alpha) * (lx[first + k] - log_xmin));
    d = std::max({d, fitted - static_cast<double>(k) / nd, static_cast<double>(k + 1) / nd - fitted});
    if (d > stop) break;
  }
  return {alpha, d};
}

}  // namespace

namespace {

// The KS-minimising fit among the candidate xmin of `x` (ascending, positive; the first index of each
// distinct value below the maximum) that `admit` accepts, or among all of them if it accepts none.
template <typename Admit>
PowerLawFit best_tail_fit(const std::vector<double>& x, Admit admit) {
  const int64_t n_all = static_cast<int64_t>(x.size());
  TORCH_CHECK(n_all >= 2 && x.front() < x.back(), "fit_power_law: needs at least two distinct positive values, got ",
              n_all, " positive");
  std::vector<double> lx(x.size());
  for (size_t i = 0; i < x.size(); ++i) lx[i] = std::log(x[i]);
  std::vector<double> suffix(x.size() + 1, 0.0);  // suffix[i] = sum_{k >= i} ln x_k
  for (int64_t i = n_all - 1; i >= 0; --i) suffix[i] = suffix[i + 1] + lx[i];

  std::vector<int64_t> all, candidates;
  for (int64_t i = 0; i < n_all; ++i)
    if ((i == 0 || x[i] != x[i - 1]) && x[i] < x.back()) all.push_back(i);
  std::copy_if(all.begin(), all.end(), std::back_inserter(candidates), [&](int64_t i) { return admit(x[i]); });
  if (candidates.empty()) candidates = all;
  const int64_t count = static_cast<int64_t>(candidates.size());
  std::vector<TailFit> fits(candidates.size());
  at::parallel_for(0, count, 16, [&](int64_t begin, int64_t end) {
    // The smallest KS of this chunk so far: a candidate whose running KS exceeds it cannot win, so
    // its scan stops early (its stored KS is then a lower bound above the minimum: never chosen).
    double best = std::numeric_limits<double>::infinity();
    for (int64_t c = begin; c < end; ++c) {
      const int64_t i = candidates[c];
      fits[c] = fit_tail(lx, i, lx[i], suffix[i], best);
      best = std::min(best, fits[c].ks);
    }
  });
  // The first minimum: the smallest xmin among equal distances.
  int64_t chosen = 0;
  for (int64_t c = 1; c < count; ++c)
    if (fits[c].ks < fits[chosen].ks) chosen = c;
  PowerLawFit fit;
  fit.alpha = fits[chosen].alpha;
  fit.ks = fits[chosen].ks;
  fit.xmin = x[candidates[chosen]];
  fit.tail = n_all - candidates[chosen];
  fit.n = n_all;
  return fit;
}

}  // namespace

PowerLawFit fit_power_law(const at::Tensor& values) {
  return best_tail_fit(positive_sorted(values), [](double) { return true; });
}

double spectrum_peak(const at::Tensor& values, int64_t bins) {
  TORCH_CHECK(bins >= 1, "spectrum_peak: bins must be >= 1, got ", bins);
  const std::vector<double> x = positive_sorted(values);
  TORCH_CHECK(!x.empty(), "spectrum_peak: no positive value");
  const double lo = std::log10(x.front()), width = (std::log10(x.back()) - lo) / static_cast<double>(bins);
  if (!(width > 0)) return x.front();
  std::vector<int64_t> counts(static_cast<size_t>(bins), 0);
  for (double v : x) {
    const auto bin = static_cast<int64_t>(std::floor((std::log10(v) - lo) / width));
    ++counts[static_cast<size_t>(std::clamp<int64_t>(bin, 0, bins - 1))];  // the maximum closes the last bin
  }
  const auto peak = std::max_element(counts.begin(), counts.end()) - counts.begin();  // the first of equal counts
  return std::pow(10.0, lo + static_cast<double>(peak) * width);
}

PowerLawFit fit_power_law_near_peak(const at::Tensor& values, int64_t bins) {
  const double peak = spectrum_peak(values, bins);
  return best_tail_fit(positive_sorted(values), [peak](double xmin) { return xmin >= 0.95 * peak && xmin <= 1.5 * peak; });
}

PowerLawFit fit_power_law_at(const at::Tensor& values, double xmin) {
  TORCH_CHECK(std::isfinite(xmin) && xmin > 0, "fit_power_law_at: xmin must be positive, got ", xmin);
  const std::vector<double> x = positive_sorted(values);
  const int64_t first = std::lower_bound(x.begin(), x.end(), xmin) - x.begin();
  const int64_t n_all = static_cast<int64_t>(x.size());
  TORCH_CHECK(n_all - first >= 1 && x.back() > xmin, "fit_power_law_at: no value above xmin ", xmin);
  std::vector<double> lx(x.size());
  double log_sum = 0;
  for (size_t i = 0; i < x.size(); ++i) {
    lx[i] = std::log(x[i]);
    if (static_cast<int64_t>(i) >= first) log_sum += lx[i];
  }
  const TailFit tail = fit_tail(lx, first, std::log(xmin), log_sum, std::numeric_limits<double>::infinity());
  PowerLawFit fit;
  fit.alpha = tail.alpha;
  fit.ks = tail.ks;
  fit.xmin = xmin;
  fit.tail = n_all - first;
  fit.n = n_all;
  return fit;
}

double hill_alpha(const at::Tensor& eigenvalues) { return fit_power_law(eigenvalues).alpha; }

at::Tensor esd_eigenvalues(const at::Tensor& weight) {
  TORCH_CHECK(weight.dim() == 2, "esd_eigenvalues expects a 2-D weight, got ", weight.dim(), " dims");
  // The smaller Gram matrix has exactly the squared singular values as eigenvalues, in float64: in
  // float32 its smallest eigenvalues drown in the rounding of the largest (a 2048 x 2048 Gaussian's
  // smallest came out 1.5e-4 instead of 9.0e-6), which moves the spectrum's peak and the fitted
  // alpha. As fast as the float32 SVD AlphaPruning takes, and closer to the exact values.
  const at::Tensor w = weight.detach().to(at::kDouble);
  const at::Tensor gram = w.size(0) <= w.size(1) ? at::matmul(w, w.t()) : at::matmul(w.t(), w);
  return at::linalg_eigvalsh(gram).to(at::kCPU, at::kDouble);  // ascending
}

std::optional<double> esd_alpha(const at::Tensor& weight) {
  const at::Tensor eigenvalues = esd_eigenvalues(weight);
  const std::vector<double> x = positive_sorted(eigenvalues);
  if (x.size() < 2 || x.front() == x.back()) return std::nullopt;
  return fit_power_law_near_peak(eigenvalues).alpha;
}

std::vector<double> block_alphas(const std::vector<std::vector<std::optional<double>>>& layer_alphas) {
  std::vector<std::optional<double>> block(layer_alphas.size());
  double fitted_sum = 0;
  int64_t fitted_blocks = 0;
  for (size_t b = 0; b < layer_alphas.size(); ++b) {
    double sum = 0;
    int64_t count = 0;
    for (const std::optional<double>& alpha : layer_alphas[b]) {
      if (alpha) {
        sum += *alpha;
        ++count;
      }
    }
    if (count == 0) continue;
    block[b] = sum / static_cast<double>(count);
    fitted_sum += *block[b];
    ++fitted_blocks;
  }
  const double neutral = fitted_blocks > 0 ? fitted_sum / static_cast<double>(fitted_blocks) : 1.0;
  std::vector<double> out(block.size());
  for (size_t b = 0; b < block.size(); ++b) out[b] = block[b].value_or(neutral);
  return out;
}

std::vector<double> alpha_sparsities(const std::vector<double>& block_alpha, const std::vector<int64_t>& block_params,
                                     double target, double eps) {
  check_target(target);
  require(std::isfinite(eps) && eps >= 0 && eps < 1, "--alpha-eps", "must be in [0, 1), got " + number_text(eps));
  check_finite(block_alpha, "alpha");
  const size_t blocks = block_alpha.size();
  if (blocks == 0) return {};
  const std::vector<double> w = block_weights(block_params, blocks);
  const auto [lo, hi] = std::minmax_element(block_alpha.begin(), block_alpha.end());
  const double min = *lo, range = *hi - *lo;
  std::vector<double> s(blocks, target);
  if (range > 0) {
    for (size_t b = 0; b < blocks; ++b)
      s[b] = target * (1.0 - eps) + 2.0 * eps * target * ((block_alpha[b] - min) / range);
  }
  // AlphaPruning's own correction: one common factor brings the weighted mean to the target.
  double num = 0, den = 0;
  for (size_t b = 0; b < blocks; ++b) {
    num += w[b] * target;
    den += w[b] * s[b];
  }
  if (den > 0)
    for (double& x : s) x *= num / den;
  return match_mean_sparsity(s, target, block_params);
}

// ---- DLP ----

double block_mean_score(const std::vector<at::Tensor>& layer_scores) {
  double sum = 0;
  int64_t numel = 0;
  for (const at::Tensor& scores : layer_scores) {
    TORCH_CHECK(scores.defined(), "block_mean_score: undefined score matrix");
    sum += at::sum(scores, at::kDouble).item<double>();
    numel += scores.numel();
  }
  TORCH_CHECK(numel > 0, "block_mean_score: no scores");
  return sum / static_cast<double>(numel);
}

std::vector<double> dlp_sparsities(const std::vector<double>& block_scores, double target, double alpha,
                                   const std::vector<int64_t>& block_params) {
  check_target(target);
  check_spread(alpha, "--dlp-alpha");
  check_finite(block_scores, "score");
  if (block_scores.empty()) return {};
  for (size_t b = 0; b < block_scores.size(); ++b)
    TORCH_CHECK(block_scores[b] >= 0, "dlp_sparsities: block ", b, " has a negative mean score ", block_scores[b]);
  const double total = std::accumulate(block_scores.begin(), block_scores.end(), 0.0);
  std::vector<double> importance(block_scores.size(), 1.0);
  if (total > 0)
    for (size_t b = 0; b < block_scores.size(); ++b) importance[b] = 1.0 - block_scores[b] / total;
  const std::vector<double> d = centred_densities(importance, target, 2.0 * alpha);
  return match_mean_sparsity(sparsities_from_densities(d), target, block_params);
}

}  // namespace crepe::prune
