#include "crepe/search/cmaes.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <cinttypes>
#include <cmath>
#include <cstdio>
#include <limits>
#include <nlohmann/json.hpp>
#include <stdexcept>
#include <string>
#include <tuple>
#include <utility>

#include "crepe/core/error.hpp"

namespace crepe::search {
namespace {

using nlohmann::json;

constexpr double kPi = 3.14159265358979323846;
constexpr double kInf = std::numeric_limits<double>::infinity();
// Beyond this condition number of C, sampling along the short axes is lost in rounding (the
// tutorial's stopping criterion ConditionCov).
constexpr double kMaxCondition = 1e14;
constexpr const char* kFormat = "crepe-cmaes-1";

// Normals by Box-Muller from the platform-independent uniform stream, pairs in order, so a seed
// gives the same samples wherever libm's log/sqrt/cos/sin agree (std::normal_distribution's
// algorithm is implementation-defined). An odd count drops the last sine: every generation draws a
// fixed number of uniforms, which is what makes the stream position a function of the generation.
std::vector<double> standard_normals(Rng& rng, size_t count) {
  std::vector<double> out(count);
  for (size_t i = 0; i < count; i += 2) {
    const double radius = std::sqrt(-2.0 * std::log(1.0 - rng.uniform()));  // 1 - u in (0, 1]
    const double angle = 2.0 * kPi * rng.uniform();
    out[i] = radius * std::cos(angle);
    if (i + 1 < count) out[i + 1] = radius * std::sin(angle);
  }
  return out;
}

double norm(const std::vector<double>& v) {
  double sum = 0;
  for (double x : v) sum += x * x;
  return std::sqrt(sum);
}

// JSON has no inf/NaN (nlohmann writes null), yet bounds are often infinite and fitness may be:
// non-finite values travel as strings.
json number_to_json(double v) {
  if (std::isfinite(v)) return v;
  if (std::isnan(v)) return "nan";
  return v > 0 ? "inf" : "-inf";
}

double number_from_json(const json& j) {
  if (!j.is_string()) return j.get<double>();
  const std::string s = j.get<std::string>();
  if (s == "inf") return kInf;
  if (s == "-inf") return -kInf;
  if (s == "nan") return std::numeric_limits<double>::quiet_NaN();
  throw_input_error("cmaes state", "'" + s + "' is not a number");
}

json numbers_to_json(const std::vector<double>& v) {
  json out = json::array();
  for (double x : v) out.push_back(number_to_json(x));
  return out;
}

std::vector<double> numbers_from_json(const json& j, size_t size, const char* what) {
  require(j.is_array() && j.size() == size, "cmaes state",
          std::string(what) + " must be an array of " + std::to_string(size) + " numbers");
  std::vector<double> out;
  for (const json& x : j) out.push_back(number_from_json(x));
  return out;
}

// 64-bit integers as hex strings: many JSON readers (jq, JavaScript) hold numbers as doubles and
// would silently round a seed or an Rng state.
std::string u64_to_hex(uint64_t v) {
  char buf[32];
  std::snprintf(buf, sizeof buf, "0x%016" PRIx64, v);
  return buf;
}

uint64_t u64_from_hex(const json& j) {
  const std::string s = j.get<std::string>();
  require(s.size() > 2 && s.size() <= 18 && s.compare(0, 2, "0x") == 0 &&
              s.find_first_not_of("0123456789abcdefABCDEF", 2) == std::string::npos,
          "cmaes state", "'" + s + "' is not a 0x-prefixed 64-bit hex number");
  return std::stoull(s, nullptr, 16);
}

CmaesStop stop_from_string(const std::string& s) {
  for (CmaesStop stop : {CmaesStop::None, CmaesStop::MaxEvaluations, CmaesStop::TolFun, CmaesStop::TolX,
                         CmaesStop::ConditionNumber}) {
    if (s == to_string(stop)) return stop;
  }
  throw_input_error("cmaes state", "unknown stop reason '" + s + "'");
}

void validate(const CmaesOptions& o) {
  const size_t n = o.x0.size();
  require(n >= 1, "cmaes", "x0 must not be empty");
  require(std::isfinite(o.sigma0) && o.sigma0 > 0, "cmaes", "sigma0 must be a positive number");
  require(o.lambda == 0 || o.lambda >= 2, "cmaes", "lambda must be 0 (default) or at least 2");
  require(o.max_evaluations > 0, "cmaes", "max_evaluations must be positive");
  require(o.tol_fun >= 0 && o.tol_x >= 0, "cmaes", "tol_fun and tol_x must not be negative");
  require(o.lower.empty() || o.lower.size() == n, "cmaes", "lower must be empty or have one bound per coordinate");
  require(o.upper.empty() || o.upper.size() == n, "cmaes", "upper must be empty or have one bound per coordinate");
  for (size_t i = 0; i < n; ++i) {
    const double lo = o.lower.empty() ? -kInf : o.lower[i];
    const double hi = o.upper.empty() ? kInf : o.upper[i];
    const std::string at = "coordinate " + std::to_string(i);
    require(std::isfinite(o.x0[i]), "cmaes", "x0 " + at + " is not finite");
    require(lo < hi, "cmaes", "lower bound must be below the upper bound at " + at);
    require(lo <= o.x0[i] && o.x0[i] <= hi, "cmaes", "x0 lies outside the bounds at " + at);
  }
}

json options_to_json(const CmaesOptions& o) {
  return {{"x0", numbers_to_json(o.x0)},
          {"sigma0", o.sigma0},
          {"lower", numbers_to_json(o.lower)},
          {"upper", numbers_to_json(o.upper)},
          {"lambda", o.lambda},
          {"seed", u64_to_hex(o.seed)},
          {"max_evaluations", o.max_evaluations},
          {"tol_fun", o.tol_fun},
          {"tol_x", o.tol_x}};
}

CmaesOptions options_from_json(const json& j) {
  CmaesOptions o;
  const json& x0 = j.at("x0");
  o.x0 = numbers_from_json(x0, x0.size(), "x0");
  o.sigma0 = j.at("sigma0").get<double>();
  const json& lower = j.at("lower");
  const json& upper = j.at("upper");
  o.lower = numbers_from_json(lower, lower.size(), "lower");
  o.upper = numbers_from_json(upper, upper.size(), "upper");
  o.lambda = j.at("lambda").get<int>();
  o.seed = u64_from_hex(j.at("seed"));
  o.max_evaluations = j.at("max_evaluations").get<int64_t>();
  o.tol_fun = j.at("tol_fun").get<double>();
  o.tol_x = j.at("tol_x").get<double>();
  return o;
}

}  // namespace

const char* to_string(CmaesStop stop) {
  switch (stop) {
    case CmaesStop::None: return "none";
    case CmaesStop::MaxEvaluations: return "max_evaluations";
    case CmaesStop::TolFun: return "tolfun";
    case CmaesStop::TolX: return "tolx";
    case CmaesStop::ConditionNumber: return "condition_number";
  }
  return "unknown";
}

Cmaes::Cmaes(CmaesOptions options) : options_(std::move(options)) {
  validate(options_);
  n_ = static_cast<int>(options_.x0.size());
  lambda_ = options_.lambda > 0 ? options_.lambda : 4 + static_cast<int>(std::floor(3.0 * std::log(n_)));
  set_strategy_parameters();
  const size_t n = n_;
  mean_ = options_.x0;
  sigma_ = options_.sigma0;
  C_.assign(n * n, 0.0);
  for (size_t i = 0; i < n; ++i) C_[i * n + i] = 1.0;
  B_ = C_;
  D_.assign(n, 1.0);
  p_sigma_.assign(n, 0.0);
  p_c_.assign(n, 0.0);
  rng_.set_state(options_.seed);
  best_f_ = kInf;
}

// The tutorial's defaults (its Table 1), with only the mu = floor(lambda/2) positive weights.
void Cmaes::set_strategy_parameters() {
  const double n = n_;
  const int mu = lambda_ / 2;
  weights_.resize(mu);
  double sum = 0;
  for (int i = 0; i < mu; ++i) {
    weights_[i] = std::log((lambda_ + 1) / 2.0) - std::log(i + 1.0);
    sum += weights_[i];
  }
  double sum_sq = 0;
  for (double& w : weights_) {
    w /= sum;
    sum_sq += w * w;
  }
  mu_eff_ = 1.0 / sum_sq;
  c_sigma_ = (mu_eff_ + 2) / (n + mu_eff_ + 5);
  d_sigma_ = 1 + 2 * std::max(0.0, std::sqrt((mu_eff_ - 1) / (n + 1)) - 1) + c_sigma_;
  c_c_ = (4 + mu_eff_ / n) / (n + 4 + 2 * mu_eff_ / n);
  // Table 1 of Hansen's tutorial (arXiv:1604.00772, 2016). Later revisions and pycma add 1/4 to
  // c_mu's numerator (0.070 against 0.051 at n = 3); the measurements in the README used this form.
  const double alpha_cov = 2;
  c_1_ = alpha_cov / ((n + 1.3) * (n + 1.3) + mu_eff_);
  c_mu_ = std::min(1 - c_1_, alpha_cov * (mu_eff_ - 2 + 1 / mu_eff_) /
                                 ((n + 2) * (n + 2) + alpha_cov * mu_eff_ / 2));
  chi_n_ = std::sqrt(n) * (1 - 1 / (4 * n) + 1 / (21 * n * n));
  // Decomposing only every 1/(10 n (c_1 + c_mu)) generations keeps the O(n^3) cost per evaluation
  // at O(n^2) without measurably changing the search (the tutorial's appendix B.2).
  eigen_gap_ = std::max<int64_t>(1, static_cast<int64_t>(std::floor(1 / (10 * n * (c_1_ + c_mu_)))));
  history_len_ = 10 + static_cast<size_t>(std::ceil(30 * n / lambda_));
}

std::vector<std::vector<double>> Cmaes::ask() {
  if (pending_.empty()) {
    const size_t n = n_;
    const std::vector<double> normals = standard_normals(rng_, n * lambda_);
    for (int k = 0; k < lambda_; ++k) pending_.push_back(sample_one(normals, k * n));
  }
  std::vector<std::vector<double>> out;
  for (const Sample& s : pending_) out.push_back(s.x);
  return out;
}

// x = m + sigma * B D z.
Cmaes::Sample Cmaes::sample_one(const std::vector<double>& normals, size_t offset) const {
  const size_t n = n_;
  Sample s;
  s.z.assign(normals.begin() + offset, normals.begin() + offset + n);
  s.y.assign(n, 0.0);
  s.x.resize(n);
  for (size_t i = 0; i < n; ++i) {
    for (size_t k = 0; k < n; ++k) s.y[i] += B_[i * n + k] * D_[k] * s.z[k];
    s.x[i] = mean_[i] + sigma_ * s.y[i];
  }
  if (!options_.lower.empty() || !options_.upper.empty()) repair(s);
  return s;
}

void Cmaes::repair(Sample& s) const {
  const size_t n = n_;
  bool moved = false;
  for (size_t i = 0; i < n; ++i) {
    const double lo = options_.lower.empty() ? -kInf : options_.lower[i];
    const double hi = options_.upper.empty() ? kInf : options_.upper[i];
    const double clipped = std::min(std::max(s.x[i], lo), hi);
    moved |= clipped != s.x[i];
    s.x[i] = clipped;
  }
  if (!moved) return;
  // The step actually taken, and its whitened form D^-1 B^T y for step-size control.
  for (size_t i = 0; i < n; ++i) s.y[i] = (s.x[i] - mean_[i]) / sigma_;
  for (size_t k = 0; k < n; ++k) {
    double dot = 0;
    for (size_t i = 0; i < n; ++i) dot += B_[i * n + k] * s.y[i];
    s.z[k] = dot / D_[k];
  }
  // A clipped step can be improbably long in C's metric (a far sample pulled onto a face along a
  // short axis); capping its Mahalanobis length bounds its weight in p_sigma and C.
  const double cap = std::sqrt(static_cast<double>(n)) + 2.0 * n / (n + 2.0);
  const double length = norm(s.z);
  if (length <= cap) return;
  for (size_t i = 0; i < n; ++i) {
    s.y[i] *= cap / length;
    s.z[i] *= cap / length;
  }
}

void Cmaes::tell(const std::vector<double>& fitness) {
  if (pending_.empty()) throw std::logic_error("Cmaes::tell: no pending generation (call ask() first)");
  if (fitness.size() != pending_.size()) {
    throw std::logic_error("Cmaes::tell: got " + std::to_string(fitness.size()) + " values for " +
                           std::to_string(pending_.size()) + " candidates");
  }
  evaluations_ += lambda_;
  record_best(fitness);
  update_distribution(ranking(fitness));
  pending_.clear();
  ++generation_;
  if (generation_ - eigen_generation_ >= eigen_gap_) decompose();
  check_stop(fitness);
}

// Indices by increasing value; NaN last, ties by index so the order never depends on the sort.
std::vector<size_t> Cmaes::ranking(const std::vector<double>& fitness) const {
  std::vector<size_t> order(fitness.size());
  for (size_t i = 0; i < order.size(); ++i) order[i] = i;
  auto key = [&](size_t i) {
    const bool nan = std::isnan(fitness[i]);
    return std::make_tuple(nan, nan ? 0.0 : fitness[i], i);
  };
  std::sort(order.begin(), order.end(), [&](size_t a, size_t b) { return key(a) < key(b); });
  return order;
}

void Cmaes::record_best(const std::vector<double>& fitness) {
  double gen_best = std::numeric_limits<double>::quiet_NaN();
  for (size_t k = 0; k < fitness.size(); ++k) {
    if (std::isnan(fitness[k])) continue;
    if (!(fitness[k] >= gen_best)) gen_best = fitness[k];  // also replaces the initial NaN
    if (fitness[k] < best_f_ || best_x_.empty()) {
      best_f_ = fitness[k];
      best_x_ = pending_[k].x;
    }
  }
  best_history_.push_back(gen_best);
  if (best_history_.size() > history_len_) best_history_.erase(best_history_.begin());
}

// Mean, evolution paths and step size; the tutorial's equations (41)-(47) with c_m = 1.
void Cmaes::update_distribution(const std::vector<size_t>& order) {
  const size_t n = n_;
  std::vector<double> y_w(n, 0.0), z_w(n, 0.0);
  for (size_t r = 0; r < weights_.size(); ++r) {
    const Sample& s = pending_[order[r]];
    for (size_t i = 0; i < n; ++i) {
      y_w[i] += weights_[r] * s.y[i];
      z_w[i] += weights_[r] * s.z[i];
    }
  }
  const double ps_rate = std::sqrt(c_sigma_ * (2 - c_sigma_) * mu_eff_);
  for (size_t i = 0; i < n; ++i) {
    mean_[i] += sigma_ * y_w[i];
    double bz = 0;  // C^-1/2 y_w = B z_w
    for (size_t k = 0; k < n; ++k) bz += B_[i * n + k] * z_w[k];
    p_sigma_[i] = (1 - c_sigma_) * p_sigma_[i] + ps_rate * bz;
  }
  const double ps_norm = norm(p_sigma_);
  // h_sigma stalls p_c while p_sigma is long (sigma about to grow), so C does not stretch too fast.
  const double ps_bias = std::sqrt(1 - std::pow(1 - c_sigma_, 2.0 * (generation_ + 1)));
  const bool h_sigma = ps_norm / ps_bias < (1.4 + 2.0 / (n + 1)) * chi_n_;
  const double pc_rate = h_sigma ? std::sqrt(c_c_ * (2 - c_c_) * mu_eff_) : 0.0;
  for (size_t i = 0; i < n; ++i) p_c_[i] = (1 - c_c_) * p_c_[i] + pc_rate * y_w[i];
  update_covariance(order, h_sigma);
  sigma_ *= std::exp((c_sigma_ / d_sigma_) * (ps_norm / chi_n_ - 1));
}

// Rank-one (p_c) plus rank-mu (the selected steps) update, equation (47). Only the upper triangle
// is computed and mirrored: (w*y_i)*y_j and (w*y_j)*y_i can round differently, and C must stay
// exactly symmetric for the eigendecomposition.
void Cmaes::update_covariance(const std::vector<size_t>& order, bool h_sigma) {
  const size_t n = n_;
  const double stall = h_sigma ? 0.0 : c_c_ * (2 - c_c_);  // restores the variance p_c then misses
  const double keep = 1 - c_1_ - c_mu_ + c_1_ * stall;      // the weights sum to one
  for (size_t i = 0; i < n; ++i) {
    for (size_t j = i; j < n; ++j) {
      double rank_mu = 0;
      for (size_t r = 0; r < weights_.size(); ++r) {
        const Sample& s = pending_[order[r]];
        rank_mu += weights_[r] * s.y[i] * s.y[j];
      }
      C_[i * n + j] = keep * C_[i * n + j] + c_1_ * p_c_[i] * p_c_[j] + c_mu_ * rank_mu;
      C_[j * n + i] = C_[i * n + j];
    }
  }
}

// C = B diag(D^2) B^T.
void Cmaes::decompose() {
  const int64_t n = n_;
  const at::Tensor c = at::from_blob(C_.data(), {n, n}, at::kDouble).clone();
  const auto [values, vectors] = at::linalg_eigh(c, "U");
  const at::Tensor ev = values.contiguous();
  const at::Tensor vec = vectors.contiguous();
  const double* e = ev.data_ptr<double>();
  std::copy(vec.data_ptr<double>(), vec.data_ptr<double>() + n * n, B_.begin());
  // Rounding can leave a tiny or negative eigenvalue; flooring it keeps sampling defined, and the
  // resulting huge condition number stops the run (check_stop).
  const double smallest = e[n - 1] / (kMaxCondition * 1e6);
  for (int64_t k = 0; k < n; ++k) D_[k] = std::sqrt(std::max(e[k], smallest));
  eigen_generation_ = generation_;
}

void Cmaes::check_stop(const std::vector<double>& fitness) {
  const auto [d_min, d_max] = std::minmax_element(D_.begin(), D_.end());
  stop_ = CmaesStop::None;
  if ((*d_max / *d_min) * (*d_max / *d_min) > kMaxCondition) {
    stop_ = CmaesStop::ConditionNumber;
  } else if (tol_fun_reached(fitness)) {
    stop_ = CmaesStop::TolFun;
  } else if (tol_x_reached()) {
    stop_ = CmaesStop::TolX;
  } else if (evaluations_ >= options_.max_evaluations) {
    stop_ = CmaesStop::MaxEvaluations;
  }
}

// The range of the recent generations' best values and of the last generation's values. Only over
// a full history: early generations can tie by chance on a plateau.
bool Cmaes::tol_fun_reached(const std::vector<double>& fitness) const {
  if (best_history_.size() < history_len_) return false;
  double lo = kInf, hi = -kInf;
  for (const auto* values : {&best_history_, &fitness}) {
    for (double v : *values) {
      lo = std::min(lo, std::isnan(v) ? -kInf : v);  // a NaN makes the range infinite
      hi = std::max(hi, std::isnan(v) ? kInf : v);
    }
  }
  return hi - lo < options_.tol_fun;
}

// Both the sampling spread and the recent drift (sigma p_c) are below tol_x in every coordinate.
bool Cmaes::tol_x_reached() const {
  const size_t n = n_;
  for (size_t i = 0; i < n; ++i) {
    if (!(sigma_ * std::sqrt(C_[i * n + i]) < options_.tol_x)) return false;
    if (!(sigma_ * std::abs(p_c_[i]) < options_.tol_x)) return false;
  }
  return true;
}

nlohmann::json Cmaes::to_json() const {
  json pending = json::array();
  for (const Sample& s : pending_) {
    pending.push_back({{"x", numbers_to_json(s.x)}, {"y", numbers_to_json(s.y)}, {"z", numbers_to_json(s.z)}});
  }
  json state = {{"mean", numbers_to_json(mean_)},
                {"sigma", number_to_json(sigma_)},
                {"C", numbers_to_json(C_)},
                {"B", numbers_to_json(B_)},
                {"D", numbers_to_json(D_)},
                {"p_sigma", numbers_to_json(p_sigma_)},
                {"p_c", numbers_to_json(p_c_)},
                {"generation", generation_},
                {"evaluations", evaluations_},
                {"eigen_generation", eigen_generation_},
                {"rng_state", u64_to_hex(rng_.state())},
                {"pending", pending},
                {"best_history", numbers_to_json(best_history_)},
                {"best_x", numbers_to_json(best_x_)},
                {"best_f", number_to_json(best_f_)},
                {"stop", to_string(stop_)}};
  return {{"format", kFormat}, {"options", options_to_json(options_)}, {"state", state}};
}

Cmaes Cmaes::from_json(const nlohmann::json& j) {
  try {
    require(j.is_object() && j.value("format", "") == kFormat, "cmaes state",
            std::string("not a \"") + kFormat + "\" document");
    Cmaes cma(options_from_json(j.at("options")));
    cma.restore(j.at("state"));
    return cma;
  } catch (const json::exception& e) {
    throw_input_error("cmaes state", e.what());
  }
}

void Cmaes::restore(const nlohmann::json& s) {
  const size_t n = n_;
  mean_ = numbers_from_json(s.at("mean"), n, "mean");
  sigma_ = number_from_json(s.at("sigma"));
  C_ = numbers_from_json(s.at("C"), n * n, "C");
  B_ = numbers_from_json(s.at("B"), n * n, "B");
  D_ = numbers_from_json(s.at("D"), n, "D");
  p_sigma_ = numbers_from_json(s.at("p_sigma"), n, "p_sigma");
  p_c_ = numbers_from_json(s.at("p_c"), n, "p_c");
  generation_ = s.at("generation").get<int64_t>();
  evaluations_ = s.at("evaluations").get<int64_t>();
  eigen_generation_ = s.at("eigen_generation").get<int64_t>();
  rng_.set_state(u64_from_hex(s.at("rng_state")));
  const json& pending = s.at("pending");
  require(pending.empty() || pending.size() == static_cast<size_t>(lambda_), "cmaes state",
          "pending must hold no candidates or lambda of them");
  for (const json& p : pending) {
    pending_.push_back({numbers_from_json(p.at("x"), n, "x"), numbers_from_json(p.at("y"), n, "y"),
                        numbers_from_json(p.at("z"), n, "z")});
  }
  const json& history = s.at("best_history");
  require(history.size() <= history_len_, "cmaes state", "best_history is longer than TolFun's window");
  best_history_ = numbers_from_json(history, history.size(), "best_history");
  const json& best_x = s.at("best_x");
  best_x_ = numbers_from_json(best_x, best_x.empty() ? 0 : n, "best_x");
  best_f_ = number_from_json(s.at("best_f"));
  stop_ = stop_from_string(s.at("stop").get<std::string>());
}

CmaesResult minimize(const std::function<double(const std::vector<double>&)>& f, CmaesOptions options) {
  Cmaes cma(std::move(options));
  while (cma.stop() == CmaesStop::None) {
    std::vector<double> values;
    for (const std::vector<double>& x : cma.ask()) values.push_back(f(x));
    cma.tell(values);
  }
  return {cma.best_x(), cma.best_f(), cma.evaluations(), cma.generation(), cma.stop()};
}

}  // namespace crepe::search
