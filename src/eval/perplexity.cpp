#include "crepe/eval/perplexity.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>

#include "crepe/core/error.hpp"
#include "crepe/model/head.hpp"

namespace crepe::eval {
namespace {

// Logits of a whole batch can be large (vocab 128k x seqlen 2048 x 4 bytes = 1 GiB per window), so
// the head runs a few windows at a time.
int64_t head_batch(int64_t seqlen, int64_t vocab) {
  const int64_t per_window = seqlen * vocab * 4 * 2;
  return std::max<int64_t>(1, (int64_t{512} << 20) / per_window);
}

}  // namespace

at::Tensor window_nll(const io::Checkpoint& checkpoint, const at::Tensor& final_states, const at::Tensor& windows,
                      const Placement& placement) {
  const auto& config = checkpoint.config();
  const at::Tensor final_norm = checkpoint.load_final_norm(placement);
  const at::Tensor lm_head = checkpoint.load_lm_head(placement);
  const int64_t count = windows.size(0), seqlen = windows.size(1);
  at::Tensor nll_per_window = at::empty({count}, at::TensorOptions().dtype(at::kDouble));
  const int64_t batch = head_batch(seqlen, config.vocab_size);
  for (int64_t first = 0; first < count; first += batch) {
    const int64_t n = std::min(batch, count - first);
    const at::Tensor states = final_states.narrow(0, first, n).to(placement.device, placement.compute_dtype);
    const at::Tensor logits = model::output_logits(config, final_norm, lm_head, states);
    const at::Tensor nll = model::next_token_nll(logits, windows.narrow(0, first, n));
    nll_per_window.narrow(0, first, n).copy_(nll.mean(1).cpu());
  }
  // Finite logits give a finite NLL: NaN or Inf means the forward pass broke, and a "perplexity nan"
  // would hide why.
  if (!at::isfinite(nll_per_window).all().item<bool>()) {
    throw NumericalInputError(checkpoint.dir() + ": the evaluation's next-token log-likelihoods are not finite: " +
                              non_finite_cause(placement.compute_dtype));
  }
  return nll_per_window;
}

PerplexityResult summarize(const at::Tensor& nll_per_window, int64_t seqlen, double seconds) {
  PerplexityResult result;
  result.windows = nll_per_window.size(0);
  result.seqlen = seqlen;
  result.predictions = result.windows * (seqlen - 1);
  result.mean_nll = nll_per_window.mean().item<double>();  // equal windows: mean of means = overall mean
  result.perplexity = std::exp(result.mean_nll);
  result.window_nll = nll_per_window;
  result.seconds = seconds;
  return result;
}

PerplexityResult perplexity(const io::Checkpoint& checkpoint, const at::Tensor& windows,
                            const engine::RunnerOptions& options) {
  c10::InferenceMode inference;
  const auto start = std::chrono::steady_clock::now();
  engine::BlockRunner runner(checkpoint, options);
  at::Tensor states = runner.embed(windows);
  runner.forward_all(states);
  const at::Tensor nll = window_nll(checkpoint, states, windows, options.placement);
  return summarize(nll, windows.size(1), std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count());
}

}  // namespace crepe::eval
