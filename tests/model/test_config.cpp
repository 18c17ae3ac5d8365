#include <gtest/gtest.h>
#include <nlohmann/json.hpp>

#include "crepe/core/error.hpp"
#include "crepe/model/config.hpp"
#include "test_support.hpp"

namespace crepe::model {
namespace {

using crepe::test::input_error_of;
using nlohmann::json;

json llama_json() {
  return json::parse(R"({
    "architectures": ["LlamaForCausalLM"], "model_type": "llama",
    "hidden_size": 64, "intermediate_size": 172, "num_hidden_layers": 5,
    "num_attention_heads": 8, "num_key_value_heads": 4, "vocab_size": 512,
    "rms_norm_eps": 1e-5, "rope_theta": 10000.0, "tie_word_embeddings": true,
    "hidden_act": "silu", "bos_token_id": 1, "eos_token_id": [2, 3]})");
}

std::string error_of(const json& j) {
  try {
    parse_model_config(j, "cfg.json");
  } catch (const InputError& e) {
    return e.what();
  }
  return "";
}

TEST(ModelConfig, ParsesLlamaFieldsAndDerivesHeadDim) {
  const ModelConfig c = parse_model_config(llama_json(), "cfg.json");
  EXPECT_EQ(c.architecture, "LlamaForCausalLM");
  EXPECT_EQ(c.hidden_size, 64);
  EXPECT_EQ(c.num_layers, 5);
  EXPECT_EQ(c.num_kv_heads, 4);
  EXPECT_EQ(c.head_dim, 8);
  EXPECT_EQ(c.q_size(), 64);
  EXPECT_EQ(c.kv_size(), 32);
  EXPECT_TRUE(c.tie_word_embeddings);
  EXPECT_FALSE(c.qkv_bias);
  EXPECT_EQ(c.eos_token_id, 2);  // first of a list
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::None);
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(ModelConfig, ExplicitHeadDimWins) {
  json j = llama_json();
  j["head_dim"] = 16;
  EXPECT_EQ(parse_model_config(j, "cfg.json").head_dim, 16);
  j["head_dim"] = nullptr;  // Mistral writes null
  EXPECT_EQ(parse_model_config(j, "cfg.json").head_dim, 8);
}

TEST(ModelConfig, Qwen2HasQkvBiasButNoOutputBias) {
  json j = llama_json();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["sliding_window"] = 4096;
  j["use_sliding_window"] = false;
  const ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_FALSE(c.o_bias);
  EXPECT_EQ(c.sliding_window, 0);
}

TEST(ModelConfig, Qwen2SlidesOnlyFromMaxWindowLayersOnAsTransformersDoes) {
  json j = llama_json();
  j["architectures"] = {"Qwen2ForCausalLM"};
  j["num_hidden_layers"] = 5;
  j["sliding_window"] = 64;
  j["use_sliding_window"] = true;
  j["max_window_layers"] = 3;
  const ModelConfig c = parse_model_config(j, "cfg.json");
  for (int64_t b = 0; b < 5; ++b) EXPECT_EQ(c.attention_window(b), b >= 3 ? 64 : 0) << b;
  j.erase("max_window_layers");  // transformers' default: 28, so none of these 5 layers
  for (int64_t b = 0; b < 5; ++b) EXPECT_EQ(parse_model_config(j, "cfg.json").attention_window(b), 0) << b;
  // An explicit layer_types list decides per layer.
  j["layer_types"] = {"full_attention", "sliding_attention", "full_attention", "sliding_attention", "full_attention"};
  const ModelConfig listed = parse_model_config(j, "cfg.json");
  for (int64_t b = 0; b < 5; ++b) EXPECT_EQ(listed.attention_window(b), b % 2 == 1 ? 64 : 0) << b;
  j["layer_types"] = {"full_attention"};
  EXPECT_NE(input_error_of([&] { parse_model_config(j, "cfg.json"); }).find("one type per layer"), std::string::npos);
  j["layer_types"] = {"chunked_attention", "full_attention", "full_attention", "full_attention", "full_attention"};
  EXPECT_NE(input_error_of([&] { parse_model_config(j, "cfg.json"); }).find("chunked_attention"), std::string::npos);
}

TEST(ModelConfig, MistralSlidingWindowAndLlamaAttentionBias) {
  json j = llama_json();
  j["architectures"] = {"MistralForCausalLM"};
  j["sliding_window"] = 4096;
  EXPECT_EQ(parse_model_config(j, "cfg.json").sliding_window, 4096);
  for (int64_t b : {0, 1}) EXPECT_EQ(parse_model_config(j, "cfg.json").attention_window(b), 4096);  // every layer
  json k = llama_json();
  k["attention_bias"] = true;
  k["mlp_bias"] = true;
  const ModelConfig c = parse_model_config(k, "cfg.json");
  EXPECT_TRUE(c.qkv_bias);
  EXPECT_TRUE(c.o_bias);
  EXPECT_TRUE(c.mlp_bias);
}

TEST(ModelConfig, LlamaIgnoresSlidingWindowAsTransformersDoes) {
  json j = llama_json();
  j["sliding_window"] = 4;
  EXPECT_EQ(parse_model_config(j, "cfg.json").sliding_window, 0);
  for (int64_t b : {0, 4}) EXPECT_EQ(parse_model_config(j, "cfg.json").attention_window(b), 0);
}

TEST(ModelConfig, SpecialTokenIdsLieInTheVocabularyAndContextsHoldTwoTokens) {
  json j = llama_json();
  j["bos_token_id"] = 512;  // vocab_size
  EXPECT_NE(error_of(j).find("field 'bos_token_id' is 512, outside the vocabulary (512 tokens)"), std::string::npos) << error_of(j);
  j["bos_token_id"] = 511;
  j["eos_token_id"] = {99999};
  EXPECT_NE(error_of(j).find("eos_token_id"), std::string::npos) << error_of(j);
  j["eos_token_id"] = nullptr;  // unset: fine
  EXPECT_EQ(error_of(j), "");
  j["max_position_embeddings"] = 1;
  EXPECT_NE(error_of(j).find("max_position_embeddings"), std::string::npos);
  j["max_position_embeddings"] = 2;
  EXPECT_EQ(error_of(j), "");
}

TEST(ModelConfig, RopeScalingTypes) {
  json j = llama_json();
  j["rope_scaling"] = json::parse(R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
      "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
  const ModelConfig c = parse_model_config(j, "cfg.json");
  EXPECT_EQ(c.rope_scaling.type, RopeScaling::Type::Llama3);
  EXPECT_EQ(c.rope_scaling.factor, 8.0);
  EXPECT_EQ(c.rope_scaling.original_max_position_embeddings, 8192);
  j["rope_scaling"] = json::parse(R"({"type": "linear", "factor": 2.0})");
  EXPECT_EQ(parse_model_config(j, "cfg.json").rope_scaling.type, RopeScaling::Type::Linear);
  j["rope_scaling"] = json::parse(R"({"type": "yarn", "factor": 2.0})");
  const std::string message = error_of(j);
  EXPECT_NE(message.find("cfg.json"), std::string::npos);
  EXPECT_NE(message.find("yarn"), std::string::npos);
  EXPECT_NE(message.find("llama3"), std::string::npos);  // lists what is supported
  // llama3's four numbers are all required, as transformers requires them (no silent defaults).
  for (const char* key : {"low_freq_factor", "high_freq_factor", "original_max_position_embeddings"}) {
    j["rope_scaling"] = json::parse(R"({"rope_type": "llama3", "factor": 8.0, "low_freq_factor": 1.0,
        "high_freq_factor": 4.0, "original_max_position_embeddings": 8192})");
    j["rope_scaling"].erase(key);
    EXPECT_EQ(error_of(j), std::string("cfg.json: rope_scaling of type 'llama3' has no '") + key +
                               "' (transformers requires it too)");
  }
}

TEST(ModelConfig, ErrorsNameTheFieldOrArchitecture) {
  json j = llama_json();
  j.erase("hidden_size");
  EXPECT_NE(error_of(j).find("'hidden_size'"), std::string::npos);

  j = llama_json();
  j["architectures"] = {"GPT2LMHeadModel"};
  const std::string arch_error = error_of(j);
  EXPECT_NE(arch_error.find("GPT2LMHeadModel"), std::string::npos);
  EXPECT_NE(arch_error.find("LlamaForCausalLM"), std::string::npos);

  j = llama_json();
  j["num_key_value_heads"] = 3;
  EXPECT_NE(error_of(j).find("num_key_value_heads (3) does not divide"), std::string::npos);

  j = llama_json();
  j["num_attention_heads"] = 7;
  j["num_key_value_heads"] = 7;
  EXPECT_NE(error_of(j).find("does not divide hidden_size"), std::string::npos);

  j = llama_json();
  j["hidden_act"] = "gelu";
  EXPECT_NE(error_of(j).find("hidden_act"), std::string::npos);

  j = llama_json();
  j["vocab_size"] = -4;
  EXPECT_NE(error_of(j).find("'vocab_size' must be a positive integer"), std::string::npos);

  EXPECT_NE(error_of(json::array()).find("JSON object"), std::string::npos);
}

}  // namespace
}  // namespace crepe::model
