#include "crepe/model/block.hpp"

#include <ATen/ATen.h>

#include <cmath>

namespace crepe::model {

LinearInput input_of(Linear linear) {
  switch (linear) {
    case Linear::Q:
    case Linear::K:
    case Linear::V: return LinearInput::AttentionIn;
    case Linear::O: return LinearInput::AttentionOut;
    case Linear::Gate:
    case Linear::Up: return LinearInput::MlpIn;
    case Linear::Down: return LinearInput::MlpHidden;
  }
  return LinearInput::AttentionIn;
}

const char* module_name(Linear linear) {
  switch (linear) {
    case Linear::Q: return "self_attn.q_proj";
    case Linear::K: return "self_attn.k_proj";
    case Linear::V: return "self_attn.v_proj";
    case Linear::O: return "self_attn.o_proj";
    case Linear::Gate: return "mlp.gate_proj";
    case Linear::Up: return "mlp.up_proj";
    case Linear::Down: return "mlp.down_proj";
  }
  return "";
}

const char* short_name(Linear linear) {
  switch (linear) {
    case Linear::Q: return "q";
    case Linear::K: return "k";
    case Linear::V: return "v";
    case Linear::O: return "o";
    case Linear::Gate: return "gate";
    case Linear::Up: return "up";
    case Linear::Down: return "down";
  }
  return "";
}

const char* input_name(LinearInput input) {
  switch (input) {
    case LinearInput::AttentionIn: return "q/k/v_proj";
    case LinearInput::AttentionOut: return "o_proj";
    case LinearInput::MlpIn: return "gate/up_proj";
    case LinearInput::MlpHidden: return "down_proj";
  }
  return "";
}

namespace {

// Inverse frequencies of the rotary embedding, with Hugging Face's rope_scaling rules.
at::Tensor inverse_frequencies(const ModelConfig& config) {
  const auto f64 = at::TensorOptions().dtype(at::kDouble);
  const int64_t dim = config.head_dim;
  at::Tensor inv_freq = 1.0 / at::pow(config.rope_theta, at::arange(0, dim, 2, f64) / static_cast<double>(dim));
  const RopeScaling& s = config.rope_scaling;
  if (s.type == RopeScaling::Type::Linear) return inv_freq / s.factor;
  if (s.type != RopeScaling::Type::Llama3) return inv_freq;

  // LLaMA-3.1: long wavelengths are slowed by `factor`, short ones kept, the band between blended.
  const double old_context = static_cast<double>(s.original_max_position_embeddings);
  const double low_freq_wavelen = old_context / s.low_freq_factor;
  const double high_freq_wavelen = old_context / s.high_freq_factor;
  at::Tensor wavelen = 2.0 * M_PI / inv_freq;
  at::Tensor scaled = at::where(wavelen > low_freq_wavelen, inv_freq / s.factor, inv_freq);
  at::Tensor smooth = (old_context / wavelen - s.low_freq_factor) / (s.high_freq_factor - s.low_freq_factor);
  at::Tensor blended = (1.0 - smooth) * scaled / s.factor + smooth * scaled;
  at::Tensor medium = at::logical_not(wavelen < high_freq_wavelen).logical_and(at::logical_not(wavelen > low_freq_wavelen));
  return at::where(medium, blended, scaled);
}

at::Tensor rotate_half(const at::Tensor& x) {
  const int64_t half = x.size(-1) / 2;
  return at::cat({-x.narrow(-1, half, half), x.narrow(-1, 0, half)}, -1);
}

// x: [batch, heads, seq, head_dim] at positions offset..offset+seq-1; tables broadcast over batch and heads.
at::Tensor apply_rope(const at::Tensor& x, const Rope& rope, int64_t offset) {
  const int64_t seq = x.size(2);
  return x * rope.cos.narrow(0, offset, seq) + rotate_half(x) * rope.sin.narrow(0, offset, seq);
}

at::Tensor linear(const at::Tensor& x, const LinearWeights& w) {
  return w.bias.defined() ? at::linear(x, w.weight, w.bias) : at::linear(x, w.weight);
}

// Key positions a query may not attend to: the future, and beyond the sliding window when there
// is one. Queries sit at positions offset..offset+queries-1, keys at 0..keys-1.
at::Tensor blocked_positions(int64_t queries, int64_t keys, int64_t offset, int64_t window, c10::Device device) {
  const auto opts = at::TensorOptions().dtype(at::kLong).device(device);
  at::Tensor query = (at::arange(queries, opts) + offset).unsqueeze(1);
  at::Tensor key = at::arange(keys, opts).unsqueeze(0);
  at::Tensor blocked = key > query;
  if (window > 0) blocked = blocked.logical_or(query - key >= window);
  return blocked;
}

// Causal grouped-query attention. q: [B, H, Tq, D] at positions offset..; k, v: [B, KV, Tk, D] at
// positions 0..Tk-1. Returns [B, Tq, H*D].
at::Tensor attention(const at::Tensor& q, const at::Tensor& k, const at::Tensor& v, int64_t offset, int64_t window) {
  const int64_t batch = q.size(0), heads = q.size(1), queries = q.size(2), dim = q.size(3);
  const int64_t kv_heads = k.size(1), keys = k.size(2), group = heads / kv_heads;
  // Heads sharing a KV head are folded into the query length, so K and V are never repeated in memory.
  at::Tensor q_grouped = q.reshape({batch, kv_heads, group * queries, dim});
  at::Tensor scores = at::matmul(q_grouped, k.transpose(-1, -2)).mul_(1.0 / std::sqrt(static_cast<double>(dim)));
  scores = scores.view({batch, kv_heads, group, queries, keys});
  scores.masked_fill_(blocked_positions(queries, keys, offset, window, q.device()),
                      -std::numeric_limits<double>::infinity());
  at::Tensor probs = at::softmax(scores, -1, at::kFloat).to(q.scalar_type());
  at::Tensor out = at::matmul(probs.view({batch, kv_heads, group * queries, keys}), v);
  return out.view({batch, heads, queries, dim}).transpose(1, 2).reshape({batch, queries, heads * dim});
}

at::Tensor split_heads(const at::Tensor& x, int64_t heads, int64_t dim) {
  return x.view({x.size(0), x.size(1), heads, dim}).transpose(1, 2);
}

void observe(const InputObserver* observer, LinearInput which, const at::Tensor& x) {
  if (observer && *observer) (*observer)(which, x);
}

}  // namespace

Rope make_rope(const ModelConfig& config, int64_t seqlen, c10::Device device, c10::ScalarType dtype) {
  at::Tensor positions = at::arange(seqlen, at::TensorOptions().dtype(at::kDouble));
  at::Tensor freqs = at::outer(positions, inverse_frequencies(config));
  at::Tensor angles = at::cat({freqs, freqs}, -1);
  const auto opts = at::TensorOptions().dtype(dtype).device(device);
  return Rope{angles.cos().to(opts), angles.sin().to(opts)};
}

at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps) {
  at::Tensor x32 = x.to(at::kFloat);
  at::Tensor normed = x32 * at::rsqrt(x32.pow(2).mean(-1, /*keepdim=*/true) + eps);
  return weight * normed.to(x.scalar_type());
}

namespace {

// The block, optionally continuing from a KV cache (positions start at cache->length).
at::Tensor run_block(const ModelConfig& config, const BlockWeights& w, const at::Tensor& hidden, const Rope& rope,
                     const InputObserver* observer, KvCache* cache) {
  const int64_t offset = cache ? cache->length : 0;
  at::Tensor normed = rms_norm(hidden, w.input_norm, config.rms_norm_eps);
  observe(observer, LinearInput::AttentionIn, normed);
  at::Tensor q = apply_rope(split_heads(linear(normed, w[Linear::Q]), config.num_heads, config.head_dim), rope, offset);
  at::Tensor k = apply_rope(split_heads(linear(normed, w[Linear::K]), config.num_kv_heads, config.head_dim), rope, offset);
  at::Tensor v = split_heads(linear(normed, w[Linear::V]), config.num_kv_heads, config.head_dim);
  if (cache) {
    const int64_t n = hidden.size(1);
    cache->k.narrow(2, offset, n).copy_(k);
    cache->v.narrow(2, offset, n).copy_(v);
    k = cache->k.narrow(2, 0, offset + n);
    v = cache->v.narrow(2, 0, offset + n);
    cache->length += n;
  }
  at::Tensor attended = attention(q, k, v, offset, config.attention_window(w.block));
  observe(observer, LinearInput::AttentionOut, attended);
  at::Tensor h = hidden + linear(attended, w[Linear::O]);

  normed = rms_norm(h, w.post_attention_norm, config.rms_norm_eps);
  observe(observer, LinearInput::MlpIn, normed);
  at::Tensor gated = at::silu(linear(normed, w[Linear::Gate])).mul_(linear(normed, w[Linear::Up]));
  observe(observer, LinearInput::MlpHidden, gated);
  return h + linear(gated, w[Linear::Down]);
}

}  // namespace

at::Tensor block_forward(const ModelConfig& config, const BlockWeights& w, const at::Tensor& hidden,
                         const Rope& rope, const InputObserver* observer) {
  return run_block(config, w, hidden, rope, observer, nullptr);
}

KvCache KvCache::allocate(const ModelConfig& config, int64_t batch, int64_t capacity, const at::TensorOptions& options) {
  KvCache cache;
  cache.k = at::empty({batch, config.num_kv_heads, capacity, config.head_dim}, options);
  cache.v = at::empty_like(cache.k);
  return cache;
}

at::Tensor block_decode(const ModelConfig& config, const BlockWeights& weights, const at::Tensor& hidden,
                        const Rope& rope, KvCache& cache) {
  TORCH_CHECK(cache.length + hidden.size(1) <= cache.k.size(2), "KV cache capacity exceeded");
  return run_block(config, weights, hidden, rope, nullptr, &cache);
}

}  // namespace crepe::model
