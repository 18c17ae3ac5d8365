#pragma once
// Cheap stand-ins for perplexity, computed from weights and calibration statistics alone, for a
// candidate CRePE configuration theta (its masks M_theta at the target sparsity/pattern):
//
//   gini        mean over layers of the Gini coefficient of the theta-scores of the weights M_theta
//               prunes: sum_i (2i - n - 1) x_(i) / (n sum x) on the ascending sort;
//   recon       relative output error the masks cause, with no forward pass:
//               sum_l tr(dW_l H_l dW_l^T) / sum_l tr(W_l H_l W_l^T),  dW = W * (1 - M), H = X^T X;
//   recon_diag  the same with H replaced by its diagonal (Wanda's error model, no Gram matrices).
//
// Which proxy tracks perplexity, and in which direction, is measured (crepe search --correlate),
// not assumed; the default is the one the data support.
#include <ATen/core/Tensor.h>

#include <map>
#include <string>
#include <vector>

#include "crepe/prune/mask.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/stats.hpp"

namespace crepe::search {

enum class Proxy { Gini, Recon, ReconDiag };
Proxy parse_proxy(const std::string& name, const std::string& option = "--proxy");
const char* proxy_name(Proxy proxy);
constexpr Proxy kAllProxies[] = {Proxy::Gini, Proxy::Recon, Proxy::ReconDiag};

// A point of PHO's search space.
struct Candidate {
  prune::CrepeParams crepe;
  prune::Group group = prune::Group::Layer;
};

struct LayerData {
  at::Tensor weight;                    // [out, in], float32
  const prune::InputStats* stats;       // its input's sq_sum and gram
};

double gini_coefficient(const at::Tensor& values);

// All proxies at once (they share the scoring and masking, the expensive part).
std::map<Proxy, double> proxy_values(const std::vector<LayerData>& layers, const Candidate& candidate,
                                     const prune::MaskSpec& mask);

}  // namespace crepe::search
