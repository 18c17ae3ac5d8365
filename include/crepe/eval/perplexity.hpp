#pragma once
// Perplexity, the pruning literature's way (SparseGPT, Wanda, RIA on WikiText-2): given
// non-overlapping windows of seqlen tokens, perplexity = exp(mean next-token NLL over every
// prediction of every window), each window scored independently (no context carried over).
#include <ATen/core/Tensor.h>

#include "crepe/engine/runner.hpp"
#include "crepe/io/checkpoint.hpp"

namespace crepe::eval {

struct PerplexityResult {
  double perplexity = 0;
  double mean_nll = 0;        // nats per predicted token
  int64_t windows = 0;
  int64_t seqlen = 0;
  int64_t predictions = 0;    // windows * (seqlen - 1)
  double seconds = 0;
  at::Tensor window_nll;      // float64 [windows]: mean NLL of each window
};

// windows: int64 [N, seqlen] token ids. Streams the model block by block (see engine::BlockRunner).
PerplexityResult perplexity(const io::Checkpoint& checkpoint, const at::Tensor& windows,
                            const engine::RunnerOptions& options);

// The head's part, for callers that ran the blocks themselves (e.g. evaluating while pruning):
// final_states [N, seqlen, hidden] -> mean next-token NLL of each window, float64 [N].
at::Tensor window_nll(const io::Checkpoint& checkpoint, const at::Tensor& final_states, const at::Tensor& windows,
                      const Placement& placement);
PerplexityResult summarize(const at::Tensor& nll_per_window, int64_t seqlen, double seconds);

}  // namespace crepe::eval
