// `crepe inspect --model DIR`: what a checkpoint is, from its config and safetensors headers alone;
// with --sparsity, how sparse its linear layers are, which reads every one of them.
#include <CLI/CLI.hpp>
#include <nlohmann/json.hpp>
#include <spdlog/fmt/fmt.h>

#include <ATen/ATen.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <map>
#include <memory>
#include <optional>

#include "crepe/cli/commands.hpp"
#include "crepe/core/error.hpp"
#include "crepe/io/checkpoint.hpp"
#include "crepe/prune/mask.hpp"
#include "crepe/prune/permutation.hpp"
#include "crepe/prune/permutation_file.hpp"

namespace crepe::cli {
namespace {

struct InspectOptions {
  std::string model;
  bool json = false;
  bool sparsity = false;
};

nlohmann::ordered_json describe(const io::Checkpoint& ckpt) {
  const auto& c = ckpt.config();
  const auto& store = ckpt.tensors();
  std::map<std::string, int64_t> params_by_dtype;
  for (const auto& name : store.names()) {
    const auto& info = store.info(name);
    params_by_dtype[io::dtype_to_string(info.dtype)] += info.numel();
  }
  nlohmann::ordered_json j;
  j["model"] = ckpt.dir();
  j["architecture"] = c.architecture;
  j["layers"] = c.num_layers;
  j["hidden_size"] = c.hidden_size;
  j["intermediate_size"] = c.intermediate_size;
  j["attention_heads"] = c.num_heads;
  j["kv_heads"] = c.num_kv_heads;
  j["head_dim"] = c.head_dim;
  j["vocab_size"] = c.vocab_size;
  j["max_position_embeddings"] = c.max_position_embeddings;
  j["rope_theta"] = c.rope_theta;
  j["tie_word_embeddings"] = c.tie_word_embeddings;
  j["parameters"] = ckpt.parameter_count();
  j["prunable_parameters"] = ckpt.linear_parameter_count();
  j["parameters_by_dtype"] = params_by_dtype;
  j["tensors"] = store.names().size();
  j["shards"] = store.shard_files();
  return j;
}

// Zeros in every linear weight, and which N:M patterns (2:4, 4:8, and the one a permutation file
// names) hold in every one of them: in the channel orders of crepe_permutation.json when the
// directory has one (a checkpoint pruned with --permute), else in the stored order. A permutation
// file that does not fit the checkpoint is an InputError naming it.
nlohmann::ordered_json measure_sparsity(const io::Checkpoint& ckpt) {
  const std::string file = ckpt.dir() + "/" + prune::kPermutationFileName;
  std::optional<prune::ChannelOrders> orders;
  std::error_code absent;
  if (std::filesystem::exists(file, absent)) orders = prune::read_permutation_file(file);
  std::vector<prune::Pattern> patterns = {prune::parse_pattern("2:4"), prune::parse_pattern("4:8")};
  if (orders && orders->pattern.str() != "2:4" && orders->pattern.str() != "4:8") patterns.push_back(orders->pattern);
  std::vector<bool> holds(patterns.size(), true);
  int64_t zeros = 0, total = 0, ordered = 0;
  nlohmann::ordered_json layers = nlohmann::ordered_json::array();
  for (int64_t b = 0; b < ckpt.num_layers(); ++b) {
    for (model::Linear linear : model::kLinears) {
      const std::string name = io::Checkpoint::linear_weight_name(b, linear);
      at::Tensor weight = ckpt.tensors().load(name);
      if (orders) {
        const auto found = orders->orders.find(name);
        require(found != orders->orders.end(), file, "has no channel order for " + name);
        require(found->second.numel() == weight.size(1), file,
                "the channel order of " + name + " has " + std::to_string(found->second.numel()) + " entries, not " +
                    std::to_string(weight.size(1)));
        weight = prune::permute_columns(weight, found->second);
        ++ordered;
      }
      const int64_t layer_zeros = (weight == 0).sum().item<int64_t>();
      zeros += layer_zeros;
      total += weight.numel();
      layers.push_back({{"name", name}, {"zeros", layer_zeros}, {"numel", weight.numel()}});
      for (size_t p = 0; p < patterns.size(); ++p) {
        if (holds[p]) holds[p] = prune::is_n_of_m_sparse(weight, patterns[p].n, patterns[p].m);
      }
    }
  }
  require(!orders || ordered == static_cast<int64_t>(orders->orders.size()), file,
          "names weights this checkpoint does not have (it was written for another model)");
  nlohmann::ordered_json j;
  j["zeros"] = zeros;
  j["total"] = total;
  j["overall"] = total ? static_cast<double>(zeros) / static_cast<double>(total) : 0.0;
  j["n_m"] = nlohmann::ordered_json::array();
  for (size_t p = 0; p < patterns.size(); ++p) {
    if (holds[p]) j["n_m"].push_back(patterns[p].str());
  }
  j["channel_orders"] = orders ? nlohmann::ordered_json(prune::kPermutationFileName) : nlohmann::ordered_json(nullptr);
  j["layers"] = std::move(layers);
  return j;
}

void print_sparsity(const nlohmann::ordered_json& s) {
  double lowest = 1, highest = 0;
  for (const auto& l : s["layers"]) {
    const double fraction = l["zeros"].get<double>() / std::max(1.0, l["numel"].get<double>());
    lowest = std::min(lowest, fraction);
    highest = std::max(highest, fraction);
  }
  std::printf("sparsity       %.2f%% of the linear weights are zero (%lld of %lld); per layer %.2f%% to %.2f%%\n",
              100.0 * s["overall"].get<double>(), static_cast<long long>(s["zeros"].get<int64_t>()),
              static_cast<long long>(s["total"].get<int64_t>()), 100.0 * lowest, 100.0 * highest);
  std::string held;
  for (const auto& p : s["n_m"]) held += (held.empty() ? "" : ", ") + p.get<std::string>();
  const std::string where = s["channel_orders"].is_null()
                                ? std::string("in the stored channel order")
                                : "in the channel orders of " + s["channel_orders"].get<std::string>();
  std::printf("n:m            %s in every linear layer (%s)\n", held.empty() ? "no pattern checked holds" : held.c_str(),
              where.c_str());
}

void print_text(const nlohmann::ordered_json& j) {
  auto millions = [](int64_t n) { return fmt::format("{} ({:.2f}M)", n, static_cast<double>(n) / 1e6); };
  std::cout << "model          " << j["model"].get<std::string>() << "\n"
            << "architecture   " << j["architecture"].get<std::string>() << "\n"
            << "layers         " << j["layers"] << ", hidden " << j["hidden_size"] << ", MLP "
            << j["intermediate_size"] << "\n"
            << "attention      " << j["attention_heads"] << " heads / " << j["kv_heads"] << " KV heads, head_dim "
            << j["head_dim"] << ", rope_theta " << j["rope_theta"] << "\n"
            << "vocab          " << j["vocab_size"] << (j["tie_word_embeddings"].get<bool>() ? " (tied embeddings)" : "")
            << ", context " << j["max_position_embeddings"] << "\n"
            << "parameters     " << millions(j["parameters"].get<int64_t>()) << ", prunable "
            << millions(j["prunable_parameters"].get<int64_t>()) << "\n"
            << "dtypes        ";
  for (const auto& [dtype, count] : j["parameters_by_dtype"].items()) std::cout << " " << dtype << ": " << count;
  std::cout << "\nshards         " << j["shards"].size() << " file(s), " << j["tensors"] << " tensors\n";
}

}  // namespace

Action add_inspect_command(CLI::App& app) {
  auto options = std::make_shared<InspectOptions>();
  CLI::App* cmd = app.add_subcommand("inspect", "Show a checkpoint's architecture, parameter counts, dtypes and shards");
  cmd->add_option("--model", options->model, "Hugging Face model directory")->required();
  cmd->add_flag("--json", options->json, "print one JSON document on stdout");
  cmd->add_flag("--sparsity", options->sparsity,
                "read every linear weight: how many are zero (per layer with --json) and whether 2:4, 4:8 and the "
                "pattern of crepe_permutation.json hold (in its channel orders when present)");
  return [options]() {
    const io::Checkpoint ckpt = io::Checkpoint::open(options->model);
    auto description = describe(ckpt);
    if (options->sparsity) description["sparsity"] = measure_sparsity(ckpt);
    if (options->json) {
      print_json(description.dump(2));
    } else {
      print_text(description);
      std::cout.flush();
      if (options->sparsity) print_sparsity(description["sparsity"]);
    }
    return 0;
  };
}

}  // namespace crepe::cli
