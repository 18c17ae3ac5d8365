#include "crepe/io/checkpoint.hpp"

#include <ATen/ATen.h>
#include <nlohmann/json.hpp>
#include <spdlog/spdlog.h>

#include <algorithm>
#include <filesystem>
#include <set>

#include "crepe/core/error.hpp"
#include "crepe/core/files.hpp"

namespace crepe::io {
namespace {

namespace fs = std::filesystem;
using model::Linear;

std::string shape_text(const std::vector<int64_t>& shape) {
  std::string text = "[";
  for (size_t i = 0; i < shape.size(); ++i) text += (i ? ", " : "") + std::to_string(shape[i]);
  return text + "]";
}

std::string block_prefix(int64_t block) { return "model.layers." + std::to_string(block) + "."; }

// In slices of 4M elements converted to fp32, so that the check's temporaries stay small (and F16/BF16
// need no half-precision CPU kernels) however large the tensor is.
bool all_finite(const at::Tensor& tensor) {
  const at::Tensor flat = tensor.reshape({-1});
  constexpr int64_t kSlice = int64_t{1} << 22;
  for (int64_t begin = 0; begin < flat.numel(); begin += kSlice) {
    const at::Tensor slice = flat.slice(0, begin, std::min(begin + kSlice, flat.numel())).to(at::kFloat);
    if (!at::isfinite(slice).all().item<bool>()) return false;
  }
  return true;
}

}  // namespace

Checkpoint Checkpoint::open(const std::string& dir) {
  require(fs::is_directory(dir), dir, "not a directory");
  Checkpoint ckpt;
  ckpt.dir_ = dir;
  const std::string config_path = (fs::path(dir) / "config.json").string();
  require(fs::exists(config_path), dir, "no config.json (is this a Hugging Face model directory?)");
  ckpt.config_ = model::parse_model_config(read_json_file(config_path), config_path);
  ckpt.store_ = TensorStore::open_dir(dir);
  ckpt.validate_tensors();
  return ckpt;
}

std::string Checkpoint::linear_weight_name(int64_t block, Linear linear) {
  return block_prefix(block) + model::module_name(linear) + ".weight";
}

std::string Checkpoint::linear_bias_name(int64_t block, Linear linear) {
  return block_prefix(block) + model::module_name(linear) + ".bias";
}

std::vector<int64_t> Checkpoint::linear_shape(Linear linear) const {
  const auto& c = config_;
  switch (linear) {
    case Linear::Q: return {c.q_size(), c.hidden_size};
    case Linear::K:
    case Linear::V: return {c.kv_size(), c.hidden_size};
    case Linear::O: return {c.hidden_size, c.q_size()};
    case Linear::Gate:
    case Linear::Up: return {c.intermediate_size, c.hidden_size};
    case Linear::Down: return {c.hidden_size, c.intermediate_size};
  }
  return {};
}

static bool has_bias(const model::ModelConfig& c, Linear linear) {
  switch (model::input_of(linear)) {
    case model::LinearInput::AttentionIn: return c.qkv_bias;
    case model::LinearInput::AttentionOut: return c.o_bias;
    default: return c.mlp_bias;
  }
}

std::vector<std::string> Checkpoint::block_tensor_names(int64_t block) const {
  std::vector<std::string> names = {block_prefix(block) + "input_layernorm.weight",
                                    block_prefix(block) + "post_attention_layernorm.weight"};
  for (Linear linear : model::kLinears) {
    names.push_back(linear_weight_name(block, linear));
    if (has_bias(config_, linear)) names.push_back(linear_bias_name(block, linear));
  }
  return names;
}

// A tensor inside a block that the architecture has no place for (a q_norm, an extra projection, a
// block numbered "00") is not used, as transformers does not use it; copied unchanged. Said, since a
// checkpoint carrying one may not be the architecture its config.json names. Older LLaMA exports'
// rotary_emb.inv_freq buffers are recomputed everywhere and pass silently.
void Checkpoint::warn_about_unknown_block_tensors() const {
  std::set<std::string> known;
  for (int64_t b = 0; b < config_.num_layers; ++b) {
    for (std::string& name : block_tensor_names(b)) known.insert(std::move(name));
  }
  std::vector<std::string> unknown;
  const std::string inv_freq = ".self_attn.rotary_emb.inv_freq";
  for (const std::string& name : store_.names()) {
    if (name.rfind("model.layers.", 0) != 0 || known.count(name) != 0) continue;
    if (name.size() > inv_freq.size() && name.compare(name.size() - inv_freq.size(), inv_freq.size(), inv_freq) == 0) continue;
    unknown.push_back(name);
  }
  if (unknown.empty()) return;
  spdlog::warn("{}: {} tensor(s) in the blocks have no place in {} ('{}'{}): not used, and copied unchanged", dir_,
               unknown.size(), config_.architecture, unknown.front(), unknown.size() > 1 ? ", ..." : "");
}

void Checkpoint::validate_tensors() const {
  const auto& c = config_;
  auto expect = [&](const std::string& name, const std::vector<int64_t>& shape) {
    require(store_.contains(name), dir_, "tensor '" + name + "' is missing from the checkpoint");
    const TensorInfo& info = store_.info(name);
    require(info.shape == shape, dir_,
            "tensor '" + name + "' has shape " + shape_text(info.shape) + ", config.json implies " + shape_text(shape));
  };
  expect("model.embed_tokens.weight", {c.vocab_size, c.hidden_size});
  expect("model.norm.weight", {c.hidden_size});
  if (!c.tie_word_embeddings) expect("lm_head.weight", {c.vocab_size, c.hidden_size});
  // Tensors that config.json does not account for would be silently left out of the computation:
  // blocks past num_hidden_layers (they would stay dense), or linear biases it says are absent.
  for (const std::string& name : store_.names()) {
    const std::string layers = "model.layers.";
    if (name.rfind(layers, 0) != 0) continue;
    const size_t dot = name.find('.', layers.size());
    const std::string index = name.substr(layers.size(), dot == std::string::npos ? std::string::npos : dot - layers.size());
    const bool numeric = !index.empty() && index.size() < 10 && index.find_first_not_of("0123456789") == std::string::npos;
    require(numeric && std::stoll(index) < c.num_layers, dir_,
            "tensor '" + name + "' belongs to no block of the " + std::to_string(c.num_layers) +
                " that config.json declares (num_hidden_layers)");
    for (Linear linear : model::kLinears) {
      require(has_bias(c, linear) || name != linear_bias_name(std::stoll(index), linear), dir_,
              "tensor '" + name + "' is a bias that config.json does not declare (attention_bias / mlp_bias)");
    }
  }
  warn_about_unknown_block_tensors();
  for (int64_t b = 0; b < c.num_layers; ++b) {
    expect(block_prefix(b) + "input_layernorm.weight", {c.hidden_size});
    expect(block_prefix(b) + "post_attention_layernorm.weight", {c.hidden_size});
    for (Linear linear : model::kLinears) {
      const auto shape = linear_shape(linear);
      expect(linear_weight_name(b, linear), shape);
      if (has_bias(c, linear)) expect(linear_bias_name(b, linear), {shape[0]});
    }
  }
}

at::Tensor Checkpoint::load(const std::string& name, const Placement& placement) const {
  return store_.load(name).to(placement.device, placement.compute_dtype);
}

model::BlockWeights Checkpoint::load_block(int64_t b, const Placement& placement) const {
  return upload_block(stage_block(b, placement), placement);
}

model::BlockWeights Checkpoint::stage_block(int64_t b, const Placement& placement, bool linear_weights) const {
  const bool pinned = placement.device.is_cuda();
  model::BlockWeights w;
  w.block = b;
  w.input_norm = store_.load(block_prefix(b) + "input_layernorm.weight", pinned);
  w.post_attention_norm = store_.load(block_prefix(b) + "post_attention_layernorm.weight", pinned);
  for (Linear linear : model::kLinears) {
    if (linear_weights) w[linear].weight = store_.load(linear_weight_name(b, linear), pinned);
    if (has_bias(config_, linear)) w[linear].bias = store_.load(linear_bias_name(b, linear), pinned);
  }
  return w;
}

model::BlockWeights Checkpoint::upload_block(const model::BlockWeights& staged, const Placement& placement,
                                             bool stored_linears) {
  // Two steps on purpose: a copy that also changes the dtype converts on the host first, into
  // pageable memory, and would no longer be asynchronous.
  auto move = [&](const at::Tensor& t) { return t.defined() ? t.to(placement.device, /*non_blocking=*/true) : t; };
  auto upload = [&](const at::Tensor& t) { return t.defined() ? move(t).to(placement.compute_dtype) : t; };
  model::BlockWeights w;
  w.block = staged.block;
  w.input_norm = upload(staged.input_norm);
  w.post_attention_norm = upload(staged.post_attention_norm);
  for (Linear linear : model::kLinears) {
    w[linear].weight = stored_linears ? move(staged[linear].weight) : upload(staged[linear].weight);
    w[linear].bias = upload(staged[linear].bias);
  }
  return w;
}

at::Tensor Checkpoint::load_embedding(const Placement& placement) const {
  return load("model.embed_tokens.weight", placement);
}

at::Tensor Checkpoint::load_final_norm(const Placement& placement) const { return load("model.norm.weight", placement); }

at::Tensor Checkpoint::load_lm_head(const Placement& placement) const {
  return load(config_.tie_word_embeddings ? "model.embed_tokens.weight" : "lm_head.weight", placement);
}

int64_t Checkpoint::parameter_count() const {
  int64_t total = 0;
  for (const auto& name : store_.names()) total += store_.info(name).numel();
  return total;
}

void Checkpoint::check_finite() const {
  // Shard by shard in file order (sequential reads); tensors a shard holds but the index does not
  // list are not part of the checkpoint and are skipped.
  for (size_t i = 0; i < store_.shard_files().size(); ++i) {
    const SafetensorsFile& shard = store_.shard(i);
    for (const TensorInfo& info : shard.tensors()) {
      if (!store_.contains(info.name) || store_.shard_of(info.name) != i) continue;
      require(all_finite(shard.load(info.name)), shard.path(), "tensor '" + info.name + "' contains NaN or Inf");
    }
  }
}

int64_t Checkpoint::linear_parameter_count() const {
  int64_t total = 0;
  for (Linear linear : model::kLinears) {
    const auto shape = linear_shape(linear);
    total += shape[0] * shape[1];
  }
  return total * config_.num_layers;
}

}  // namespace crepe::io
