// Writes a random LLaMA-shaped checkpoint (config.json + model.safetensors, tokenizer files copied
// from another model) for memory and speed benchmarks at depths and widths the shared models lack.
// Tensors are generated and streamed to disk one at a time, so this tool's memory stays small too.
#include <ATen/ATen.h>
#include <nlohmann/json.hpp>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "crepe/io/checkpoint.hpp"
#include "crepe/io/safetensors.hpp"

namespace fs = std::filesystem;
using crepe::io::DType;

int main(int argc, char** argv) {
  std::string out, tokenizer_from;
  int64_t layers = 32, hidden = 1024, intermediate = 2816, heads = 16, kv_heads = 16, vocab = 4096;
  for (int i = 1; i + 1 < argc; i += 2) {
    const std::string a = argv[i], v = argv[i + 1];
    if (a == "--out") out = v;
    else if (a == "--tokenizer-from") tokenizer_from = v;
    else if (a == "--layers") layers = std::stoll(v);
    else if (a == "--hidden") hidden = std::stoll(v);
    else if (a == "--intermediate") intermediate = std::stoll(v);
    else if (a == "--heads") heads = std::stoll(v);
    else if (a == "--kv-heads") kv_heads = std::stoll(v);
    else if (a == "--vocab") vocab = std::stoll(v);
  }
  if (out.empty() || tokenizer_from.empty()) {
    std::fprintf(stderr, "usage: %s --out DIR --tokenizer-from MODEL_DIR [--layers N --hidden H --intermediate I "
                         "--heads A --kv-heads K --vocab V]\n", argv[0]);
    return 2;
  }
  fs::create_directories(out);
  const int64_t head_dim = hidden / heads;
  nlohmann::ordered_json config = {{"architectures", {"LlamaForCausalLM"}}, {"model_type", "llama"},
                                   {"hidden_size", hidden}, {"intermediate_size", intermediate},
                                   {"num_hidden_layers", layers}, {"num_attention_heads", heads},
                                   {"num_key_value_heads", kv_heads}, {"head_dim", head_dim},
                                   {"max_position_embeddings", 2048}, {"rms_norm_eps", 1e-5},
                                   {"rope_theta", 10000.0}, {"vocab_size", vocab}, {"tie_word_embeddings", false},
                                   {"hidden_act", "silu"}, {"bos_token_id", 1}, {"eos_token_id", 2},
                                   {"torch_dtype", "bfloat16"}};
  std::ofstream(out + "/config.json") << config.dump(2) << "\n";
  for (const char* file : {"tokenizer.model", "tokenizer_config.json"}) {
    fs::copy_file(fs::path(tokenizer_from) / file, fs::path(out) / file, fs::copy_options::overwrite_existing);
  }

  std::vector<crepe::io::SafetensorsWriter::Entry> layout = {{"model.embed_tokens.weight", DType::BF16, {vocab, hidden}},
                                                              {"model.norm.weight", DType::BF16, {hidden}},
                                                              {"lm_head.weight", DType::BF16, {vocab, hidden}}};
  const int64_t q = heads * head_dim, kv = kv_heads * head_dim;
  for (int64_t b = 0; b < layers; ++b) {
    const std::string p = "model.layers." + std::to_string(b) + ".";
    layout.push_back({p + "input_layernorm.weight", DType::BF16, {hidden}});
    layout.push_back({p + "post_attention_layernorm.weight", DType::BF16, {hidden}});
    layout.push_back({p + "self_attn.q_proj.weight", DType::BF16, {q, hidden}});
    layout.push_back({p + "self_attn.k_proj.weight", DType::BF16, {kv, hidden}});
    layout.push_back({p + "self_attn.v_proj.weight", DType::BF16, {kv, hidden}});
    layout.push_back({p + "self_attn.o_proj.weight", DType::BF16, {hidden, q}});
    layout.push_back({p + "mlp.gate_proj.weight", DType::BF16, {intermediate, hidden}});
    layout.push_back({p + "mlp.up_proj.weight", DType::BF16, {intermediate, hidden}});
    layout.push_back({p + "mlp.down_proj.weight", DType::BF16, {hidden, intermediate}});
  }
  crepe::io::SafetensorsWriter writer(out + "/model.safetensors", layout, {{"format", "pt"}});
  at::manual_seed(0);
  for (const auto& entry : layout) {
    const bool norm = entry.shape.size() == 1;
    writer.put(entry.name, norm ? at::ones(entry.shape) : at::randn(entry.shape) * 0.02);
  }
  writer.commit();
  std::printf("wrote %s (%lld layers, hidden %lld)\n", out.c_str(), static_cast<long long>(layers),
              static_cast<long long>(hidden));
  return 0;
}
