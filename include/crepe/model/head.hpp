#pragma once
// The ends of the decoder: token embedding in, final RMSNorm and lm_head out, and the next-token
// loss used by perplexity.
#include <ATen/core/Tensor.h>

#include "crepe/model/config.hpp"

namespace crepe::model {

// ids: int64 [batch, seq]; table: [vocab, hidden]. Returns [batch, seq, hidden].
at::Tensor embed_tokens(const at::Tensor& table, const at::Tensor& ids);

// hidden: [..., hidden] -> logits [..., vocab] (float32 accumulation is left to the matmul's dtype).
at::Tensor output_logits(const ModelConfig& config, const at::Tensor& final_norm, const at::Tensor& lm_head,
                         const at::Tensor& hidden);

// Per-position next-token negative log-likelihood, float64 [batch, seq-1]:
// nll[b, t] = -log softmax(logits[b, t])[ids[b, t+1]], softmax computed in float32 at least.
at::Tensor next_token_nll(const at::Tensor& logits, const at::Tensor& ids);

}  // namespace crepe::model
