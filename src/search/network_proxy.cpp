#include "crepe/search/network_proxy.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include "crepe/core/error.hpp"
#include "crepe/model/head.hpp"
#include "crepe/search/layer_stats.hpp"

namespace crepe::search {
namespace {

// Logits are [sequences, seqlen, vocab] in float32: a few sequences at a time keeps them small.
int64_t head_batch(int64_t seqlen, int64_t vocab) {
  const int64_t per_sequence = seqlen * vocab * 4 * 3;  // dense and pruned log-probs, and their difference
  return std::max<int64_t>(1, (int64_t{512} << 20) / per_sequence);
}

}  // namespace

NetworkProxy::NetworkProxy(const io::Checkpoint& checkpoint, std::vector<int64_t> blocks,
                           std::vector<model::BlockWeights> dense, std::vector<at::Tensor> inputs,
                           const engine::RunnerOptions& options)
    : checkpoint_(checkpoint),
      runner_(checkpoint, options),
      blocks_(std::move(blocks)),
      dense_(std::move(dense)),
      inputs_(std::move(inputs)) {
  c10::InferenceMode inference;
  require(!blocks_.empty() && blocks_.size() == dense_.size() && blocks_.size() == inputs_.size(), "search",
          "network proxies need the weights and subsample inputs of every block in use");
  // Every evaluation runs the subsample through the blocks: its states (float32, as collected) move
  // to the device once when they and their dense outputs fit the activation budget, rather than
  // crossing to it and back in every evaluation.
  int64_t bytes = 0;
  for (const at::Tensor& x : inputs_) bytes += 2 * x.numel() * static_cast<int64_t>(x.element_size());
  if (bytes <= options.max_device_activation_bytes) {
    for (at::Tensor& x : inputs_) x = x.to(options.placement.device);
  }
  for (size_t b = 0; b < blocks_.size(); ++b) {
    at::Tensor out = inputs_[b].clone();
    // Streamed weights (linears not held) are read from the checkpoint for this one pass.
    const bool held = dense_[b].linears[0].weight.defined();
    runner_.forward(held ? io::Checkpoint::upload_block(dense_[b], options.placement)
                         : checkpoint.load_block(blocks_[b], options.placement),
                    out);
    update_energy_ += (out - inputs_[b]).pow(2).sum().item<double>();
    outputs_.push_back(std::move(out));
  }
  whole_model_ = covers_every_block(blocks_, checkpoint.num_layers());
  if (whole_model_) {
    final_norm_ = checkpoint.load_final_norm(options.placement);
    lm_head_ = checkpoint.load_lm_head(options.placement);
    dense_final_ = outputs_.back();
  }
}

model::BlockWeights NetworkProxy::with_weights(size_t block, const std::vector<at::Tensor>& pruned) const {
  require(pruned.size() == model::kLinearCount, "search", "one pruned weight per linear layer of the block");
  const Placement& placement = runner_.options().placement;
  model::BlockWeights weights = dense_[block];  // shares the norms and biases; linears replaced below
  for (int l = 0; l < model::kLinearCount; ++l) {
    weights.linears[l].weight = pruned[l].to(placement.device, placement.compute_dtype);
  }
  return weights;
}

NetworkProxy::Pass::Pass(const NetworkProxy& proxy, bool block_out, bool kl) : proxy_(proxy), block_out_(block_out), kl_(kl) {
  require(!kl || proxy.whole_model_, "--proxy", "kl needs every block of the model (--layers all)");
  if (kl_) states_ = proxy_.inputs_.front().clone();
}

void NetworkProxy::Pass::add_block(const std::vector<at::Tensor>& pruned) {
  c10::InferenceMode inference;
  require(next_ < proxy_.blocks_.size(), "search", "more pruned blocks than blocks in use");
  const model::BlockWeights weights = proxy_.with_weights(next_, pruned);
  if (block_out_) {
    at::Tensor out = proxy_.inputs_[next_].clone();
    proxy_.runner_.forward(weights, out);
    error_ += (out - proxy_.outputs_[next_]).pow(2).sum().item<double>();
  }
  if (kl_) proxy_.runner_.forward(weights, states_);
  ++next_;
}

void NetworkProxy::Pass::require_complete() const {
  require(next_ == proxy_.blocks_.size(), "search", "a network proxy was read before every block was added");
}

double NetworkProxy::Pass::block_output_error() const {
  require_complete();
  require(block_out_, "search", "block_out was not measured in this pass");
  return proxy_.update_energy_ > 0 ? error_ / proxy_.update_energy_ : 0.0;
}

at::Tensor NetworkProxy::log_probs(const at::Tensor& final_states, int64_t first, int64_t count) const {
  // The subsample's states are float32 (on the device or the host); the head is on the device in the
  // compute dtype. The dense side is recomputed each time rather than kept: [8, 2048, 128k] float32
  // log-probabilities would be 8 GiB.
  const at::Tensor states = final_states.narrow(0, first, count).to(final_norm_.device(), final_norm_.scalar_type());
  return at::log_softmax(model::output_logits(checkpoint_.config(), final_norm_, lm_head_, states).to(at::kFloat), -1);
}

double NetworkProxy::Pass::kl_divergence() const {
  c10::InferenceMode inference;
  require_complete();
  require(kl_, "search", "kl was not measured in this pass");
  const int64_t samples = states_.size(0), seqlen = states_.size(1);
  const int64_t batch = head_batch(seqlen, proxy_.checkpoint_.config().vocab_size);
  double total = 0;
  for (int64_t first = 0; first < samples; first += batch) {
    const int64_t n = std::min(batch, samples - first);
    const at::Tensor p = proxy_.log_probs(proxy_.dense_final_, first, n), q = proxy_.log_probs(states_, first, n);
    total += (p.exp() * (p - q)).sum().item<double>();
  }
  return total / static_cast<double>(samples * seqlen);
}

}  // namespace crepe::search
