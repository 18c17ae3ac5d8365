#pragma once
// Cheap stand-ins for perplexity for a candidate CRePE configuration theta, judged by its masks
// M_theta at the target sparsity/pattern, chosen one-shot from the dense calibration statistics.
//
// From weights and statistics alone (no forward pass):
//   gini        mean over layers of the Gini coefficient of the theta-scores of the weights M_theta
//               prunes: sum_i (2i - n - 1) x_(i) / (n sum x) on the ascending sort;
//   recon       relative output error the masks cause in each linear layer:
//               sum_l tr(dW_l H_l dW_l^T) / sum_l tr(W_l H_l W_l^T),  dW = W * (1 - M), H = X^T X;
//   recon_diag  the same with H replaced by its diagonal (Wanda's error model, no Gram matrices).
// From a forward pass over a small calibration subsample (network_proxy.hpp):
//   block_out   error at each block's output from its dense input, relative to the blocks' updates;
//   kl          KL(dense || pruned) of the next-token distributions, the whole model pruned at once.
//
// Which proxy tracks perplexity, and in which direction, is measured (crepe search --correlate),
// not assumed; the default is the one the data support.
#include <ATen/core/Tensor.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "crepe/io/checkpoint.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/prune/metric.hpp"
#include "crepe/prune/stats.hpp"

namespace crepe::search {

enum class Proxy { Gini, Recon, ReconDiag, BlockOut, Kl };
Proxy parse_proxy(const std::string& name, const std::string& option = "--proxy");
const char* proxy_name(Proxy proxy);
constexpr Proxy kAllProxies[] = {Proxy::Gini, Proxy::Recon, Proxy::ReconDiag, Proxy::BlockOut, Proxy::Kl};
// block_out and kl run the network; the others read weights and statistics only.
bool runs_network(Proxy proxy);
// The direction PHO takes by default, as measured against perplexity (README, "PHO: choosing the
// proxy"): every proxy is minimized but gini, whose rank correlation with perplexity is negative.
bool maximized_by_default(Proxy proxy);

// A point of PHO's search space.
struct Candidate {
  prune::CrepeParams crepe;
  prune::Group group = prune::Group::Layer;
};

struct LayerData {
  at::Tensor weight;               // [out, in] as stored, on ProxyInputs::device or the host; undefined: streamed
  std::string name;                // its checkpoint tensor, which a streamed layer is read from when judged
  const prune::InputStats* stats;  // its input's sq_sum and gram, in host memory (the stats cache)
};

class NetworkProxy;

// What the proxies judge a candidate on: the linear layers in use (seven per block, in block
// order), and, for block_out and kl, the network and its calibration subsample.
struct ProxyInputs {
  std::vector<LayerData> layers;
  // Where streamed layers (LayerData::weight undefined) are read from, at every evaluation.
  const io::Checkpoint* checkpoint = nullptr;
  std::shared_ptr<const NetworkProxy> network;  // null: only the statistics proxies are available
  // Where the proxies score and mask, in float32 (the GPU under --device cuda): each layer's weight
  // and statistics are moved there as it is judged.
  c10::Device device = c10::Device(c10::kCPU);
  // Each layer's dense energy, tr(W H W^T) and sum(W^2 diag H): the denominators of recon and
  // recon_diag, the same for every candidate, so computed at the first evaluation only.
  mutable std::vector<double> recon_energy, recon_diag_energy;
};

// A layer's weight as stored: the one held, or read from inputs.checkpoint when streamed.
at::Tensor layer_weight(const ProxyInputs& inputs, const LayerData& layer);

// Whether `proxy` can be computed from `inputs`; when not, `why` says what is missing.
bool available(Proxy proxy, const ProxyInputs& inputs, std::string* why = nullptr);

double gini_coefficient(const at::Tensor& values);

// The proxies in `which` for one candidate (they share the scoring and masking). Each must be
// available(); InputError otherwise.
std::map<Proxy, double> proxy_values(const ProxyInputs& inputs, const Candidate& candidate, const prune::MaskSpec& mask,
                                     const std::vector<Proxy>& which);

}  // namespace crepe::search
