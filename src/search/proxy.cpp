#include "crepe/search/proxy.hpp"

#include <ATen/ATen.h>

#include "crepe/core/error.hpp"

namespace crepe::search {

Proxy parse_proxy(const std::string& name, const std::string& option) {
  if (name == "gini") return Proxy::Gini;
  if (name == "recon") return Proxy::Recon;
  if (name == "recon_diag" || name == "recon-diag") return Proxy::ReconDiag;
  throw_input_error(option, "unknown proxy '" + name + "' (expected gini, recon or recon_diag)");
}

const char* proxy_name(Proxy proxy) {
  switch (proxy) {
    case Proxy::Gini: return "gini";
    case Proxy::Recon: return "recon";
    case Proxy::ReconDiag: return "recon_diag";
  }
  return "";
}

double gini_coefficient(const at::Tensor& values) {
  const int64_t n = values.numel();
  if (n == 0) return 0.0;
  const at::Tensor x = std::get<0>(values.reshape({-1}).to(at::kDouble).sort());
  const double total = x.sum().item<double>();
  if (total <= 0) return 0.0;
  const at::Tensor rank_weight = 2.0 * at::arange(1, n + 1, x.options()) - static_cast<double>(n) - 1.0;
  return (rank_weight * x).sum().item<double>() / (static_cast<double>(n) * total);
}

std::map<Proxy, double> proxy_values(const std::vector<LayerData>& layers, const Candidate& candidate,
                                     const prune::MaskSpec& mask) {
  prune::MaskSpec spec = mask;
  spec.group = candidate.group;
  double gini_sum = 0, error = 0, energy = 0, diag_error = 0, diag_energy = 0;
  for (const LayerData& layer : layers) {
    const at::Tensor& W = layer.weight;
    const at::Tensor scores = prune::crepe_score(W, layer.stats->norm(), candidate.crepe);
    const at::Tensor keep = prune::select_mask(scores, spec);
    gini_sum += gini_coefficient(scores.masked_select(keep.logical_not()));
    const at::Tensor removed = W * keep.logical_not();
    const at::Tensor& H = layer.stats->gram;
    error += (at::matmul(removed, H) * removed).sum().item<double>();
    energy += (at::matmul(W, H) * W).sum().item<double>();
    const at::Tensor diag = layer.stats->sq_sum.view({1, -1});
    diag_error += (removed.pow(2) * diag).sum().item<double>();
    diag_energy += (W.pow(2) * diag).sum().item<double>();
  }
  return {{Proxy::Gini, gini_sum / static_cast<double>(layers.size())},
          {Proxy::Recon, energy > 0 ? error / energy : 0.0},
          {Proxy::ReconDiag, diag_energy > 0 ? diag_error / diag_energy : 0.0}};
}

}  // namespace crepe::search
