#include "crepe/search/proxy.hpp"

#include <ATen/ATen.h>

#include <algorithm>
#include <future>
#include <optional>

#include "crepe/core/error.hpp"
#include "crepe/search/network_proxy.hpp"

namespace crepe::search {

Proxy parse_proxy(const std::string& name, const std::string& option) {
  for (Proxy p : kAllProxies) {
    if (name == proxy_name(p)) return p;
  }
  if (name == "recon-diag") return Proxy::ReconDiag;
  if (name == "block-out") return Proxy::BlockOut;
  throw_input_error(option, "unknown proxy '" + name + "' (expected gini, recon, recon_diag, block_out or kl)");
}

const char* proxy_name(Proxy proxy) {
  switch (proxy) {
    case Proxy::Gini: return "gini";
    case Proxy::Recon: return "recon";
    case Proxy::ReconDiag: return "recon_diag";
    case Proxy::BlockOut: return "block_out";
    case Proxy::Kl: return "kl";
  }
  return "";
}

bool runs_network(Proxy proxy) { return proxy == Proxy::BlockOut || proxy == Proxy::Kl; }

bool maximized_by_default(Proxy proxy) { return proxy == Proxy::Gini; }

bool available(Proxy proxy, const ProxyInputs& inputs, std::string* why) {
  auto no = [&](const char* reason) {
    if (why) *why = reason;
    return false;
  };
  if (proxy == Proxy::Recon) {
    const bool grams = !inputs.layers.empty() && std::all_of(inputs.layers.begin(), inputs.layers.end(),
                                                              [](const LayerData& l) { return l.stats->gram.defined(); });
    return grams || no("needs Gram matrices (collected with --proxy recon or --correlate)");
  }
  if (!runs_network(proxy)) return true;
  if (!inputs.network) return no("needs a calibration subsample (--proxy-samples > 0)");
  if (proxy == Proxy::Kl && !inputs.network->whole_model()) return no("needs every block of the model (--layers all)");
  return true;
}

at::Tensor layer_weight(const ProxyInputs& inputs, const LayerData& layer) {
  if (layer.weight.defined()) return layer.weight;
  require(inputs.checkpoint != nullptr, "search", "a streamed layer needs the checkpoint to read it from");
  // Pinned for a GPU: its upload then runs at full bus speed.
  return inputs.checkpoint->tensors().load(layer.name, /*pinned=*/inputs.device.is_cuda());
}

namespace {

// Hands out the layers' weights in order. Streamed ones are read one layer ahead on a second
// thread, so that reading layer l + 1 from the memory map (from disk, for a model larger than the
// page cache) overlaps judging layer l. Held layers are returned as they are.
class LayerWeightReader {
 public:
  explicit LayerWeightReader(const ProxyInputs& inputs) : inputs_(inputs) { read_ahead(0); }

  at::Tensor next() {
    const size_t l = position_++;
    at::Tensor weight = ahead_.valid() ? ahead_.get() : layer_weight(inputs_, inputs_.layers[l]);
    read_ahead(position_);
    return weight;
  }

 private:
  void read_ahead(size_t l) {
    if (l >= inputs_.layers.size() || inputs_.layers[l].weight.defined()) return;
    const ProxyInputs* inputs = &inputs_;
    ahead_ = std::async(std::launch::async, [inputs, l] { return layer_weight(*inputs, inputs->layers[l]); });
  }

  const ProxyInputs& inputs_;
  size_t position_ = 0;
  std::future<at::Tensor> ahead_;  // layer position_'s weight, being read; invalid when held
};

}  // namespace

double gini_coefficient(const at::Tensor& values) {
  const int64_t n = values.numel();
  if (n == 0) return 0.0;
  const at::Tensor x = std::get<0>(values.reshape({-1}).to(at::kDouble).sort());
  const double total = x.sum().item<double>();
  if (total <= 0) return 0.0;
  const at::Tensor rank_weight = 2.0 * at::arange(1, n + 1, x.options()) - static_cast<double>(n) - 1.0;
  return (rank_weight * x).sum().item<double>() / (static_cast<double>(n) * total);
}

std::map<Proxy, double> proxy_values(const ProxyInputs& inputs, const Candidate& candidate, const prune::MaskSpec& mask,
                                     const std::vector<Proxy>& which) {
  auto wanted = [&](Proxy p) { return std::find(which.begin(), which.end(), p) != which.end(); };
  for (Proxy p : which) {
    std::string why;
    const bool usable = available(p, inputs, &why);  // fills `why` before the message is built
    require(usable, "--proxy", std::string(proxy_name(p)) + " " + why);
  }
  prune::MaskSpec spec = mask;
  spec.group = candidate.group;
  double gini_sum = 0, error = 0, energy = 0, diag_error = 0, diag_energy = 0;
  // The network proxies run block by block, as each block's seven pruned weights are made.
  std::optional<NetworkProxy::Pass> pass;
  if (wanted(Proxy::BlockOut) || wanted(Proxy::Kl)) pass.emplace(*inputs.network, wanted(Proxy::BlockOut), wanted(Proxy::Kl));
  std::vector<at::Tensor> block_pruned;
  const prune::InputStats* gram_of = nullptr;  // q, k and v (and gate, up) share one input: one upload
  at::Tensor H;
  auto memo = [&](std::vector<double>& energies) -> std::vector<double>& {
    if (energies.size() != inputs.layers.size()) energies.assign(inputs.layers.size(), -1.0);
    return energies;
  };
  std::vector<double>& layer_energy = memo(inputs.recon_energy);
  std::vector<double>& layer_diag_energy = memo(inputs.recon_diag_energy);
  LayerWeightReader weights(inputs);
  for (size_t l = 0; l < inputs.layers.size(); ++l) {
    const LayerData& layer = inputs.layers[l];
    const at::Device device = inputs.device;
    // To the device as stored, then widened there: half the bytes cross for a 16-bit model.
    const at::Tensor W = weights.next().to(device).to(at::kFloat);
    const at::Tensor scores = prune::crepe_score(W, layer.stats->norm().to(device), candidate.crepe);
    const at::Tensor keep = prune::select_mask(scores, spec);
    if (wanted(Proxy::Gini)) gini_sum += gini_coefficient(scores.masked_select(keep.logical_not()));
    const at::Tensor removed = W * keep.logical_not();
    if (wanted(Proxy::Recon)) {
      if (gram_of != layer.stats) H = layer.stats->gram.to(device), gram_of = layer.stats;
      error += (at::matmul(removed, H) * removed).sum().item<double>();
      if (layer_energy[l] < 0) layer_energy[l] = (at::matmul(W, H) * W).sum().item<double>();
      energy += layer_energy[l];
    }
    if (wanted(Proxy::ReconDiag)) {
      const at::Tensor diag = layer.stats->sq_sum.to(device).view({1, -1});
      diag_error += (removed.pow(2) * diag).sum().item<double>();
      if (layer_diag_energy[l] < 0) layer_diag_energy[l] = (W.pow(2) * diag).sum().item<double>();
      diag_energy += layer_diag_energy[l];
    }
    if (pass) {
      block_pruned.push_back(W * keep);
      if (block_pruned.size() == model::kLinearCount) {
        pass->add_block(block_pruned);
        block_pruned.clear();
      }
    }
  }
  std::map<Proxy, double> values;
  if (wanted(Proxy::Gini)) values[Proxy::Gini] = gini_sum / static_cast<double>(std::max<size_t>(1, inputs.layers.size()));
  if (wanted(Proxy::Recon)) values[Proxy::Recon] = energy > 0 ? error / energy : 0.0;
  if (wanted(Proxy::ReconDiag)) values[Proxy::ReconDiag] = diag_energy > 0 ? diag_error / diag_energy : 0.0;
  if (wanted(Proxy::BlockOut)) values[Proxy::BlockOut] = pass->block_output_error();
  if (wanted(Proxy::Kl)) values[Proxy::Kl] = pass->kl_divergence();
  return values;
}

}  // namespace crepe::search
