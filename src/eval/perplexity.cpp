#include "crepe/eval/perplexity.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <chrono>
#include <cmath>

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

PerplexityResult perplexity(const io::Checkpoint& checkpoint, const at::Tensor& windows,
                            const engine::RunnerOptions& options) {
  c10::InferenceMode inference;
  const auto start = std::chrono::steady_clock::now();
  engine::BlockRunner runner(checkpoint, options);
  at::Tensor states = runner.embed(windows);
  runner.forward_all(states);

  const auto& config = checkpoint.config();
  at::Tensor final_norm = checkpoint.load_final_norm(options.placement);
  at::Tensor lm_head = checkpoint.load_lm_head(options.placement);
  const int64_t count = windows.size(0), seqlen = windows.size(1);
  at::Tensor window_nll = at::empty({count}, at::TensorOptions().dtype(at::kDouble));
  const int64_t batch = head_batch(seqlen, config.vocab_size);
  for (int64_t first = 0; first < count; first += batch) {
    const int64_t n = std::min(batch, count - first);
    at::Tensor logits = model::output_logits(config, final_norm, lm_head, states.narrow(0, first, n));
    at::Tensor nll = model::next_token_nll(logits, windows.narrow(0, first, n));
    window_nll.narrow(0, first, n).copy_(nll.mean(1).cpu());
  }

  PerplexityResult result;
  result.windows = count;
  result.seqlen = seqlen;
  result.predictions = count * (seqlen - 1);
  result.mean_nll = window_nll.mean().item<double>();  // equal windows: mean of means = overall mean
  result.perplexity = std::exp(result.mean_nll);
  result.window_nll = window_nll;
  result.seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  return result;
}

}  // namespace crepe::eval
