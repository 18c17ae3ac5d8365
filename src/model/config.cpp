#include "crepe/model/config.hpp"

#include <nlohmann/json.hpp>

#include <algorithm>
#include <array>
#include <utility>

#include "crepe/core/error.hpp"

namespace crepe::model {
namespace {

using nlohmann::json;

constexpr std::array<const char*, 3> kArchitectures = {"LlamaForCausalLM", "MistralForCausalLM",
                                                       "Qwen2ForCausalLM"};

std::string supported_architectures() {
  std::string list;
  for (const char* name : kArchitectures) list += (list.empty() ? "" : ", ") + std::string(name);
  return list;
}

// Sizes are multiplied in pairs (heads x head_dim, rows x columns); below 2^31 every such product
// fits in int64_t, and no real model comes near it.
constexpr int64_t kMaxSize = (int64_t{1} << 31) - 1;

// A field that must be present and a positive integer.
int64_t positive_int(const json& j, const char* field, const std::string& source) {
  require(j.contains(field) && !j.at(field).is_null(), source, std::string("missing field '") + field + "'");
  const json& v = j.at(field);
  require(v.is_number_integer() && v.get<int64_t>() > 0, source,
          std::string("field '") + field + "' must be a positive integer, got " + v.dump());
  require(v.get<int64_t>() <= kMaxSize, source,
          std::string("field '") + field + "' is " + v.dump() + ", larger than crepe accepts (2^31 - 1)");
  return v.get<int64_t>();
}

int64_t optional_positive_int(const json& j, const char* field, int64_t fallback, const std::string& source) {
  if (!j.contains(field) || j.at(field).is_null()) return fallback;
  return positive_int(j, field, source);
}

double optional_number(const json& j, const char* field, double fallback, const std::string& source) {
  if (!j.contains(field) || j.at(field).is_null()) return fallback;
  const json& v = j.at(field);
  require(v.is_number(), source, std::string("field '") + field + "' must be a number, got " + v.dump());
  return v.get<double>();
}

bool optional_bool(const json& j, const char* field, bool fallback, const std::string& source) {
  if (!j.contains(field) || j.at(field).is_null()) return fallback;
  const json& v = j.at(field);
  require(v.is_boolean(), source, std::string("field '") + field + "' must be true or false, got " + v.dump());
  return v.get<bool>();
}

// bos/eos ids may be an int or a list of ints (LLaMA-3.1 lists several EOS ids); keep the first.
int64_t optional_token_id(const json& j, const char* field) {
  if (!j.contains(field)) return -1;
  const json& v = j.at(field);
  if (v.is_number_integer()) return v.get<int64_t>();
  if (v.is_array() && !v.empty() && v.front().is_number_integer()) return v.front().get<int64_t>();
  return -1;
}

std::string architecture_of(const json& j, const std::string& source) {
  require(j.contains("architectures") && j.at("architectures").is_array() && !j.at("architectures").empty() &&
              j.at("architectures").front().is_string(),
          source, "missing field 'architectures' (supported: " + supported_architectures() + ")");
  const std::string arch = j.at("architectures").front().get<std::string>();
  const bool known = std::any_of(kArchitectures.begin(), kArchitectures.end(),
                                 [&](const char* name) { return arch == name; });
  require(known, source, "architecture '" + arch + "' is not supported (supported: " + supported_architectures() + ")");
  return arch;
}

RopeScaling parse_rope_scaling(const json& j, const std::string& source) {
  RopeScaling scaling;
  if (!j.contains("rope_scaling") || j.at("rope_scaling").is_null()) return scaling;
  const json& r = j.at("rope_scaling");
  require(r.is_object(), source, "field 'rope_scaling' must be an object or null");
  std::string type;
  for (const char* key : {"rope_type", "type"}) {
    if (r.contains(key) && r.at(key).is_string()) {
      type = r.at(key).get<std::string>();
      break;
    }
  }
  if (type == "default") return scaling;
  const std::string supported = " (supported: null, \"default\", \"linear\", \"llama3\")";
  require(type == "linear" || type == "llama3", source,
          "rope_scaling type '" + type + "' is not supported" + supported);
  scaling.factor = optional_number(r, "factor", 0.0, source);
  require(scaling.factor > 0, source, "rope_scaling.factor must be a positive number");
  if (type == "linear") {
    scaling.type = RopeScaling::Type::Linear;
    return scaling;
  }
  scaling.type = RopeScaling::Type::Llama3;
  for (const char* key : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
    require(r.contains(key) && !r.at(key).is_null(), source,
            std::string("rope_scaling of type 'llama3' has no '") + key + "' (transformers requires it too)");
  }
  scaling.low_freq_factor = optional_number(r, "low_freq_factor", 1.0, source);
  scaling.high_freq_factor = optional_number(r, "high_freq_factor", 4.0, source);
  scaling.original_max_position_embeddings = optional_positive_int(r, "original_max_position_embeddings", 8192, source);
  require(scaling.high_freq_factor > scaling.low_freq_factor, source,
          "rope_scaling.high_freq_factor must exceed low_freq_factor");
  return scaling;
}

void check_supported_activation(const json& j, const std::string& source) {
  if (!j.contains("hidden_act")) return;
  const json& act = j.at("hidden_act");
  require(act.is_string() && act.get<std::string>() == "silu", source,
          "field 'hidden_act' is " + act.dump() + "; crepe supports \"silu\" (SwiGLU) only");
}

}  // namespace

ModelConfig parse_model_config(const json& j, const std::string& source) {
  require(j.is_object(), source, "config must be a JSON object");
  ModelConfig c;
  c.architecture = architecture_of(j, source);
  if (j.contains("model_type") && !j.at("model_type").is_null()) {
    require(j.at("model_type").is_string(), source, "field 'model_type' must be a string, got " + j.at("model_type").dump());
    c.model_type = j.at("model_type").get<std::string>();
  }
  check_supported_activation(j, source);

  c.hidden_size = positive_int(j, "hidden_size", source);
  c.intermediate_size = positive_int(j, "intermediate_size", source);
  c.num_layers = positive_int(j, "num_hidden_layers", source);
  c.num_heads = positive_int(j, "num_attention_heads", source);
  c.num_kv_heads = optional_positive_int(j, "num_key_value_heads", c.num_heads, source);
  c.vocab_size = positive_int(j, "vocab_size", source);
  c.max_position_embeddings = optional_positive_int(j, "max_position_embeddings", 2048, source);
  require(c.max_position_embeddings >= 2, source,
          "field 'max_position_embeddings' is 1: a window of one token has no next token to predict");

  const bool explicit_head_dim = j.contains("head_dim") && !j.at("head_dim").is_null();
  if (explicit_head_dim) {
    c.head_dim = positive_int(j, "head_dim", source);
  } else {
    require(c.hidden_size % c.num_heads == 0, source,
            "num_attention_heads (" + std::to_string(c.num_heads) + ") does not divide hidden_size (" +
                std::to_string(c.hidden_size) + ") and no head_dim is given");
    c.head_dim = c.hidden_size / c.num_heads;
  }
  require(c.head_dim % 2 == 0, source, "head_dim must be even for rotary embeddings, got " + std::to_string(c.head_dim));
  require(c.num_heads % c.num_kv_heads == 0, source,
          "num_key_value_heads (" + std::to_string(c.num_kv_heads) + ") does not divide num_attention_heads (" +
              std::to_string(c.num_heads) + ")");

  c.rms_norm_eps = optional_number(j, "rms_norm_eps", 1e-6, source);
  require(c.rms_norm_eps > 0, source, "field 'rms_norm_eps' must be positive");
  c.rope_theta = optional_number(j, "rope_theta", 10000.0, source);
  require(c.rope_theta > 0, source, "field 'rope_theta' must be positive");
  c.rope_scaling = parse_rope_scaling(j, source);
  c.tie_word_embeddings = optional_bool(j, "tie_word_embeddings", false, source);
  c.mlp_bias = optional_bool(j, "mlp_bias", false, source);

  const bool qwen2 = c.architecture == "Qwen2ForCausalLM";
  const bool attention_bias = optional_bool(j, "attention_bias", false, source);
  c.qkv_bias = qwen2 || attention_bias;
  c.o_bias = !qwen2 && attention_bias;

  // Mistral's sliding window; Qwen2 applies one only when use_sliding_window is set, and then only
  // from layer max_window_layers on (transformers' default 28) unless layer_types says otherwise.
  // transformers' Llama has no sliding window and ignores the key, and so does crepe.
  const bool mistral = c.architecture == "MistralForCausalLM";
  const bool window_enabled = mistral || (qwen2 && optional_bool(j, "use_sliding_window", false, source));
  if (window_enabled) c.sliding_window = optional_positive_int(j, "sliding_window", 0, source);
  if (j.contains("layer_types") && !j.at("layer_types").is_null()) {
    const json& types = j.at("layer_types");
    require(types.is_array() && static_cast<int64_t>(types.size()) == c.num_layers, source,
            "field 'layer_types' must list one type per layer (" + std::to_string(c.num_layers) + ")");
    for (const json& type : types) {
      require(type == "sliding_attention" || type == "full_attention", source,
              "field 'layer_types' holds " + type.dump() + "; crepe supports sliding_attention and full_attention");
      c.windowed_layers.push_back(type == "sliding_attention");
    }
  } else if (qwen2) {
    int64_t first = 28;
    if (j.contains("max_window_layers") && !j.at("max_window_layers").is_null()) {
      const json& v = j.at("max_window_layers");
      require(v.is_number_integer() && v.get<int64_t>() >= 0, source,
              "field 'max_window_layers' must be a whole number >= 0, got " + v.dump());
      first = v.get<int64_t>();
    }
    for (int64_t b = 0; b < c.num_layers; ++b) c.windowed_layers.push_back(b >= first);
  }

  if (j.contains("torch_dtype") && j.at("torch_dtype").is_string()) c.torch_dtype = j.at("torch_dtype").get<std::string>();
  c.bos_token_id = optional_token_id(j, "bos_token_id");
  c.eos_token_id = optional_token_id(j, "eos_token_id");
  for (auto [field, id] : {std::pair{"bos_token_id", c.bos_token_id}, std::pair{"eos_token_id", c.eos_token_id}}) {
    require(id < c.vocab_size, source,
            std::string("field '") + field + "' is " + std::to_string(id) + ", outside the vocabulary (" +
                std::to_string(c.vocab_size) + " tokens)");
  }
  return c;
}

}  // namespace crepe::model
