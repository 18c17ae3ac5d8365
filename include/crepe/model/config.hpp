#pragma once
// ModelConfig: the architecture hyperparameters of a LLaMA-family decoder, parsed from the
// Hugging Face config.json object.
//
// Supported: LlamaForCausalLM, MistralForCausalLM, Qwen2ForCausalLM (q/k/v biases), with GQA
// (num_key_value_heads), explicit head_dim, rope_theta, rope_scaling of type "linear" or "llama3",
// rms_norm_eps, tie_word_embeddings, attention_bias, mlp_bias, sliding_window (Mistral: every
// layer; Qwen2: with use_sliding_window, the layers from max_window_layers on; or the layers that
// an explicit layer_types list marks "sliding_attention", as transformers decides). Anything
// outside that is refused with an InputError that names the field or architecture and lists what
// is supported, rather than silently computing something else.
#include <nlohmann/json_fwd.hpp>

#include <cstdint>
#include <string>
#include <vector>

namespace crepe::model {

struct RopeScaling {
  enum class Type { None, Linear, Llama3 };
  Type type = Type::None;
  double factor = 1.0;
  // llama3 only
  double low_freq_factor = 1.0;
  double high_freq_factor = 4.0;
  int64_t original_max_position_embeddings = 8192;
};

struct ModelConfig {
  std::string architecture;  // e.g. "LlamaForCausalLM"
  std::string model_type;    // e.g. "llama"
  int64_t hidden_size = 0;
  int64_t intermediate_size = 0;
  int64_t num_layers = 0;
  int64_t num_heads = 0;
  int64_t num_kv_heads = 0;
  int64_t head_dim = 0;
  int64_t vocab_size = 0;
  int64_t max_position_embeddings = 0;
  int64_t sliding_window = 0;  // 0: full causal attention
  std::vector<bool> windowed_layers;  // which layers use sliding_window; empty: all of them
  double rms_norm_eps = 1e-6;
  double rope_theta = 10000.0;
  RopeScaling rope_scaling;
  bool tie_word_embeddings = false;
  bool qkv_bias = false;  // attention_bias, or always for Qwen2
  bool o_bias = false;    // attention_bias (Llama), never for Qwen2
  bool mlp_bias = false;
  std::string torch_dtype;  // as declared; informational
  int64_t bos_token_id = -1;
  int64_t eos_token_id = -1;

  // The attention window of layer `block`: sliding_window where that layer slides, else 0.
  int64_t attention_window(int64_t block) const {
    const bool windowed = windowed_layers.empty() ||
                          (block >= 0 && block < static_cast<int64_t>(windowed_layers.size()) && windowed_layers[block]);
    return windowed ? sliding_window : 0;
  }
  int64_t q_size() const { return num_heads * head_dim; }
  int64_t kv_size() const { return num_kv_heads * head_dim; }
};

// Parses and validates a config.json object. `source` (the file path) prefixes every error.
ModelConfig parse_model_config(const nlohmann::json& json, const std::string& source);

}  // namespace crepe::model
