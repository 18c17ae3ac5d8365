#pragma once
// One LLaMA decoder block as a pure function: (weights, hidden states, rotary tables) -> hidden states.
//
//   h = x + o_proj(attention(rope(q_proj(n1)), rope(k_proj(n1)), v_proj(n1)))   n1 = rmsnorm(x)
//   y = h + down_proj(silu(gate_proj(n2)) * up_proj(n2))                         n2 = rmsnorm(h)
//
// Attention is causal (optionally sliding-window) with grouped-query heads, rotary embeddings in the
// Hugging Face rotate_half convention, softmax in float32. Weights are [out, in] as stored.
//
// The observer sees the input of every linear layer, once per distinct input (q/k/v share one, and
// gate/up share one): this is where pruning statistics are accumulated without the block knowing
// about pruning.
#include <ATen/core/Tensor.h>
#include <c10/core/TensorOptions.h>

#include <array>
#include <functional>
#include <string>

#include "crepe/model/config.hpp"

namespace crepe::model {

// The seven prunable linear layers of a block, in checkpoint order.
enum class Linear { Q, K, V, O, Gate, Up, Down };
constexpr int kLinearCount = 7;
constexpr std::array<Linear, kLinearCount> kLinears = {Linear::Q,    Linear::K,  Linear::V,   Linear::O,
                                                       Linear::Gate, Linear::Up, Linear::Down};

// The distinct inputs those layers read.
enum class LinearInput { AttentionIn, AttentionOut, MlpIn, MlpHidden };
constexpr int kLinearInputCount = 4;

LinearInput input_of(Linear linear);
// Hugging Face module path inside a block, e.g. "self_attn.q_proj", "mlp.down_proj".
const char* module_name(Linear linear);
// Short name for logs and reports: "q", "k", "v", "o", "gate", "up", "down".
const char* short_name(Linear linear);
// The layers reading an input, for messages: "q/k/v_proj", "o_proj", "gate/up_proj", "down_proj".
const char* input_name(LinearInput input);

struct LinearWeights {
  at::Tensor weight;  // [out, in]
  at::Tensor bias;    // [out] or undefined
};

struct BlockWeights {
  int64_t block = 0;               // which layer: its attention window is config.attention_window(block)
  at::Tensor input_norm;           // [hidden]
  at::Tensor post_attention_norm;  // [hidden]
  std::array<LinearWeights, kLinearCount> linears;

  LinearWeights& operator[](Linear l) { return linears[static_cast<int>(l)]; }
  const LinearWeights& operator[](Linear l) const { return linears[static_cast<int>(l)]; }
};

// Rotary tables for positions 0..seqlen-1: cos and sin, each [seqlen, head_dim], already in the
// rotate_half layout (the half-size frequency table repeated twice).
struct Rope {
  at::Tensor cos;
  at::Tensor sin;
};
// Computed in float64 and rounded to `dtype` on `device`; applies rope_scaling (linear, llama3).
Rope make_rope(const ModelConfig& config, int64_t seqlen, c10::Device device, c10::ScalarType dtype);

// Receives (which input, activations [batch, seq, in]) for every distinct linear input.
using InputObserver = std::function<void(LinearInput, const at::Tensor&)>;

// hidden: [batch, seq, hidden_size] in the weights' dtype. Returns the block's output, same shape.
at::Tensor block_forward(const ModelConfig& config, const BlockWeights& weights, const at::Tensor& hidden,
                         const Rope& rope, const InputObserver* observer = nullptr);

// Keys and values of earlier positions, for token-by-token generation: [batch, kv_heads, capacity, head_dim].
struct KvCache {
  at::Tensor k, v;
  int64_t length = 0;  // positions filled
  static KvCache allocate(const ModelConfig& config, int64_t batch, int64_t capacity, const at::TensorOptions& options);
};

// block_forward continued from a cache: hidden holds the next positions ([batch, n, hidden_size],
// positions cache.length..cache.length+n-1, the rope tables must cover them); their keys and values
// are appended to the cache.
at::Tensor block_decode(const ModelConfig& config, const BlockWeights& weights, const at::Tensor& hidden,
                        const Rope& rope, KvCache& cache);

// Hugging Face LlamaRMSNorm: normalise in float32, cast back, scale.
at::Tensor rms_norm(const at::Tensor& x, const at::Tensor& weight, double eps);

}  // namespace crepe::model
