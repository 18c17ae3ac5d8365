#include "crepe/model/head.hpp"

#include <ATen/ATen.h>

#include "crepe/model/block.hpp"

namespace crepe::model {

at::Tensor embed_tokens(const at::Tensor& table, const at::Tensor& ids) {
  return at::embedding(table, ids.to(table.device()));
}

at::Tensor output_logits(const ModelConfig& config, const at::Tensor& final_norm, const at::Tensor& lm_head,
                         const at::Tensor& hidden) {
  return at::linear(rms_norm(hidden, final_norm, config.rms_norm_eps), lm_head);
}

at::Tensor next_token_nll(const at::Tensor& logits, const at::Tensor& ids) {
  const int64_t seq = logits.size(1);
  at::Tensor predicted = logits.narrow(1, 0, seq - 1);
  const auto wide = predicted.scalar_type() == at::kDouble ? at::kDouble : at::kFloat;
  at::Tensor log_probs = at::log_softmax(predicted, -1, wide);
  at::Tensor targets = ids.narrow(1, 1, seq - 1).to(logits.device()).unsqueeze(-1);
  return -log_probs.gather(-1, targets).squeeze(-1).to(at::kDouble);
}

}  // namespace crepe::model
