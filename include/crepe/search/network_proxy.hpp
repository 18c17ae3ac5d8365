#pragma once
// The proxies that run the network (see proxy.hpp), on the first few calibration sequences:
//
//   block_out  sum_b ||B_b(X_b; W_pruned) - B_b(X_b; W)||^2 / sum_b ||B_b(X_b; W) - X_b||^2
//              over the blocks in use, X_b block b's dense input: the error the masks cause at
//              each block's output (attention and the MLP's gating included), relative to what the
//              blocks add to the residual stream;
//   kl         mean over the subsample's predictions of KL(p_dense || p_pruned), every block pruned
//              at once: errors compound through depth and are weighed by what reaches the output.
//
// A candidate costs one forward pass over the subsample, against none for the statistics proxies;
// the dense references are computed once, here.
#include <ATen/core/Tensor.h>

#include <vector>

#include "crepe/engine/runner.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/model/block.hpp"

namespace crepe::search {

class NetworkProxy {
 public:
  // blocks: the indices in use, ascending; dense: their weights on options' device, the linear
  // weights in any float dtype (the search holds them as stored) or all undefined (streamed: read
  // from `checkpoint` when needed), norms and biases in the compute dtype; inputs: the dense float32 hidden states entering each of them on the subsample,
  // [samples, seqlen, hidden].
  NetworkProxy(const io::Checkpoint& checkpoint, std::vector<int64_t> blocks, std::vector<model::BlockWeights> dense,
               std::vector<at::Tensor> inputs, const engine::RunnerOptions& options);

  // kl needs every block of the model.
  bool whole_model() const { return whole_model_; }
  int64_t samples() const { return inputs_.empty() ? 0 : inputs_.front().size(0); }

  // One candidate's forward pass, fed a block at a time as its pruned weights are made: only one
  // block of pruned weights exists at once (a whole model of them, in float32, would take twice
  // the memory of a 16-bit model).
  class Pass {
   public:
    // block_out, kl: which proxies to measure (kl needs whole_model()).
    Pass(const NetworkProxy& proxy, bool block_out, bool kl);
    // The next block in use: its seven pruned weights in model::kLinears order, any float dtype.
    void add_block(const std::vector<at::Tensor>& pruned);
    // Once every block in use was added.
    double block_output_error() const;
    double kl_divergence() const;

   private:
    void require_complete() const;

    const NetworkProxy& proxy_;
    bool block_out_, kl_;
    size_t next_ = 0;
    double error_ = 0;   // block_out: sum_b ||B_b(X_b; W_pruned) - B_b(X_b; W)||^2 so far
    at::Tensor states_;  // kl: the subsample through the pruned blocks so far
  };

 private:
  model::BlockWeights with_weights(size_t block, const std::vector<at::Tensor>& pruned) const;
  // Final hidden states -> per-position log-probabilities, a few sequences at a time.
  at::Tensor log_probs(const at::Tensor& final_states, int64_t first, int64_t count) const;

  const io::Checkpoint& checkpoint_;
  engine::BlockRunner runner_;
  std::vector<int64_t> blocks_;
  std::vector<model::BlockWeights> dense_;
  std::vector<at::Tensor> inputs_, outputs_;  // dense, per block in use
  double update_energy_ = 0;                  // sum_b ||B_b(X_b) - X_b||^2
  bool whole_model_ = false;
  at::Tensor final_norm_, lm_head_, dense_final_;
};

}  // namespace crepe::search
