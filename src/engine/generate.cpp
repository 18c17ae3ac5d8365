#include "crepe/engine/generate.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <vector>

#include "crepe/core/interrupt.hpp"
#include "crepe/core/progress.hpp"
#include "crepe/core/rng.hpp"
#include "crepe/model/block.hpp"
#include "crepe/model/head.hpp"

namespace crepe::engine {
namespace {

struct ResidentModel {
  std::vector<model::BlockWeights> blocks;
  at::Tensor embedding, final_norm, lm_head;
};

ResidentModel load_all(const io::Checkpoint& checkpoint, const Placement& placement) {
  ResidentModel m;
  for (int64_t b = 0; b < checkpoint.num_layers(); ++b) m.blocks.push_back(checkpoint.load_block(b, placement));
  m.embedding = checkpoint.load_embedding(placement);
  m.final_norm = checkpoint.load_final_norm(placement);
  m.lm_head = checkpoint.load_lm_head(placement);
  return m;
}

// Inverse-CDF draw from each row of probs ([batch, vocab], float64, CPU).
std::vector<int64_t> draw(const at::Tensor& probs, Rng& rng) {
  const at::Tensor cdf = probs.cumsum(1).contiguous();
  const int64_t batch = cdf.size(0), vocab = cdf.size(1);
  const double* data = cdf.data_ptr<double>();
  std::vector<int64_t> tokens(batch);
  for (int64_t r = 0; r < batch; ++r) {
    const double* row = data + r * vocab;
    const double u = rng.uniform() * row[vocab - 1];
    tokens[r] = std::upper_bound(row, row + vocab, u) - row;
    if (tokens[r] >= vocab) tokens[r] = vocab - 1;
  }
  return tokens;
}

}  // namespace

at::Tensor generate_calibration(const io::Checkpoint& checkpoint, const Placement& placement,
                                const GenerationOptions& options) {
  c10::InferenceMode inference;
  const auto& config = checkpoint.config();
  const ResidentModel m = load_all(checkpoint, placement);
  const model::Rope rope = model::make_rope(config, options.length, placement.device, placement.compute_dtype);
  const auto long_cpu = at::TensorOptions().dtype(at::kLong);
  at::Tensor ids = at::empty({options.count, options.length}, long_cpu);
  Rng rng(options.seed);
  Progress progress("self-generating calibration", options.count * options.length, "tokens", options.progress);

  for (int64_t first = 0; first < options.count; first += options.batch_size) {
    const int64_t batch = std::min(options.batch_size, options.count - first);
    std::vector<model::KvCache> caches;
    const auto cache_options = at::TensorOptions().dtype(placement.compute_dtype).device(placement.device);
    for (int64_t b = 0; b < config.num_layers; ++b) caches.push_back(model::KvCache::allocate(config, batch, options.length, cache_options));
    at::Tensor next = at::full({batch, 1}, options.bos_id, long_cpu);
    for (int64_t t = 0; t < options.length; ++t) {
      stop_if_interrupted();
      ids.narrow(0, first, batch).narrow(1, t, 1).copy_(next);
      progress.advance(batch);
      if (t + 1 == options.length) break;
      at::Tensor hidden = model::embed_tokens(m.embedding, next);
      for (int64_t b = 0; b < config.num_layers; ++b) {
        hidden = model::block_decode(config, m.blocks[b], hidden, rope, caches[b]);
      }
      const at::Tensor logits = model::output_logits(config, m.final_norm, m.lm_head, hidden.select(1, 0));
      const at::Tensor probs = at::softmax(logits.to(at::kDouble), -1).cpu();
      next = at::tensor(draw(probs, rng), long_cpu).view({batch, 1});
    }
  }
  progress.finish();
  return ids;
}

}  // namespace crepe::engine
