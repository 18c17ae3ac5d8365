#pragma once
// Non-uniform layerwise sparsity: how much of each decoder block to prune so that the model as a
// whole reaches the target sparsity S. Pure functions of per-block statistics; the pipeline gathers
// the statistics and applies the result (every linear layer of block b is pruned to sparsity s_b).
//
// Every allocation returns per-block sparsities s_b in [0, 1) whose parameter-weighted mean
//   sum_b P_b s_b / sum_b P_b = S
// holds to rounding (P_b = parameters of block b; all LLaMA blocks have the same P_b, so where
// `block_params` is optional and left empty the blocks count equally). The last step of each is
// match_mean_sparsity below, which also keeps every s_b in [0, max(kMaxBlockSparsity, S)].
//
// OWL (Outlier Weighed Layerwise sparsity; --owl-m M, default 5; --owl-lambda lambda, default 0.08)
//   A = |W| * ||X_j|| (the Wanda score) of each linear layer l of block b;
//   D_b = #{A_ij > M * mean(A)} / numel, over all of block b's layers' scores together (one mean
//   over their concatenation, as OWL's code; OWL calls a decoder block a layer)
//   d_b = 2 lambda (D_b - min D) / (max D - min D)  -  mean_b(d) + (1 - S)   (density)
//   s_b = 1 - d_b
//   More outliers -> higher density -> less pruning. Equal D everywhere -> uniform S.
//
// AlphaPruning (--alpha-eps eps, default 0.3)
//   alpha_l = heavy-tail exponent of the eigenvalue spectrum of W^T W (the squared singular values
//   of W; its zero eigenvalues are dropped), fitted by fit_power_law_near_peak below (esd_alpha:
//   AlphaPruning's default `alpha_peak`); alpha_b = mean over the block's layers;
//   s_b = S (1 - eps) + 2 eps S (alpha_b - min alpha) / (max alpha - min alpha)
//   then multiplied by one common factor so that the P-weighted mean is S (AlphaPruning's own
//   rescaling), then match_mean_sparsity for the clamping. Smaller alpha = heavier tail = better
//   trained -> less pruning. Equal alpha everywhere -> uniform S.
//
// DLP (Dynamic Layerwise Pruning; --dlp-alpha a, default 0.15)
//   U_b = mean of the Wanda score over all weights of block b's linear layers (block_mean_score);
//   DLP calls U_b the block's *unimportance*. Relative importance r_b = 1 - U_b / sum_b U_b;
//   d_b = 2 a (r_b - min r) / (max r - min r)  -  mean_b(d) + (1 - S);   s_b = 1 - d_b.
//   Higher importance r (i.e. a lower mean score) -> higher density -> less pruning, as the paper
//   states ("layers with higher importance should have lower sparsity") and its code does. (The
//   paper takes the median of the scores; its code and crepe the mean.)
//
// fit_power_law (the estimator of the `powerlaw` package and WeightWatcher)
//   For each candidate x_min among the distinct positive values x (the largest excluded), over the
//   tail x_i >= x_min (n values): alpha = 1 + n / sum_i ln(x_i / x_min) (continuous Hill MLE) and
//   the Kolmogorov-Smirnov distance between the tail's empirical CDF and the fitted
//   F(x) = 1 - (x / x_min)^(1 - alpha), both one-sided gaps at every sample:
//   KS = max_k max(F(x_(k)) - k/n, (k+1)/n - F(x_(k))). The x_min with the smallest KS wins (ties:
//   the smaller x_min).
// fit_power_law_near_peak (AlphaPruning's `xmin_peak`, the setting of its published runs, with the
//   window its code means to use: see below)
//   The same, with x_min restricted to [0.95 p, 1.5 p], p = spectrum_peak: the lower edge of the
//   fullest of 100 equal bins of log10 x over [min, max]. Unrestricted, the KS search on a spectrum
//   of a few hundred eigenvalues often settles on a short, noisy far tail. (AlphaPruning's code
//   writes the lower bound as log10(0.95 p) and compares it with the eigenvalues themselves, a bound
//   on another scale (below p = 1.05 it admits every eigenvalue); crepe uses the window as
//   intended. Its KS takes the gap at k/n only.)
//   With no candidate in the window, every candidate is admitted.
#include <ATen/core/Tensor.h>

#include <cstdint>
#include <string>
#include <optional>
#include <vector>

namespace crepe::prune {

enum class Allocation { Uniform, Owl, Alpha, Dlp };

// "uniform", "owl", "alpha", "dlp"; InputError naming `option` otherwise.
Allocation parse_allocation(const std::string& name, const std::string& option = "--allocation");
const char* allocation_name(Allocation allocation);

struct AllocationParams {
  double owl_m = 5.0;         // --owl-m: outlier when A > M * mean(A); > 0
  double owl_lambda = 0.08;   // --owl-lambda: densities span [0, 2 lambda] before centring; >= 0
  double alpha_eps = 0.3;     // --alpha-eps: sparsities span [S(1 - eps), S(1 + eps)]; in [0, 1)
  double dlp_alpha = 0.15;    // --dlp-alpha: densities span [0, 2 a] before centring; >= 0
};
// InputError naming the option when out of range.
void validate(const AllocationParams& params);

// No block is allocated more than max(kMaxBlockSparsity, S).
inline constexpr double kMaxBlockSparsity = 0.99;

// The additive shift t, found exactly (piecewise-linear solve), such that
//   s'_b = clamp(s_b + t, 0, max(kMaxBlockSparsity, target))
// has P-weighted mean `target`; returns s'. Shifting keeps the differences between blocks wherever
// no clamp is hit, so an already-balanced vector comes back unchanged. block_params empty = equal
// counts; otherwise one positive count per block. InputError (--sparsity) unless target in [0, 1).
std::vector<double> match_mean_sparsity(const std::vector<double>& sparsities, double target,
                                        const std::vector<int64_t>& block_params = {});

// P-weighted mean of per-block sparsities (block_params empty = plain mean).
double mean_sparsity(const std::vector<double>& sparsities, const std::vector<int64_t>& block_params = {});

// ---- OWL ----
struct OutlierCount {
  int64_t outliers = 0;
  int64_t numel = 0;
  double ratio() const { return numel ? static_cast<double>(outliers) / static_cast<double>(numel) : 0.0; }
};
// #{A > m * mean(A)} over a block's score matrices taken together, as one concatenation: one mean
// (in float64) over all their entries, as OWL's code (check_outlier_mean on the torch.cat of the
// block's layers).
OutlierCount count_outliers(const std::vector<at::Tensor>& layer_scores, double m);
// D_b of one block: count_outliers(...).ratio().
double block_outlier_ratio(const std::vector<at::Tensor>& layer_scores, double m);

std::vector<double> owl_sparsities(const std::vector<double>& outlier_ratios, double target, double lambda,
                                   const std::vector<int64_t>& block_params = {});

// ---- AlphaPruning ----
struct PowerLawFit {
  double alpha = 0;   // density exponent: p(x) ~ x^-alpha for x >= xmin
  double xmin = 0;
  double ks = 0;      // KS distance at the chosen xmin
  int64_t tail = 0;   // samples >= xmin
  int64_t n = 0;      // positive samples considered
};
// values: any shape, any floating dtype; non-positive values are ignored. Needs at least two
// distinct positive values (std::invalid_argument via TORCH_CHECK otherwise).
PowerLawFit fit_power_law(const at::Tensor& values);
double hill_alpha(const at::Tensor& eigenvalues);  // fit_power_law(eigenvalues).alpha
// The lower edge (a value, not its log) of the fullest of `bins` equal bins of log10 of the positive
// values over [min, max]; the first such bin on equal counts.
double spectrum_peak(const at::Tensor& values, int64_t bins = 100);
PowerLawFit fit_power_law_near_peak(const at::Tensor& values, int64_t bins = 100);
// The same estimate and KS distance for a given xmin (the tail x >= xmin; at least one value above
// xmin). For diagnostics and tests: what the KS search compares.
PowerLawFit fit_power_law_at(const at::Tensor& values, double xmin);

// The empirical spectral density's support: the min(out, in) squared singular values of W, as the
// eigenvalues of the smaller Gram matrix (W W^T or W^T W) in float64; ascending, float64 on the
// CPU. Rounding can leave the smallest ones slightly negative: the fit ignores those.
at::Tensor esd_eigenvalues(const at::Tensor& weight);
// fit_power_law_near_peak(esd_eigenvalues(weight)).alpha; nothing where the spectrum has fewer than
// two distinct positive eigenvalues (an all-zero matrix, or all singular values equal): no tail.
std::optional<double> esd_alpha(const at::Tensor& weight);
// alpha_b from each block's layer exponents: the mean of those fitted; a block with none fitted
// takes the mean of the other blocks' (so about the target sparsity); with none fitted anywhere,
// every block gets 1 (uniform sparsity).
std::vector<double> block_alphas(const std::vector<std::vector<std::optional<double>>>& layer_alphas);

std::vector<double> alpha_sparsities(const std::vector<double>& block_alpha, const std::vector<int64_t>& block_params,
                                     double target, double eps);

// ---- DLP ----
// U_b: sum of all the layers' scores over their total numel (float64 accumulation).
double block_mean_score(const std::vector<at::Tensor>& layer_scores);

std::vector<double> dlp_sparsities(const std::vector<double>& block_scores, double target, double alpha,
                                   const std::vector<int64_t>& block_params = {});

}  // namespace crepe::prune
