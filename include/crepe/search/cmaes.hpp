#pragma once
// CMA-ES: the (mu/mu_w, lambda) evolution strategy with covariance matrix adaptation, as in N. Hansen,
// "The CMA Evolution Strategy: A Tutorial" (arXiv:1604.00772), with that tutorial's default
// parameters. PHO uses it to search CRePE's coefficients against a cheap proxy; it minimizes.
//
// Ask/tell: ask() gives lambda candidates, the caller evaluates them (in any order, in parallel, on
// any device), tell() gets their values in the same order. All randomness comes from a seeded
// crepe::Rng (normals by Box-Muller, not std::normal_distribution), so a seed gives a bit-identical
// trajectory for a given build; across platforms the uniform stream is the same and the rest agrees
// as far as libm's log/cos/sin and LAPACK's eigensolver do. The whole state (the Rng's included)
// round-trips exactly through JSON, so a search resumed from its trace continues exactly as the
// uninterrupted run would have.
//
// Step-size control is cumulative step-size adaptation (CSA); the covariance matrix gets the
// rank-one update (through the evolution path p_c) and the rank-mu update, with positive
// (logarithmic) weights only: the tutorial's negative-weight "active" update is not used.
#include <cstdint>
#include <functional>
#include <vector>

#include <nlohmann/json_fwd.hpp>

#include "crepe/core/rng.hpp"

namespace crepe::search {

// Why a run should stop; checked after every tell().
enum class CmaesStop {
  None,
  MaxEvaluations,   // evaluations() >= max_evaluations (may overshoot by up to lambda - 1)
  TolFun,           // f range over the recent generations' best values and the last generation < tol_fun
  TolX,             // sigma * sqrt(C_ii) and sigma * |p_c,i| < tol_x in every coordinate
  ConditionNumber,  // cond(C) > 1e14, or C lost positive definiteness numerically
};

const char* to_string(CmaesStop stop);

struct CmaesOptions {
  std::vector<double> x0;  // initial mean; its size is the dimension n (>= 1)
  double sigma0 = 0.5;     // initial step size (> 0); about a quarter of the interesting range
  // Per-coordinate bounds: empty for none, else n values each; -inf/+inf leave a side open.
  // x0 must lie within them. See Cmaes::ask() for how bounds are enforced.
  std::vector<double> lower;
  std::vector<double> upper;
  int lambda = 0;  // population size; 0: the default 4 + floor(3 ln n); else >= 2
  uint64_t seed = 0;
  int64_t max_evaluations = 100000;
  double tol_fun = 1e-12;  // the tutorial's TolFun
  double tol_x = 1e-12;    // absolute; the tutorial's 1e-12 * sigma0 for sigma0 of order one
};

struct CmaesResult {
  std::vector<double> x;  // best point evaluated
  double f = 0;           // its value
  int64_t evaluations = 0;
  int64_t generations = 0;
  CmaesStop stop = CmaesStop::None;
};

class Cmaes {
 public:
  // Throws InputError ("cmaes: ...") for invalid options.
  explicit Cmaes(CmaesOptions options);

  // The lambda candidates of the next generation. With bounds, a sampled point outside the box is
  // repaired by projecting it onto the box (clipping each coordinate), and the repaired point is
  // what the caller evaluates and what the update learns from. Clipping rather than a smooth
  // transformation of the search space because PHO's optima often sit exactly on a bound (a
  // coefficient of 0): clipping reaches the face exactly, and every evaluated point is one the
  // trace can show as-is. The mean, a weighted average of in-box steps, stays in the box (up to
  // rounding). To keep a repair from distorting step-size control, a repaired step whose Mahalanobis
  // length exceeds sqrt(n) + 2n/(n+2) is shortened to that length in the update (Hansen 2011,
  // "Injecting external solutions into CMA-ES"); unrepaired steps are used unchanged.
  // Until tell() is called, ask() returns the same pending generation again (so a search resumed
  // between ask and tell re-evaluates the same points).
  std::vector<std::vector<double>> ask();
  // Values of the candidates of the pending generation, in ask()'s order (minimization). NaN ranks
  // worst. Throws std::logic_error without a pending generation or with the wrong count.
  void tell(const std::vector<double>& fitness);

  CmaesStop stop() const { return stop_; }
  const std::vector<double>& best_x() const { return best_x_; }  // empty before the first tell()
  double best_f() const { return best_f_; }                       // +inf before the first tell()
  double sigma() const { return sigma_; }
  const std::vector<double>& mean() const { return mean_; }
  const std::vector<double>& covariance() const { return C_; }  // row-major n x n, symmetric
  int64_t generation() const { return generation_; }            // completed tell()s
  int64_t evaluations() const { return evaluations_; }
  int dimension() const { return n_; }
  int lambda() const { return lambda_; }
  int mu() const { return static_cast<int>(weights_.size()); }
  double mu_eff() const { return mu_eff_; }
  const CmaesOptions& options() const { return options_; }

  // The complete state, options included. from_json throws InputError ("cmaes state: ...") for a
  // document it cannot restore exactly.
  nlohmann::json to_json() const;
  static Cmaes from_json(const nlohmann::json& state);

 private:
  struct Sample {
    std::vector<double> x;  // the point handed out (repaired into the box)
    std::vector<double> y;  // the step (x - m) / sigma the update uses
    std::vector<double> z;  // the same step whitened: D^-1 B^T y
  };

  void set_strategy_parameters();
  Sample sample_one(const std::vector<double>& normals, size_t offset) const;
  void repair(Sample& s) const;
  std::vector<size_t> ranking(const std::vector<double>& fitness) const;
  void record_best(const std::vector<double>& fitness);
  void update_distribution(const std::vector<size_t>& order);
  void update_covariance(const std::vector<size_t>& order, bool h_sigma);
  void decompose();
  void check_stop(const std::vector<double>& fitness);
  bool tol_fun_reached(const std::vector<double>& fitness) const;
  bool tol_x_reached() const;
  void restore(const nlohmann::json& state);

  CmaesOptions options_;
  int n_ = 0;
  int lambda_ = 0;
  // Strategy parameters, all functions of n and lambda (recomputed, not stored, on restore).
  std::vector<double> weights_;  // mu positive weights summing to 1
  double mu_eff_ = 0, c_sigma_ = 0, d_sigma_ = 0, c_c_ = 0, c_1_ = 0, c_mu_ = 0, chi_n_ = 0;
  int64_t eigen_gap_ = 1;   // generations between eigendecompositions
  size_t history_len_ = 0;  // generations of best values TolFun looks at

  // Dynamic state.
  std::vector<double> mean_;
  double sigma_ = 0;
  std::vector<double> C_;  // row-major n x n
  std::vector<double> B_;  // row-major; column k is the k-th eigenvector of C at the last decomposition
  std::vector<double> D_;  // sqrt of the eigenvalues: the axis lengths
  std::vector<double> p_sigma_, p_c_;
  int64_t generation_ = 0;
  int64_t evaluations_ = 0;
  int64_t eigen_generation_ = 0;  // generation_ at the last decomposition
  Rng rng_{0};
  std::vector<Sample> pending_;         // the generation handed out by ask(), until tell()
  std::vector<double> best_history_;    // best value of each recent generation, oldest first
  std::vector<double> best_x_;
  double best_f_ = 0;
  CmaesStop stop_ = CmaesStop::None;
};

// Runs ask/evaluate/tell until stop(). Exceptions from f propagate.
CmaesResult minimize(const std::function<double(const std::vector<double>&)>& f, CmaesOptions options);

}  // namespace crepe::search
