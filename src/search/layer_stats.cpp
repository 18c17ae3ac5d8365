#include "crepe/search/layer_stats.hpp"

#include <ATen/ATen.h>
#include <c10/core/InferenceMode.h>

#include <algorithm>
#include <cmath>
#include <filesystem>
#include <sstream>

#include "crepe/core/error.hpp"
#include "crepe/core/parse.hpp"
#include "crepe/io/safetensors.hpp"
#include "crepe/prune/pipeline.hpp"

namespace crepe::search {
namespace {

std::string key(int64_t block, int input, const char* what) {
  return "block." + std::to_string(block) + ".input." + std::to_string(input) + "." + what;
}

std::string sample_key(int64_t block) { return "block." + std::to_string(block) + ".sample_input"; }

// A cache is reused only when its numbers could have come from a run that passed the finite checks.
at::Tensor require_finite_in(const std::string& path, const std::string& name, at::Tensor values) {
  require(at::isfinite(values).all().item<bool>(), path, "tensor '" + name + "' contains NaN or Inf");
  return values;
}

}  // namespace

SearchStats collect_search_stats(const io::Checkpoint& checkpoint, const at::Tensor& calibration_ids,
                                 const std::vector<int64_t>& blocks, const engine::RunnerOptions& options,
                                 nlohmann::json provenance, const at::Tensor& proxy_ids, bool with_gram) {
  c10::InferenceMode inference;
  SearchStats stats;
  stats.provenance = std::move(provenance);
  engine::BlockRunner runner(checkpoint, options);
  at::Tensor states = runner.embed(calibration_ids);
  const int64_t last = *std::max_element(blocks.begin(), blocks.end());
  const bool keep_samples = proxy_ids.defined() && proxy_ids.numel() > 0;
  at::Tensor sample_states = keep_samples ? runner.embed(proxy_ids) : at::Tensor();
  runner.for_each_block(states, [&](int64_t b, model::BlockWeights& weights, at::Tensor& block_states) {
    if (std::find(blocks.begin(), blocks.end(), b) != blocks.end()) {
      auto inputs = prune::collect_block_statistics(runner, b, weights, block_states,
                                                    prune::StatsRequest{with_gram, /*moments=*/false});
      BlockStats block{b, {}, {}};
      // The statistics (a Gram matrix per input: 11008^2 floats for a 7B MLP) wait in host memory,
      // as the cache holds them; the proxies move what they use to the device.
      for (int i = 0; i < model::kLinearInputCount; ++i) block.inputs[i] = prune::to_host(std::move(inputs[i]));
      // A copy: the states go on through the next blocks in place.
      if (keep_samples) {
        block.sample_input = sample_states.to(at::kCPU, at::kFloat, /*non_blocking=*/false, /*copy=*/true);
        prune::require_finite_activations(block.sample_input, checkpoint.dir(),
                                          "the proxy subsample's activations entering block " + std::to_string(b),
                                          options.placement.compute_dtype);
      }
      stats.blocks.push_back(std::move(block));
    }
    if (b < last) {
      runner.forward(weights, block_states);
      if (keep_samples) runner.forward(weights, sample_states);
    }
  }, last + 1);
  return stats;
}

void save_search_stats(const std::string& path, const SearchStats& stats) {
  std::vector<std::pair<std::string, at::Tensor>> tensors;
  for (const BlockStats& block : stats.blocks) {
    for (int i = 0; i < model::kLinearInputCount; ++i) {
      tensors.emplace_back(key(block.block, i, "sq_sum"), block.inputs[i].sq_sum.cpu());
      if (block.inputs[i].gram.defined()) tensors.emplace_back(key(block.block, i, "gram"), block.inputs[i].gram.cpu());
      tensors.emplace_back(key(block.block, i, "tokens"),
                           at::full({1}, static_cast<double>(block.inputs[i].tokens), at::kFloat));
    }
    if (block.sample_input.defined()) tensors.emplace_back(sample_key(block.block), block.sample_input);
  }
  io::write_safetensors(path, tensors, {{"crepe_search_stats", stats.provenance.dump()}});
}

std::optional<SearchStats> load_search_stats(const std::string& path, const nlohmann::json& provenance,
                                             std::string* why, bool need_gram) {
  auto say = [&](const std::string& reason) {
    if (why) *why = reason;
    return std::nullopt;
  };
  if (!std::filesystem::exists(path)) return say("no cache yet");
  const auto file = io::SafetensorsFile::open(path);
  const auto it = file->metadata().find("crepe_search_stats");
  require(it != file->metadata().end(), path, "not a crepe search-statistics file");
  nlohmann::json recorded;
  try {
    recorded = nlohmann::json::parse(it->second);
  } catch (const nlohmann::json::exception&) {
    throw_input_error(path, "corrupt search-statistics metadata");
  }
  if (recorded != provenance) return say("made for another model, data or calibration setup");
  const auto blocks = provenance.at("blocks").get<std::vector<int64_t>>();
  const bool grams = !blocks.empty() && file->contains(key(blocks.front(), 0, "gram"));
  if (need_gram && !grams) return say("it has no Gram matrices (collected without --proxy recon or --correlate)");
  SearchStats stats;
  stats.provenance = recorded;
  for (int64_t b : blocks) {
    BlockStats block{b, {}, {}};
    for (int i = 0; i < model::kLinearInputCount; ++i) {
      std::vector<const char*> expected = {"sq_sum", "tokens"};
      if (grams) expected.push_back("gram");  // all or none, as collected
      for (const char* what : expected) {
        require(file->contains(key(b, i, what)), path, "missing tensor '" + key(b, i, what) + "'");
      }
      block.inputs[i].sq_sum = require_finite_in(path, key(b, i, "sq_sum"), file->load(key(b, i, "sq_sum")));
      require(block.inputs[i].sq_sum.dim() == 1 && (block.inputs[i].sq_sum >= 0).all().item<bool>(), path,
              "tensor '" + key(b, i, "sq_sum") + "' is not a vector of squared sums (one per input, none negative)");
      const at::Tensor tokens = file->load(key(b, i, "tokens"));
      const double count = tokens.numel() == 1 ? tokens.item<double>() : -1.0;
      require(count >= 1 && count <= 9.0e15 && count == std::floor(count), path,
              "tensor '" + key(b, i, "tokens") + "' is not a token count (one whole number >= 1)");
      block.inputs[i].tokens = static_cast<int64_t>(count);
      if (grams) {
        block.inputs[i].gram = require_finite_in(path, key(b, i, "gram"), file->load(key(b, i, "gram")));
        const int64_t width = block.inputs[i].sq_sum.size(0);
        require(block.inputs[i].gram.sizes() == at::IntArrayRef({width, width}), path,
                "Gram matrix shape does not match its statistics");
      }
    }
    if (file->contains(sample_key(b))) {
      block.sample_input = require_finite_in(path, sample_key(b), file->load(sample_key(b)).to(at::kFloat));
      require(block.sample_input.dim() == 3 && block.sample_input.size(0) > 0 && block.sample_input.size(1) > 0 &&
                  block.sample_input.size(2) == block.inputs[0].sq_sum.size(0),
              path, "subsample hidden states do not match the model's width");
    }
    stats.blocks.push_back(std::move(block));
  }
  return stats;
}

bool has_gram(const SearchStats& stats) {
  return !stats.blocks.empty() && std::all_of(stats.blocks.begin(), stats.blocks.end(), [](const BlockStats& b) {
    return std::all_of(b.inputs.begin(), b.inputs.end(), [](const prune::InputStats& s) { return s.gram.defined(); });
  });
}

bool has_subsample(const SearchStats& stats) {
  return !stats.blocks.empty() && std::all_of(stats.blocks.begin(), stats.blocks.end(),
                                              [](const BlockStats& b) { return b.sample_input.defined(); });
}

bool covers_every_block(const std::vector<int64_t>& blocks, int64_t num_layers) {
  if (static_cast<int64_t>(blocks.size()) != num_layers) return false;
  for (size_t b = 0; b < blocks.size(); ++b) {
    if (blocks[b] != static_cast<int64_t>(b)) return false;
  }
  return true;
}

std::vector<int64_t> parse_layer_selection(const std::string& text, int64_t num_layers, const std::string& option) {
  std::vector<int64_t> blocks;
  if (text == "all" || text.empty()) {
    for (int64_t b = 0; b < num_layers; ++b) blocks.push_back(b);
    return blocks;
  }
  if (text.find(',') == std::string::npos) {
    const std::optional<int64_t> parsed = parse_integer(text);
    if (!parsed) throw_input_error(option, "expected 'all', a count, or a list like 0,3,5; got '" + text + "'");
    const int64_t count = *parsed;
    require(count >= 1 && count <= num_layers, option, "count must be in [1, " + std::to_string(num_layers) + "]");
    for (int64_t i = 0; i < count; ++i) {
      blocks.push_back(count == 1 ? 0 : i * (num_layers - 1) / (count - 1));
    }
  } else {
    std::stringstream in(text);
    std::string item;
    while (std::getline(in, item, ',')) {
      const std::optional<int64_t> parsed = parse_integer(item);
      if (!parsed) throw_input_error(option, "'" + item + "' is not a block index");
      const int64_t b = *parsed;
      require(b >= 0 && b < num_layers, option, "block " + item + " does not exist (the model has " +
                                                    std::to_string(num_layers) + ")");
      blocks.push_back(b);
    }
  }
  std::sort(blocks.begin(), blocks.end());
  blocks.erase(std::unique(blocks.begin(), blocks.end()), blocks.end());
  return blocks;
}

}  // namespace crepe::search
